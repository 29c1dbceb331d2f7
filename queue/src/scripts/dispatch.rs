//! `dispatch.lua`: stored requests served with waiting jobs, through the workers' inboxes.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("dispatch.lua");

/// Serves up to `max_pairs` stored requests; returns how many it served.
pub(crate) async fn call(q: &Queue, max_pairs: usize) -> Result<usize> {
    let k = &q.keys;
    Ok(invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.waiting,
            &k.requests,
            &k.jobs,
            &k.leases,
            &k.workers,
            &k.stats,
        ],
    )
    .arg(max_pairs)
    .invoke_async(&mut q.con.clone())
    .await?)
}
