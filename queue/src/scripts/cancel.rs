//! `cancel.lua`: a job ended by id, whatever it is doing, never to be retried.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::{Error, Result};
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("cancel.lua");

/// What a cancel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// The job was waiting, scheduled or waiting out a retry's backoff: it never runs.
    Queued,
    /// The job was running: its holder is told at its next lease renewal and stops it.
    Running,
    /// The job had been cancelled already (at this time, in ms since the epoch, if still
    /// recorded).
    Already(Option<u64>),
    /// The job is in the dead list: purge it instead (`sque-host dead purge`).
    Dead,
    /// Nothing left to cancel: the job completed, was purged, or was never pushed.
    Ended,
}

pub(crate) async fn call(q: &Queue, id: &str) -> Result<Cancelled> {
    let k = &q.keys;
    let reply: Vec<redis::Value> = invocation(
        &SCRIPT,
        &[&k.meta, &k.jobs, &k.leases, &k.errors, &k.dead_at, &k.stats],
    )
    .arg(id)
    .invoke_async(&mut q.con.clone())
    .await?;
    let word = |i: usize| -> Option<String> {
        reply
            .get(i)
            .and_then(|v| redis::from_redis_value(v.clone()).ok())
    };
    let number = |i: usize| -> Option<i64> {
        reply
            .get(i)
            .and_then(|v| redis::from_redis_value(v.clone()).ok())
    };
    match (word(0).as_deref(), word(1).as_deref()) {
        (Some("cancelled"), Some("running")) => Ok(Cancelled::Running),
        (Some("cancelled"), _) => Ok(Cancelled::Queued),
        (Some("already"), _) => Ok(Cancelled::Already(
            number(1).and_then(|at| u64::try_from(at).ok()),
        )),
        (Some("dead"), _) => Ok(Cancelled::Dead),
        (Some("ended"), _) => Ok(Cancelled::Ended),
        _ => Err(Error::Corrupt(format!(
            "cancel.lua answered {reply:?}, which this version of sque does not read"
        ))),
    }
}
