//! `push.lua`: jobs at the tail of the queue, and waiting workers served in the same call.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use super::{invocation, script};
use crate::keys::Keys;
use crate::producer::EncodedJob;

pub(crate) static SCRIPT: LazyLock<Script> = script!("push.lua");

/// The call that pushes `jobs`, in order; it answers the first new id (the others follow
/// it). Prepared rather than sent, so that many can share a pipeline.
pub(crate) fn invocation_for(k: &Keys, jobs: &[EncodedJob]) -> ScriptInvocation<'static> {
    let mut inv = invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.waiting_at(
                jobs.first()
                    .map_or(crate::producer::NORMAL_PRIORITY, |j| j.priority),
            ),
            &k.jobs,
            &k.stats,
            &k.requests,
            &k.leases,
            &k.workers,
        ],
    );
    for job in jobs {
        inv.arg(&job.json).arg(job.max_attempts_arg());
    }
    inv
}
