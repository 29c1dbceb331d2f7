//! A job's progress reports (`sque:handler/progress`), as the host records them.
//!
//! A guest may report in a tight loop; the host must not let that flood its log (or, later,
//! Redis). So a report is recorded at once only if it is the job's first, the first to reach
//! 100%, or comes at least `RECORD_EVERY` after the last recorded one; a report in between is kept
//! as the latest and recorded when the job ends, if nothing newer was recorded. The note is
//! cut to `MAX_NOTE_BYTES` and the percentage capped at 100, so that what is recorded is
//! bounded whatever the guest sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sandbox::outcome::cut;
use crate::sandbox::output::JobLog;

/// The longest note kept with a report, in bytes.
pub(crate) const MAX_NOTE_BYTES: usize = 256;

/// The least time between two recorded reports of one job (but see 100%).
const RECORD_EVERY: Duration = Duration::from_secs(1);

/// Where recorded reports go besides the job's log, with the lease token of the job that
/// made them: the pool keeps them in Redis (`Client::progress_of`), where `sque-host job
/// show` reads them. Called on the guest's thread, so it must only hand the report on.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<SendReport>);

/// What a sink does with a report: given the job's lease token and the report.
pub type SendReport = dyn Fn(&str, &Report) + Send + Sync;

/// A job's way to its sink: the sink and the job's lease token.
#[derive(Clone, Debug)]
pub struct JobProgress {
    pub sink: ProgressSink,
    pub token: String,
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// One report, bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub percent: u8,
    pub note: Option<String>,
}

/// One job's reports: the latest, and when one was last recorded.
#[derive(Default)]
pub(crate) struct Progress {
    last_recorded: Option<Instant>,
    /// The latest report not yet recorded.
    pending: Option<Report>,
    /// Whether a report of 100% was recorded: only the first skips the wait (a guest that
    /// reports 100% in a loop would otherwise be recorded, and written to Redis, every time).
    full: bool,
}

impl Progress {
    /// Takes a report from the guest; returns it if it is to be recorded now.
    fn take(&mut self, percent: u8, note: Option<&str>, now: Instant) -> Option<Report> {
        let report = Report {
            percent: percent.min(100),
            note: note.map(|n| cut(n, MAX_NOTE_BYTES).into_owned()),
        };
        let due = match self.last_recorded {
            None => true,
            Some(at) => now.duration_since(at) >= RECORD_EVERY,
        };
        let first_full = report.percent == 100 && !self.full;
        if due || first_full {
            self.full |= report.percent == 100;
            self.last_recorded = Some(now);
            self.pending = None;
            Some(report)
        } else {
            self.pending = Some(report);
            None
        }
    }

    /// Records a report from the guest in the job's log (lines from the stream `progress`,
    /// within the job's log budgets) and its sink, or keeps it for later.
    pub fn report(
        &mut self,
        percent: u8,
        note: Option<&str>,
        log: &JobLog,
        sink: Option<&JobProgress>,
    ) {
        if let Some(report) = self.take(percent, note, Instant::now()) {
            record(&report, log, sink);
        }
    }

    /// Records the latest report the rate kept back, once the job is over; and starts anew.
    pub fn finish(&mut self, log: &JobLog, sink: Option<&JobProgress>) {
        if let Some(report) = self.pending.take() {
            record(&report, log, sink);
        }
        self.last_recorded = None;
        self.full = false;
    }
}

fn record(report: &Report, log: &JobLog, sink: Option<&JobProgress>) {
    if let Some(to) = sink {
        (to.sink.0)(&to.token, report);
    }
    let text = match &report.note {
        Some(note) => format!("progress {}%: {note}", report.percent),
        None => format!("progress {}%", report.percent),
    };
    log.line("progress", tracing::Level::INFO, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_report_is_recorded_and_those_soon_after_are_kept_back() {
        let mut p = Progress::default();
        let t0 = Instant::now();
        assert_eq!(p.take(10, None, t0).map(|r| r.percent), Some(10));
        assert_eq!(p.take(20, None, t0 + Duration::from_millis(10)), None);
        assert_eq!(p.take(30, Some("x"), t0 + Duration::from_millis(20)), None);
        // Only the latest is kept for the end.
        assert_eq!(
            p.pending,
            Some(Report {
                percent: 30,
                note: Some("x".into())
            })
        );
        assert!(p.take(40, None, t0 + RECORD_EVERY).is_some());
        assert_eq!(p.pending, None);
    }

    #[test]
    fn a_hundred_percent_is_recorded_at_once_and_more_is_capped() {
        let mut p = Progress::default();
        let t0 = Instant::now();
        p.take(10, None, t0);
        assert_eq!(p.take(250, None, t0).map(|r| r.percent), Some(100));
        // Only the first: 100% again and again waits its turn like any report.
        for _ in 0..1000 {
            assert_eq!(p.take(100, None, t0), None);
        }
        assert_eq!(
            p.take(100, None, t0 + RECORD_EVERY).map(|r| r.percent),
            Some(100)
        );
    }

    #[test]
    fn a_long_note_is_cut() {
        let mut p = Progress::default();
        let long = "é".repeat(MAX_NOTE_BYTES);
        let report = p.take(1, Some(&long), Instant::now()).unwrap();
        let note = report.note.unwrap();
        assert!(
            note.len() <= MAX_NOTE_BYTES && note.starts_with('é'),
            "{note}"
        );
    }
}
