//! The reaper duty of a manager: on a timer, runs `reap.lua`, which brings jobs whose lease ran
//! out back to the head of their queue (or to the dead list when their attempts are used up),
//! moves due retries back to the queue, and drops results past their retention.

use std::time::Duration;

use crate::queue::connection::Queue;
use crate::queue::duty::{Duty, Shutdown};
use crate::queue::scripts;

/// Entries per script call; a full batch is followed by another call at once.
const BATCH: usize = 500;

pub(crate) fn start(queue: Queue) -> Duty {
    Duty::start("reaper", move |shutdown| run(queue, shutdown))
}

/// A tenth of the lease, within 20 ms .. 1 s: recovery after a crash takes the lease plus at
/// most this.
pub(crate) fn interval(lease: Duration) -> Duration {
    (lease / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

async fn run(queue: Queue, mut shutdown: Shutdown) {
    let every = interval(queue.opts.lease);
    while shutdown.sleep(every).await {
        loop {
            match reap_once(&queue).await {
                Ok([expired, promoted, dropped]) => {
                    if expired > 0 {
                        tracing::warn!(queue = %queue.keys.queue, expired, "leases ran out; jobs back at the head of the queue (or dead when out of attempts)");
                    }
                    if expired < BATCH && promoted < BATCH && dropped < BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(queue = %queue.keys.queue, "reaper failed: {e}");
                    break;
                }
            }
        }
    }
}

async fn reap_once(queue: &Queue) -> redis::RedisResult<[usize; 3]> {
    let k = &queue.keys;
    scripts::REAP
        .key(&k.leases)
        .key(&k.waiting)
        .key(&k.delayed)
        .key(&k.dead)
        .key(&k.errors)
        .key(&k.stats)
        .key(&k.results)
        .key(&k.results_at)
        .key(&k.workers)
        .key(&k.requests)
        .arg(BATCH)
        .arg(queue.opts.result_ttl.as_millis() as u64)
        .arg(queue.opts.result_max)
        .arg(&k.wake)
        .invoke_async(&mut queue.con.clone())
        .await
}
