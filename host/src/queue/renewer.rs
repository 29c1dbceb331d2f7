//! The renewer duty of a client: every third of a lease, extends the leases of the jobs the
//! client holds and its own heartbeat, in one `renew.lua` call. It runs on the async runtime,
//! apart from whatever work the jobs do, so a busy handler cannot starve it.

use std::sync::Arc;

use crate::queue::client::ClientInner;
use crate::queue::duty::{Duty, Shutdown};
use crate::queue::scripts;

pub(crate) fn start(inner: Arc<ClientInner>) -> Duty {
    Duty::start("renewer", move |shutdown| run(inner, shutdown))
}

async fn run(inner: Arc<ClientInner>, mut shutdown: Shutdown) {
    let every = inner.queue.opts.lease / 3;
    while shutdown.sleep(every).await {
        if let Err(e) = renew(&inner).await {
            tracing::warn!(queue = %inner.queue.keys.queue, "lease renewal failed: {e}; retrying in {every:?}");
        }
    }
}

async fn renew(inner: &Arc<ClientInner>) -> redis::RedisResult<()> {
    let (tokens, requests) = {
        let mut state = inner.lock();
        // A job whose every clone its holder dropped without acknowledging it is let go:
        // its lease runs out as if the worker had died.
        state
            .held
            .retain(|_, job| Arc::strong_count(&job.lease) > 1);
        let tokens: Vec<String> = state.held.keys().cloned().collect();
        let requests: Vec<String> = state
            .pending
            .keys()
            .map(|seq| inner.request_entry(*seq))
            .collect();
        (tokens, requests)
    };
    let k = &inner.queue.keys;
    let mut inv = scripts::RENEW.prepare_invoke();
    inv.key(&k.leases)
        .key(&k.workers)
        .key(&k.requests)
        .arg(&inner.worker)
        .arg(inner.queue.opts.lease.as_millis() as u64)
        .arg(inner.heartbeat_ttl().as_millis() as u64)
        .arg(tokens.len());
    for t in tokens.iter().chain(&requests) {
        inv.arg(t);
    }
    let out: Vec<String> = inv.invoke_async(&mut inner.queue.con.clone()).await?;
    if out.first().map(String::as_str) == Some("1") && !requests.is_empty() {
        tracing::warn!(queue = %k.queue, worker = %inner.worker, "this worker's heartbeat had run out; its {} open request(s) were stored again", requests.len());
    }
    for stale in out.iter().skip(1) {
        if !inner.holds_unacked(stale) {
            // Completed, failed or given back while the renewal was on its way.
            continue;
        }
        tracing::warn!(queue = %k.queue, token = %stale, "lease lost before it could be renewed; the job has gone back to the queue");
        inner.forget(stale);
    }
    Ok(())
}
