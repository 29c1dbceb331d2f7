//! `schedule.lua`: jobs kept aside until they are due (a delay or a time), for `promote.lua`
//! to move to the tail of the queue then.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use super::{invocation, script};
use crate::keys::Keys;
use crate::producer::{Due, EncodedJob};

pub(crate) static SCRIPT: LazyLock<Script> = script!("schedule.lua");

/// The call that schedules `jobs` (each with a due time), in order; it answers the first new
/// id (the others follow it). Prepared rather than sent, so that many can share a pipeline.
pub(crate) fn invocation_for(k: &Keys, jobs: &[EncodedJob]) -> ScriptInvocation<'static> {
    let mut inv = invocation(&SCRIPT, &[&k.meta, &k.jobs, &k.scheduled]);
    for job in jobs {
        inv.arg(&job.json);
        match job.max_attempts {
            Some(n) => inv.arg(n),
            None => inv.arg(""),
        };
        inv.arg(match job.due {
            Some(Due::After(ms)) => format!("+{ms}"),
            Some(Due::At(ms)) => format!("@{ms}"),
            // Ready jobs go through push.lua; one here is due at once.
            None => "+0".to_string(),
        });
    }
    inv
}
