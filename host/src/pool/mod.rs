//! Worker slots: asks the queues for jobs on behalf of `slots` slots (plus `prefetch` jobs
//! asked for ahead, so that no slot idles for a round trip), runs each job in a fresh
//! sandboxed instance on the wasm runtime, and acknowledges it. One pool serves every queue
//! of a host: a lane per queue, sharing the slots.
//!
//! - `lane.rs`: one queue's part: its client, handler, report and metrics;
//! - `share.rs`: which queue gets the next credit (strict or weighted order);
//! - `fetcher.rs`: gives credits to the lanes, keeps a request open for each, and passes
//!   jobs on in order;
//! - `prefetch.rs`: how many jobs to ask for ahead (adaptive by default);
//! - `slot.rs`: runs jobs one at a time in the sandbox, on the wasm runtime;
//! - `outbox.rs`: the slots' outcomes, sent on to the main runtime in bursts;
//! - `acknowledger.rs`: records each outcome in Redis;
//! - `current_handler.rs`: the handler (and sandbox) a queue's jobs start on, swapped whole
//!   on reload.
//!
//! The slots run on the wasm runtime, a tokio runtime of its own: guests burning CPU there
//! cannot delay the lease renewals, dispatch and requests that run on the main runtime. Jobs
//! cross between the two runtimes in channels (the fetcher's to the slots, the slots'
//! outcomes, gathered into bursts by the outbox, to the acknowledger), so a thread that is
//! busy anyway picks up a whole burst of them instead of being woken once per job.
//!
//! Credits: the fetcher takes a credit before it asks, and the credit travels with the job
//! and its outcome until the acknowledger has sent that outcome on its way, so this host
//! never holds more than `slots + prefetch` jobs (plus one a queue beyond the first, for the
//! request an idle queue keeps open), finished ones waiting in the outbox included. Returning it then, rather than once the outcome is recorded, lets the next
//! request travel to Redis in the same call as the completion.
//!
//! Shutdown (the `stop` token): the fetcher stops asking (its open requests are withdrawn),
//! running jobs get the grace period to finish, unstarted jobs go back to the head of their
//! queue, and jobs still running when the grace period ends are failed (retried later
//! elsewhere).

mod acknowledger;
mod current_handler;
mod fetcher;
mod lane;
mod outbox;
mod prefetch;
mod progress_writes;
mod share;
mod slot;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use sque::Job;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sandbox::{JobInput, Outcome};
pub use current_handler::{CurrentHandler, Loaded};
pub use fetcher::Change;
use lane::Credit;
pub use lane::{Lane, LaneShare};
use outbox::Outbox;
use prefetch::Prefetch;
pub use share::Order;

/// How the pool runs.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub slots: usize,
    /// Jobs asked for ahead of free slots: fixed, or `None` for the adaptive window
    /// (`prefetch.rs`).
    pub prefetch: Option<usize>,
    /// How long running jobs may take to finish after shutdown is asked for.
    pub grace: Duration,
    /// How the queues share the slots.
    pub order: Order,
}

/// What a lane's slots did, for the log line at exit.
#[derive(Clone, Debug, Default)]
pub struct PoolReport {
    pub completed: u64,
    pub failed: u64,
    pub released: u64,
    /// Jobs cancelled while they ran here, and stopped.
    pub cancelled: u64,
}

/// Everything the pool's parts share, whatever the queue.
struct Shared {
    wasm: tokio::runtime::Handle,
    /// How the lanes share the slots.
    order: Order,
    /// Acknowledgements on their way to Redis: waited for before the pool ends.
    acks: TaskTracker,
    /// Jobs the slots have finished, for the adaptive prefetch.
    finished: AtomicU64,
}

/// A job on its way to a slot, with what its guest is given. The fetcher prepares that (the
/// data as JSON text) on the main runtime, which has time to spare, rather than the slot on
/// the busier guests' thread.
struct Ready {
    lane: Arc<Lane>,
    job: Job,
    input: JobInput,
    credit: Credit,
}

/// A job a slot has run, on its way to be acknowledged.
struct Finished {
    lane: Arc<Lane>,
    job: Job,
    outcome: Outcome,
    took: Duration,
    credit: Credit,
}

/// Runs the pool for `lanes` (and the ones `changes` adds) until `stop` is cancelled, then
/// winds it down as described above.
pub async fn run(
    lanes: Vec<(Arc<Lane>, LaneShare)>,
    changes: mpsc::UnboundedReceiver<Change>,
    wasm: tokio::runtime::Handle,
    config: PoolConfig,
    stop: CancellationToken,
) {
    let shared = Arc::new(Shared {
        wasm,
        order: config.order,
        acks: TaskTracker::new(),
        finished: AtomicU64::new(0),
    });
    let prefetch = Prefetch::new(config.prefetch, config.slots);
    for (lane, _) in &lanes {
        if let Some(m) = lane.metrics() {
            m.prefetch.set(prefetch.current() as i64);
        }
    }
    // Every lane beyond the first brings a credit of its own, for the request it keeps open
    // while idle: idle queues' probes never take what the slots and the prefetch are for.
    let probes = lanes.len().saturating_sub(1);
    let credits = Arc::new(Semaphore::new(config.slots + prefetch.current() + probes));
    let (ready_tx, ready_rx) = mpsc::unbounded_channel::<Ready>();
    let ready_rx = Arc::new(tokio::sync::Mutex::new(ready_rx));

    let (bursts, finished) = mpsc::unbounded_channel::<Vec<Finished>>();
    let outbox = Outbox::new(bursts);
    // The sweeper and the forwarder stop once the slots have (their own token).
    let outbox_stop = CancellationToken::new();
    outbox.start_sweeper(outbox_stop.clone());
    let forwarder = shared
        .wasm
        .spawn(outbox.clone().forward(outbox_stop.clone()));

    let fetcher = tokio::spawn(fetcher::run(
        shared.clone(),
        lanes,
        credits,
        prefetch,
        ready_tx,
        changes,
        stop.clone(),
    ));
    let acknowledger = tokio::spawn(acknowledger::run(shared.clone(), finished));
    let slots: Vec<_> = (0..config.slots)
        .map(|_| {
            shared.wasm.spawn(slot::run(
                ready_rx.clone(),
                outbox.clone(),
                stop.clone(),
                config.grace,
            ))
        })
        .collect();

    let _ = fetcher.await;
    // The fetcher has stopped, and a stopped slot takes no job: what waits in the channel
    // will never start. It goes back to the head of the queue now, while the slots finish
    // their jobs within the grace period, not after it; and together, since each give-back
    // waits for Redis (one by one, behind a Redis that answers nothing, that was the
    // response timeout a job).
    let unstarted: Vec<Ready> = {
        let mut ready_rx = ready_rx.lock().await;
        std::iter::from_fn(|| ready_rx.try_recv().ok()).collect()
    };
    let giving_back = join_all(unstarted.iter().map(|r| release(&r.lane, &r.job)));
    let slots_done = async {
        for s in slots {
            let _ = s.await;
        }
    };
    tokio::join!(giving_back, slots_done);
    // The slots are gone: what they left in the outbox goes now, and with the outbox gone
    // the acknowledger's channel closes once it has seen every outcome.
    outbox_stop.cancel();
    let _ = forwarder.await;
    outbox.flush();
    drop(outbox);
    let _ = acknowledger.await;
    // Whatever is left in the channel was never started: back to the head of the queue.
    let mut ready_rx = ready_rx.lock().await;
    while let Ok(ready) = ready_rx.try_recv() {
        release(&ready.lane, &ready.job).await;
    }
    shared.acks.close();
    shared.acks.wait().await;
}

/// Gives a job that never started back to the head of the queue.
async fn release(lane: &Lane, job: &Job) {
    if let Some(m) = lane.metrics() {
        m.held.dec();
    }
    match lane.client.release(job).await {
        Ok(()) => {
            lane.report().released += 1;
            if let Some(m) = lane.metrics() {
                m.released.inc();
            }
            tracing::info!(queue = %job.queue, job = %job.id, "not started: given back to the head of the queue");
        }
        Err(e) => {
            tracing::warn!(queue = %job.queue, job = %job.id, "could not give the job back: {e}; it comes back when its lease runs out")
        }
    }
}
