//! A lane: one queue's part of the pool. Its client asks that queue for jobs and records their
//! outcomes; its current handler (and sandbox: limits, grants) runs them; its report and
//! metrics count them. The slots, the credits and the wasm runtime are the pool's, shared by
//! every lane.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use sque::Client;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::metrics::JobMetrics;
use crate::pool::progress_writes::ProgressWrites;
use crate::pool::{CurrentHandler, PoolReport};
use crate::sandbox::ProgressSink;

/// How a lane shares the host's slots (changeable on reload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneShare {
    /// Its share under `--order weighted`.
    pub weight: u32,
    /// The most of its jobs this host holds at once (asked for, waiting for a slot, or
    /// running); `None`: as many as the pool's credits.
    pub max_held: Option<usize>,
}

impl Default for LaneShare {
    /// Weight 1, as many as the pool's credits.
    fn default() -> Self {
        LaneShare {
            weight: 1,
            max_held: None,
        }
    }
}

pub struct Lane {
    pub queue: String,
    pub client: Arc<Client>,
    pub handler: Arc<CurrentHandler>,
    /// What `/metrics` shows of this queue's jobs, when it is served.
    pub metrics: Option<Arc<JobMetrics>>,
    /// Where the guests' progress reports go: Redis, under each job's lease.
    pub(super) progress: ProgressSink,
    /// Those reports on their way, which a job's outcome waits for.
    pub(super) progress_writes: Arc<ProgressWrites>,
    report: Mutex<PoolReport>,
    /// Credits this lane holds: its open requests and the jobs it holds.
    held: AtomicUsize,
    /// Bursts of outcomes with some of its jobs, on their way to Redis.
    acking: AtomicUsize,
    /// The fetcher's, told when a credit comes back while the lane has a most it may hold
    /// (`capped`): the lane may take a credit again. Not told otherwise: no job pays for it.
    fetcher: OnceLock<Arc<Notify>>,
    capped: AtomicBool,
    /// Set once the lane has left the pool: from then on, `settled` is told of every credit
    /// and outcome that comes back (not before: no job pays for a wake-up nobody waits for).
    leaving: AtomicBool,
    settled: Notify,
}

impl Lane {
    pub fn new(
        client: Arc<Client>,
        handler: Arc<CurrentHandler>,
        metrics: Option<Arc<JobMetrics>>,
    ) -> Arc<Lane> {
        let progress_writes = Arc::new(ProgressWrites::default());
        Arc::new(Lane {
            queue: client.queue().to_string(),
            progress: progress_writes.sink(client.clone()),
            progress_writes,
            client,
            handler,
            metrics,
            report: Default::default(),
            held: AtomicUsize::new(0),
            acking: AtomicUsize::new(0),
            fetcher: OnceLock::new(),
            capped: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            settled: Notify::new(),
        })
    }

    /// What this lane's slots did so far.
    pub fn report(&self) -> MutexGuard<'_, PoolReport> {
        self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn metrics(&self) -> Option<&JobMetrics> {
        self.metrics.as_deref()
    }

    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Waits, once the lane has left the pool, until it holds nothing: no request open, no
    /// job held, every outcome recorded. Its client may then leave the queue.
    pub async fn drained(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        loop {
            let settled = self.settled.notified();
            if self.held() == 0 && self.acking.load(Ordering::SeqCst) == 0 {
                return;
            }
            settled.await;
        }
    }

    /// Has `fetcher` told when a credit comes back, while `capped`.
    pub(super) fn tell_when_returned(&self, fetcher: &Arc<Notify>, capped: bool) {
        let _ = self.fetcher.set(fetcher.clone());
        self.capped.store(capped, Ordering::Relaxed);
    }

    /// Counts a burst of outcomes on their way to Redis until the guard is dropped.
    pub(super) fn acking(self: &Arc<Self>) -> Acking {
        self.acking.fetch_add(1, Ordering::SeqCst);
        Acking(self.clone())
    }

    fn settle(&self) {
        if self.leaving.load(Ordering::SeqCst) {
            self.settled.notify_waiters();
        }
    }
}

/// A burst of outcomes with some of a lane's jobs, on its way to Redis.
pub(super) struct Acking(Arc<Lane>);

impl Acking {
    pub(super) fn is_of(&self, lane: &Arc<Lane>) -> bool {
        Arc::ptr_eq(&self.0, lane)
    }
}

impl Drop for Acking {
    fn drop(&mut self) {
        self.0.acking.fetch_sub(1, Ordering::SeqCst);
        self.0.settle();
    }
}

/// A pool credit taken for a lane: it travels with the request, then the job and its outcome,
/// and comes back to the pool when dropped.
pub(super) struct Credit {
    _permit: OwnedSemaphorePermit,
    lane: Arc<Lane>,
}

impl Credit {
    pub(super) fn new(permit: OwnedSemaphorePermit, lane: Arc<Lane>) -> Credit {
        lane.held.fetch_add(1, Ordering::SeqCst);
        Credit {
            _permit: permit,
            lane,
        }
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        let lane = &self.lane;
        lane.held.fetch_sub(1, Ordering::SeqCst);
        lane.settle();
        if lane.capped.load(Ordering::Relaxed) {
            if let Some(fetcher) = lane.fetcher.get() {
                fetcher.notify_one();
            }
        }
    }
}
