//! `dead.lua`: dead jobs retried or purged.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::job::JobId;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("dead.lua");

/// What to do with dead jobs.
#[derive(Clone, Copy)]
pub(crate) enum Action {
    Retry,
    Purge,
}

/// Retries or purges the dead job `id`, or every dead job; returns how many.
pub(crate) async fn call(q: &Queue, action: Action, id: Option<&JobId>) -> Result<u64> {
    let k = &q.keys;
    Ok(invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.dead,
            &k.waiting,
            &k.jobs,
            &k.errors,
            &k.requests,
        ],
    )
    .arg(match action {
        Action::Retry => "retry",
        Action::Purge => "purge",
    })
    .arg(id.map(JobId::as_str).unwrap_or(""))
    .invoke_async(&mut q.con.clone())
    .await?)
}
