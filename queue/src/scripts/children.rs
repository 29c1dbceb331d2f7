//! `children.lua`: completed jobs' follow-ups taken by a mover, and reported pushed.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{invocation, script};
use crate::error::{Error, Result};
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("children.lua");

/// A follow-up as staged: queue, due ("" or "+MS"), unique key ("" for none), data.
pub(crate) struct Staged {
    pub queue: String,
    pub due: String,
    pub unique_key: String,
    pub json: String,
}

/// A parent taken: its id and follow-ups, in the order it pushed them.
pub(crate) struct Parent {
    pub id: String,
    pub children: Vec<Staged>,
}

/// Takes up to `limit` parents for `claim`; also says how long until the next one may be
/// taken (`None`: none left).
pub(crate) async fn take(
    q: &Queue,
    limit: usize,
    claim: Duration,
) -> Result<(Vec<Parent>, Option<Duration>)> {
    let reply: Vec<Vec<u8>> = invocation(&SCRIPT, &[&q.keys.meta])
        .arg("take")
        .arg(limit)
        .arg(claim.as_millis() as u64)
        .invoke_async(&mut q.con.clone())
        .await?;
    let corrupt = || Error::Corrupt("children.lua's take answered a list out of shape".into());
    let (wait, body) = reply.split_last().ok_or_else(corrupt)?;
    // Data nobody here wrote may not be UTF-8: it travels on as it is, and its worker buries it.
    let text = |v: Option<&Vec<u8>>| {
        v.map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(corrupt)
    };
    let mut values = body.iter();
    let mut parents = Vec::new();
    while let Some(id) = values.next() {
        let n: usize = text(values.next())?.parse().map_err(|_| corrupt())?;
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            children.push(Staged {
                queue: text(values.next())?,
                due: text(values.next())?,
                unique_key: text(values.next())?,
                json: text(values.next())?,
            });
        }
        parents.push(Parent {
            id: text(Some(id))?,
            children,
        });
    }
    let next: i64 = text(Some(wait))?.parse().map_err(|_| corrupt())?;
    Ok((parents, u64::try_from(next).ok().map(Duration::from_millis)))
}

/// Reports parent `id`'s follow-ups pushed (`children_of` entries, in order); false when
/// another mover had done so.
pub(crate) async fn done(q: &Queue, id: &str, entries: &[String]) -> Result<bool> {
    let mut inv = invocation(&SCRIPT, &[&q.keys.meta]);
    inv.arg("done").arg(id);
    for e in entries {
        inv.arg(e);
    }
    let done: u8 = inv.invoke_async(&mut q.con.clone()).await?;
    Ok(done == 1)
}
