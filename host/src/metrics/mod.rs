//! What a host tells Prometheus (`sque-host run --metrics-addr`): for each queue it serves,
//! its own slots' counters, histograms and gauges (`jobs.rs`) and the queue's figures from
//! Redis (`queue_figures.rs`), every series labelled with the queue; served by `server.rs`.
//! docs/METRICS.md lists every series.
//!
//! The slots record into [`JobMetrics`] only when the endpoint is on: recording costs a job's
//! path little (atomic adds, a lock per histogram, clock reads), but not nothing.

mod jobs;
mod queue_figures;
pub mod server;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::registry::Registry;
use sque::Inspector;

pub use jobs::JobMetrics;
pub use queue_figures::QueueFigures;

/// Everything `/metrics` shows: the metrics of each queue the host serves (queues come and
/// go on reload).
#[derive(Default)]
pub struct Metrics {
    queues: RwLock<Vec<Arc<QueueMetrics>>>,
}

impl Metrics {
    /// Shows `queue`'s metrics from now on (in place of any it had).
    pub fn add(&self, queue: Arc<QueueMetrics>) {
        let mut queues = self.queues.write().unwrap_or_else(|p| p.into_inner());
        queues.retain(|q| q.name != queue.name);
        queues.push(queue);
    }

    /// Stops showing `queue`'s metrics (not those of a queue of the same name added since).
    pub fn remove(&self, queue: &Arc<QueueMetrics>) {
        let mut queues = self.queues.write().unwrap_or_else(|p| p.into_inner());
        queues.retain(|q| !Arc::ptr_eq(q, queue));
    }

    /// The text of a scrape: each queue's, a series' samples of every queue under one header.
    pub async fn scrape(&self) -> String {
        let queues = self
            .queues
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut texts = Vec::with_capacity(queues.len());
        for queue in queues {
            texts.push(queue.scrape().await);
        }
        merge_families(&texts)
    }
}

/// Texts of the Prometheus format, merged so that each family (from its `# HELP` line to the
/// next) appears once with the samples of all: the format allows a family's header only once.
fn merge_families(texts: &[String]) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut families: std::collections::HashMap<&str, (Vec<&str>, Vec<&str>)> = Default::default();
    let mut eof = false;
    for text in texts {
        let mut current: Option<&str> = None;
        for line in text.lines() {
            if line == "# EOF" {
                eof = true;
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or(rest);
                current = Some(name);
                if !families.contains_key(name) {
                    order.push(name);
                }
            }
            let Some(name) = current else { continue };
            let (header, samples) = families.entry(name).or_default();
            if line.starts_with('#') {
                if !header.contains(&line) {
                    header.push(line);
                }
            } else {
                samples.push(line);
            }
        }
    }
    let mut out = String::new();
    for name in order {
        let (header, samples) = &families[name];
        for line in header.iter().chain(samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    if eof {
        out.push_str("# EOF\n");
    }
    out
}

/// What `/metrics` shows of one queue.
pub struct QueueMetrics {
    name: String,
    registry: Registry,
    jobs: Arc<JobMetrics>,
    queue: QueueFigures,
}

impl QueueMetrics {
    /// Metrics for `queue`, with the queue's figures read through `inspector`, at most once
    /// an `interval`.
    pub fn new(queue: &str, inspector: Inspector, interval: Duration) -> QueueMetrics {
        let name = queue.to_string();
        let mut registry = Registry::default();
        let labelled = registry.sub_registry_with_label(("queue".into(), queue.to_string().into()));
        let jobs = Arc::new(JobMetrics::register(labelled));
        let queue = QueueFigures::register(labelled, inspector, interval);
        QueueMetrics {
            name,
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

#[cfg(test)]
mod tests {
    use super::merge_families;

    #[test]
    fn each_family_appears_once_with_every_queues_samples() {
        let a = "# HELP x Jobs.\n# TYPE x counter\nx_total{queue=\"a\"} 1\n# HELP y Slots.\n# TYPE y gauge\ny{queue=\"a\"} 4\n# EOF\n";
        let b = a.replace("\"a\"", "\"b\"").replace(" 1\n", " 2\n");
        assert_eq!(
            merge_families(&[a.to_string(), b]),
            "# HELP x Jobs.\n# TYPE x counter\nx_total{queue=\"a\"} 1\nx_total{queue=\"b\"} 2\n\
             # HELP y Slots.\n# TYPE y gauge\ny{queue=\"a\"} 4\ny{queue=\"b\"} 4\n# EOF\n"
        );
    }
}
