//! `push_unique.lua`: jobs that each carry a unique key; a key already held answers its
//! holder's id and writes nothing.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use super::{invocation, script};
use crate::keys::Keys;
use crate::producer::EncodedJob;

pub(crate) static SCRIPT: LazyLock<Script> = script!("push_unique.lua");

/// The call that pushes `jobs` (each with a unique key), in order; it answers, for each, its
/// id and whether it was pushed (`1`) or its key was held (`0`, the holder's id).
pub(crate) fn invocation_for(k: &Keys, jobs: &[EncodedJob]) -> ScriptInvocation<'static> {
    let mut inv = invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.waiting,
            &k.jobs,
            &k.stats,
            &k.requests,
            &k.leases,
            &k.workers,
            &k.scheduled,
        ],
    );
    for job in jobs {
        let (key, window) = job
            .unique
            .as_ref()
            .map(|(key, window)| (key.as_str(), *window))
            .unwrap_or(("", 0));
        inv.arg(&job.json)
            .arg(job.max_attempts_arg())
            .arg(job.due_arg())
            .arg(key)
            .arg(window);
    }
    inv
}
