//! The dispatcher role: hands waiting jobs to stored requests (`dispatch.rs`), brings back
//! jobs whose lease ran out (`reaper.rs`), moves delayed jobs to the queue when they are due
//! (`promoter.rs`), pushes the jobs of cron schedules (`scheduler.rs`) and the follow-ups of
//! completed jobs (`mover.rs`). The original design's manager "listens all the
//! time": this is that part of it. Any number of dispatchers may run on one queue: every step
//! they take is one atomic script, so no two of them ever hand out the same job.

mod dispatch;
mod mover;
mod promoter;
mod reaper;
mod scheduler;

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::error::Result;
use crate::options::Options;
use crate::queue::Queue;
use crate::tasks::{Stop, Tasks};

/// Dispatches and reaps one queue until shut down or dropped.
pub struct Dispatcher {
    tasks: Tasks,
    _stop: Stop,
}

impl Dispatcher {
    /// Connects to Redis, creates the queue or joins it, and starts dispatching and reaping.
    pub async fn new(queue: &str, opts: Options) -> Result<Dispatcher> {
        Ok(Dispatcher::start(Queue::open(queue, opts).await?).await)
    }

    pub(crate) async fn start(queue: Queue) -> Dispatcher {
        warn_unless_noeviction(&queue).await;
        let (tasks, stop) = Tasks::new();
        let promoter_wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let scheduler_wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let mover_wake = std::sync::Arc::new(tokio::sync::Notify::new());
        dispatch::start(
            &tasks,
            queue.clone(),
            dispatch::Woken {
                scheduled: vec![promoter_wake.clone(), scheduler_wake.clone()],
                children: mover_wake.clone(),
            },
        );
        promoter::start(&tasks, queue.clone(), promoter_wake);
        scheduler::start(&tasks, queue.clone(), scheduler_wake);
        mover::start(&tasks, queue.clone(), mover_wake);
        reaper::start(&tasks, queue);
        Dispatcher { tasks, _stop: stop }
    }

    /// Stops dispatching, promoting, scheduling and reaping, and waits until all have
    /// stopped. Jobs and requests
    /// stay in Redis for other dispatchers.
    pub async fn shutdown(&self) {
        self.tasks.shutdown().await;
    }
}

/// What a duty that sleeps between its steps (the promoter, the scheduler, the mover) waits
/// after a step: what the step said (how long until it has work again), or, after a failure,
/// which is logged, the next wait of its backoff.
fn wait_after(
    queue: &Queue,
    duty: &str,
    backoff: &mut Backoff,
    step: Result<Duration>,
) -> Duration {
    match step {
        Ok(wait) => {
            backoff.reset();
            wait
        }
        Err(e) => {
            let wait = backoff.next_wait();
            tracing::warn!(queue = %queue.keys.queue, "{duty} failed: {e}; trying again in {wait:?}");
            wait
        }
    }
}

/// Sleeps `wait`, cut short by `woken`; false once `stop` is cancelled.
async fn sleep_unless_woken(wait: Duration, woken: &Notify, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = woken.notified() => true,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// With any eviction policy but `noeviction`, a Redis under memory pressure silently deletes
/// keys, and with them jobs. Say so loudly; an ACL that denies CONFIG is not an error.
async fn warn_unless_noeviction(queue: &Queue) {
    let policy: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut queue.con.clone())
        .await;
    if let Ok(pair) = policy {
        if let Some(policy) = pair.get(1).filter(|p| p.as_str() != "noeviction") {
            tracing::warn!(
                policy = %policy,
                "Redis maxmemory-policy is {policy:?}, not \"noeviction\": under memory pressure Redis will silently delete jobs. Set `maxmemory-policy noeviction`."
            );
        }
    }
}
