//! `schedules.lua`: a schedule set (added or replaced) or removed.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("schedules.lua");

/// Sets the schedule `name` to `definition` (JSON) with its first tick and the priority of
/// its jobs (`level`, which the definition holds too); true when it is new.
pub(crate) async fn set(
    q: &Queue,
    name: &str,
    definition: &str,
    first_tick: u64,
    level: u8,
) -> Result<bool> {
    let k = &q.keys;
    let added: u8 = invocation(&SCRIPT, &[&k.meta, &k.schedules, &k.schedule_due])
        .arg("set")
        .arg(name)
        .arg(definition)
        .arg(first_tick)
        .arg(level)
        .invoke_async(&mut q.con.clone())
        .await?;
    Ok(added == 1)
}

/// Removes the schedule `name`; true when there was one.
pub(crate) async fn remove(q: &Queue, name: &str) -> Result<bool> {
    let k = &q.keys;
    let removed: u8 = invocation(&SCRIPT, &[&k.meta, &k.schedules, &k.schedule_due])
        .arg("remove")
        .arg(name)
        .invoke_async(&mut q.con.clone())
        .await?;
    Ok(removed == 1)
}
