//! `release.lua`: a job given back to the head of its queue, its attempt uncounted.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("release.lua");

/// Gives back the job under `token`; false when the lease had already moved on.
pub(crate) async fn call(q: &Queue, token: &str) -> Result<bool> {
    let k = &q.keys;
    let released: i64 = invocation(&SCRIPT, &[&k.meta, &k.leases, &k.waiting, &k.requests])
        .arg(token)
        .invoke_async(&mut q.con.clone())
        .await?;
    Ok(released == 1)
}
