//! `children.lua`: completed jobs' follow-ups taken by a mover, recorded as they are pushed,
//! and the parent reported done.

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

/// A parent taken: its id, how many of its follow-ups are recorded already, and those not yet
/// recorded, in the order it pushed them (`None` when its list is not in the protocol's shape).
pub(crate) struct Parent {
    pub id: String,
    pub recorded: usize,
    pub children: Option<Vec<Staged>>,
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
    let number = |v: Option<&Vec<u8>>| -> Result<i64> { text(v)?.parse().map_err(|_| corrupt()) };
    let mut values = body.iter();
    let mut parents = Vec::new();
    while let Some(id) = values.next() {
        let recorded = usize::try_from(number(values.next())?).map_err(|_| corrupt())?;
        let n = number(values.next())?;
        let children = match usize::try_from(n) {
            Err(_) => None,
            Ok(n) => {
                let mut children = Vec::with_capacity(n.saturating_sub(recorded));
                for _ in recorded..n {
                    children.push(Staged {
                        queue: text(values.next())?,
                        due: text(values.next())?,
                        unique_key: text(values.next())?,
                        json: text(values.next())?,
                    });
                }
                Some(children)
            }
        };
        parents.push(Parent {
            id: text(Some(id))?,
            recorded,
            children,
        });
    }
    let next = number(Some(wait))?;
    Ok((parents, u64::try_from(next).ok().map(Duration::from_millis)))
}

/// Records what became of parent `id`'s next follow-ups (`children_of` entries, in order),
/// `recorded` being recorded already, and renews the claim; false when this caller is not the
/// one moving the parent any more.
pub(crate) async fn record(
    q: &Queue,
    id: &str,
    claim: Duration,
    recorded: usize,
    entries: &[String],
) -> Result<bool> {
    let mut inv = invocation(&SCRIPT, &[&q.keys.meta]);
    inv.arg("record")
        .arg(id)
        .arg(claim.as_millis() as u64)
        .arg(recorded);
    for e in entries {
        inv.arg(e);
    }
    let kept: u8 = inv.invoke_async(&mut q.con.clone()).await?;
    Ok(kept == 1)
}

/// Ends parent `id`, once all its `total` follow-ups are recorded; false when it was not this
/// caller's to end.
pub(crate) async fn done(q: &Queue, id: &str, total: usize) -> Result<bool> {
    let done: u8 = invocation(&SCRIPT, &[&q.keys.meta])
        .arg("done")
        .arg(id)
        .arg(total)
        .invoke_async(&mut q.con.clone())
        .await?;
    Ok(done == 1)
}
