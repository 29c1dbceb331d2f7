//! `exchange.lua`: a worker's completions and new requests in one call.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::backend::Conn;
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("exchange.lua");

/// A completion: the lease token, and the result JSON if any.
pub(crate) struct Completion<'a> {
    pub token: &'a str,
    pub result: Option<&'a str>,
}

/// What became of one completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Completed {
    /// Recorded.
    Held,
    /// The lease had moved on: nothing changed.
    Stale,
    /// The result was over the queue's max_result_bytes: nothing kept, the job is dead.
    TooLarge,
    /// The job was cancelled: nothing changed.
    Cancelled,
}

/// What the call answered: for each completion, what became of it; and the deliveries that
/// answer the first requests at once, as raw bytes (data nobody here wrote must not fail the
/// whole reply).
pub(crate) struct Reply {
    pub completed: Vec<Completed>,
    pub delivered: Vec<Vec<u8>>,
}

/// Sends `completions` (first) and the requests `asks` (entries "W:S", in order) of `worker`,
/// on `con`.
pub(crate) async fn call(
    q: &Queue,
    con: &Conn,
    worker: &str,
    completions: &[Completion<'_>],
    asks: &[String],
) -> Result<Reply> {
    let k = &q.keys;
    let mut inv = invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.requests,
            &k.waiting,
            &k.workers,
            &k.jobs,
            &k.leases,
            &k.stats,
            &k.errors,
            &k.results,
            &k.results_at,
        ],
    );
    inv.arg(worker).arg(completions.len());
    for c in completions {
        match c.result {
            Some(json) => inv.arg(c.token).arg("1").arg(json),
            None => inv.arg(c.token).arg("0").arg(""),
        };
    }
    for entry in asks {
        inv.arg(entry);
    }
    let (held, delivered): (Vec<i64>, Vec<Vec<u8>>) = inv.invoke_async(&mut con.clone()).await?;
    Ok(Reply {
        completed: held
            .into_iter()
            .map(|h| match h {
                1 => Completed::Held,
                2 => Completed::TooLarge,
                3 => Completed::Cancelled,
                _ => Completed::Stale,
            })
            .collect(),
        delivered,
    })
}
