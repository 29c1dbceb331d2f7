//! Settings shared by [`Manager`](crate::Manager) and [`Client`](crate::Client).

use std::fmt;
use std::time::Duration;

use crate::queue::error::{Error, Result};

/// How to reach Redis and how a queue behaves. `Options::default()` reads no environment
/// variable: the binary maps `SQUE_REDIS_URL` and friends onto these setters itself.
#[derive(Clone)]
pub struct Options {
    pub(crate) redis: String,
    pub(crate) prefix: String,
    pub(crate) lease: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) max_job_bytes: usize,
    pub(crate) dispatch: bool,
    pub(crate) backoff: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) result_ttl: Duration,
    pub(crate) result_max: u64,
    pub(crate) tls_ca: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            redis: "redis://127.0.0.1:6379".into(),
            prefix: "sque".into(),
            lease: Duration::from_secs(5),
            max_attempts: 5,
            max_job_bytes: 1 << 20,
            dispatch: true,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            result_ttl: Duration::from_secs(24 * 3600),
            result_max: 10_000,
            tls_ca: None,
        }
    }
}

impl Options {
    /// The Redis URL: `redis://[user:password@]host[:port][/db]` for one server,
    /// `redis+cluster://[user:password@]host:port[,host:port...]` for a Redis Cluster, or
    /// `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]` for the master
    /// that Sentinel names; `rediss…` for TLS.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = url.into();
        self
    }

    /// The prefix of every key (default `sque`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a dispatched job stays leased without a renewal. A worker renews every third
    /// of it; after a crash, the job comes back in about this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The queue's default number of attempts, for jobs pushed without their own. A
    /// dispatching manager stores it with the queue (the last one started wins); until one
    /// has, the setting of whoever hands the job out applies.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// The largest job, in bytes of JSON (default 1 MiB).
    pub fn max_job_bytes(mut self, n: usize) -> Self {
        self.max_job_bytes = n;
        self
    }

    /// `false` makes a producer-only [`Manager`](crate::Manager) that runs no dispatcher nor
    /// reaper. Its pushes still serve workers that wait, in the push script itself, once a
    /// dispatching manager has set the queue's lease.
    pub fn dispatch(mut self, on: bool) -> Self {
        self.dispatch = on;
        self
    }

    /// The first retry's delay; each further attempt doubles it, up to `backoff_max`.
    /// Half of each delay is random (jitter).
    pub fn backoff(mut self, base: Duration) -> Self {
        self.backoff = base;
        self
    }

    /// The longest delay between two attempts (default one hour).
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.backoff_max = max;
        self
    }

    /// How long a completed job's result stays readable (default 24 hours).
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// How many completed jobs' results are kept at most; the oldest go first (default 10,000).
    pub fn result_max(mut self, n: u64) -> Self {
        self.result_max = n;
        self
    }

    /// How long a worker's inbox outlives its last delivery: a live worker empties it at
    /// once, a dead one leaves it to expire (its jobs come back through their leases).
    pub(crate) fn inbox_ttl(&self) -> Duration {
        (self.lease * 4).max(Duration::from_secs(60))
    }

    /// A PEM file of the certificate authority that signed the Redis server's certificate,
    /// for `rediss://` with a private CA (the system's roots are used otherwise).
    pub fn tls_ca(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca = Some(pem_file.into());
        self
    }

    /// The Redis URL with any password hidden, for logs and error messages.
    pub fn redis_url_redacted(&self) -> String {
        redact_url(&self.redis)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidInput(what.to_string()));
        if self.lease < Duration::from_millis(100) {
            return bad("lease must be at least 100 ms");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1");
        }
        if self.max_job_bytes == 0 {
            return bad("max_job_bytes must be at least 1");
        }
        if self.backoff.is_zero() || self.backoff_max < self.backoff {
            return bad("backoff must be positive and no larger than backoff_max");
        }
        crate::queue::keys::validate_name("prefix", &self.prefix)
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("redis", &self.redis_url_redacted())
            .field("prefix", &self.prefix)
            .field("lease", &self.lease)
            .field("max_attempts", &self.max_attempts)
            .field("max_job_bytes", &self.max_job_bytes)
            .field("dispatch", &self.dispatch)
            .field("backoff", &self.backoff)
            .field("backoff_max", &self.backoff_max)
            .field("result_ttl", &self.result_ttl)
            .field("result_max", &self.result_max)
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

/// Replaces the password in `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    match (rest.find('@'), rest.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact_url("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://:secret@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
