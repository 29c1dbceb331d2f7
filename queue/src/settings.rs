//! A queue's settings: one source, the queue's `meta` hash in Redis.
//!
//! The first program to open a queue writes them there, from its [`Options`] or the defaults
//! below; every script reads them from there; `sque-host queue config` (or
//! [`Admin::configure`]) changes them later. A program whose own setting differs from the
//! queue's says so once and uses the queue's value, so that two hosts started with different
//! `--lease` cannot hand out different leases on one queue.
//!
//! [`Options`]: crate::Options
//! [`Admin::configure`]: crate::Admin::configure

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// The largest job Redis itself can hold in one string is 512 MiB.
const MAX_JOB_BYTES_CEILING: u64 = 512 << 20;

/// The longest duration a setting or a job's time may be: far past any real one, and
/// short enough that its milliseconds fit the scripts' numbers (a lease of 999,999,999
/// years wrapped around when made ms, and was stored as another number).
pub(crate) const LONGEST_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The settings of one queue, as stored in its meta.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueSettings {
    /// How long a dispatched job stays leased without a renewal; a worker's heartbeat lasts as
    /// long. After a crash, the job comes back in about this long.
    #[serde(serialize_with = "millis")]
    pub lease: Duration,
    /// How long a worker's inbox outlives its last delivery (a live worker empties it at once).
    #[serde(serialize_with = "millis")]
    pub inbox_ttl: Duration,
    /// Attempts of a job pushed without its own limit.
    pub max_attempts: u32,
    /// The largest job, in bytes of JSON.
    pub max_job_bytes: u64,
    /// The first retry's delay; each further attempt doubles it, up to `backoff_max`.
    #[serde(serialize_with = "millis")]
    pub backoff: Duration,
    #[serde(serialize_with = "millis")]
    pub backoff_max: Duration,
    /// How long a completed job's result stays readable.
    #[serde(serialize_with = "millis")]
    pub result_ttl: Duration,
    /// How many completed jobs' results are kept at most.
    pub result_max: u64,
    /// How many dead jobs are kept at most; the oldest go first (counted as `dead_dropped`).
    pub dead_max: u64,
    /// How long a dead job is kept.
    #[serde(serialize_with = "millis")]
    pub dead_ttl: Duration,
    /// The largest result a completion may keep, in bytes of JSON.
    pub max_result_bytes: u64,
    /// The longest error text kept with a failed job; longer ones are cut, and marked.
    pub max_error_bytes: u64,
    /// The most jobs of the queue leased at once, across every worker and host; 0 for no cap.
    pub max_in_flight: u64,
    /// The rate limit: at most `rate_count` jobs handed out per `rate_period`, across every
    /// host; 0 for no limit.
    pub rate_count: u64,
    #[serde(serialize_with = "millis")]
    pub rate_period: Duration,
    /// How many jobs may go at once after a quiet spell; 0 for `rate_count`.
    pub rate_burst: u64,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings::from_change(&SettingsChange::default())
    }
}

/// Settings to give a queue: each `None` leaves the queue's value (or, for a new queue, the
/// default) as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub lease: Option<Duration>,
    pub inbox_ttl: Option<Duration>,
    pub max_attempts: Option<u32>,
    pub max_job_bytes: Option<u64>,
    pub backoff: Option<Duration>,
    pub backoff_max: Option<Duration>,
    pub result_ttl: Option<Duration>,
    pub result_max: Option<u64>,
    pub dead_max: Option<u64>,
    pub dead_ttl: Option<Duration>,
    pub max_result_bytes: Option<u64>,
    pub max_error_bytes: Option<u64>,
    pub max_in_flight: Option<u64>,
    pub rate_count: Option<u64>,
    pub rate_period: Option<Duration>,
    pub rate_burst: Option<u64>,
}

/// The meta field of each setting, with its value as stored (milliseconds, bytes, counts).
macro_rules! fields {
    ($($field:ident: $kind:ident),* $(,)?) => {
        impl QueueSettings {
            /// The names of the settings' meta fields.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// The settings as meta fields and values.
            pub(crate) fn to_fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), $kind::store(&self.$field))),*]
            }

            /// These settings with `change` applied.
            pub fn with(&self, change: &SettingsChange) -> QueueSettings {
                let mut out = self.clone();
                $(if let Some(v) = change.$field { out.$field = v; })*
                out
            }

            /// Reads the settings from meta fields; a field an older queue lacks takes its
            /// default.
            pub(crate) fn from_fields(meta: &HashMap<String, String>) -> Result<QueueSettings> {
                let defaults = QueueSettings::default();
                Ok(QueueSettings {
                    $($field: match meta.get(stringify!($field)) {
                        None => defaults.$field,
                        Some(text) => $kind::load(stringify!($field), text)?,
                    },)*
                })
            }
        }

        impl SettingsChange {
            /// The settings given, as meta fields and values.
            pub(crate) fn to_fields(&self) -> Vec<(&'static str, u64)> {
                let mut out = Vec::new();
                $(if let Some(v) = &self.$field {
                    out.push((stringify!($field), $kind::store(v)));
                })*
                out
            }

            /// The settings given whose value differs from the queue's: (field, ours, queue's).
            pub(crate) fn differences(&self, queue: &QueueSettings) -> Vec<(&'static str, String, String)> {
                let mut out = Vec::new();
                $(if let Some(v) = &self.$field {
                    if *v != queue.$field {
                        out.push((stringify!($field), $kind::show(v), $kind::show(&queue.$field)));
                    }
                })*
                out
            }

            /// Takes every setting `other` gives.
            pub fn merge(&mut self, other: &SettingsChange) {
                $(if other.$field.is_some() { self.$field = other.$field; })*
            }

            /// Whether no setting is given.
            pub fn is_empty(&self) -> bool {
                true $(&& self.$field.is_none())*
            }
        }
    };
}

fields! {
    lease: Millis,
    inbox_ttl: Millis,
    max_attempts: Count32,
    max_job_bytes: Count,
    backoff: Millis,
    backoff_max: Millis,
    result_ttl: Millis,
    result_max: Count,
    dead_max: Count,
    dead_ttl: Millis,
    max_result_bytes: Count,
    max_error_bytes: Count,
    max_in_flight: Count,
    rate_count: Count,
    rate_period: Millis,
    rate_burst: Count,
}

/// How each kind of setting is stored in meta: durations in milliseconds, sizes and counts
/// as they are.
struct Millis;
struct Count;
struct Count32;

fn corrupt(field: &str, text: &str) -> Error {
    Error::Corrupt(format!(
        "the queue's setting {field} is {text:?}, not a whole number; set it again with `sque-host queue config`"
    ))
}

impl Millis {
    fn store(d: &Duration) -> u64 {
        d.as_millis() as u64
    }
    fn load(field: &str, text: &str) -> Result<Duration> {
        text.parse()
            .map(Duration::from_millis)
            .map_err(|_| corrupt(field, text))
    }
    fn show(d: &Duration) -> String {
        format!("{d:?}")
    }
}

impl Count {
    fn store(n: &u64) -> u64 {
        *n
    }
    fn load(field: &str, text: &str) -> Result<u64> {
        text.parse().map_err(|_| corrupt(field, text))
    }
    fn show(n: &u64) -> String {
        n.to_string()
    }
}

impl Count32 {
    fn store(n: &u32) -> u64 {
        *n as u64
    }
    fn load(field: &str, text: &str) -> Result<u32> {
        text.parse().map_err(|_| corrupt(field, text))
    }
    fn show(n: &u32) -> String {
        n.to_string()
    }
}

impl QueueSettings {
    /// The settings a new queue gets: `change` where given, else the defaults.
    pub fn from_change(change: &SettingsChange) -> QueueSettings {
        let lease = change.lease.unwrap_or(Duration::from_secs(5));
        QueueSettings {
            lease,
            // A dead worker's inbox expires; a live one is emptied at once.
            inbox_ttl: change
                .inbox_ttl
                .unwrap_or_else(|| (lease * 4).max(Duration::from_secs(60))),
            max_attempts: change.max_attempts.unwrap_or(5),
            max_job_bytes: change.max_job_bytes.unwrap_or(1 << 20),
            backoff: change.backoff.unwrap_or(Duration::from_secs(1)),
            backoff_max: change.backoff_max.unwrap_or(Duration::from_secs(3600)),
            result_ttl: change.result_ttl.unwrap_or(Duration::from_secs(24 * 3600)),
            result_max: change.result_max.unwrap_or(10_000),
            dead_max: change.dead_max.unwrap_or(10_000),
            dead_ttl: change
                .dead_ttl
                .unwrap_or(Duration::from_secs(180 * 24 * 3600)),
            max_result_bytes: change.max_result_bytes.unwrap_or(1 << 20),
            max_error_bytes: change.max_error_bytes.unwrap_or(4 << 10),
            max_in_flight: change.max_in_flight.unwrap_or(0),
            rate_count: change.rate_count.unwrap_or(0),
            rate_period: change.rate_period.unwrap_or(Duration::from_secs(1)),
            rate_burst: change.rate_burst.unwrap_or(0),
        }
    }

    /// Checks that the settings can work together; each message says which to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidInput(what));
        for (name, d) in [
            ("lease", self.lease),
            ("inbox_ttl", self.inbox_ttl),
            ("backoff", self.backoff),
            ("backoff_max", self.backoff_max),
            ("result_ttl", self.result_ttl),
            ("dead_ttl", self.dead_ttl),
            ("the rate limit's period", self.rate_period),
        ] {
            if d > LONGEST_DURATION {
                return bad(format!(
                    "{name} of {}s is over the longest allowed, 100 years",
                    d.as_secs()
                ));
            }
            // Kept in whole milliseconds: a fraction would be cut off, and what is kept
            // would not be what was checked (a backoff of 500 µs kept as 0).
            if d.subsec_nanos() % 1_000_000 != 0 {
                return bad(format!(
                    "{name} of {d:?} is not a whole number of milliseconds, which is how it is kept"
                ));
            }
        }
        if self.result_ttl.is_zero() {
            return bad(
                "result_ttl must be at least 1 ms (to keep no results, set result_max to 0)".into(),
            );
        }
        if self.lease < Duration::from_millis(100) {
            return bad(format!(
                "lease must be at least 100 ms, not {:?}",
                self.lease
            ));
        }
        if self.inbox_ttl < self.lease {
            return bad(format!(
                "inbox_ttl ({:?}) must be at least the lease ({:?})",
                self.inbox_ttl, self.lease
            ));
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be at least 1".into());
        }
        if self.max_job_bytes == 0 || self.max_job_bytes > MAX_JOB_BYTES_CEILING {
            return bad(format!(
                "max_job_bytes must be 1 to {MAX_JOB_BYTES_CEILING} (Redis's largest string), not {}",
                self.max_job_bytes
            ));
        }
        if self.max_result_bytes > MAX_JOB_BYTES_CEILING {
            return bad(format!(
                "max_result_bytes must be at most {MAX_JOB_BYTES_CEILING} (Redis's largest string), not {}",
                self.max_result_bytes
            ));
        }
        if self.max_error_bytes < 64 {
            return bad(format!(
                "max_error_bytes must be at least 64, not {}",
                self.max_error_bytes
            ));
        }
        if self.rate_count > 0 && self.rate_period.as_millis() < 1 {
            return bad(format!(
                "the rate limit's period must be at least 1 ms, not {:?}",
                self.rate_period
            ));
        }
        if self.backoff.is_zero() || self.backoff_max < self.backoff {
            return bad(format!(
                "backoff ({:?}) must be positive and no larger than backoff_max ({:?})",
                self.backoff, self.backoff_max
            ));
        }
        Ok(())
    }
}

impl fmt::Display for QueueSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lease {:?}, inbox_ttl {:?}, max_attempts {}, max_job_bytes {}, backoff {:?} to {:?}, results kept {:?} / {}, dead jobs kept {:?} / {}, max_result_bytes {}, max_error_bytes {}, max_in_flight {}, rate {}",
            self.lease,
            self.inbox_ttl,
            self.max_attempts,
            self.max_job_bytes,
            self.backoff,
            self.backoff_max,
            self.result_ttl,
            self.result_max,
            self.dead_ttl,
            self.dead_max,
            self.max_result_bytes,
            self.max_error_bytes,
            match self.max_in_flight {
                0 => "none".to_string(),
                n => n.to_string(),
            },
            match (self.rate_count, self.rate_burst) {
                (0, _) => "none".to_string(),
                (n, 0) => format!("{n} per {:?}", self.rate_period),
                (n, burst) => format!("{n} per {:?}, burst {burst}", self.rate_period),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_meta_fields() {
        let s = QueueSettings::from_change(&SettingsChange {
            lease: Some(Duration::from_millis(1500)),
            result_max: Some(7),
            ..SettingsChange::default()
        });
        let meta: HashMap<String, String> = s
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(QueueSettings::from_fields(&meta).unwrap(), s);
        assert_eq!(s.inbox_ttl, Duration::from_secs(60));
        assert_eq!(
            QueueSettings::FIELDS.len(),
            s.to_fields().len(),
            "every setting has a field"
        );
    }

    #[test]
    fn missing_fields_take_defaults_and_garbage_is_refused() {
        let empty = HashMap::new();
        assert_eq!(
            QueueSettings::from_fields(&empty).unwrap(),
            QueueSettings::default()
        );
        let bad: HashMap<String, String> = [("lease".to_string(), "soon".to_string())].into();
        let err = QueueSettings::from_fields(&bad).unwrap_err();
        assert!(err.to_string().contains("lease"), "{err}");
    }

    #[test]
    fn differences_name_only_the_settings_given() {
        let queue = QueueSettings::default();
        let ours = SettingsChange {
            lease: Some(Duration::from_secs(10)),
            max_attempts: Some(5),
            ..SettingsChange::default()
        };
        let diff = ours.differences(&queue);
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].0, "lease");
        assert!(SettingsChange::default().is_empty());
    }

    #[test]
    fn validation_names_the_setting() {
        let s = QueueSettings::default().with(&SettingsChange {
            lease: Some(Duration::from_millis(10)),
            ..SettingsChange::default()
        });
        assert!(s.validate().unwrap_err().to_string().contains("lease"));
        let s = QueueSettings::default().with(&SettingsChange {
            backoff: Some(Duration::from_secs(10)),
            backoff_max: Some(Duration::from_secs(1)),
            ..SettingsChange::default()
        });
        assert!(s.validate().unwrap_err().to_string().contains("backoff"));
        assert!(QueueSettings::default().validate().is_ok());
    }

    #[test]
    fn durations_past_a_century_are_refused_before_their_ms_wrap_around() {
        let ages = Duration::from_secs(999_999_999 * 365 * 24 * 3600);
        let s = QueueSettings::default().with(&SettingsChange {
            lease: Some(ages),
            inbox_ttl: Some(ages),
            ..SettingsChange::default()
        });
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("lease of") && e.contains("100 years"), "{e}");
        let s = QueueSettings::default().with(&SettingsChange {
            result_ttl: Some(ages),
            ..SettingsChange::default()
        });
        assert!(s.validate().unwrap_err().to_string().contains("result_ttl"));
        let s = QueueSettings::default().with(&SettingsChange {
            dead_ttl: Some(LONGEST_DURATION),
            ..SettingsChange::default()
        });
        assert!(s.validate().is_ok(), "a century is allowed");
    }

    #[test]
    fn durations_are_whole_milliseconds_as_kept_and_results_are_kept_a_while() {
        let s = QueueSettings::default().with(&SettingsChange {
            backoff: Some(Duration::from_micros(500)),
            ..SettingsChange::default()
        });
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("backoff") && e.contains("whole number of milliseconds"),
            "{e}"
        );
        let s = QueueSettings::default().with(&SettingsChange {
            lease: Some(Duration::from_micros(1_500_500)),
            inbox_ttl: Some(Duration::from_secs(60)),
            ..SettingsChange::default()
        });
        assert!(s.validate().unwrap_err().to_string().contains("lease"));
        let s = QueueSettings::default().with(&SettingsChange {
            result_ttl: Some(Duration::ZERO),
            ..SettingsChange::default()
        });
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("result_max to 0"));
    }
}
