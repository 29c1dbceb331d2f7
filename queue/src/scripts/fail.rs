//! `fail.lua`: a failure reported by the holder of a lease.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("fail.lua");

/// What became of the failed job.
pub(crate) enum Failed {
    /// The lease had moved on: nothing changed.
    Stale,
    /// The job was cancelled: nothing changed.
    Cancelled,
    Dead,
    /// Tried again after this delay.
    Retry(Duration),
}

/// Fails the job under `token` with the error `code` and `message`; `permanent` sends it
/// straight to the dead list.
pub(crate) async fn call(
    q: &Queue,
    token: &str,
    code: &str,
    message: &str,
    permanent: bool,
) -> Result<Failed> {
    let k = &q.keys;
    let delay: i64 = invocation(
        &SCRIPT,
        &[
            &k.meta, &k.leases, &k.delayed, &k.dead_at, &k.errors, &k.stats, &k.jobs,
        ],
    )
    .arg(token)
    .arg(code)
    .arg(message)
    .arg(if permanent { "1" } else { "0" })
    .invoke_async(&mut q.con.clone())
    .await?;
    Ok(match delay {
        -2 => Failed::Cancelled,
        0 => Failed::Dead,
        ms if ms > 0 => Failed::Retry(Duration::from_millis(ms as u64)),
        _ => Failed::Stale,
    })
}
