//! `renew.lua`: a worker's leases and heartbeat extended in one call.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("renew.lua");

pub(crate) struct Renewed {
    /// The heartbeat had run out, and the open requests were stored again.
    pub reannounced: bool,
    /// The queue's lease now.
    pub lease: Duration,
    /// Tokens whose lease was no longer held.
    pub stale: Vec<String>,
    /// Those of them whose job was cancelled.
    pub cancelled: Vec<String>,
}

/// Renews the leases of `tokens` and the heartbeat of `worker`, whose open request entries
/// are `requests` ("W:S").
pub(crate) async fn call(
    q: &Queue,
    worker: &str,
    tokens: &[String],
    requests: &[String],
) -> Result<Renewed> {
    let k = &q.keys;
    let mut inv = invocation(&SCRIPT, &[&k.meta, &k.leases, &k.workers, &k.requests]);
    inv.arg(worker)
        .arg(if q.opts.measure_waits { "1" } else { "0" })
        .arg(tokens.len());
    for t in tokens.iter().chain(requests) {
        inv.arg(t);
    }
    let (reannounced, lease, stale, cancelled): (i64, u64, Vec<String>, Vec<String>) =
        inv.invoke_async(&mut q.con.clone()).await?;
    Ok(Renewed {
        reannounced: reannounced == 1,
        lease: Duration::from_millis(lease),
        stale,
        cancelled,
    })
}
