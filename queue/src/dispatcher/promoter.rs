//! The promoter duty: moves scheduled jobs (pushed with a delay or a time) to the tail of the
//! queue when they fall due, by running `promote.lua`.
//!
//! It sleeps until the soonest scheduled job is due, as the last call reported it on Redis's
//! clock (so this machine's clock never matters), and no longer than [`IDLE`]: another
//! manager may have promoted meanwhile, or a producer scheduled something sooner. A producer
//! that schedules a job sooner than any other publishes `scheduled`, which the dispatch duty
//! passes on, so a short delay is not held up by a long sleep. Every manager runs one; each
//! job is moved by exactly one `promote` call, whichever manager makes it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::error::Result;
use crate::queue::Queue;
use crate::scripts;
use crate::tasks::Tasks;

/// Jobs per script call: a call moves them in about a millisecond of Redis's time, so a
/// hundred thousand jobs due at once never hold Redis for long, and the loop calls again at
/// once while calls come back full.
const BATCH: usize = 1000;
/// The longest sleep between calls, whatever the schedule says.
const IDLE: Duration = Duration::from_secs(1);
/// Added to the reported wait, so that the call lands just after the job fell due rather than
/// just before (Redis's clock and the timer's differ by rounding).
const MARGIN: Duration = Duration::from_millis(1);

pub(super) fn start(tasks: &Tasks, queue: Queue, scheduled: Arc<Notify>) {
    tasks.spawn("promoter", move |stop| run(queue, scheduled, stop));
}

async fn run(queue: Queue, scheduled: Arc<Notify>, stop: CancellationToken) {
    let mut backoff = Backoff::new();
    loop {
        let step = promote_due(&queue).await.map(next_wait);
        let wait = super::wait_after(&queue, "promoter", &mut backoff, step);
        if !super::sleep_unless_woken(wait, &scheduled, &stop).await {
            return;
        }
    }
}

/// Promotes until no due job is left; returns how long until the next one is due.
async fn promote_due(queue: &Queue) -> Result<Option<Duration>> {
    loop {
        let promoted = scripts::promote::call(queue, BATCH).await?;
        if promoted.moved < BATCH {
            return Ok(promoted.next_due);
        }
    }
}

/// How long to sleep when the next job (or tick) is due in `next_due`: until just after
/// then, and never longer than [`IDLE`]. The scheduler sleeps the same way.
pub(super) fn next_wait(next_due: Option<Duration>) -> Duration {
    match next_due {
        Some(d) => (d + MARGIN).min(IDLE),
        None => IDLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_sleeps_until_the_next_job_is_due_but_never_long() {
        assert_eq!(next_wait(Some(Duration::ZERO)), MARGIN);
        assert_eq!(
            next_wait(Some(Duration::from_millis(30))),
            Duration::from_millis(31)
        );
        assert_eq!(next_wait(Some(Duration::from_secs(3600))), IDLE);
        assert_eq!(next_wait(None), IDLE);
    }
}
