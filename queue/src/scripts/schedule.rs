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
    // Jobs at a priority other than the normal one name their level's list (KEYS[4]).
    let level = jobs
        .first()
        .map_or(crate::producer::NORMAL_PRIORITY, |j| j.priority);
    let mut inv = if level == crate::producer::NORMAL_PRIORITY {
        invocation(&SCRIPT, &[&k.meta, &k.jobs, &k.scheduled])
    } else {
        invocation(
            &SCRIPT,
            &[&k.meta, &k.jobs, &k.scheduled, &k.waiting_at(level)],
        )
    };
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
