//! `schedule.lua`: jobs kept aside until they are due (a delay or a time), for `promote.lua`
//! to move to the tail of the queue then.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use super::{invocation, script};
use crate::keys::Keys;
use crate::producer::EncodedJob;

pub(crate) static SCRIPT: LazyLock<Script> = script!("schedule.lua");

/// The call that schedules `jobs` (each with a due time), in order; it answers the first new
/// id (the others follow it). Prepared rather than sent, so that many can share a pipeline.
pub(crate) fn invocation_for(k: &Keys, jobs: &[EncodedJob]) -> ScriptInvocation<'static> {
    let mut inv = invocation(&SCRIPT, &[&k.meta, &k.jobs, &k.scheduled]);
    for job in jobs {
        // Ready jobs go through push.lua; one here without a due time is due at once.
        let due = match job.due_arg() {
            none if none.is_empty() => "+0".to_string(),
            due => due,
        };
        inv.arg(&job.json).arg(job.max_attempts_arg()).arg(due);
    }
    inv
}
