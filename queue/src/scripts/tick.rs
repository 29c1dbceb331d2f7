//! `tick.lua`: a schedule's job pushed, once per tick, by whichever manager calls first.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("tick.lua");

/// What a tick call did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ticked {
    /// The job was pushed with this id.
    Pushed(u64),
    /// The tick no longer holds (another manager took it, or the schedule changed) or is not
    /// due yet on Redis's clock.
    NotNow,
    /// The schedule's data is over the queue's size limit: the tick passed with no job.
    TooLarge,
}

/// One tick of a schedule, as the caller saw it.
pub(crate) struct Tick<'a> {
    pub name: &'a str,
    pub seen: u64,
    pub next: u64,
    pub definition: &'a str,
    pub data: &'a str,
    pub max_attempts: Option<u32>,
    /// The priority of the job (the list it joins: `Keys::waiting_at`).
    pub level: u8,
}

pub(crate) async fn call(q: &Queue, tick: &Tick<'_>) -> Result<Ticked> {
    let k = &q.keys;
    let id: i64 = invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.schedules,
            &k.schedule_due,
            &k.waiting_at(tick.level),
            &k.jobs,
            &k.requests,
        ],
    )
    .arg(tick.name)
    .arg(tick.seen)
    .arg(tick.next)
    .arg(tick.definition)
    .arg(tick.data)
    .arg(tick.max_attempts.map(|n| n.to_string()).unwrap_or_default())
    .invoke_async(&mut q.con.clone())
    .await?;
    Ok(match id {
        0 => Ticked::NotNow,
        n if n < 0 => Ticked::TooLarge,
        n => Ticked::Pushed(n as u64),
    })
}
