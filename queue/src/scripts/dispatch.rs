//! `dispatch.lua`: stored requests served with waiting jobs, through the workers' inboxes.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("dispatch.lua");

/// What one call did.
pub(crate) struct Dispatched {
    /// Stored requests served.
    pub served: usize,
    /// When the queue's rate limit holds jobs back: how long until it lets the next one go.
    pub rate_wait: Option<Duration>,
}

/// Serves up to `max_pairs` stored requests.
pub(crate) async fn call(q: &Queue, max_pairs: usize) -> Result<Dispatched> {
    let k = &q.keys;
    let (served, rate_wait): (usize, i64) = invocation(
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
    .await?;
    Ok(Dispatched {
        served,
        rate_wait: u64::try_from(rate_wait).ok().map(Duration::from_millis),
    })
}
