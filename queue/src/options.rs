//! How a program reaches Redis, and the queue settings it brings (shared by every role).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Shared;
use crate::error::Result;
use crate::settings::{QueueSettings, SettingsChange};

/// How to reach Redis, and the settings a queue is given when this program creates it.
/// `Options::default()` reads no environment variable: the binary maps `SQUE_REDIS_URL` and
/// friends onto these setters itself.
///
/// The queue settings (lease, attempts, size limit, backoff, result retention) belong to the
/// queue, not to the program: the first opener writes them into the queue's meta, and a
/// program whose setting differs from the queue's warns once and uses the queue's (see
/// `settings.rs`; `sque-host queue config` changes them).
#[derive(Clone)]
pub struct Options {
    pub(crate) redis: String,
    pub(crate) prefix: String,
    pub(crate) dispatch: bool,
    pub(crate) measure_waits: bool,
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    /// The queue settings this program was given (each `None`: not given).
    pub(crate) settings: SettingsChange,
    /// With [`Options::share_connection`]: the connections every role opened with these
    /// options (or a clone) uses, made by the first to open (`backend/shared.rs`).
    pub(crate) shared: Option<Arc<Shared>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            redis: "redis://127.0.0.1:6379".into(),
            prefix: "sque".into(),
            dispatch: true,
            measure_waits: false,
            tls_ca: None,
            settings: SettingsChange::default(),
            shared: None,
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

    /// A queue setting (default 5 s): how long a dispatched job stays leased without a
    /// renewal. A worker renews every third of it; after a crash, the job comes back in about
    /// this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.settings.lease = Some(lease);
        self
    }

    /// A queue setting (default 5): the attempts of jobs pushed without their own limit.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.settings.max_attempts = Some(n);
        self
    }

    /// A queue setting (default 1 MiB): the largest job, in bytes of JSON. The push script
    /// enforces it for every producer.
    pub fn max_job_bytes(mut self, n: usize) -> Self {
        self.settings.max_job_bytes = Some(n as u64);
        self
    }

    /// `false` makes a producer-only [`Manager`](crate::Manager) that runs no dispatcher nor
    /// reaper. Its pushes still serve workers that wait, in the push script itself.
    pub fn dispatch(mut self, on: bool) -> Self {
        self.dispatch = on;
        self
    }

    /// `true` makes a [`Client`](crate::Client)'s jobs say how long they waited since their
    /// push ([`Job::waited`](crate::Job::waited)). While a client that asks for it runs, the
    /// queue works out each first attempt's wait as it hands it out, which costs Redis about
    /// a microsecond a job (docs/METRICS.md). Off by default; `sque-host run` turns it on with
    /// `--metrics-addr`.
    pub fn measure_waits(mut self, on: bool) -> Self {
        self.measure_waits = on;
        self
    }

    /// A queue setting (default 1 s): the first retry's delay; each further attempt doubles
    /// it, up to `backoff_max`. Half of each delay is random (jitter).
    pub fn backoff(mut self, base: Duration) -> Self {
        self.settings.backoff = Some(base);
        self
    }

    /// A queue setting (default one hour): the longest delay between two attempts.
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.settings.backoff_max = Some(max);
        self
    }

    /// A queue setting (default 24 hours): how long a completed job's result stays readable.
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.settings.result_ttl = Some(ttl);
        self
    }

    /// A queue setting (default 10,000): how many completed jobs' results are kept at most;
    /// the oldest go first.
    pub fn result_max(mut self, n: u64) -> Self {
        self.settings.result_max = Some(n);
        self
    }

    /// A queue setting (default 10,000): how many dead jobs are kept at most; the oldest go
    /// first, counted as `dead_dropped`.
    pub fn dead_max(mut self, n: u64) -> Self {
        self.settings.dead_max = Some(n);
        self
    }

    /// A queue setting (default 180 days): how long a dead job is kept.
    pub fn dead_ttl(mut self, ttl: Duration) -> Self {
        self.settings.dead_ttl = Some(ttl);
        self
    }

    /// A queue setting (default: four leases, at least a minute): how long a worker's inbox
    /// outlives its last delivery. A live worker empties it at once; a dead one leaves it to
    /// expire (its jobs come back through their leases).
    pub fn inbox_ttl(mut self, ttl: Duration) -> Self {
        self.settings.inbox_ttl = Some(ttl);
        self
    }

    /// Queue settings given all at once; `None` fields stay as they are.
    pub fn settings(mut self, change: SettingsChange) -> Self {
        self.settings.merge(&change);
        self
    }

    /// A PEM file of the certificate authority that signed the Redis server's certificate,
    /// for `rediss://` with a private CA (the system's roots are used otherwise).
    pub fn tls_ca(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca = Some(pem_file.into());
        self
    }

    /// Every role opened with these options, or with a clone of them made after this call,
    /// sends its commands and scripts on one connection (multiplexed: calls made together
    /// travel together), made by the first role to open, instead of on one of its own; on
    /// one server, the managers' wake-up subscriptions share one connection too, and the
    /// clients' inboxes are read by one blocking pop that names them all. For a program that
    /// serves many queues: `sque-host run` with several queues does this, so that ten queues
    /// cost Redis 3 connections, not 40. The connections are the first
    /// opener's: a role opened with another Redis URL is refused (call `share_connection`
    /// again after changing it).
    pub fn share_connection(mut self) -> Self {
        self.shared = Some(Arc::new(Shared::default()));
        self
    }

    /// The Redis URL with any password hidden, for logs and error messages.
    pub fn redis_url_redacted(&self) -> String {
        redact_url(&self.redis)
    }

    /// The queue settings given here, for a queue that does not exist yet.
    pub fn queue_settings(&self) -> QueueSettings {
        QueueSettings::from_change(&self.settings)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.queue_settings().validate()?;
        crate::keys::validate_name("prefix", &self.prefix)
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("redis", &self.redis_url_redacted())
            .field("prefix", &self.prefix)
            .field("dispatch", &self.dispatch)
            .field("tls_ca", &self.tls_ca)
            .field("settings", &self.settings)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// Replaces the password in `scheme://user:password@host` with `***`. The password ends at
/// the last `@` (a password may hold `@`; a host never does), and only what comes after it
/// is kept.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        // A user alone (`redis://token@host`) may itself be the secret.
        None => format!("{}***{}", &url[..scheme_end], &rest[at..]),
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
        assert_eq!(redact_url("redis://u:p@ss@h:1"), "redis://u:***@h:1");
        assert_eq!(
            redact_url("redis+cluster://u:a@b:c@h1:1,h2:2"),
            "redis+cluster://u:***@h1:1,h2:2"
        );
        assert_eq!(redact_url("rediss://secret@h"), "rediss://***@h");
    }
}
