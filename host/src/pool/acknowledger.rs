//! The acknowledger: records every outcome the slots pass on, a burst at a time in a task of
//! its own on the main runtime (tracked, so that the pool ends only once they are recorded),
//! until the slots are gone. The jobs' credits come back once their acknowledgements are on
//! their way (spawned first, they reach the batch before the requests the credits make), not
//! once recorded.
//!
//! One task per burst rather than per job: a task per job cost a spawn and several copies of
//! its near-kilobyte future, a tenth of the main thread's time at full speed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use sque::{Client, FailOutcome, Failure, Job};
use tokio::sync::mpsc;

use crate::pool::{Finished, Shared};
use crate::sandbox::{escaped, Ending, Outcome};

pub(super) async fn run(shared: Arc<Shared>, mut finished: mpsc::UnboundedReceiver<Vec<Finished>>) {
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
            // The sandbox checked the result: it parses, and is nested under 128 levels.
            match client.complete_json(job, result.clone()).await {
                Ok(()) => {
                    tracing::debug!(queue = %queue, job = %id, attempt, "completed in {took:.1?}");
                    Ok(())
                }
                // Redis refused this completion (it was alone in its call: others are not
                // affected). The job fails, with why, rather than running again unrecorded.
                Err(e) if !e.is_unavailable() && !matches!(e, sque::Error::StaleLease { .. }) => {
                    let reason = format!("Redis refused the job's completion: {e}");
                    fail(client, job, Ending::HostError, &reason).await
                }
                Err(e) => Err(e),
            }
        }
        Outcome::Failed(ending, reason) => fail(client, job, *ending, reason).await,
    };
    let mut report = shared.report();
    match acked {
        Ok(()) if matches!(outcome, Outcome::Completed(_)) => report.completed += 1,
        Ok(()) => report.failed += 1,
        Err(e) => {
            tracing::warn!(queue = %queue, job = %id, attempt, "could not record the outcome: {e}; the job will come back when its lease runs out")
        }
    }
}

/// Records a failure, with its code, and says what became of the job.
async fn fail(client: &Client, job: &Job, ending: Ending, reason: &str) -> Result<(), sque::Error> {
    let (queue, id, attempt) = (&job.queue, &job.id, job.attempt);
    let failure = Failure {
        code: ending.code(),
        message: reason,
        retry: ending.retried(),
    };
    let shown = escaped(reason);
    match client.fail_with(job, &failure).await? {
        FailOutcome::Retry { after } => {
            tracing::warn!(queue = %queue, job = %id, attempt, code = ending.code(), "failed: {shown}; retrying in {after:.1?}");
        }
        FailOutcome::Dead if ending.retried() => {
            tracing::error!(queue = %queue, job = %id, attempt, code = ending.code(), "failed: {shown}; out of attempts, moved to the dead list");
        }
        FailOutcome::Dead => {
            tracing::error!(queue = %queue, job = %id, attempt, code = ending.code(), "failed for good: {shown}; moved to the dead list");
        }
    }
    Ok(())
}
