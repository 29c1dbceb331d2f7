//! What a host tells Prometheus (`sque-host run --metrics-addr`): its own slots' counters,
//! histograms and gauges (`jobs.rs`), and the queue's figures from Redis
//! (`queue_figures.rs`), served by `server.rs`. docs/METRICS.md lists every series.
//!
//! The slots record into [`JobMetrics`] whether or not the endpoint is on: an atomic add per
//! event, so that turning metrics on changes nothing on a job's path.

mod jobs;
mod queue_figures;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sque::Inspector;

pub use jobs::{duration_histogram, JobMetrics};
pub use queue_figures::QueueFigures;

/// Everything `/metrics` shows, for one queue.
pub struct Metrics {
    registry: Registry,
    jobs: Arc<JobMetrics>,
    /// `None` until the host has joined the queue (and without an endpoint: nobody reads it).
    queue: Option<QueueFigures>,
}

impl Metrics {
    /// Metrics for `queue`, with the sandbox's histogram of instance creation, and the
    /// queue's figures read through an inspector, at most once an interval, if one is given.
    pub fn new(
        queue: &str,
        instantiation: Histogram,
        figures: Option<(Inspector, Duration)>,
    ) -> Metrics {
        let mut registry = Registry::default();
        let labelled = registry.sub_registry_with_label(("queue".into(), queue.to_string().into()));
        let jobs = Arc::new(JobMetrics::register(labelled, instantiation));
        let queue = figures
            .map(|(inspector, interval)| QueueFigures::register(labelled, inspector, interval));
        Metrics {
            registry,
            jobs,
            queue,
        }
    }

    /// What the slots record into.
    pub fn jobs(&self) -> Arc<JobMetrics> {
        self.jobs.clone()
    }

    /// The text of a scrape, the queue's figures read again if they are old.
    pub async fn scrape(&self) -> String {
        if let Some(queue) = &self.queue {
            queue.refresh().await;
        }
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
