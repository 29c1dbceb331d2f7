//! The dispatch duty: sleeps on the queue's wake channel (pub/sub) and on a short timer, and
//! on either runs `dispatch.lua`, which pairs waiting jobs with stored requests; on a queue
//! whose rate limit held jobs back, also until the limit lets the next one go (the script
//! says when). It holds the
//! dispatcher's one subscription, so it also passes a `scheduled` message on to the promoter
//! and the scheduler, and a `children` message to the mover.
//!
//! Pub/sub only wakes it up; the requests and jobs themselves are in Redis. A message lost
//! while this dispatcher was down or reconnecting is made up for by the sweep after every
//! (re)subscription and by the timer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backend::Wake;
use crate::backoff::Backoff;
use crate::queue::Queue;
use crate::scripts;
use crate::tasks::{sleep_unless, Tasks};

/// Pairs per script call: large enough to amortise the round trip, small enough that one
/// call never holds Redis for long.
const BATCH: usize = 256;
/// The sweep that makes up for lost wake-ups.
const SWEEP: Duration = Duration::from_millis(250);

/// The other duties a message wakes.
pub(super) struct Woken {
    /// Notified when a `scheduled` message comes (jobs scheduled sooner than the promoters
    /// knew, or a schedule set).
    pub scheduled: Vec<Arc<Notify>>,
    /// Notified when a `children` message comes (a completion committed follow-ups).
    pub children: Arc<Notify>,
}

/// Starts the duty.
pub(super) fn start(tasks: &Tasks, queue: Queue, woken: Woken) {
    tasks.spawn("dispatch", move |stop| run(queue, woken, stop));
}

async fn run(queue: Queue, woken: Woken, stop: CancellationToken) {
    let mut backoff = Backoff::new();
    while !stop.is_cancelled() {
        let mut wake = match queue.subscribe(&queue.keys.wake).await {
            Ok(p) => p,
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(queue = %queue.keys.queue, "dispatcher cannot subscribe: {e}; retrying in {wait:?}");
                sleep_unless(&stop, wait).await;
                continue;
            }
        };
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When the queue's rate limit held jobs back: when it lets the next one go.
        let mut rate_open: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(rate_open.unwrap_or_else(tokio::time::Instant::now)), if rate_open.is_some() => {}
                message = wake.next() => {
                    let Some(mut message) = message else {
                        tracing::warn!(queue = %queue.keys.queue, "dispatcher lost its subscription; reconnecting");
                        break;
                    };
                    // A burst of wake-ups needs one dispatch pass, not one each.
                    loop {
                        match message {
                            Wake::Scheduled => woken.scheduled.iter().for_each(|duty| duty.notify_one()),
                            Wake::Children => woken.children.notify_one(),
                            Wake::Dispatch => {}
                        }
                        match wake.try_next() {
                            Some(next) => message = next,
                            None => break,
                        }
                    }
                }
                _ = sweep.tick() => {}
            }
            match dispatch_all(&queue).await {
                Ok(rate_wait) => {
                    rate_open = rate_wait.map(|wait| tokio::time::Instant::now() + wait);
                    backoff.reset();
                }
                Err(()) => {
                    sleep_unless(&stop, backoff.next_wait()).await;
                }
            }
        }
    }
}

/// Dispatches until no pair is left. Returns, when the queue's rate limit held jobs back, how
/// long until it lets the next one go; an error when Redis failed.
async fn dispatch_all(queue: &Queue) -> Result<Option<Duration>, ()> {
    loop {
        match scripts::dispatch::call(queue, BATCH).await {
            Ok(d) if d.served < BATCH => return Ok(d.rate_wait),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(queue = %queue.keys.queue, "dispatch failed: {e}");
                return Err(());
            }
        }
    }
}
