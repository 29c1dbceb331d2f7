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
use sque::{FailOutcome, Job};
use tokio::sync::mpsc;

use crate::pool::{Finished, Shared};
use crate::sandbox::Outcome;

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
            Ok(FailOutcome::Retry { after }) => {
                tracing::warn!(queue = %queue, job = %id, attempt, "failed: {reason}; retrying in {after:.1?}");
                Ok(())
            }
            Ok(FailOutcome::Dead) => {
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
    let mut report = shared.report();
    match acked {
        Ok(()) if matches!(outcome, Outcome::Completed(_)) => report.completed += 1,
        Ok(()) => report.failed += 1,
        Err(e) => {
            tracing::warn!(queue = %queue, job = %id, attempt, "could not record the outcome: {e}; the job will come back when its lease runs out")
        }
    }
}
