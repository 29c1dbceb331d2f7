//! The fetcher: keeps a request open for every free credit, until shutdown, and passes jobs
//! on in the order the requests were made (which is the order the queue serves them), so
//! slots start jobs in queue order. Resizes an adaptive prefetch as the rate of finished
//! jobs changes. When asking fails (Redis is away), it waits with the library's backoff
//! (jittered, so that many hosts do not come back at once) and holds the credit meanwhile.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::stream::{FuturesOrdered, StreamExt};
use sque::backoff::Backoff;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::pool::prefetch::{self, Prefetch};
use crate::pool::{release, Ready, Shared};
use crate::sandbox::{JobInput, JobProgress};

pub(super) async fn run(
    shared: Arc<Shared>,
    credits: Arc<Semaphore>,
    mut prefetch: Prefetch,
    ready: mpsc::UnboundedSender<Ready>,
    stop: CancellationToken,
) {
    let client = shared.client.clone();
    let mut asks = FuturesOrdered::new();
    let mut backoff = Backoff::new();
    let mut pause = None;
    let mut retune = tokio::time::interval(prefetch::RETUNE_EVERY);
    retune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Dropping `asks` on return withdraws the open requests; a job that reached one
        // meanwhile goes back to the head of the queue.
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = retune.tick(), if prefetch.is_adaptive() => {
                prefetch.retune(shared.finished.load(Ordering::Relaxed), &credits);
                if let Some(m) = shared.metrics() {
                    m.prefetch.set(prefetch.current() as i64);
                }
            }
            credit = credits.clone().acquire_owned() => {
                let credit = credit.expect("never closed");
                let client = &client;
                asks.push_back(async move { (client.i_am_free(None).await, credit) });
            }
            Some((asked, credit)) = asks.next(), if !asks.is_empty() => match asked {
                Ok(job) => {
                    backoff.reset();
                    if let Some(m) = shared.metrics() {
                        m.held.inc();
                    }
                    let input = JobInput {
                        id: job.id.to_string(),
                        queue: job.queue.clone(),
                        attempt: job.attempt,
                        data: job.data.to_string(),
                        progress: Some(JobProgress {
                            sink: shared.progress.clone(),
                            token: job.lease_token().to_string(),
                        }),
                    };
                    if let Err(mpsc::error::SendError(r)) = ready.send(Ready { input, job, credit }) {
                        release(&shared, &r.job).await;
                        return;
                    }
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!("asking for a job failed: {e}; asking again in {wait:?}");
                    // The credit is held through the pause, so that no new request goes out.
                    pause = Some((wait, credit));
                }
            },
        }
        if let Some((wait, credit)) = pause.take() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => drop(credit),
            }
        }
    }
}
