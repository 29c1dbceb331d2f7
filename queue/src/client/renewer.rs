//! The renewer duty of a client: every third of the queue's lease, extends the leases of the
//! jobs the client holds and its own heartbeat, in one `renew.lua` call, whose reply also
//! gives the lease the queue has now. It runs on the async runtime, apart from whatever work
//! the jobs do, so a busy handler cannot starve it. When Redis fails it tries again a third
//! of a lease later (no longer: the leases would run out meanwhile).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::worker::Worker;
use crate::error::Result;
use crate::scripts;
use crate::tasks::sleep_unless;

pub(super) fn start(worker: &Arc<Worker>) {
    let worker = worker.clone();
    worker
        .tasks
        .clone()
        .spawn("renewer", move |stop| run(worker, stop));
}

async fn run(worker: Arc<Worker>, stop: CancellationToken) {
    let mut lease = worker.queue.settings.lease;
    while sleep_unless(&stop, lease / 3).await {
        match renew(&worker).await {
            Ok(now) => lease = now,
            Err(e) => {
                tracing::warn!(queue = %worker.queue.keys.queue, "lease renewal failed: {e}; retrying in {:?}", lease / 3);
            }
        }
    }
}

/// One renewal; returns the queue's lease.
async fn renew(worker: &Worker) -> Result<Duration> {
    let (tokens, seqs) = worker.registry().renewal();
    let requests: Vec<String> = seqs.iter().map(|s| worker.request_entry(*s)).collect();
    let restore = worker.take_pop_lost();
    let renewed =
        match scripts::renew::call(&worker.queue, &worker.id, &tokens, &requests, restore).await {
            Ok(renewed) => renewed,
            Err(e) => {
                if restore {
                    // Asked again at the next renewal.
                    worker.pop_may_be_lost();
                }
                return Err(e);
            }
        };
    let k = &worker.queue.keys;
    if renewed.reannounced && !requests.is_empty() {
        if restore {
            tracing::warn!(queue = %k.queue, worker = %worker.id, "a pop of this worker's inbox failed on its way back; its {} open request(s) were stored again", requests.len());
        } else {
            tracing::warn!(queue = %k.queue, worker = %worker.id, "this worker's heartbeat had run out; its {} open request(s) were stored again", requests.len());
        }
    }
    for token in &renewed.cancelled {
        if worker.registry().cancelled(token) {
            tracing::info!(queue = %k.queue, token = %token, "the job was cancelled; its holder is told to stop");
        }
    }
    for stale in renewed
        .stale
        .iter()
        .filter(|t| !renewed.cancelled.contains(t))
    {
        // Completed, failed or given back while the renewal was on its way: no news.
        if worker.registry().lost(stale) {
            tracing::warn!(queue = %k.queue, token = %stale, "lease lost before it could be renewed; the job has gone back to the queue");
        }
    }
    Ok(renewed.lease)
}
