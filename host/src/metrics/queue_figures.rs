//! What the queue holds, read from Redis when Prometheus scrapes: jobs waiting, in flight,
//! waiting out a retry's backoff, dead, the workers alive, and the age of the oldest waiting
//! job. These figures are the queue's,
//! the same from every host that serves it; the rest of `/metrics` is this host's own.
//!
//! Monitoring must not load what it watches: the figures are read at most once an interval
//! (`--metrics-interval`, 5 s unless set), however often and by however many scrapers this
//! host is asked, and in one round trip (`Inspector::stats`, a pipeline; a second one when
//! the push of the job at the head must be looked up). Scrapes that come
//! meanwhile get the figures last read.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sque::Inspector;
use tokio::sync::Mutex;

/// The queue's figures, as last read.
pub struct QueueFigures {
    inspector: Inspector,
    /// The least time between two reads.
    interval: Duration,
    /// When the figures were last read. Held while reading, so that scrapes that come during
    /// a read wait for it rather than read again.
    last_read: Mutex<Option<Instant>>,
    waiting: Gauge,
    in_flight: Gauge,
    retrying: Gauge,
    scheduled: Gauge,
    paused: Gauge,
    dead: Gauge,
    workers: Gauge,
    oldest_waiting_age: Gauge<f64, AtomicU64>,
    read_errors: Counter,
}

impl QueueFigures {
    /// Registers the figures in `registry` (labelled with the queue).
    pub fn register(
        registry: &mut Registry,
        inspector: Inspector,
        interval: Duration,
    ) -> QueueFigures {
        let mut gauge = |name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let waiting = gauge(
            "sque_queue_waiting",
            "Jobs waiting in the queue (all hosts)",
        );
        let in_flight = gauge(
            "sque_queue_in_flight",
            "Jobs dispatched to a worker and not yet acknowledged (all hosts)",
        );
        let retrying = gauge(
            "sque_queue_retrying",
            "Jobs waiting out a retry's backoff (all hosts)",
        );
        let scheduled = gauge(
            "sque_queue_scheduled",
            "Jobs pushed with a delay or a time and not yet due (all hosts)",
        );
        let paused = gauge(
            "sque_queue_paused",
            "1 while the queue is paused (nothing is handed out), else 0",
        );
        let dead = gauge("sque_queue_dead", "Jobs in the dead list (all hosts)");
        let workers = gauge(
            "sque_queue_workers",
            "Workers whose heartbeat is current (all hosts)",
        );
        let oldest_waiting_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "sque_queue_oldest_waiting_age_seconds",
            "How long ago the job at the head of the queue (the next to go) was pushed; 0 when none waits, NaN when not known (all hosts)",
            oldest_waiting_age.clone(),
        );
        let read_errors = Counter::default();
        registry.register(
            "sque_queue_read_errors",
            "Reads of the queue's figures that failed (the figures shown are the last read)",
            read_errors.clone(),
        );
        QueueFigures {
            inspector,
            interval,
            last_read: Mutex::new(None),
            waiting,
            in_flight,
            retrying,
            scheduled,
            paused,
            dead,
            workers,
            oldest_waiting_age,
            read_errors,
        }
    }

    /// Reads the figures again if the last read is older than the interval. A failed read
    /// leaves the last figures and counts the failure; it counts as a read, so that a Redis
    /// that is away is not asked at every scrape.
    pub async fn refresh(&self) {
        let mut last_read = self.last_read.lock().await;
        if last_read.is_some_and(|at| at.elapsed() < self.interval) {
            return;
        }
        match self.inspector.stats().await {
            Ok(stats) => {
                let set = |gauge: &Gauge, n: u64| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
                set(&self.waiting, stats.waiting);
                set(&self.in_flight, stats.in_flight);
                set(&self.retrying, stats.delayed);
                set(&self.scheduled, stats.scheduled);
                set(&self.paused, u64::from(stats.paused));
                set(&self.dead, stats.dead);
                set(&self.workers, stats.workers);
                // NaN when jobs wait but when the head was pushed is not known (not 0, which
                // says that none waits).
                self.oldest_waiting_age
                    .set(match (stats.oldest_waiting_age_ms, stats.waiting) {
                        (Some(ms), _) => ms as f64 / 1000.0,
                        (None, 0) => 0.0,
                        (None, _) => f64::NAN,
                    });
            }
            Err(e) => {
                self.read_errors.inc();
                tracing::warn!(queue = %self.inspector.queue(), "reading the queue's figures for /metrics failed: {e}; showing the last read");
            }
        }
        *last_read = Some(Instant::now());
    }
}
