//! `poison.lua`: a job whose data a worker cannot be given, straight to the dead list.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("poison.lua");

/// Buries the job under `token` as poison, saying `problem`; false when the lease had moved
/// on (nothing changed).
pub(crate) async fn call(q: &Queue, token: &str, problem: &str) -> Result<bool> {
    let k = &q.keys;
    let buried: i64 = invocation(
        &SCRIPT,
        &[&k.meta, &k.leases, &k.dead_at, &k.errors, &k.stats, &k.jobs],
    )
    .arg(token)
    .arg(problem)
    .invoke_async(&mut q.con.clone())
    .await?;
    Ok(buried == 1)
}
