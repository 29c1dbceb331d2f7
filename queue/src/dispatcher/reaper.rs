//! The reaper duty: on a timer, runs `reap.lua`, which brings jobs whose lease ran out back
//! to the head of their queue (or to the dead list when their attempts are used up), moves
//! due retries back to the queue, and drops results past their retention. It runs every
//! tenth of the queue's lease (as the last pass read it), so recovery after a crash takes
//! about the lease plus a tenth; when Redis fails it simply tries again at the next tick,
//! whose length is the backoff.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::jittered;
use crate::queue::Queue;
use crate::scripts;
use crate::tasks::{sleep_unless, Tasks};

/// Entries per script call; a full batch is followed by another call at once.
const BATCH: usize = 500;

pub(super) fn start(tasks: &Tasks, queue: Queue) {
    tasks.spawn("reaper", move |stop| run(queue, stop));
}

/// A tenth of the lease, within 20 ms .. 1 s.
pub(crate) fn interval(lease: Duration) -> Duration {
    (lease / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

async fn run(queue: Queue, stop: CancellationToken) {
    let mut every = interval(queue.settings.lease);
    // Jittered, so that many managers started together do not reap in step.
    while sleep_unless(&stop, jittered(every)).await {
        loop {
            match scripts::reap::call(&queue, BATCH).await {
                Ok(reaped) => {
                    every = interval(reaped.lease);
                    if reaped.expired > 0 {
                        tracing::warn!(queue = %queue.keys.queue, expired = reaped.expired, "leases ran out; jobs back at the head of the queue (or dead when out of attempts)");
                    }
                    if !reaped.full(BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(queue = %queue.keys.queue, "reaper failed: {e}; trying again in {every:?}");
                    break;
                }
            }
        }
    }
}
