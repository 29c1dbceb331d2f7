//! Schedules: a job pushed on a cron pattern (`0 3 * * *`, in a time zone), by whichever
//! manager runs, exactly once a tick. This file holds the definition and the arithmetic of
//! its ticks, with no I/O; the scheduler duty (`dispatcher/scheduler.rs`) runs them and the
//! `schedules` and `tick` scripts keep them.
//!
//! The pattern is read by `croner` (POSIX/Vixie cron: five fields, minute to weekday, with
//! ranges, steps, names, `L` and `#`), the zone by `chrono-tz` (the IANA database, compiled
//! in), so a host needs no zone files and every host reads a pattern the same way. A tick
//! is computed on Redis's clock, never a host's.
//!
//! **Missed ticks.** A tick that passed while no manager ran is pushed once when one comes
//! back; when several passed, still once: the next tick is the first after the time the
//! manager found it, not the ones in between (a nightly job missed for a week runs once, not
//! seven times).

use std::str::FromStr as _;

use chrono::{DateTime, TimeZone as _, Utc};
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::producer::NORMAL_PRIORITY;

/// The longest schedule name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// A job pushed on a cron pattern.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Five fields: minute, hour, day of month, month, day of week (`0 3 * * *`).
    pub cron: String,
    /// An IANA time zone (`Europe/Berlin`); UTC when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// The data of each job it pushes.
    pub data: Value,
    /// The attempts of each job; the queue's when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The priority of each job, 0 (low) to 9 (high), as a pushed job's
    /// ([`JobOptions::priority`](crate::JobOptions::priority)); the normal one when `None`.
    /// A queue that has had a schedule of another priority requires the feature
    /// `cron_priority` from then on (removing the schedule does not undo it): a host that
    /// would push its jobs at the normal priority refuses the queue. `Some(5)` is stored as
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// A schedule as the queue keeps it, with its name and next tick.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScheduleInfo {
    pub name: String,
    /// The definition; `None` when it cannot be read (`problem` says why).
    #[serde(flatten)]
    pub schedule: Option<Schedule>,
    /// When it next pushes a job, in ms since the epoch (Redis's clock).
    pub next_at: Option<u64>,
    /// What is wrong with the definition, when it cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Schedule {
    /// A schedule of `data` on `cron` in UTC.
    pub fn new(cron: impl Into<String>, data: Value) -> Schedule {
        Schedule {
            cron: cron.into(),
            tz: None,
            data,
            max_attempts: None,
            priority: None,
        }
    }

    /// The priority of its jobs: [`NORMAL_PRIORITY`] when none is set (checked by
    /// [`Schedule::validate`]).
    pub(crate) fn level(&self) -> u8 {
        self.priority.unwrap_or(NORMAL_PRIORITY)
    }

    /// Checks the pattern, the zone, the attempts and the priority; the error says what is
    /// wrong.
    pub fn validate(&self) -> Result<()> {
        self.parsed()?;
        self.check_job_options()
    }

    /// The first tick strictly after `after_ms` (ms since the epoch).
    pub fn next_after(&self, after_ms: u64) -> Result<u64> {
        let (cron, tz) = self.parsed()?;
        self.tick_after(&cron, tz, after_ms)
    }

    /// [`Schedule::validate`], then [`Schedule::next_after`], reading the pattern once: what
    /// the scheduler asks of each due definition at every tick.
    pub(crate) fn validated_next_after(&self, after_ms: u64) -> Result<u64> {
        let (cron, tz) = self.parsed()?;
        self.check_job_options()?;
        self.tick_after(&cron, tz, after_ms)
    }

    fn check_job_options(&self) -> Result<()> {
        if self.max_attempts == Some(0) {
            return Err(Error::InvalidInput(
                "max_attempts must be at least 1".into(),
            ));
        }
        crate::producer::check_priority(self.level()).map(|_| ())
    }

    fn tick_after(&self, cron: &Cron, tz: chrono_tz::Tz, after_ms: u64) -> Result<u64> {
        // Whole seconds: the pattern's ticks fall on them, and croner keeps what it is given
        // below a second.
        let after = Utc
            .timestamp_opt((after_ms / 1000) as i64, 0)
            .single()
            .ok_or_else(|| Error::InvalidInput(format!("{after_ms} ms is not a time")))?
            .with_timezone(&tz);
        let next: DateTime<chrono_tz::Tz> =
            cron.find_next_occurrence(&after, false).map_err(|e| {
                Error::InvalidInput(format!(
                    "the pattern {:?} has no time after this one: {e}",
                    self.cron
                ))
            })?;
        Ok(next.timestamp_millis().max(0) as u64)
    }

    fn parsed(&self) -> Result<(Cron, chrono_tz::Tz)> {
        let fields = self.cron.split_whitespace().count();
        if fields != 5 {
            return Err(Error::InvalidInput(format!(
                "the cron pattern {:?} has {fields} fields; it takes five: minute hour day-of-month month day-of-week (e.g. \"0 3 * * *\")",
                self.cron
            )));
        }
        // croner reads an empty item of a list (`1,,2`, `,5`) as nothing and takes the rest.
        if let Some(field) = self
            .cron
            .split_whitespace()
            .find(|field| field.split(',').any(str::is_empty))
        {
            return Err(Error::InvalidInput(format!(
                "the cron pattern {:?} has an empty item in the list {field:?}; separate values with single commas (e.g. \"0,30\")",
                self.cron
            )));
        }
        let cron = Cron::from_str(&self.cron).map_err(|e| {
            Error::InvalidInput(format!(
                "the cron pattern {:?} does not parse: {e}",
                self.cron
            ))
        })?;
        let tz = match &self.tz {
            None => chrono_tz::UTC,
            Some(name) => chrono_tz::Tz::from_str(name).map_err(|_| {
                Error::InvalidInput(format!(
                    "{name:?} is not a time zone: use an IANA name such as Europe/Berlin or America/New_York"
                ))
            })?,
        };
        Ok((cron, tz))
    }
}

/// Checks a schedule's name: 1 to 200 bytes, no whitespace or control characters.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::InvalidInput(format!(
            "a schedule's name is 1 to {MAX_NAME_BYTES} bytes, not {}",
            name.len()
        )));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidInput(format!(
            "the schedule name {:?} holds whitespace or a control character",
            crate::wire::shown(name)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-12-04T20:00:00Z
    const AT: u64 = 1_796_414_400_000;
    const HOUR: u64 = 3_600_000;

    #[test]
    fn ticks_follow_the_pattern_in_its_zone() {
        let nightly = Schedule::new("0 3 * * *", json!(1));
        assert_eq!(
            nightly.next_after(AT).unwrap(),
            AT + 7 * HOUR,
            "03:00Z next day"
        );
        let berlin = Schedule {
            tz: Some("Europe/Berlin".into()),
            ..nightly.clone()
        };
        assert_eq!(
            berlin.next_after(AT).unwrap(),
            AT + 6 * HOUR,
            "03:00 CET is 02:00Z"
        );
        let every_minute = Schedule::new("* * * * *", json!(1));
        assert_eq!(
            every_minute.next_after(AT).unwrap(),
            AT + 60_000,
            "strictly after"
        );
        assert_eq!(every_minute.next_after(AT + 1).unwrap(), AT + 60_000);
        assert_eq!(
            every_minute.next_after(AT + 59_999).unwrap(),
            AT + 60_000,
            "on the minute"
        );
    }

    #[test]
    fn bad_patterns_zones_and_names_say_what_is_wrong() {
        let bad = |cron: &str, tz: Option<&str>| {
            Schedule {
                tz: tz.map(str::to_string),
                ..Schedule::new(cron, json!(1))
            }
            .validate()
            .unwrap_err()
            .to_string()
        };
        assert!(bad("0 3 * *", None).contains("has 4 fields"));
        assert!(bad("0 25 * * *", None).contains("does not parse"));
        assert!(bad("0 3 * * *", Some("Mars/Olympus")).contains("not a time zone"));
        for cron in ["1,,2 * * * *", ",5 * * * *", "5, * * * *", "0 3 * * 1,"] {
            assert!(
                bad(cron, None).contains("has an empty item in the list"),
                "{cron}"
            );
        }
        assert!(Schedule::new("0,30 3 * * 1,5", json!(1)).validate().is_ok());
        let urgent = |priority| Schedule {
            priority: Some(priority),
            ..Schedule::new("0 3 * * *", json!(1))
        };
        assert!(urgent(9).validate().is_ok());
        assert!(urgent(10)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("a priority is 0 (low) to 9 (high)"));
        assert!(validate_name("nightly-report").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
    }
}
