//! A job as a worker holds it, and its id.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
}

/// The lease under which a job was delivered. Shared by every clone of a [`Job`], so the
/// client can tell when its holder let go of all of them.
#[derive(Debug)]
pub(crate) struct Lease {
    pub token: String,
}
