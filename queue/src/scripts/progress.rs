//! `progress.lua`: a running job's latest progress report, kept while its lease holds.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("progress.lua");

/// Keeps the report of the job under `token`; false when the lease is no longer held.
pub(crate) async fn call(q: &Queue, token: &str, percent: u8, note: Option<&str>) -> Result<bool> {
    let kept: u8 = invocation(&SCRIPT, &[&q.keys.meta, &q.keys.leases])
        .arg(token)
        .arg(percent.min(100))
        .arg(note.unwrap_or(""))
        .invoke_async(&mut q.con.clone())
        .await?;
    Ok(kept == 1)
}
