//! Worker slots: asks the queue for jobs on behalf of `slots` slots (plus `prefetch` jobs
//! asked for ahead, so that no slot idles for a round trip), runs each job in a fresh
//! sandboxed instance on the wasm runtime, and acknowledges it.
//!
//! The slots run on the wasm runtime, a tokio runtime of its own: guests burning CPU there
//! cannot delay the lease renewals, dispatch and requests that run on the main runtime. Jobs
//! cross between the two runtimes in channels (the fetcher's to the slots, the slots'
//! outcomes, gathered into bursts by the outbox (`outbox.rs`), to the acknowledger), so a
//! thread that is busy anyway picks up a whole burst of them instead of being woken once per
//! job.
//!
//! Credits: the fetcher takes a credit before it asks, and the credit travels with the job
//! and its outcome until the acknowledger has sent that outcome on its way, so this host
//! never holds more than `slots + prefetch` jobs, finished ones waiting in the outbox
//! included. Returning it then, rather than once the outcome is recorded, lets the next
//! request travel to Redis in the same call as the completion.
//!
//! Shutdown: the fetcher stops asking (its open requests are withdrawn), running jobs get the
//! grace period to finish, unstarted jobs go back to the head of the queue, and jobs still
//! running when the grace period ends are failed (retried later elsewhere).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt as _;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use crate::outbox::Outbox;
use crate::prefetch::{self, Prefetch};
use crate::queue::{Client, Job};
use crate::sandbox::{Handler, JobInput, Outcome, Sandbox};

/// How the pool runs.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub slots: usize,
    /// Jobs asked for ahead of free slots: fixed, or `None` for the adaptive window
    /// (`prefetch.rs`).
    pub prefetch: Option<usize>,
    /// How long running jobs may take to finish after shutdown is asked for.
    pub grace: Duration,
}

/// The handler jobs run on; swapped whole on reload, so a running job keeps the one it
/// started with.
pub struct CurrentHandler(RwLock<Arc<Handler>>);

impl CurrentHandler {
    pub fn new(handler: Handler) -> CurrentHandler {
        CurrentHandler(RwLock::new(Arc::new(handler)))
    }

    pub fn get(&self) -> Arc<Handler> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, handler: Handler) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(handler);
    }
}

/// What the pool did, for the log line at exit.
#[derive(Clone, Debug, Default)]
pub struct PoolReport {
    pub completed: u64,
    pub failed: u64,
    pub released: u64,
}

/// Everything the slots share.
struct Shared {
    client: Arc<Client>,
    sandbox: Arc<Sandbox>,
    handler: Arc<CurrentHandler>,
    wasm: tokio::runtime::Handle,
    report: std::sync::Mutex<PoolReport>,
    /// Acknowledgements on their way to Redis: waited for before the pool ends.
    acks: TaskTracker,
    /// Jobs the slots have finished, for the adaptive prefetch.
    finished: AtomicU64,
}

/// Runs the pool until `shutdown` turns true, then winds it down as described above.
pub async fn run(
    client: Arc<Client>,
    sandbox: Arc<Sandbox>,
    handler: Arc<CurrentHandler>,
    wasm: tokio::runtime::Handle,
    config: PoolConfig,
    shutdown: watch::Receiver<bool>,
) -> PoolReport {
    let shared = Arc::new(Shared {
        client,
        sandbox,
        handler,
        wasm,
        report: Default::default(),
        acks: TaskTracker::new(),
        finished: AtomicU64::new(0),
    });
    let prefetch = Prefetch::new(config.prefetch, config.slots);
    let credits = Arc::new(Semaphore::new(config.slots + prefetch.current()));
    let (tx, rx) = mpsc::unbounded_channel::<Ready>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));

    let (bursts, finished) = mpsc::unbounded_channel::<Vec<Finished>>();
    let outbox = Outbox::new(bursts);
    outbox.start_sweeper();
    let forwarder = shared.wasm.spawn(outbox.clone().forward());

    let fetcher = tokio::spawn(fetch(
        shared.clone(),
        credits.clone(),
        prefetch,
        tx,
        shutdown.clone(),
    ));
    let acknowledger = tokio::spawn(acknowledge_all(shared.clone(), finished));
    let slots: Vec<_> = (0..config.slots)
        .map(|_| {
            shared.wasm.spawn(slot(
                shared.clone(),
                rx.clone(),
                outbox.clone(),
                shutdown.clone(),
                config.grace,
            ))
        })
        .collect();

    let _ = fetcher.await;
    for s in slots {
        let _ = s.await;
    }
    // The slots are gone: what they left in the outbox goes now, and with the outbox gone
    // the acknowledger's channel closes once it has seen every outcome.
    forwarder.abort();
    let _ = forwarder.await;
    outbox.flush();
    drop(outbox);
    let _ = acknowledger.await;
    // Whatever is left in the channel was never started: back to the head of the queue.
    let mut rx = rx.lock().await;
    while let Ok(ready) = rx.try_recv() {
        release(&shared, &ready.job).await;
    }
    shared.acks.close();
    shared.acks.wait().await;
    let report = shared
        .report
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    report
}

/// Keeps a request open for every free credit, until shutdown, and passes jobs on in the
/// order the requests were made (which is the order the queue serves them): slots start jobs
/// in queue order. Resizes an adaptive prefetch as the rate of finished jobs changes.
async fn fetch(
    shared: Arc<Shared>,
    credits: Arc<Semaphore>,
    mut prefetch: Prefetch,
    tx: mpsc::UnboundedSender<Ready>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = shared.client.clone();
    let mut asks = FuturesOrdered::new();
    let mut backoff = Duration::from_millis(50);
    let mut pause = None;
    let mut retune = tokio::time::interval(prefetch::RETUNE_EVERY);
    retune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Dropping `asks` on return withdraws the open requests; a job that reached one
        // meanwhile goes back to the head of the queue.
        tokio::select! {
            biased;
            _ = stopping(&mut shutdown) => return,
            _ = retune.tick(), if prefetch.is_adaptive() => {
                prefetch.retune(shared.finished.load(Ordering::Relaxed), &credits);
            }
            credit = credits.clone().acquire_owned() => {
                let credit = credit.expect("never closed");
                let client = &client;
                asks.push_back(async move { (client.i_am_free(None).await, credit) });
            }
            Some((asked, credit)) = asks.next(), if !asks.is_empty() => match asked {
                Ok(job) => {
                    backoff = Duration::from_millis(50);
                    let ready = Ready { input: guest_input(&job), job, credit };
                    if let Err(mpsc::error::SendError(ready)) = tx.send(ready) {
                        release(&shared, &ready.job).await;
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!("asking for a job failed: {e}; asking again in {backoff:?}");
                    // The credit is held through the pause, so that no new request goes out.
                    pause = Some((backoff, credit));
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            },
        }
        if let Some((wait, credit)) = pause.take() {
            tokio::select! {
                _ = stopping(&mut shutdown) => return,
                _ = tokio::time::sleep(wait) => drop(credit),
            }
        }
    }
}

/// Runs jobs one at a time until shutdown, finishing the one in hand within the grace. Runs
/// on the wasm runtime.
async fn slot(
    shared: Arc<Shared>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Ready>>>,
    outbox: Arc<Outbox<Finished>>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    loop {
        let next = {
            let mut rx = rx.lock().await;
            tokio::select! {
                biased;
                _ = stopping(&mut shutdown) => None,
                next = rx.recv() => next,
            }
        };
        let Some(Ready { job, input, credit }) = next else {
            return;
        };
        let (outcome, took) = run_one(&shared, &job, input, shutdown.clone(), grace).await;
        // The slot goes on to its next job while the outcome travels to Redis (with other
        // slots' outcomes and the requests their credits make, batched). The credit goes
        // with the outcome, through the outbox.
        outbox.put(Finished {
            job,
            outcome,
            took,
            credit,
        });
    }
}

async fn run_one(
    shared: &Shared,
    job: &Job,
    input: JobInput,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> (Outcome, Duration) {
    let handler = shared.handler.get();
    if shared.sandbox.grants.log_payloads {
        tracing::debug!(queue = %job.queue, job = %job.id, attempt = job.attempt, "started, with data {}", input.data);
    } else {
        tracing::debug!(queue = %job.queue, job = %job.id, attempt = job.attempt, "started");
    }
    let started = Instant::now();
    // A panic in the host's own code for this job fails the job, not the slot.
    let run = AssertUnwindSafe(shared.sandbox.run(&handler, input)).catch_unwind();
    // Past the grace period the run is dropped, and the guest's store with it.
    let outcome = tokio::select! {
        done = run => done.unwrap_or_else(|_| {
            Outcome::Retry("the host failed while running the job (a bug in sque-host)".into())
        }),
        _ = async {
            stopping(&mut shutdown).await;
            tokio::time::sleep(grace).await;
        } => Outcome::Retry(format!(
            "the host shut down and the job did not finish within the grace period of {grace:?}"
        )),
    };
    (outcome, started.elapsed())
}

/// A job on its way to a slot, with what its guest is given. The fetcher prepares that (the
/// data as JSON text) on the main runtime, which has time to spare, rather than the slot on
/// the busier guests' thread.
struct Ready {
    job: Job,
    input: JobInput,
    credit: OwnedSemaphorePermit,
}

fn guest_input(job: &Job) -> JobInput {
    JobInput {
        id: job.id.to_string(),
        queue: job.queue.clone(),
        attempt: job.attempt,
        data: job.data.to_string(),
    }
}

/// A job a slot has run, on its way to be acknowledged.
struct Finished {
    job: Job,
    outcome: Outcome,
    took: Duration,
    credit: OwnedSemaphorePermit,
}

/// Acknowledges every outcome the slots pass on, a burst at a time in a task of its own on
/// the main runtime (tracked, so that the pool ends only once they are recorded), until the
/// slots are gone. The jobs' credits come back once their acknowledgements are on their way
/// (spawned first, they reach the batch before the requests the credits make), not once
/// recorded.
///
/// One task per burst rather than per job: a task per job cost a spawn and several copies of
/// its near-kilobyte future, a tenth of the main thread's time at full speed.
async fn acknowledge_all(
    shared: Arc<Shared>,
    mut finished: mpsc::UnboundedReceiver<Vec<Finished>>,
) {
    while let Some(batch) = finished.recv().await {
        shared
            .finished
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let (outcomes, credits): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|done| ((done.job, done.outcome, done.took), done.credit))
            .unzip();
        let ack = shared.clone();
        shared.acks.spawn(async move {
            join_all(
                outcomes
                    .iter()
                    .map(|(job, outcome, took)| acknowledge(&ack, job, outcome, *took)),
            )
            .await
        });
        drop(credits);
    }
}

async fn acknowledge(shared: &Shared, job: &Job, outcome: &Outcome, took: Duration) {
    let client = &shared.client;
    let (queue, id, attempt) = (&job.queue, &job.id, job.attempt);
    let acked = match outcome {
        Outcome::Completed(result) => {
            let result = result
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .unwrap_or(None);
            let acked = client.complete(job, result).await;
            if acked.is_ok() {
                tracing::debug!(queue = %queue, job = %id, attempt, "completed in {took:.1?}");
            }
            acked
        }
        Outcome::Retry(reason) => match client.fail(job, reason).await {
            Ok(crate::queue::FailOutcome::Retry { after }) => {
                tracing::warn!(queue = %queue, job = %id, attempt, "failed: {reason}; retrying in {after:.1?}");
                Ok(())
            }
            Ok(crate::queue::FailOutcome::Dead) => {
                tracing::error!(queue = %queue, job = %id, attempt, "failed: {reason}; out of attempts, moved to the dead list");
                Ok(())
            }
            Err(e) => Err(e),
        },
        Outcome::Fail(reason) => {
            let acked = client.fail_permanently(job, reason).await;
            if acked.is_ok() {
                tracing::error!(queue = %queue, job = %id, attempt, "failed for good: {reason}; moved to the dead list");
            }
            acked.map(|_| ())
        }
    };
    let mut report = shared.report.lock().unwrap_or_else(|p| p.into_inner());
    match acked {
        Ok(()) if matches!(outcome, Outcome::Completed(_)) => report.completed += 1,
        Ok(()) => report.failed += 1,
        Err(e) => {
            tracing::warn!(queue = %queue, job = %id, attempt, "could not record the outcome: {e}; the job will come back when its lease runs out")
        }
    }
}

/// Resolves once shutdown is asked for.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, so that callers can hold this across
    // awaits on other threads.
    let _ = shutdown.wait_for(|s| *s).await;
}

async fn release(shared: &Shared, job: &Job) {
    match shared.client.release(job).await {
        Ok(()) => {
            shared
                .report
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .released += 1;
            tracing::info!(queue = %job.queue, job = %job.id, "not started: given back to the head of the queue");
        }
        Err(e) => {
            tracing::warn!(queue = %job.queue, job = %job.id, "could not give the job back: {e}; it comes back when its lease runs out")
        }
    }
}
