//! The dispatcher duty of a manager: sleeps on the queue's wake channel (pub/sub) and on a
//! short timer, and on either runs `dispatch.lua`, which pairs waiting jobs with free requests.
//!
//! Pub/sub only wakes it up; the requests and jobs themselves are in Redis. A message lost
//! while this manager was down or reconnecting is made up for by the sweep after every
//! (re)subscription and by the timer.

use std::time::Duration;

use crate::queue::connection::Queue;
use crate::queue::duty::{Backoff, Duty, Shutdown};
use crate::queue::scripts;

/// Pairs per script call: large enough to amortise the round trip, small enough that one
/// call never holds Redis for long.
const BATCH: usize = 256;
/// The sweep that makes up for lost wake-ups.
const SWEEP: Duration = Duration::from_millis(250);

pub(crate) fn start(queue: Queue) -> Duty {
    Duty::start("dispatcher", move |shutdown| run(queue, shutdown))
}

async fn run(queue: Queue, mut shutdown: Shutdown) {
    let mut backoff = Backoff::new();
    while !shutdown.is_set() {
        let mut wake = match queue.backend.subscribe(&queue.keys.wake).await {
            Ok(p) => p,
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(queue = %queue.keys.queue, "dispatcher cannot subscribe: {e}; retrying in {wait:?}");
                shutdown.sleep(wait).await;
                continue;
            }
        };
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                alive = wake.next() => {
                    if !alive {
                        tracing::warn!(queue = %queue.keys.queue, "dispatcher lost its subscription; reconnecting");
                        break;
                    }
                    // A burst of wake-ups needs one dispatch pass, not one each.
                    while wake.try_next() {}
                }
                _ = sweep.tick() => {}
            }
            if dispatch_all(&queue).await {
                backoff.reset();
            } else {
                shutdown.sleep(backoff.next()).await;
            }
        }
    }
}

/// Dispatches until no pair is left. Returns false when Redis failed.
async fn dispatch_all(queue: &Queue) -> bool {
    let k = &queue.keys;
    let mut con = queue.con.clone();
    loop {
        let result: redis::RedisResult<usize> = scripts::DISPATCH
            .key(&k.waiting)
            .key(&k.requests)
            .key(&k.jobs)
            .key(&k.leases)
            .key(&k.workers)
            .key(&k.stats)
            .key(&k.meta)
            .arg(BATCH)
            .arg(queue.opts.lease.as_millis() as u64)
            .arg(queue.opts.max_attempts)
            .arg(&k.base)
            .arg(queue.opts.inbox_ttl().as_millis() as u64)
            .invoke_async(&mut con)
            .await;
        match result {
            Ok(n) if n < BATCH => return true,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(queue = %k.queue, "dispatch failed: {e}");
                return false;
            }
        }
    }
}
