//! The scheduler duty: pushes the job of each cron schedule when its tick comes, by running
//! `tick.lua`, which pushes it only if the tick it names still holds, so however many
//! managers run, each tick is pushed once.
//!
//! It reads the soonest ticks and Redis's clock, ticks those that are due (computing each
//! one's next tick from its pattern, after the time it found: `schedules.rs` says why a
//! missed tick is pushed once), and sleeps until the next, at most [`IDLE`]; a schedule set
//! meanwhile publishes `scheduled`, which the dispatch duty passes on.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::error::Result;
use crate::queue::Queue;
use crate::schedules::Schedule;
use crate::scripts::tick::{self, Tick, Ticked};
use crate::tasks::Tasks;

/// The longest sleep between two reads of the schedules.
const IDLE: Duration = Duration::from_secs(1);
/// Ticks looked at per pass (the soonest first); a pass that ticks them all looks again.
const BATCH: isize = 100;

pub(super) fn start(tasks: &Tasks, queue: Queue, wake: Arc<Notify>) {
    tasks.spawn("scheduler", move |stop| run(queue, wake, stop));
}

async fn run(queue: Queue, wake: Arc<Notify>, stop: CancellationToken) {
    // Definitions that cannot be read, each warned about once.
    let mut unreadable = HashSet::new();
    let mut backoff = Backoff::new();
    loop {
        let step = tick_due(&queue, &mut unreadable).await;
        let wait = super::wait_after(&queue, "scheduler", &mut backoff, step);
        if !super::sleep_unless_woken(wait, &wake, &stop).await {
            return;
        }
    }
}

/// Ticks every schedule that is due; returns how long until the next tick (at most IDLE).
async fn tick_due(queue: &Queue, unreadable: &mut HashSet<String>) -> Result<Duration> {
    let k = &queue.keys;
    let mut con = queue.con.clone();
    loop {
        let (time, soonest): ((u64, u64), Vec<(String, f64)>) = redis::pipe()
            .cmd("TIME")
            .zrange_withscores(&k.schedule_due, 0, BATCH - 1)
            .query_async(&mut con)
            .await?;
        let now = time.0 * 1000 + time.1 / 1000;
        let due: Vec<(String, u64)> = soonest
            .iter()
            .map(|(name, at)| (name.clone(), *at as u64))
            .filter(|(_, at)| *at <= now)
            .collect();
        if due.is_empty() {
            let next = soonest
                .first()
                .map(|(_, at)| (*at as u64).saturating_sub(now));
            return Ok(next.map_or(IDLE, |ms| Duration::from_millis(ms + 1).min(IDLE)));
        }
        let names: Vec<&str> = due.iter().map(|(name, _)| name.as_str()).collect();
        let definitions: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&k.schedules)
            .arg(&names)
            .query_async(&mut con)
            .await?;
        let mut stuck = 0;
        for ((name, seen), definition) in due.iter().zip(definitions) {
            let Some(definition) = definition else {
                continue; // removed between the two reads: its tick went with it
            };
            match read(&definition, now) {
                Ok((schedule, next)) => {
                    let tick = Tick {
                        name,
                        seen: *seen,
                        next,
                        definition: &definition,
                        data: &serde_json::to_string(&schedule.data).expect("a Value serializes"),
                        max_attempts: schedule.max_attempts,
                        level: schedule.level(),
                    };
                    match tick::call(queue, &tick).await? {
                        Ticked::Pushed(id) => {
                            tracing::info!(queue = %k.queue, schedule = %name, job = id, "schedule ticked: job pushed");
                        }
                        // Taken by another manager, or changed meanwhile: the next read says.
                        Ticked::NotNow => {}
                        Ticked::TooLarge => {
                            tracing::warn!(queue = %k.queue, schedule = %name, "the schedule's data is over the queue's max_job_bytes: this tick pushed nothing (raise the limit, or set the schedule again with less data)");
                        }
                    }
                }
                Err(problem) => {
                    stuck += 1;
                    if unreadable.insert(format!("{name}\n{definition}")) {
                        tracing::warn!(queue = %k.queue, schedule = %name, "cannot read the schedule ({problem}); it pushes nothing until it is set again with `sque-host schedule add`");
                    }
                }
            }
        }
        if stuck == due.len() {
            // Nothing here can move on: look again later rather than at once.
            return Ok(IDLE);
        }
    }
}

/// A definition as the queue keeps it, and its next tick after `now`.
fn read(definition: &str, now: u64) -> std::result::Result<(Schedule, u64), String> {
    let schedule: Schedule = serde_json::from_str(definition).map_err(|e| e.to_string())?;
    // Written past the library (another language, by hand): checked as the library checks
    // it, so that a bad priority or attempt limit is logged once, not refused at every tick.
    let next = schedule
        .validated_next_after(now)
        .map_err(|e| e.to_string())?;
    Ok((schedule, next))
}

#[cfg(test)]
mod tests {
    use super::read;

    /// 2026-12-06 00:00:00 UTC, in ms.
    const NOW: u64 = 1_796_515_200_000;

    #[test]
    fn a_definition_written_past_the_library_is_checked_as_the_library_checks_it() {
        let (schedule, next) =
            read(r#"{"cron":"0 3 * * *","data":{},"priority":9}"#, NOW).expect("a good definition");
        assert_eq!(schedule.level(), 9);
        assert_eq!(next, NOW + 3 * 3600 * 1000);
        for (definition, problem) in [
            (
                r#"{"cron":"0 3 * * *","data":{},"priority":12}"#,
                "priority",
            ),
            (
                r#"{"cron":"0 3 * * *","data":{},"max_attempts":0}"#,
                "max_attempts",
            ),
            (r#"{"cron":"0 3 * *","data":{}}"#, "cron"),
            (r#"{"cron":"0 3 * * *"}"#, "data"),
        ] {
            let refused = read(definition, NOW).expect_err(definition);
            assert!(refused.contains(problem), "{definition}: {refused}");
        }
    }
}
