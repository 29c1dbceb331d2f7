//! `leave.lua`: a worker leaves cleanly (requests withdrawn, inbox and unstarted jobs given
//! back, heartbeat dropped).

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("leave.lua");

/// Withdraws `requests` ("W:S") of `worker`, gives back its inbox and the jobs under
/// `tokens`, and drops its heartbeat. Returns (requests withdrawn, jobs given back).
pub(crate) async fn call(
    q: &Queue,
    worker: &str,
    requests: &[String],
    tokens: &[String],
) -> Result<(u64, u64)> {
    let k = &q.keys;
    let inbox = k.inbox(worker);
    let mut inv = invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.requests,
            &k.workers,
            &k.leases,
            &k.waiting,
            &inbox,
        ],
    );
    inv.arg(worker).arg(requests.len());
    for entry in requests.iter().chain(tokens) {
        inv.arg(entry);
    }
    Ok(inv.invoke_async(&mut q.con.clone()).await?)
}
