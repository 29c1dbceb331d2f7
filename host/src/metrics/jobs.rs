//! What this host's slots did, counted as it happens: jobs started, completed and failed (by
//! the code of the host's table of endings), what became of the failures, how long jobs ran,
//! how long instances took to make and Redis to record outcomes, and how busy the slots are.
//!
//! Every series carries the `queue` label (from the registry it is registered in) and never
//! a job id: one series per job would grow without end. Each metric is resolved once, when
//! the host starts, so that a job pays for an atomic add, not for a label lookup.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::sandbox::Ending;

/// A failure's label: the code of how it ended (`trap`, `timeout`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Bucket bounds for durations, in seconds: from 50 µs (a Rust guest's instance) to 5 minutes,
/// 1, 2.5, 5 in each decade, so that a bound reads as a round number.
const DURATION_BUCKETS: [f64; 22] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 300.0,
];

/// A histogram of durations, in [`DURATION_BUCKETS`].
fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Bucket bounds a job's wait in the queue adds to [`DURATION_BUCKETS`], in seconds: a backlog
/// can hold a job for minutes or hours.
const LONG_WAIT_BUCKETS: [f64; 4] = [600.0, 1800.0, 3600.0, 14400.0];

/// A histogram of waits, in [`DURATION_BUCKETS`] and then [`LONG_WAIT_BUCKETS`].
fn wait_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.into_iter().chain(LONG_WAIT_BUCKETS))
}

/// Counters, histograms and gauges of one host's slots.
pub struct JobMetrics {
    pub started: Counter,
    pub completed: Counter,
    /// By ending, in the order of [`Ending::ALL`].
    failed: Vec<Counter>,
    pub retried: Counter,
    pub dead_lettered: Counter,
    /// Jobs given back to the head of the queue unstarted, at shutdown.
    pub released: Counter,
    /// Outcomes Redis refused because the job's lease had run out and passed on.
    pub stale_acks: Counter,
    /// Jobs cancelled while they ran here, and stopped.
    pub cancelled: Counter,
    /// From a job's push to a slot taking it (first attempts whose push time the queue kept).
    pub wait_time: Histogram,
    /// From a slot taking the job to its outcome.
    pub run_time: Histogram,
    /// The round trip that records an outcome in Redis.
    pub ack_time: Histogram,
    /// Making a fresh instance (recorded by the sandbox: `Sandbox::time_instantiation`).
    pub instantiation: Histogram,
    pub slots: Gauge,
    pub busy_slots: Gauge,
    /// Jobs asked for ahead of free slots.
    pub prefetch: Gauge,
    /// Jobs this host has taken from the queue and not yet acknowledged.
    pub held: Gauge,
}

impl JobMetrics {
    /// Registers every metric in `registry` (a registry labelled with the queue).
    pub fn register(registry: &mut Registry) -> JobMetrics {
        let mut counter = |name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let started = counter("sque_jobs_started", "Jobs a slot of this host started");
        let completed = counter("sque_jobs_completed", "Jobs that completed here");
        let retried = counter(
            "sque_jobs_retried",
            "Failed attempts given another attempt, after backoff",
        );
        let dead_lettered = counter(
            "sque_jobs_dead_lettered",
            "Failed jobs moved to the dead list: out of attempts, or not retried",
        );
        let released = counter(
            "sque_jobs_released",
            "Jobs given back to the head of the queue unstarted, at shutdown",
        );
        let stale_acks = counter(
            "sque_acks_refused_stale",
            "Outcomes refused because the job's lease had run out and passed to another worker",
        );
        let cancelled = counter(
            "sque_jobs_cancelled",
            "Jobs cancelled while they ran here, and stopped",
        );
        let failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "sque_jobs_failed",
            "Attempts that did not complete, by how they ended (docs/HOST.md, \"How a job ends\")",
            failures.clone(),
        );
        let failed = Ending::ALL
            .iter()
            .map(|ending| {
                failures.get_or_create_owned(&ReasonLabel {
                    reason: ending.code(),
                })
            })
            .collect();
        let mut histogram = |name: &str, help: &str, histogram: Histogram| {
            registry.register_with_unit(name, help, Unit::Seconds, histogram.clone());
            histogram
        };
        let wait_time = histogram(
            "sque_job_wait",
            "Time from a job's push to a slot taking it: first attempts whose push time the queue kept",
            wait_histogram(),
        );
        let run_time = histogram(
            "sque_job_run",
            "Time from a slot taking a job to its outcome",
            duration_histogram(),
        );
        let ack_time = histogram(
            "sque_ack",
            "Round trip to Redis that records a job's outcome",
            duration_histogram(),
        );
        let instantiation = histogram(
            "sque_instance_creation",
            "Time to make a fresh instance of the handler for a job",
            duration_histogram(),
        );
        let mut gauge = |name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        JobMetrics {
            started,
            completed,
            failed,
            retried,
            dead_lettered,
            released,
            stale_acks,
            cancelled,
            wait_time,
            run_time,
            ack_time,
            instantiation,
            slots: gauge("sque_slots", "Worker slots of this host"),
            busy_slots: gauge("sque_slots_busy", "Slots running a job now"),
            prefetch: gauge(
                "sque_prefetch_window",
                "Jobs this host asks for ahead of free slots",
            ),
            held: gauge(
                "sque_jobs_held",
                "Jobs this host has taken from the queue and not yet acknowledged",
            ),
        }
    }

    /// The counter of attempts that ended so.
    pub fn failed(&self, ending: Ending) -> &Counter {
        let index = Ending::ALL
            .iter()
            .position(|e| *e == ending)
            .expect("every ending is in Ending::ALL");
        &self.failed[index]
    }
}
