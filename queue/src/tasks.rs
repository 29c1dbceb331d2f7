//! The one shutdown mechanism of the library's background work: every task a role spawns
//! (its duties, and the short tasks that give a job back or withdraw a request) runs in the
//! role's [`Tasks`], a tokio-util `TaskTracker` with a `CancellationToken`. Shutting down
//! cancels the token and waits for every task; dropping the role's [`Stop`] cancels it too,
//! so a dropped manager or client leaves no task behind.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

/// The background tasks of one role.
#[derive(Clone, Default)]
pub(crate) struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// Held by the role's owner: dropping it stops the tasks.
pub(crate) struct Stop(#[allow(dead_code)] DropGuard);

impl Tasks {
    pub fn new() -> (Tasks, Stop) {
        let tasks = Tasks::default();
        let stop = Stop(tasks.token.clone().drop_guard());
        (tasks, stop)
    }

    /// Spawns a task given the cancellation token; a panic in it is logged, not lost.
    pub fn spawn<F, Fut>(&self, name: &'static str, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = AssertUnwindSafe(run(self.token.clone())).catch_unwind();
        self.tracker.spawn(async move {
            if fut.await.is_err() {
                tracing::error!(task = name, "a background task panicked (a bug in sque)");
            }
        });
    }

    /// Spawns a short task that must not be cut off by cancellation (giving a job back,
    /// withdrawing a request): shutdown waits for it. Outside a tokio runtime (a drop at
    /// exit) it is skipped; what it would have done happens anyway when the lease or the
    /// heartbeat runs out.
    pub fn spawn_errand<Fut>(&self, name: &'static str, errand: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.spawn(name, |_| errand);
        }
    }

    /// Cancels every task and waits until all have ended.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Sleeps for `d`; false when `token` was cancelled first.
pub(crate) async fn sleep_unless(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn shutdown_waits_for_duties_and_errands() {
        let (tasks, _stop) = Tasks::new();
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        tasks.spawn("duty", |token| async move {
            token.cancelled().await;
            flag.store(true, Ordering::SeqCst);
        });
        let errand_done = Arc::new(AtomicBool::new(false));
        let flag = errand_done.clone();
        tasks.spawn_errand("errand", async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tokio::time::timeout(Duration::from_secs(10), tasks.shutdown())
            .await
            .expect("shutdown ended");
        assert!(ended.load(Ordering::SeqCst) && errand_done.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn dropping_the_stop_cancels_the_tasks() {
        let (tasks, stop) = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tasks.spawn("duty", |token| async move {
            let slept = sleep_unless(&token, Duration::from_secs(3600)).await;
            let _ = tx.send(slept);
        });
        drop(stop);
        let slept = tokio::time::timeout(Duration::from_secs(10), rx).await;
        assert!(
            !slept.expect("the task ended").unwrap(),
            "cancelled, not slept out"
        );
    }
}
