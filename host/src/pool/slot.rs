//! A slot: runs jobs one at a time until shutdown, finishing the one in hand within the
//! grace period, and stopping it at once if it is cancelled (the client hears of that at a
//! lease renewal). Runs on the wasm runtime; its outcomes go to the outbox.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use sque::Job;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::pool::outbox::Outbox;
use crate::pool::{Finished, Lane, Ready};
use crate::sandbox::{Ending, JobInput, Outcome, Warm};

pub(super) async fn run(
    ready: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Ready>>>,
    outbox: Arc<Outbox<Finished>>,
    stop: CancellationToken,
    grace: Duration,
) {
    // The instance kept for the next job, with --reuse (never with the default of 1).
    let mut warm: Option<Warm> = None;
    // Made once: a wait made anew for each job registered and unregistered itself in the
    // token's waiter list, which every slot shares; polled first (unstarted jobs must go back
    // at shutdown, not run), it still takes two locks a job.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let next = {
            let mut ready = ready.lock().await;
            tokio::select! {
                biased;
                _ = &mut stopped => None,
                next = ready.recv() => next,
            }
        };
        let Some(Ready {
            lane,
            job,
            input,
            credit,
        }) = next
        else {
            return;
        };
        let (outcome, took) = run_one(&lane, &job, input, &mut warm, &stop, grace).await;
        if matches!(outcome, Outcome::Failed(..)) {
            crate::allocator::give_back_memory();
        }
        // The slot goes on to its next job while the outcome travels to Redis (with other
        // slots' outcomes and the requests their credits make, batched). The credit goes
        // with the outcome, through the outbox.
        outbox.put(Finished {
            lane,
            job,
            outcome,
            took,
            credit,
        });
    }
}

async fn run_one(
    lane: &Lane,
    job: &Job,
    input: JobInput,
    warm: &mut Option<Warm>,
    stop: &CancellationToken,
    grace: Duration,
) -> (Outcome, Duration) {
    let loaded = lane.handler.get();
    if loaded.sandbox.grants.log_payloads {
        tracing::debug!(queue = %job.queue, job = %job.id, attempt = job.attempt, "started, with data {}", input.data);
    } else {
        tracing::debug!(queue = %job.queue, job = %job.id, attempt = job.attempt, "started");
    }
    let started = Instant::now();
    if let Some(m) = lane.metrics() {
        m.started.inc();
        m.busy_slots.inc();
        if let Some(waited) = job.waited() {
            m.wait_time.observe(waited.as_secs_f64());
        }
    }
    // A panic in the host's own code for this job fails the job, not the slot.
    let run = AssertUnwindSafe(loaded.sandbox.run_in(&loaded.handler, input, warm)).catch_unwind();
    // Past the grace period the run is dropped, and the guest's store with it.
    // The run first: a short job ends at its first poll, and the other two waits are then
    // never polled (the shutdown wait would lock the waiter list every slot shares, the
    // cancellation wait its job's own).
    let outcome = tokio::select! {
        biased;
        done = run => done.unwrap_or_else(|_| {
            Outcome::Failed(
                Ending::HostError,
                "the host failed while running the job (a bug in sque-host)".into(),
            )
        }),
        _ = async {
            stop.cancelled().await;
            tokio::time::sleep(grace).await;
        } => Outcome::Failed(Ending::Shutdown, format!(
            "the host shut down and the job did not finish within the grace period of {grace:?} (--grace)"
        )),
        // Stopped as a timeout stops it: the run is dropped, and the guest's store with it.
        _ = job.cancelled() => Outcome::Cancelled,
    };
    if let Some(m) = lane.metrics() {
        m.busy_slots.dec();
    }
    (outcome, started.elapsed())
}
