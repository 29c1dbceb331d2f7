//! `promote.lua`: scheduled jobs that are due join the tail of the queue, a bounded batch per
//! call.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("promote.lua");

/// What one call did.
pub(crate) struct Promoted {
    /// Jobs moved to the queue; as many as asked means more may be due.
    pub moved: usize,
    /// How long until the next scheduled job is due, on Redis's clock; `None` when none is.
    pub next_due: Option<Duration>,
}

/// Moves up to `limit` due jobs (at most 4,000: the script unpacks them onto Lua's stack).
pub(crate) async fn call(q: &Queue, limit: usize) -> Result<Promoted> {
    let k = &q.keys;
    let (moved, next_due): (usize, i64) = invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.scheduled,
            &k.waiting,
            &k.requests,
            &k.jobs,
            &k.leases,
            &k.workers,
            &k.stats,
        ],
    )
    .arg(limit)
    .invoke_async(&mut q.con.clone())
    .await?;
    Ok(Promoted {
        moved,
        next_due: u64::try_from(next_due).ok().map(Duration::from_millis),
    })
}
