//! Follow-up jobs: jobs a running job pushes to other queues (or its own), committed only when
//! it completes. The worker stages them under the job's lease just before its completion
//! (`stage.lua`); the completion commits them in the same call (`exchange.lua`), in the
//! parent's queue, so a job that fails, times out, is cancelled or retried pushes nothing; a
//! manager's mover (`dispatcher/mover.rs`) then pushes each to its queue exactly once.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::job::JobId;
use crate::keys::validate_queue_name;

/// The most follow-ups one job may push, whatever a host allows.
pub const MAX_FOLLOW_UPS: usize = 10_000;

/// The start of the unique key a follow-up pushed without one is moved under
/// (`PREFIX{parent's queue}:{parent's id}:{index}`): the movers' own, refused to a caller.
pub const ORIGIN_KEY_PREFIX: &str = "sque:follow-up:";

/// A job to push once the job that pushes it completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUp {
    pub(crate) queue: String,
    /// The data, as JSON text.
    pub(crate) json: String,
    pub(crate) delay: Option<Duration>,
    pub(crate) unique_key: Option<String>,
}

impl FollowUp {
    /// A follow-up of `data` to `queue`. Refuses a bad queue name.
    pub fn new(queue: &str, data: &serde_json::Value) -> Result<FollowUp> {
        // Checked now, while the parent can still be failed: a follow-up no worker can read
        // would be buried as poison in its queue once moved.
        if crate::producer::depth(data) >= crate::wire::MAX_DEPTH {
            return Err(Error::InvalidInput(format!(
                "the follow-up's data is nested {} levels deep or more; the most allowed is {}",
                crate::wire::MAX_DEPTH,
                crate::wire::MAX_DEPTH - 1
            )));
        }
        let json = serde_json::to_string(data).expect("a serde_json::Value always serializes");
        FollowUp::from_json(queue, json)
    }

    /// Like [`FollowUp::new`], for JSON text the caller has checked (valid, nested under 128
    /// levels): a host whose guest pushed it has it as text.
    pub fn from_json(queue: &str, json: String) -> Result<FollowUp> {
        validate_queue_name(queue)?;
        Ok(FollowUp {
            queue: queue.to_string(),
            json,
            delay: None,
            unique_key: None,
        })
    }

    /// Runs no sooner than `delay` after the job that pushed it completes. Refused over 100
    /// years (`settings::LONGEST_DURATION`), now rather than when it is moved, after its
    /// parent has completed.
    pub fn delay(mut self, delay: Duration) -> Result<FollowUp> {
        if delay > crate::settings::LONGEST_DURATION {
            return Err(Error::InvalidInput(format!(
                "a follow-up's delay of {}s is over the longest allowed, 100 years",
                delay.as_secs()
            )));
        }
        self.delay = Some(delay);
        Ok(self)
    }

    /// Pushes nothing if a job with this key is in the queue (as `JobOptions::unique_key`).
    /// Keys starting with [`ORIGIN_KEY_PREFIX`] are the movers' own and refused: a handler
    /// that took one could stand in for another job's follow-up, which would then never be
    /// pushed.
    pub fn unique_key(mut self, key: impl Into<String>) -> Result<FollowUp> {
        let key = key.into();
        if key.is_empty() || key.len() > crate::producer::MAX_UNIQUE_KEY_BYTES {
            return Err(Error::InvalidInput(format!(
                "a unique key is 1 to {} bytes, not {}",
                crate::producer::MAX_UNIQUE_KEY_BYTES,
                key.len()
            )));
        }
        if key.starts_with(ORIGIN_KEY_PREFIX) {
            return Err(Error::InvalidInput(format!(
                "unique keys starting with {ORIGIN_KEY_PREFIX:?} are kept for follow-ups pushed without a key: choose another"
            )));
        }
        self.unique_key = Some(key);
        Ok(self)
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The data, as JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The four values `stage.lua` keeps for it: queue, due ("" or "+MS"), unique key ("" for
    /// none), data.
    pub(crate) fn staged(&self) -> [String; 4] {
        [
            self.queue.clone(),
            self.delay
                .map(|d| format!("+{}", d.as_millis()))
                .unwrap_or_default(),
            self.unique_key.clone().unwrap_or_default(),
            self.json.clone(),
        ]
    }
}

/// What became of one follow-up of a completed job (`Inspector::job`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Child {
    pub queue: String,
    /// The job it became (or, when its unique key was held, the job that held it).
    pub id: Option<JobId>,
    /// Why it could not be pushed (too large for its queue, say).
    pub error: Option<String>,
}

impl Child {
    /// From `children_of`'s form: "QUEUE ID", or "QUEUE WHY" (a queue name holds no space).
    pub(crate) fn parse(entry: &str) -> Child {
        let (queue, rest) = entry.split_once(' ').unwrap_or((entry, ""));
        let is_id = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
        Child {
            queue: queue.to_string(),
            id: is_id.then(|| JobId::from(rest)),
            error: (!is_id).then(|| rest.to_string()),
        }
    }

    /// `children_of`'s form of a follow-up pushed as job `id`.
    pub(crate) fn pushed(queue: &str, id: &JobId) -> String {
        format!("{queue} {id}")
    }

    /// `children_of`'s form of a follow-up that could not be pushed.
    pub(crate) fn failed(queue: &str, why: &str) -> String {
        format!("{queue} {why}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_entry_reads_back_whatever_the_queue_name() {
        let pushed = Child::parse(&Child::pushed("eu:emails!", &JobId::from("42")));
        assert_eq!(
            (
                pushed.queue.as_str(),
                pushed.id.as_ref().map(|i| i.as_str())
            ),
            ("eu:emails!", Some("42"))
        );
        let failed = Child::parse(&Child::failed("emails", "too large: 2 MiB"));
        assert_eq!(failed.error.as_deref(), Some("too large: 2 MiB"));
        assert!(FollowUp::from_json("bad name", "1".into()).is_err());
        let f = FollowUp::from_json("emails", "{}".into())
            .unwrap()
            .delay(Duration::from_millis(1500))
            .unwrap();
        assert_eq!(f.staged(), ["emails", "+1500", "", "{}"].map(String::from));
        // What would be refused when moved, after the parent completed, is refused now.
        let ages = Duration::from_secs(101 * 365 * 24 * 3600);
        assert!(FollowUp::from_json("emails", "1".into())
            .unwrap()
            .delay(ages)
            .is_err());
        let deep: serde_json::Value =
            serde_json::from_str(&format!("{}{}", "[".repeat(127), "]".repeat(127))).unwrap();
        let mut deeper = deep;
        deeper = serde_json::Value::Array(vec![deeper]);
        assert!(FollowUp::new("emails", &deeper).is_err());
    }
}
