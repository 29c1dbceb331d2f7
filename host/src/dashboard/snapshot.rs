//! The one reader of Redis that every open page shares: at most once a second, and only
//! while a page listens, it reads every queue (counts, rates, jobs in flight, workers) into
//! a snapshot that each page's Server-Sent Events stream sends on. Ten open tabs cost Redis
//! what one does; none cost nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::readings::{rates, Queues, Row};

/// The least time between two reads of Redis, however many pages listen.
pub const EVERY: Duration = Duration::from_secs(1);
/// Rate points kept per queue for the live chart: two minutes at one a second.
const HISTORY: usize = 120;

/// What the pages are sent.
#[derive(Serialize)]
pub struct Snapshot<'a> {
    /// Which read this is (1 for the first): pages that got the same number got the same
    /// read.
    pub seq: u64,
    /// When it was read, in ms since the epoch (this machine's clock).
    pub at: u64,
    /// The queues as last read (kept between reads: a failed read shows the one before).
    pub queues: &'a [QueueView],
    /// Why the last read failed, if it did (the queues are then the read before).
    pub error: Option<String>,
}

/// One queue as a page shows it.
#[derive(Serialize)]
pub struct QueueView {
    #[serde(flatten)]
    pub row: Row,
    /// Pushed, completed and failed per second, oldest first, one point a read.
    pub history: Vec<[f64; 3]>,
}

/// The snapshots, and the way to ask for one.
pub struct Snapshots {
    latest: watch::Sender<Arc<String>>,
    wanted: Notify,
    /// Cancelled at shutdown: the pages' streams end with it.
    pub stop: CancellationToken,
}

impl Snapshots {
    /// A page's subscription: the latest snapshot (JSON; empty before the first read), then
    /// each new one. Asks for a read if none is fresh.
    pub fn subscribe(&self) -> watch::Receiver<Arc<String>> {
        let rx = self.latest.subscribe();
        self.wanted.notify_one();
        rx
    }
}

/// The reader, running.
pub struct Reader {
    pub snapshots: Arc<Snapshots>,
    task: JoinHandle<()>,
}

impl Reader {
    /// Reads every queue under the prefix of `opts` while a page listens, until `stop`.
    pub fn start(opts: sque::Options, stop: CancellationToken) -> Reader {
        let snapshots = Arc::new(Snapshots {
            latest: watch::Sender::new(Arc::new(String::new())),
            wanted: Notify::new(),
            stop: stop.clone(),
        });
        let task = tokio::spawn(read_while_watched(opts, snapshots.clone(), stop));
        Reader { snapshots, task }
    }

    /// Waits for the reader to end (after its `stop`). Pages' streams end with it.
    pub async fn shutdown(self) {
        let _ = self.task.await;
    }
}

async fn read_while_watched(
    opts: sque::Options,
    snapshots: Arc<Snapshots>,
    stop: CancellationToken,
) {
    let mut queues = Queues::default();
    let mut before: Option<(Vec<sque::QueueStats>, Instant)> = None;
    let mut history: HashMap<String, VecDeque<[f64; 3]>> = HashMap::new();
    let mut last_read: Option<Instant> = None;
    let mut seq = 0u64;
    let mut shown: Vec<QueueView> = Vec::new();
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
            _ = snapshots.wanted.notified() => {}
        }
        if snapshots.latest.receiver_count() == 0 {
            // Nobody looks: read nothing, and start the rates afresh when somebody does.
            before = None;
            continue;
        }
        // A tick comes EVERY after the last, give or take a wake-up's jitter: only a wake-up
        // well before that (a new page) is one read too many.
        if last_read.is_some_and(|at| at.elapsed() < EVERY - EVERY / 10) {
            continue;
        }
        last_read = Some(Instant::now());
        let read = async {
            queues.update(None, &opts).await?;
            let now = (queues.read().await?, Instant::now());
            let mut rows = rates(now.0.clone(), before.as_ref());
            queues.read_running(&mut rows).await?;
            anyhow::Ok((now, rows))
        };
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            read = read => read,
        };
        seq += 1;
        let error = match read {
            Ok((now, rows)) => {
                let first = before.is_none();
                before = Some(now);
                history.retain(|name, _| rows.iter().any(|r| &r.stats.queue == name));
                shown = rows
                    .into_iter()
                    .map(|row| {
                        let points = history.entry(row.stats.queue.clone()).or_default();
                        if !first {
                            if points.len() == HISTORY {
                                points.pop_front();
                            }
                            points.push_back([
                                row.pushed_per_sec,
                                row.completed_per_sec,
                                row.failed_per_sec,
                            ]);
                        }
                        QueueView {
                            history: points.iter().copied().collect(),
                            row,
                        }
                    })
                    .collect();
                None
            }
            Err(e) => {
                tracing::warn!(
                    "the dashboard could not read Redis: {}",
                    crate::cli::common::one_line(&e)
                );
                Some(format!(
                    "{}; trying again",
                    crate::cli::common::one_line(&e)
                ))
            }
        };
        let snapshot = Snapshot {
            seq,
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            queues: &shown,
            error,
        };
        let json = serde_json::to_string(&snapshot).expect("a snapshot always serializes");
        snapshots.latest.send_replace(Arc::new(json));
    }
}
