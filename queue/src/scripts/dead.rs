//! `dead.lua`: dead jobs retried or purged, by id or a chunk of the oldest at a time.

use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("dead.lua");

/// What to do with dead jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Retry,
    Purge,
}

/// Which dead jobs.
pub(crate) enum Which<'a> {
    Ids(&'a [&'a str]),
    /// `count` entries from rank `skip`, oldest first.
    Oldest {
        skip: u64,
        count: u64,
    },
}

pub(crate) struct Done {
    /// Retried or purged.
    pub done: u64,
    /// (id, why it was refused).
    pub refused: Vec<(String, String)>,
    /// The skip for the next chunk.
    pub skip: u64,
}

pub(crate) async fn call(q: &Queue, action: Action, which: Which<'_>) -> Result<Done> {
    let k = &q.keys;
    let mut inv = invocation(
        &SCRIPT,
        &[
            &k.meta,
            &k.dead_at,
            &k.waiting,
            &k.jobs,
            &k.errors,
            &k.requests,
        ],
    );
    inv.arg(match action {
        Action::Retry => "retry",
        Action::Purge => "purge",
    });
    match which {
        Which::Ids(ids) => {
            inv.arg("ids");
            for id in ids {
                inv.arg(*id);
            }
        }
        Which::Oldest { skip, count } => {
            inv.arg("oldest").arg(skip).arg(count);
        }
    }
    let (done, refused, skip): (u64, Vec<String>, u64) =
        inv.invoke_async(&mut q.con.clone()).await?;
    Ok(Done {
        done,
        refused: refused
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
            .collect(),
        skip,
    })
}
