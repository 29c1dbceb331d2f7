//! Follow-up jobs a guest pushes (`follow-up.push`): each is checked at once (a queue this
//! host grants, JSON, the per-job bounds) and kept with the job until it ends. Only a
//! completed job's follow-ups leave the host, staged with its completion
//! (`pool/acknowledger.rs`); a job that fails, times out or is cancelled drops them here.
//!
//! What a job may keep is bounded ([`MAX_FOLLOW_UP_BYTES`] of data and keys, and
//! `--max-pushes-per-job` pushes), so that the host's memory stays within slots × that, and a
//! guest pushing in a loop is refused, not obeyed.

use std::time::Duration;

use sque::FollowUp;

use crate::sandbox::limits::Grants;

/// Bytes of follow-up data (and unique keys) one job may keep.
pub const MAX_FOLLOW_UP_BYTES: usize = 4 << 20;
/// The largest one follow-up: the default size limit of a queue (a queue with a smaller
/// limit refuses it when it is moved, and the parent's `job show` says so).
pub const MAX_ONE_FOLLOW_UP_BYTES: usize = 1 << 20;
/// The default of `--max-pushes-per-job`.
pub const DEFAULT_MAX_PUSHES: usize = 1000;

/// Why a push was refused: the WIT's `push-error`, without the bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No `--allow-push` for that queue.
    Denied,
    /// The data is over what one follow-up, or the job's follow-ups together, may hold.
    TooLarge(u64),
    /// The queue name or the data is not valid: why.
    Invalid(String),
    /// The job pushed as many as `--max-pushes-per-job`.
    Limit,
}

/// One job's follow-ups so far.
#[derive(Default)]
pub struct FollowUps {
    jobs: Vec<FollowUp>,
    bytes: usize,
}

impl FollowUps {
    /// Keeps a follow-up of `data` (JSON text) to `queue`; returns its index in this job.
    pub fn push(
        &mut self,
        grants: &Grants,
        queue: &str,
        data: String,
        delay_ms: Option<u64>,
        unique_key: Option<String>,
    ) -> Result<u32, Refused> {
        if !grants.push_queues.iter().any(|q| q == queue) {
            return Err(Refused::Denied);
        }
        if self.jobs.len() >= grants.max_pushes_per_job {
            return Err(Refused::Limit);
        }
        let size = data.len() + unique_key.as_ref().map_or(0, String::len);
        if data.len() > MAX_ONE_FOLLOW_UP_BYTES || self.bytes + size > MAX_FOLLOW_UP_BYTES {
            return Err(Refused::TooLarge(data.len() as u64));
        }
        // Parsed into a value, not skipped, so that its depth is counted (as a result's is).
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&data) {
            return Err(Refused::Invalid(format!("the data is not JSON: {e}")));
        }
        let mut job =
            FollowUp::from_json(queue, data).map_err(|e| Refused::Invalid(e.to_string()))?;
        if let Some(ms) = delay_ms {
            job = job
                .delay(Duration::from_millis(ms))
                .map_err(|e| Refused::Invalid(e.to_string()))?;
        }
        if let Some(key) = unique_key {
            job = job
                .unique_key(key)
                .map_err(|e| Refused::Invalid(e.to_string()))?;
        }
        self.bytes += size;
        self.jobs.push(job);
        Ok(self.jobs.len() as u32 - 1)
    }

    /// The follow-ups kept, leaving none.
    pub fn take(&mut self) -> Vec<FollowUp> {
        self.bytes = 0;
        std::mem::take(&mut self.jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(queues: &[&str], max: usize) -> Grants {
        Grants {
            push_queues: queues.iter().map(|q| q.to_string()).collect(),
            max_pushes_per_job: max,
            ..Grants::default()
        }
    }

    #[test]
    fn only_granted_queues_take_pushes_within_the_bounds() {
        let g = grants(&["emails"], 2);
        let mut f = FollowUps::default();
        assert_eq!(
            f.push(&g, "sms", "1".into(), None, None),
            Err(Refused::Denied)
        );
        assert_eq!(f.push(&g, "emails", "{}".into(), None, None), Ok(0));
        assert!(matches!(
            f.push(&g, "emails", "{".into(), None, None),
            Err(Refused::Invalid(_))
        ));
        assert!(matches!(
            f.push(&g, "emails", "1".into(), None, Some(String::new())),
            Err(Refused::Invalid(_))
        ));
        // The key another job's follow-up is moved under: taken first, it would stand in
        // for that follow-up, which would then never be pushed.
        assert!(matches!(
            f.push(
                &g,
                "emails",
                "1".into(),
                None,
                Some(format!("{}other:7:0", sque::ORIGIN_KEY_PREFIX))
            ),
            Err(Refused::Invalid(_))
        ));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            f.push(&g, "emails", deep, None, None),
            Err(Refused::Invalid(_))
        ));
        assert_eq!(
            f.push(&g, "emails", "2".into(), Some(5), Some("k".into())),
            Ok(1)
        );
        assert_eq!(
            f.push(&g, "emails", "3".into(), None, None),
            Err(Refused::Limit)
        );
        let taken = f.take();
        assert_eq!(taken.len(), 2);
        assert!(f.take().is_empty());
    }

    #[test]
    fn a_job_keeps_at_most_four_mib() {
        let g = grants(&["q"], 100);
        let mut f = FollowUps::default();
        let big = format!("\"{}\"", "x".repeat(MAX_ONE_FOLLOW_UP_BYTES - 2));
        assert_eq!(
            f.push(&g, "q", format!("{big} "), None, None),
            Err(Refused::TooLarge(MAX_ONE_FOLLOW_UP_BYTES as u64 + 1))
        );
        for i in 0..4 {
            assert_eq!(f.push(&g, "q", big.clone(), None, None), Ok(i));
        }
        assert!(matches!(
            f.push(&g, "q", "1".into(), None, None),
            Err(Refused::TooLarge(1))
        ));
    }
}
