//! What `stats` and the dashboard read of the queues: each queue's counts, with rates from
//! two readings, its jobs in flight and its live workers. One owner for both, so that the
//! terminal and the web page never tell two stories about the same queue.

use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use sque::{Inspector, QueueStats, RunningJob, WorkerInfo};

/// Jobs in flight read per queue: those whose lease runs out soonest.
pub const RUNNING_SHOWN: usize = 10;
/// Workers read per queue: those whose heartbeat runs out soonest.
pub const WORKERS_SHOWN: usize = 20;

/// One queue, as read.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Jobs per second over the interval.
    pub pushed_per_sec: f64,
    pub completed_per_sec: f64,
    pub failed_per_sec: f64,
    /// Jobs in flight (at most [`RUNNING_SHOWN`]), with their handlers' progress reports.
    pub running: Vec<RunningJob>,
    /// Live workers (at most [`WORKERS_SHOWN`]): their machine, process and jobs held. Named
    /// `live_workers` in JSON: `workers` is their count, from [`QueueStats`].
    #[serde(rename = "live_workers")]
    pub workers: Vec<WorkerInfo>,
}

/// The queues read, each with its inspector.
#[derive(Default)]
pub struct Queues {
    inspectors: Vec<Inspector>,
}

impl Queues {
    /// Opens `queue`, or every queue under the prefix when it is `None` (those made since the
    /// last call too).
    pub async fn update(
        &mut self,
        queue: Option<&str>,
        opts: &sque::Options,
    ) -> anyhow::Result<()> {
        let url = opts.redis_url_redacted();
        let names = match queue {
            Some(q) => {
                sque::validate_queue_name(q)?;
                vec![q.to_string()]
            }
            None => sque::queue_names(opts)
                .await
                .with_context(|| format!("listing queues at Redis {url}"))?,
        };
        for name in names {
            if self.inspectors.iter().any(|i| i.queue() == name) {
                continue;
            }
            self.inspectors.push(
                Inspector::new(&name, opts.clone())
                    .await
                    .with_context(|| format!("reading queue {name:?} at Redis {url}"))?,
            );
        }
        Ok(())
    }

    /// The inspector of `queue`, if it is read.
    pub fn inspector(&self, queue: &str) -> Option<&Inspector> {
        self.inspectors.iter().find(|i| i.queue() == queue)
    }

    /// Every queue's counts.
    pub async fn read(&self) -> anyhow::Result<Vec<QueueStats>> {
        let mut stats = Vec::with_capacity(self.inspectors.len());
        for inspector in &self.inspectors {
            stats.push(inspector.stats().await?);
        }
        Ok(stats)
    }

    /// Fills in each row's jobs in flight and workers.
    pub async fn read_running(&self, rows: &mut [Row]) -> anyhow::Result<()> {
        for row in rows.iter_mut() {
            if let Some(inspector) = self.inspector(&row.stats.queue) {
                (row.running, row.workers) =
                    inspector.in_flight(RUNNING_SHOWN, WORKERS_SHOWN).await?;
            }
        }
        Ok(())
    }
}

/// Rows of `now` (read just now), with rates since `before` (none without it). A queue new
/// since `before` has no rates yet.
pub fn rates(now: Vec<QueueStats>, before: Option<&(Vec<QueueStats>, Instant)>) -> Vec<Row> {
    let secs = before.map_or(0.0, |(_, at)| at.elapsed().as_secs_f64());
    now.into_iter()
        .map(|stats| {
            let before = before.and_then(|(b, _)| b.iter().find(|b| b.queue == stats.queue));
            let rate = |value: fn(&QueueStats) -> u64| match before {
                Some(b) if secs > 0.0 => value(&stats).saturating_sub(value(b)) as f64 / secs,
                _ => 0.0,
            };
            Row {
                pushed_per_sec: rate(|s| s.pushed),
                completed_per_sec: rate(|s| s.completed),
                failed_per_sec: rate(|s| s.retried + s.dead_lettered),
                running: Vec::new(),
                workers: Vec::new(),
                stats,
            }
        })
        .collect()
}
