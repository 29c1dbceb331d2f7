//! The admin role: what an operator changes in a queue. Its settings (one source, the
//! queue's meta: see `settings.rs`), whether it hands jobs out (pause, resume), its jobs
//! (cancel one) and its dead list (retry or purge). It never creates a
//! queue by mistake: opening one that does not exist is an error.

use crate::error::Result;
use crate::job::JobId;
use crate::options::Options;
use crate::queue::Queue;
use crate::schedules::Schedule;
use crate::scripts;
pub use crate::scripts::cancel::Cancelled;
use crate::scripts::dead::{Action, Which};
use crate::settings::{QueueSettings, SettingsChange};

/// Changes one queue.
#[derive(Clone)]
pub struct Admin {
    queue: Queue,
}

impl Admin {
    /// Connects to Redis and opens the queue, which must exist ([`crate::Error::NoSuchQueue`]
    /// otherwise).
    pub async fn new(queue: &str, opts: Options) -> Result<Admin> {
        let mut queue = Queue::open_existing(queue, opts).await?;
        scripts::load_all(&mut queue.con).await?;
        Ok(Admin { queue })
    }

    pub(crate) fn from_queue(queue: Queue) -> Admin {
        Admin { queue }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue.keys.queue
    }

    /// The queue's settings now.
    pub async fn settings(&self) -> Result<QueueSettings> {
        self.configure(&SettingsChange::default()).await
    }

    /// Changes the settings given in `change` (the others stay) and returns the queue's
    /// settings after it. Refused, with nothing changed, when the result would not work
    /// (a lease under 100 ms, a backoff over its cap, ...). Every host and client uses the new
    /// values at its next call.
    pub async fn configure(&self, change: &SettingsChange) -> Result<QueueSettings> {
        if !change.is_empty() {
            let current = QueueSettings::from_fields(
                &scripts::configure::call(&self.queue, &SettingsChange::default()).await?,
            )?;
            current.with(change).validate()?;
        }
        QueueSettings::from_fields(&scripts::configure::call(&self.queue, change).await?)
    }

    /// Pauses the queue: no job is handed out until [`Admin::resume`], by any host; jobs
    /// running finish, pushes are kept. Returns false when it was paused already.
    pub async fn pause(&self) -> Result<bool> {
        scripts::pause::call(&self.queue, true).await
    }

    /// Resumes a paused queue: the workers waiting are served at once. Returns false when it
    /// was not paused.
    pub async fn resume(&self) -> Result<bool> {
        scripts::pause::call(&self.queue, false).await
    }

    /// Cancels job `id`, whatever it is doing: a waiting, scheduled or retrying job never runs;
    /// a running one is refused its next renewal and acknowledgement, and its holder stops it
    /// (`Job::cancelled`). It is recorded as cancelled (`Inspector::job`), kept as long as a
    /// result, and never retried; its unique key is freed. A dead job, or one that has ended,
    /// cannot be cancelled (a dead one can be purged, `Admin::purge_dead_jobs`): the answer
    /// says which it was.
    pub async fn cancel(&self, id: &JobId) -> Result<Cancelled> {
        scripts::cancel::call(&self.queue, id.as_str()).await
    }

    /// Adds the schedule `name` (a job pushed on a cron pattern by whichever manager runs,
    /// once a tick), or replaces the one of that name. Returns its first tick, in ms since the
    /// epoch on Redis's clock. A bad name, pattern, zone or data is refused with nothing
    /// changed.
    pub async fn set_schedule(&self, name: &str, schedule: &Schedule) -> Result<u64> {
        crate::schedules::validate_name(name)?;
        schedule.validate()?;
        let data = serde_json::to_string(&schedule.data).expect("a Value serializes");
        let limit = self.queue.settings.max_job_bytes as usize;
        if data.len() > limit {
            return Err(crate::Error::JobTooLarge {
                size: data.len(),
                limit,
            });
        }
        // The normal priority is kept as none: the definition reads as one without it.
        let schedule = &Schedule {
            priority: schedule.priority.filter(|l| *l != crate::NORMAL_PRIORITY),
            ..schedule.clone()
        };
        let definition = serde_json::to_string(schedule).expect("a schedule serializes");
        // The data as a worker reads each job, and the definition as the scheduler reads it
        // back: one level deeper than the data, so data of 127 levels made a schedule that
        // could not be read and pushed nothing.
        if let Err(e) = crate::wire::check_data(data.as_bytes())
            .and_then(|()| crate::wire::check_data(definition.as_bytes()))
        {
            return Err(crate::Error::InvalidInput(format!(
                "the schedule's data cannot be kept: {e}"
            )));
        }
        let now = redis_now_ms(&self.queue).await?;
        let first = schedule.next_after(now)?;
        scripts::schedules::set(&self.queue, name, &definition, first, schedule.level()).await?;
        Ok(first)
    }

    /// Removes the schedule `name`; false when there was none.
    pub async fn remove_schedule(&self, name: &str) -> Result<bool> {
        crate::schedules::validate_name(name)?;
        scripts::schedules::remove(&self.queue, name).await
    }

    /// Puts dead jobs back at the tail of the queue with their attempts started again: the
    /// ones named, or all of them, a chunk per script call (never one long call). Poison is
    /// never retried: it is refused, by name or skipped in `All`, and stays dead.
    pub async fn retry_dead_jobs(&self, which: DeadJobs<'_>) -> Result<DeadReport> {
        self.dead_jobs(Action::Retry, which).await
    }

    /// Deletes dead jobs for good, with their data and error: the ones named, or all of them,
    /// a chunk per script call.
    pub async fn purge_dead_jobs(&self, which: DeadJobs<'_>) -> Result<DeadReport> {
        self.dead_jobs(Action::Purge, which).await
    }

    /// Retries the dead job with this id, or all (`None`); returns how many. See
    /// [`Admin::retry_dead_jobs`] for what was refused.
    pub async fn retry_dead(&self, id: Option<&JobId>) -> Result<u64> {
        Ok(self.retry_dead_jobs(DeadJobs::from(id)).await?.done)
    }

    /// Purges the dead job with this id, or all (`None`); returns how many.
    pub async fn purge_dead(&self, id: Option<&JobId>) -> Result<u64> {
        Ok(self.purge_dead_jobs(DeadJobs::from(id)).await?.done)
    }

    async fn dead_jobs(&self, action: Action, which: DeadJobs<'_>) -> Result<DeadReport> {
        match which {
            DeadJobs::Ids(ids) => {
                let mut report = DeadReport::default();
                for chunk in ids.chunks(DEAD_CHUNK as usize) {
                    let names: Vec<&str> = chunk.iter().map(JobId::as_str).collect();
                    let done = scripts::dead::call(&self.queue, action, Which::Ids(&names)).await?;
                    report.add(done);
                }
                Ok(report)
            }
            DeadJobs::All => {
                let mut report = DeadReport::default();
                // Entries that die while this runs may or may not be included; it never
                // goes on for longer than the list was long at the start.
                let at_start: u64 = redis::pipe()
                    .zcard(&self.queue.keys.dead_at)
                    .llen(&self.queue.keys.dead)
                    .query_async::<(u64, u64)>(&mut self.queue.con.clone())
                    .await
                    .map(|(a, b)| a + b)?;
                let mut skip = 0;
                let mut looked = 0;
                while looked < at_start {
                    let chunk = Which::Oldest {
                        skip,
                        count: DEAD_CHUNK,
                    };
                    let done = scripts::dead::call(&self.queue, action, chunk).await?;
                    let seen = done.done + (done.skip - skip);
                    skip = done.skip;
                    looked += seen;
                    report.skipped = done.skip;
                    report.done += done.done;
                    if seen < DEAD_CHUNK {
                        break;
                    }
                }
                Ok(report)
            }
        }
    }
}

/// Entries retried or purged per script call when going through the whole dead list: about
/// 15 µs each on the 2-core bench machine, so a call holds Redis for under 10 ms however
/// long the list (`cargo run --release -p sque-bench -- --only dead`).
const DEAD_CHUNK: u64 = 500;

/// Which dead jobs an operation is for.
#[derive(Clone, Copy, Debug)]
pub enum DeadJobs<'a> {
    /// These ids (an entry that is not a job is named by itself).
    Ids(&'a [JobId]),
    /// Every dead job.
    All,
}

impl<'a> From<Option<&'a JobId>> for DeadJobs<'a> {
    fn from(id: Option<&'a JobId>) -> Self {
        match id {
            Some(id) => DeadJobs::Ids(std::slice::from_ref(id)),
            None => DeadJobs::All,
        }
    }
}

/// What a dead-list operation did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeadReport {
    /// Jobs retried or purged.
    pub done: u64,
    /// Ids named that were refused, each with why (not in the dead list, poison).
    pub refused: Vec<(JobId, String)>,
    /// With `All`, entries a retry left in place (poison, or entries that are not jobs).
    pub skipped: u64,
}

impl DeadReport {
    fn add(&mut self, done: scripts::dead::Done) {
        self.done += done.done;
        self.refused.extend(
            done.refused
                .into_iter()
                .map(|(id, why)| (JobId::from(id), why)),
        );
    }
}

/// Redis's clock, in ms since the epoch: the clock every tick is computed on.
pub(crate) async fn redis_now_ms(queue: &Queue) -> Result<u64> {
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut queue.con.clone())
        .await?;
    Ok(secs * 1000 + micros / 1000)
}
