//! `push_unique.lua`: jobs that each carry a unique key; a key already held answers its
//! holder's id and writes nothing.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use super::{invocation, script};
use crate::job::JobId;
use crate::keys::Keys;
use crate::producer::EncodedJob;

pub(crate) static SCRIPT: LazyLock<Script> = script!("push_unique.lua");

/// The call that pushes `jobs` (each with a unique key), in order; [`ids`] reads its reply.
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

/// Each of `count` jobs' id from the reply (the first new id, then the number in the call and
/// the holder's id of each job not pushed): a job not named has the next new id.
pub(crate) fn ids(reply: &[String], count: usize) -> Result<Vec<JobId>, String> {
    let (first, held) = reply.split_first().ok_or("it is empty")?;
    let first: u64 = first
        .parse()
        .map_err(|_| format!("the first id {first:?} is not a number"))?;
    if held.len() % 2 != 0 {
        return Err("a job not pushed has no holder".into());
    }
    let mut ids = Vec::with_capacity(count);
    let mut next_new = first;
    let mut held = held.chunks(2).peekable();
    for n in 1..=count {
        match held.peek() {
            Some([number, holder]) if number.parse() == Ok(n) => {
                ids.push(JobId::from(holder.as_str()));
                held.next();
            }
            _ if first == 0 => return Err(format!("job {n} has no id")),
            _ => {
                ids.push(JobId::from(next_new.to_string()));
                next_new += 1;
            }
        }
    }
    if held.next().is_some() {
        return Err("it names more jobs than were pushed".into());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(reply: &[&str], count: usize) -> Result<Vec<String>, String> {
        let reply: Vec<String> = reply.iter().map(|s| s.to_string()).collect();
        ids(&reply, count).map(|ids| ids.into_iter().map(|id| id.to_string()).collect())
    }

    #[test]
    fn jobs_not_named_take_the_new_ids_in_order() {
        assert_eq!(read(&["7"], 3).unwrap(), ["7", "8", "9"]);
        // Jobs 2 and 4 were held by 3 and by the call's own job 1.
        assert_eq!(
            read(&["10", "2", "3", "4", "10"], 4).unwrap(),
            ["10", "3", "11", "10"]
        );
        assert_eq!(read(&["0", "1", "5"], 1).unwrap(), ["5"]);
    }

    #[test]
    fn a_reply_out_of_shape_is_an_error() {
        assert!(read(&[], 1).is_err());
        assert!(read(&["x"], 1).is_err());
        assert!(read(&["0"], 1).is_err());
        assert!(read(&["5", "1"], 1).is_err());
        assert!(read(&["5", "9", "1"], 1).is_err());
    }
}
