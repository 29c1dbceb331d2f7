//! `stage.lua`: a running job's follow-ups kept under its lease until its completion commits
//! them.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::follow_up::FollowUp;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("stage.lua");

/// What staging did.
pub(crate) enum Staged {
    Kept,
    /// The lease is not held: nothing written.
    Stale,
    /// The job was cancelled: nothing written.
    Cancelled,
}

/// Stages `follow_ups` under `token`.
pub(crate) async fn call(q: &Queue, token: &str, follow_ups: &[FollowUp]) -> Result<Staged> {
    let k = &q.keys;
    let mut inv = invocation(&SCRIPT, &[&k.meta, &k.leases]);
    inv.arg(token);
    for f in follow_ups {
        for value in f.staged() {
            inv.arg(value);
        }
    }
    let staged: i64 = inv.invoke_async(&mut q.con.clone()).await?;
    Ok(match staged {
        1 => Staged::Kept,
        -1 => Staged::Cancelled,
        _ => Staged::Stale,
    })
}
