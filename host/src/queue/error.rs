//! The one error type of the library. Each variant says what went wrong and what to do.

use crate::queue::JobId;

/// What can go wrong when talking to a queue. Match on the variant to tell bad input
/// (fix the call), an unavailable Redis (retry later) and a stale lease (drop the job: it has
/// gone back to the queue or to another worker) apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue name cannot be used as part of a Redis key.
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName { name: String, reason: String },

    /// A job's JSON is larger than `Options::max_job_bytes`.
    #[error("job is {size} bytes of JSON, over the limit of {limit} bytes: keep large payloads elsewhere and push a reference, or raise max_job_bytes")]
    JobTooLarge { size: usize, limit: usize },

    /// A setting or argument is out of range.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Redis could not be reached (refused, timed out, connection lost).
    #[error("cannot reach Redis: {0} (is redis-server running, and is the URL right?)")]
    Unavailable(#[source] redis::RedisError),

    /// Redis refused the credentials.
    #[error(
        "Redis refused the credentials: {0} (check the user name and password in the Redis URL)"
    )]
    Auth(#[source] redis::RedisError),

    /// Redis's ACL denied a command or a key.
    #[error("Redis denied a command: {0} (the ACL user needs the commands and keys listed in docs/PROTOCOL.md)")]
    Permission(#[source] redis::RedisError),

    /// The lease under which this worker held the job ran out, and the job went back to the
    /// queue (and perhaps to another worker). The call changed nothing.
    #[error("job {job} (attempt {attempt}): the lease ran out and the job has moved on; this call was refused and changed nothing")]
    StaleLease { job: JobId, attempt: u32 },

    /// The queue was created by a version of sque whose protocol this one does not know.
    #[error("queue {queue:?} uses protocol {found}, this sque speaks {supported}: use a matching sque version")]
    Protocol {
        queue: String,
        found: String,
        supported: String,
    },

    /// Something in Redis is not in the shape the protocol says.
    #[error("unreadable data in Redis: {0}")]
    Corrupt(String),

    /// The client was shut down while the call waited.
    #[error("the client was shut down")]
    Closed,

    /// A call sent together with others (see `batcher.rs`) failed; the cause is shared.
    #[error("{0}")]
    Batch(std::sync::Arc<Error>),

    /// Any other error Redis returned.
    #[error("Redis error: {0}")]
    Redis(#[source] redis::RedisError),
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        let text = e.to_string();
        match e.kind() {
            ErrorKind::AuthenticationFailed => Error::Auth(e),
            ErrorKind::Server(ServerErrorKind::NoPerm) => Error::Permission(e),
            // A cluster client wraps the node's refusal in its own error; the text keeps it.
            _ if ["WRONGPASS", "NOAUTH", "AuthenticationFailed"]
                .iter()
                .any(|word| text.contains(word)) =>
            {
                Error::Auth(e)
            }
            _ if text.contains("NOPERM") => Error::Permission(e),
            _ if e.is_io_error()
                || e.is_connection_refusal()
                || e.is_connection_dropped()
                || e.is_timeout() =>
            {
                Error::Unavailable(e)
            }
            _ => Error::Redis(e),
        }
    }
}

impl Error {
    /// True for bad input to the call itself: fix the call rather than retry it.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Batch(e) => e.is_bad_input(),
            e => matches!(
                e,
                Error::InvalidQueueName { .. } | Error::JobTooLarge { .. } | Error::InvalidInput(_)
            ),
        }
    }

    /// The error itself, looking through a shared batch failure.
    pub fn cause(&self) -> &Error {
        match self {
            Error::Batch(e) => e.cause(),
            e => e,
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
