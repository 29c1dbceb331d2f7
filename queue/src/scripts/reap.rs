//! `reap.lua`: the queue's housekeeping (expired leases, due retries, old results, dead
//! workers).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("reap.lua");

pub(crate) struct Reaped {
    pub expired: usize,
    pub promoted: usize,
    pub dropped_results: usize,
    /// The queue's lease now.
    pub lease: Duration,
}

/// One pass of at most `batch` entries of each kind; a full batch of any means "call again".
pub(crate) async fn call(q: &Queue, batch: usize) -> Result<Reaped> {
    let k = &q.keys;
    let (expired, promoted, dropped_results, lease): (usize, usize, usize, u64) = invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.leases,
            &k.waiting,
            &k.delayed,
            &k.dead,
            &k.errors,
            &k.stats,
            &k.results,
            &k.results_at,
            &k.workers,
            &k.requests,
        ],
    )
    .arg(batch)
    .invoke_async(&mut q.con.clone())
    .await?;
    Ok(Reaped {
        expired,
        promoted,
        dropped_results,
        lease: Duration::from_millis(lease),
    })
}
