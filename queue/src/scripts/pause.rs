//! `pause.lua`: a queue paused (nothing handed out, pushes kept) or resumed.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("pause.lua");

/// Pauses (`true`) or resumes (`false`) the queue; returns whether its state changed.
pub(crate) async fn call(q: &Queue, pause: bool) -> Result<bool> {
    let changed: u8 = invocation(&SCRIPT, &[&q.keys.meta])
        .arg(if pause { "pause" } else { "resume" })
        .invoke_async(&mut q.con.clone())
        .await?;
    Ok(changed == 1)
}
