//! `renew.lua`: a worker's leases and heartbeat extended in one call.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("renew.lua");

pub(crate) struct Renewed {
    /// The open requests were stored again: the heartbeat had run out, or `restore` asked.
    pub reannounced: bool,
    /// The queue's lease now.
    pub lease: Duration,
    /// Tokens whose lease was no longer held.
    pub stale: Vec<String>,
    /// Those of them whose job was cancelled.
    pub cancelled: Vec<String>,
}

/// Renews the leases of `tokens` and the heartbeat of `worker`, whose open request entries
/// are `requests` ("W:S"); with `restore`, stores them again whatever the heartbeat (a pop of
/// the worker's inbox failed on its way back).
pub(crate) async fn call(
    q: &Queue,
    worker: &str,
    tokens: &[String],
    requests: &[String],
    restore: bool,
) -> Result<Renewed> {
    let k = &q.keys;
    let mut inv = invocation(&SCRIPT, &[&k.meta, &k.leases, &k.workers, &k.requests]);
    let flags = u8::from(q.opts.measure_waits) + 2 * u8::from(restore);
    inv.arg(worker).arg(flags).arg(tokens.len());
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
