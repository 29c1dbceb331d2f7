//! A job as a worker holds it, and the wire forms that carry it through Redis.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::queue::error::{Error, Result};

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

/// A lease token `id|attempt|max_attempts`: the job, and which delivery of it. Every script
/// that ends or extends a lease checks the exact token, so a worker whose lease ran out (and
/// whose job was dispatched again, with a higher attempt) can no longer touch the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub id: JobId,
    pub attempt: u32,
}

impl Token {
    pub fn parse(token: &str) -> Result<Token> {
        let mut parts = token.split('|');
        let (Some(id), Some(attempt), Some(max), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Corrupt(format!("lease token {token:?}")));
        };
        let attempt = attempt.parse().ok();
        match (attempt, max.parse::<u32>()) {
            (Some(attempt), Ok(_)) if !id.is_empty() => Ok(Token {
                id: JobId::from(id),
                attempt,
            }),
            _ => Err(Error::Corrupt(format!("lease token {token:?}"))),
        }
    }
}

/// What the dispatcher puts in a worker's inbox: `{"r": request, "t": token, "d": data}`.
#[derive(Deserialize)]
struct InboxEntry {
    #[serde(rename = "r")]
    request: String,
    #[serde(rename = "t")]
    token: String,
    #[serde(rename = "d")]
    data: Value,
}

/// An inbox entry read back from Redis, checked: the request it answers, its lease token,
/// and the job's data.
#[derive(Debug)]
pub struct Delivery {
    pub request: u64,
    pub token: String,
    pub id: JobId,
    pub attempt: u32,
    pub data: Value,
}

/// Parses an inbox entry. Public for the fuzz target (`fuzz/`): whatever Redis holds, this
/// answers with a `Delivery` or an error, never a panic.
#[doc(hidden)]
pub fn parse_delivery(entry: &str) -> Result<Delivery> {
    let corrupt = |what: String| Error::Corrupt(format!("inbox entry: {what}"));
    let e: InboxEntry = serde_json::from_str(entry).map_err(|e| corrupt(e.to_string()))?;
    let token = Token::parse(&e.token)?;
    let request = e
        .request
        .parse::<u64>()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Delivery {
        request,
        id: token.id,
        attempt: token.attempt,
        token: e.token,
        data: e.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse() {
        let t = Token::parse("42|3|5").unwrap();
        assert_eq!((t.id.as_str(), t.attempt), ("42", 3));
        for bad in ["", "42", "42|x|5", "42|1", "|1|5", "1|2|3|4"] {
            assert!(Token::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
