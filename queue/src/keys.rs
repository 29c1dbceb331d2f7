//! The names of a queue's Redis keys. Every key carries the hash tag `{queue}` right after the
//! prefix, so all of one queue's keys live in one Redis Cluster slot.

use crate::error::{Error, Result};

/// The longest queue name, in bytes.
pub const MAX_QUEUE_NAME: usize = 200;

/// Checks that `name` can be a queue name: 1 to 200 bytes, no whitespace or control
/// characters, none of `{ } * ? [ ]` (they would break the hash tag or key patterns).
pub fn validate_queue_name(name: &str) -> Result<()> {
    validate_name("queue", name)
}

pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_QUEUE_NAME {
        Some(format!(
            "it is {} bytes long, the limit is {MAX_QUEUE_NAME}",
            name.len()
        ))
    } else if name == "." || name == ".." {
        // In a URL (the dashboard's /api/queues/NAME/...) these are steps of the path.
        Some("it is a path step, which a URL cannot name; use letters, digits and - _ . : / only, not . or .. alone".to_string())
    } else {
        name.chars()
            .find(|c| c.is_whitespace() || c.is_control() || "{}*?[]".contains(*c))
            .map(|c| format!("it contains {c:?}; use letters, digits and - _ . : / only"))
    };
    match reason {
        None => Ok(()),
        Some(reason) if what == "queue" => Err(Error::InvalidQueueName {
            name: crate::wire::shown(name),
            reason,
        }),
        Some(reason) => Err(Error::InvalidInput(format!(
            "invalid {what} {:?}: {reason}",
            crate::wire::shown(name)
        ))),
    }
}

/// All keys of one queue. See `docs/PROTOCOL.md` for what each holds.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub queue: String,
    /// `prefix:{queue}:`, the start of every key of the queue.
    pub base: String,
    pub waiting: String,
    pub jobs: String,
    pub meta: String,
    pub stats: String,
    pub requests: String,
    pub leases: String,
    /// Retries waiting out their backoff: token → when due.
    pub delayed: String,
    /// Jobs pushed with a delay or a time: item → when due (`schedule.lua`, `promote.lua`).
    pub scheduled: String,
    /// Schedules: name → definition (JSON: cron, tz, data, max_attempts).
    pub schedules: String,
    /// Schedules: name → next tick (ms).
    pub schedule_due: String,
    /// The unique key of each job that has one: id → "WINDOW_MS|KEY" (`unique` and
    /// `unique_until`, beside it, are the scripts' alone).
    pub unique_of: String,
    /// The dead list: a sorted set, token → time of death.
    pub dead_at: String,
    /// The dead list of versions before the sorted set (a list), emptied into `dead_at` by
    /// the reaper.
    pub dead: String,
    pub errors: String,
    pub results: String,
    pub results_at: String,
    /// Jobs cancelled: id → when (`cancel.lua`), kept as long as results.
    pub cancelled: String,
    /// When each push call's jobs were pushed: its first id → "FIRST|MS" (`push.lua`), kept
    /// from the push of the job at the head of `waiting` on (`reap.lua`).
    pub pushed: String,
    pub workers: String,
    /// The pub/sub channel that wakes the managers.
    pub wake: String,
    /// The set of all queue names under this prefix (for `stats` over every queue).
    pub registry: String,
}

impl Keys {
    pub fn new(prefix: &str, queue: &str) -> Result<Keys> {
        validate_name("prefix", prefix)?;
        validate_queue_name(queue)?;
        let base = format!("{prefix}:{{{queue}}}:");
        let key = |name: &str| format!("{base}{name}");
        Ok(Keys {
            queue: queue.to_string(),
            waiting: key("waiting"),
            jobs: key("jobs"),
            meta: key("meta"),
            stats: key("stats"),
            requests: key("requests"),
            leases: key("leases"),
            delayed: key("delayed"),
            scheduled: key("scheduled"),
            schedules: key("schedules"),
            schedule_due: key("schedule_due"),
            unique_of: key("unique_of"),
            dead_at: key("dead_at"),
            dead: key("dead"),
            errors: key("errors"),
            results: key("results"),
            results_at: key("results_at"),
            cancelled: key("cancelled"),
            pushed: key("pushed"),
            workers: key("workers"),
            wake: key("wake"),
            registry: format!("{prefix}:queues"),
            base,
        })
    }

    /// The list jobs at priority `level` wait in: `waiting` for the normal level, else
    /// `waiting:L` (feature `priority`).
    pub fn waiting_at(&self, level: u8) -> String {
        if level == crate::producer::NORMAL_PRIORITY {
            self.waiting.clone()
        } else {
            format!("{}waiting:{level}", self.base)
        }
    }

    /// Job id → its priority, for jobs of a priority other than the normal one.
    pub fn priority(&self) -> String {
        format!("{}priority", self.base)
    }

    /// The push records of the jobs of priority `level`: `pushed` for the normal level, else
    /// `pushed:L`.
    pub fn pushed_at(&self, level: u8) -> String {
        if level == crate::producer::NORMAL_PRIORITY {
            self.pushed.clone()
        } else {
            format!("{}pushed:{level}", self.base)
        }
    }

    /// What became of job `id`'s follow-ups (`children.lua`): "QUEUE ID" or "QUEUE WHY" each.
    pub fn children_of(&self, id: &str) -> String {
        format!("{}children_of:{id}", self.base)
    }

    /// Job `id`'s follow-ups, committed with its completion and not yet pushed.
    pub fn children(&self, id: &str) -> String {
        format!("{}children:{id}", self.base)
    }

    /// The latest progress report of job `id` (`progress.lua`).
    pub fn progress(&self, id: &str) -> String {
        format!("{}progress:{id}", self.base)
    }

    /// Who worker `w` is: JSON `{"host", "pid", "started", "sque"}`, written when it joins.
    pub fn worker_info(&self, w: &str) -> String {
        format!("{}worker:{w}", self.base)
    }

    /// The lease tokens worker `w` held at its last renewal, space-separated (`renew.lua`).
    pub fn held_by(&self, w: &str) -> String {
        format!("{}held:{w}", self.base)
    }

    /// The list a worker pops its jobs from.
    pub fn inbox(&self, worker: &str) -> String {
        format!("{}inbox:{worker}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_queue_hash_tag() {
        let k = Keys::new("sque", "emails").unwrap();
        assert_eq!(k.waiting, "sque:{emails}:waiting");
        assert_eq!(k.inbox("7"), "sque:{emails}:inbox:7");
    }

    #[test]
    fn bad_names_are_refused() {
        for name in [
            "", "a b", "a{b", "a}b", "a*", "a?", "[a]", "tab\t", "nl\n", "\u{7f}", ".", "..",
        ] {
            assert!(validate_queue_name(name).is_err(), "{name:?} was accepted");
        }
        assert!(validate_queue_name(&"x".repeat(201)).is_err());
        assert!(validate_queue_name(&"x".repeat(200)).is_ok());
        assert!(validate_queue_name("emails.eu-1:high/2").is_ok());
        assert!(validate_queue_name("...").is_ok());
        // Long names are shown cut, not whole.
        let long = validate_queue_name(&"x".repeat(5000))
            .unwrap_err()
            .to_string();
        assert!(long.len() < 300 && long.contains("x…"), "{long}");
    }
}
