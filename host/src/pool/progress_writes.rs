//! A lane's progress reports on their way to Redis, kept in order with the job's outcome.
//!
//! The sandbox hands a report over on the guest's thread, which must not wait for Redis, so
//! each write is a task of the main runtime. Left to themselves, those tasks could reach Redis
//! after the job's completion, when its lease is gone and the report is refused: the last
//! report of a short job would be lost. So each job's writes are chained (a write waits for
//! the one before it), and the acknowledger waits for a job's last write before recording its
//! outcome. Only jobs that reported are tracked; the others pay one atomic read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sque::Client;
use tokio::task::JoinHandle;

use crate::sandbox::ProgressSink;

/// Each job's last write on its way, by lease token.
#[derive(Default)]
pub(super) struct ProgressWrites {
    last: Mutex<HashMap<String, JoinHandle<()>>>,
    /// How many jobs have a write tracked.
    tracked: AtomicUsize,
}

impl ProgressWrites {
    /// A sink that writes each report the sandbox records (at most one a second a job, and
    /// the last) to Redis, after the job's earlier ones.
    pub fn sink(self: &Arc<Self>, client: Arc<Client>) -> ProgressSink {
        let runtime = tokio::runtime::Handle::current();
        let writes = self.clone();
        ProgressSink(Arc::new(move |token, report| {
            let (client, key) = (client.clone(), token.to_string());
            let (percent, note) = (report.percent, report.note.clone());
            let mut last = lock(&writes.last);
            let before = last.remove(token);
            if before.is_none() {
                writes.tracked.fetch_add(1, Ordering::SeqCst);
            }
            let write = runtime.spawn(async move {
                if let Some(before) = before {
                    let _ = before.await;
                }
                if let Err(e) = client.progress_of(&key, percent, note.as_deref()).await {
                    tracing::debug!(token = %key, "keeping a progress report failed: {e}");
                }
            });
            last.insert(token.to_string(), write);
        }))
    }

    /// Waits until the reports of the job under `token` are written (or have failed).
    pub async fn written(&self, token: &str) {
        if self.tracked.load(Ordering::SeqCst) == 0 {
            return;
        }
        let write = lock(&self.last).remove(token);
        if let Some(write) = write {
            self.tracked.fetch_sub(1, Ordering::SeqCst);
            let _ = write.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
