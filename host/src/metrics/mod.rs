//! What a host tells Prometheus (`sque-host run --metrics-addr`): its own slots' counters,
//! histograms and gauges (`jobs.rs`), and the queue's figures from Redis
//! (`queue_figures.rs`), served by `server.rs`. docs/METRICS.md lists every series.
//!
//! The slots record into [`JobMetrics`] only when the endpoint is on: recording costs a job's
//! path little (atomic adds, a lock per histogram, clock reads), but not nothing.

mod jobs;
mod queue_figures;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sque::Inspector;

pub use jobs::JobMetrics;
pub use queue_figures::QueueFigures;

/// Everything `/metrics` shows, for one queue.
pub struct Metrics {
    registry: Registry,
    jobs: Arc<JobMetrics>,
    queue: QueueFigures,
}

impl Metrics {
    /// Metrics for `queue`, with the queue's figures read through `inspector`, at most once
    /// an `interval`.
    pub fn new(queue: &str, inspector: Inspector, interval: Duration) -> Metrics {
        let mut registry = Registry::default();
        let labelled = registry.sub_registry_with_label(("queue".into(), queue.to_string().into()));
        let jobs = Arc::new(JobMetrics::register(labelled));
        let queue = QueueFigures::register(labelled, inspector, interval);
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
        self.queue.refresh().await;
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
