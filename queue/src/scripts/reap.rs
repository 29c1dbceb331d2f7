//! `reap.lua`: the queue's housekeeping (expired leases, due retries, old results, dead
//! workers, the dead list's bounds).

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
    /// Dead entries trimmed, or moved from an older version's dead list.
    pub dead_work: usize,
    /// The queue's lease now.
    pub lease: Duration,
}

impl Reaped {
    /// Whether any kind filled the batch: call again at once.
    pub fn full(&self, batch: usize) -> bool {
        [
            self.expired,
            self.promoted,
            self.dropped_results,
            self.dead_work,
        ]
        .iter()
        .any(|n| *n >= batch)
    }
}

/// One pass of at most `batch` entries of each kind.
pub(crate) async fn call(q: &Queue, batch: usize) -> Result<Reaped> {
    let k = &q.keys;
    let (expired, promoted, dropped_results, dead_work, lease): (usize, usize, usize, usize, u64) =
        invocation(
            &SCRIPT,
            &[
                &k.meta,
                &k.leases,
                &k.waiting,
                &k.delayed,
                &k.dead_at,
                &k.errors,
                &k.stats,
                &k.results,
                &k.results_at,
                &k.workers,
                &k.requests,
                &k.jobs,
                &k.dead,
            ],
        )
        .arg(batch)
        .invoke_async(&mut q.con.clone())
        .await?;
    Ok(Reaped {
        expired,
        promoted,
        dropped_results,
        dead_work,
        lease: Duration::from_millis(lease),
    })
}
