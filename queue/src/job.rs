//! A job as a worker holds it, and its id.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A job's id: unique within its queue, assigned at push, shown as a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for JobId {
    fn from(s: String) -> Self {
        JobId(s)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        JobId(s.to_string())
    }
}

/// A job handed to a worker. Complete it with [`Client::complete`](crate::Client::complete) or
/// fail it with [`Client::fail`](crate::Client::fail). While any clone of it lives, the client
/// renews its lease; drop every clone without acknowledging it and the lease runs out, as if
/// the worker had died, and the job comes back for another attempt.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    pub data: Value,
    /// 1 on the first delivery, one more on each later one.
    pub attempt: u32,
    /// The id given to [`Client::i_am_free`](crate::Client::i_am_free), if any.
    pub request_id: Option<String>,
    pub(crate) lease: Arc<Lease>,
}

impl Job {
    /// The fencing token of this delivery, as stored in the queue's `leases` key.
    pub fn lease_token(&self) -> &str {
        &self.lease.token
    }

    /// Resolves when the job is cancelled while this client holds it
    /// ([`Admin::cancel`](crate::Admin::cancel)): the client hears it at its next lease renewal
    /// (every third of the queue's lease) and the job's acknowledgements are then refused with
    /// [`Error::Cancelled`](crate::Error::Cancelled). Stop working on it and drop it.
    pub async fn cancelled(&self) {
        self.lease.cancelled.cancelled().await
    }

    /// Whether the client has heard that the job was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.lease.cancelled.is_cancelled()
    }

    /// How long the job has waited since it was pushed, as of now: its wait in the queue, from
    /// its push to its delivery (measured on Redis's clock), and the time since this client
    /// received it. `None` for a retry, and for a first attempt whose push time the queue no
    /// longer kept (docs/METRICS.md, `sque_job_wait_seconds`).
    pub fn waited(&self) -> Option<Duration> {
        let queued = self.lease.queued?;
        Some(queued + self.lease.received.elapsed())
    }
}

/// The lease under which a job was delivered. Shared by every clone of a [`Job`], so the
/// client can tell when its holder let go of all of them.
#[derive(Debug)]
pub(crate) struct Lease {
    pub token: String,
    /// Cancelled when the client hears that the job was cancelled.
    pub cancelled: CancellationToken,
    /// How long the job waited in the queue before this delivery, when the delivery said.
    pub queued: Option<Duration>,
    /// When this client received the delivery.
    pub received: Instant,
}

impl Lease {
    /// The lease of a delivery received now, after `queued` in the queue.
    pub fn delivered(token: String, queued: Option<Duration>) -> Lease {
        Lease {
            token,
            cancelled: CancellationToken::new(),
            queued,
            received: Instant::now(),
        }
    }
}
