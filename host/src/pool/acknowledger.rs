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
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sque::{Client, FailOutcome, Failure, Job};
use tokio::sync::mpsc;

use crate::metrics::JobMetrics;
use crate::pool::lane::Acking;
use crate::pool::{Finished, Lane, Shared};
use crate::sandbox::{escaped, Ending, Outcome};

pub(super) async fn run(shared: Arc<Shared>, mut finished: mpsc::UnboundedReceiver<Vec<Finished>>) {
    while let Some(batch) = finished.recv().await {
        shared
            .finished
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let (outcomes, credits): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|done| ((done.lane, done.job, done.outcome, done.took), done.credit))
            .unzip();
        // Acknowledgements on their way (spawned first): the jobs are no longer this host's
        // to hold.
        // Each lane with jobs in the burst counts it once (a burst is mostly of one lane).
        let mut acking: Vec<Acking> = Vec::new();
        for (lane, ..) in &outcomes {
            if let Some(m) = lane.metrics() {
                m.held.dec();
            }
            if !acking.iter().any(|a| a.is_of(lane)) {
                acking.push(lane.acking());
            }
        }
        shared.acks.spawn(async move {
            let _acking = acking;
            join_all(
                outcomes
                    .iter()
                    .map(|(lane, job, outcome, took)| acknowledge(lane, job, outcome, *took)),
            )
            .await
        });
        drop(credits);
    }
}

async fn acknowledge(lane: &Lane, job: &Job, outcome: &Outcome, took: Duration) {
    let client = &lane.client;
    let (queue, id, attempt) = (&job.queue, &job.id, job.attempt);
    // A report written after the outcome would find the lease gone.
    lane.progress_writes.written(job.lease_token()).await;
    let metrics = lane.metrics();
    // Timed only for metrics: a clock read costs the busiest thread.
    let asked = metrics.map(|m| {
        m.run_time.observe(took.as_secs_f64());
        Instant::now()
    });
    // Ok(true): recorded as completed; Ok(false): recorded as failed.
    let acked = match outcome {
        Outcome::Completed(result, follow_ups) => {
            // The sandbox checked the result (it parses, and is nested under 128 levels) and
            // the follow-ups (granted queues, JSON, within bounds).
            match client
                .complete_with_follow_ups(job, result.clone(), follow_ups)
                .await
            {
                Ok(()) => {
                    tracing::debug!(queue = %queue, job = %id, attempt, "completed in {took:.1?}");
                    Ok(true)
                }
                // Redis refused this completion (it was alone in its call: others are not
                // affected). The job fails, with why, rather than running again unrecorded.
                Err(e)
                    if !e.is_unavailable()
                        && !matches!(
                            e,
                            sque::Error::StaleLease { .. } | sque::Error::Cancelled { .. }
                        ) =>
                {
                    let reason = format!("Redis refused the job's completion: {e}");
                    fail(client, metrics, job, Ending::HostError, &reason)
                        .await
                        .map(|()| false)
                }
                Err(e) => Err(e),
            }
        }
        Outcome::Failed(ending, reason) => fail(client, metrics, job, *ending, reason)
            .await
            .map(|()| false),
        // The cancel recorded it; the lease is gone already.
        Outcome::Cancelled => Err(sque::Error::Cancelled {
            job: id.clone(),
            attempt,
        }),
    };
    if let (Some(m), Some(asked)) = (metrics, asked) {
        m.ack_time.observe(asked.elapsed().as_secs_f64());
    }
    let mut report = lane.report();
    match acked {
        Ok(true) => {
            report.completed += 1;
            if let Some(m) = metrics {
                m.completed.inc();
            }
        }
        Ok(false) => report.failed += 1,
        Err(sque::Error::Cancelled { .. }) => {
            report.cancelled += 1;
            if let Some(m) = metrics {
                m.cancelled.inc();
            }
            tracing::info!(queue = %queue, job = %id, attempt, "cancelled while it ran: stopped, nothing recorded");
        }
        Err(e) => {
            if let (Some(m), sque::Error::StaleLease { .. }) = (metrics, &e) {
                m.stale_acks.inc();
            }
            tracing::warn!(queue = %queue, job = %id, attempt, "could not record the outcome: {e}; the job will come back when its lease runs out")
        }
    }
}

/// Records a failure, with its code, and says what became of the job.
async fn fail(
    client: &Client,
    metrics: Option<&JobMetrics>,
    job: &Job,
    ending: Ending,
    reason: &str,
) -> Result<(), sque::Error> {
    let (queue, id, attempt) = (&job.queue, &job.id, job.attempt);
    let failure = Failure {
        code: ending.code(),
        message: reason,
        retry: ending.retried(),
    };
    let shown = escaped(reason);
    let outcome = client.fail_with(job, &failure).await?;
    if let Some(m) = metrics {
        m.failed(ending).inc();
        match outcome {
            FailOutcome::Retry { .. } => m.retried.inc(),
            FailOutcome::Dead => m.dead_lettered.inc(),
        };
    }
    match outcome {
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
