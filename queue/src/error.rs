//! The one error type of the library. Each variant says what went wrong and what to do.

use crate::job::JobId;

/// What can go wrong when talking to a queue. Match on the variant to tell bad input
/// (fix the call), an unavailable Redis (retry later) and a stale lease (drop the job: it has
/// gone back to the queue or to another worker) apart.
///
/// Cheap to clone: a call sent together with others (completions and requests share one
/// script call) hands each caller the same error, as its real variant.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue name cannot be used as part of a Redis key.
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName { name: String, reason: String },

    /// A job's JSON is larger than the queue's size limit (`max_job_bytes` in its settings).
    #[error("job is {size} bytes of JSON, over the queue's limit of {limit} bytes: keep large payloads elsewhere and push a reference, or raise the limit with `sque-host queue config --max-job-bytes`")]
    JobTooLarge { size: usize, limit: usize },

    /// A setting or argument is out of range, or data is not what it must be.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The queue has never been created (read-only roles do not create queues).
    #[error(
        "queue {0:?} does not exist: check the name (and --prefix), or push a job to create it"
    )]
    NoSuchQueue(String),

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

    /// The job was cancelled (`Admin::cancel`, `sque-host job cancel`) while this worker held
    /// it: stop working on it. The call changed nothing; the job is recorded as cancelled and
    /// is never retried.
    #[error("job {job} (attempt {attempt}) was cancelled: stop working on it; this call was refused and changed nothing")]
    Cancelled { job: JobId, attempt: u32 },

    /// The queue was created by a version of sque whose protocol this one does not know.
    #[error("queue {queue:?} uses protocol {found}, this sque speaks {supported}: use a matching sque version")]
    Protocol {
        queue: String,
        found: String,
        supported: String,
    },

    /// The queue uses a feature this version of sque does not know (its meta's `requires`):
    /// serving it would silently ignore what the feature holds (delayed jobs never promoted).
    #[error("queue {queue:?} uses the feature {feature:?}, which this sque does not know: upgrade it (every host of a queue should run the newest version first)")]
    UnknownFeature { queue: String, feature: String },

    /// Something in Redis is not in the shape the protocol says.
    #[error("unreadable data in Redis: {0}")]
    Corrupt(String),

    /// The client was shut down while the call waited.
    #[error("the client was shut down")]
    Closed,

    /// Redis would not take a request, while it takes others (a request larger than its
    /// `proto-max-bulk-len`, which it answers by dropping the connection).
    #[error("Redis refused the request: {0}")]
    Refused(String),

    /// Any other error Redis returned.
    #[error("Redis error: {0}")]
    Redis(#[source] redis::RedisError),
}

/// The codes the scripts start their error replies with (`docs/PROTOCOL.md`).
pub(crate) mod codes {
    /// The caller speaks another major version of the protocol than the queue.
    pub const PROTOCOL: &str = "SQUE_PROTOCOL";
    /// The queue's meta is missing: nobody opened the queue.
    pub const NO_QUEUE: &str = "SQUE_NOQUEUE";
    /// An argument the script was given is not what the protocol says.
    pub const INVALID: &str = "SQUE_INVALID";
    /// A job over the queue's size limit.
    pub const TOO_LARGE: &str = "SQUE_TOOLARGE";
    /// The queue requires a feature the script does not know.
    pub const FEATURE: &str = "SQUE_FEATURE";
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        let text = e.to_string();
        // A script's error() reply ends with where it was raised (" script: SHA, on
        // @user_script:N."); the user needs the message alone.
        let detail = || {
            let d = e.detail().unwrap_or_default();
            d.split(" script: ").next().unwrap_or(d).to_string()
        };
        match e.code() {
            Some(codes::INVALID) => return Error::InvalidInput(detail()),
            Some(codes::TOO_LARGE) => {
                // "SQUE_TOOLARGE job N is B bytes, over the queue's limit of L bytes": the
                // queue's limit as the script read it (a producer's may be older).
                let detail = detail();
                return match too_large(&detail) {
                    Some((size, limit)) => Error::JobTooLarge { size, limit },
                    None => Error::InvalidInput(detail),
                };
            }
            Some(codes::NO_QUEUE) => {
                // "Q has no setting F; open the queue first": the queue was never opened (or
                // by a version without F), which an open (a push, a host) mends.
                let detail = detail();
                let queue = match detail.split_once(" has no setting ") {
                    Some((queue, _)) => queue.to_string(),
                    None => detail,
                };
                return Error::NoSuchQueue(queue);
            }
            Some(codes::FEATURE) => {
                // "SQUE_FEATURE <feature> <queue name>"
                let detail = detail();
                let (feature, queue) = detail.split_once(' ').unwrap_or((&detail, ""));
                return Error::UnknownFeature {
                    queue: queue.to_string(),
                    feature: feature.to_string(),
                };
            }
            Some(codes::PROTOCOL) => {
                // "SQUE_PROTOCOL <queue's version> <queue name>"
                let detail = detail();
                let mut words = detail.splitn(2, ' ');
                let found = words.next().unwrap_or_default().to_string();
                let queue = words.next().unwrap_or_default().to_string();
                return Error::Protocol {
                    queue,
                    found,
                    supported: crate::PROTOCOL_VERSION.to_string(),
                };
            }
            _ => {}
        }
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
            // A cluster whose nodes are all gone, or one that is reconfiguring, is as
            // unreachable as a server that is down.
            ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(ServerErrorKind::ClusterDown)
            | ErrorKind::Server(ServerErrorKind::MasterDown)
            | ErrorKind::Server(ServerErrorKind::TryAgain) => Error::Unavailable(e),
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
        matches!(
            self,
            Error::InvalidQueueName { .. }
                | Error::JobTooLarge { .. }
                | Error::InvalidInput(_)
                | Error::NoSuchQueue(_)
        )
    }

    /// True when Redis could not be reached or answered: nothing was written by the call
    /// that failed, or it is unknown whether it was (a timeout).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// The error itself. Batched calls used to wrap their shared failure; they now return
    /// the real variant, so there is nothing to look through.
    #[deprecated(
        since = "0.1.0",
        note = "errors are no longer wrapped: use the error itself"
    )]
    pub fn cause(&self) -> &Error {
        self
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The size and the limit in a script's `SQUE_TOOLARGE` text.
fn too_large(detail: &str) -> Option<(usize, usize)> {
    let (_, rest) = detail.split_once(" is ")?;
    let (size, rest) = rest.split_once(" bytes, over the queue's limit of ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((size.parse().ok()?, limit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::too_large;

    #[test]
    fn a_script_s_size_refusal_gives_the_size_and_the_limit() {
        let text = "job 3 is 2048 bytes, over the queue's limit of 1024 bytes";
        assert_eq!(too_large(text), Some((2048, 1024)));
        assert_eq!(too_large("job 3: something else"), None);
    }
}
