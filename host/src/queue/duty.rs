//! A background duty (dispatcher, reaper, inbox reader, renewer): a tokio task with a
//! shutdown signal. Dropping the [`Duty`] signals it too, so a dropped manager or client
//! leaves no task behind.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) struct Duty {
    name: &'static str,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// The duty's side of the shutdown signal.
#[derive(Clone)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown is asked for (or the [`Duty`] is dropped).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Sleeps for `d`; returns false when shutdown came first.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = self.wait() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

impl Duty {
    pub fn start<F, Fut>(name: &'static str, run: F) -> Duty
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(run(Shutdown(rx)));
        Duty {
            name,
            stop,
            task: Some(task),
        }
    }

    /// Signals the duty and waits for it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let Some(task) = self.task.take() else { return };
        if let Err(e) = task.await {
            if e.is_panic() {
                tracing::error!(duty = self.name, "background duty panicked");
            }
        }
    }
}

impl Drop for Duty {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Exponential backoff for reconnect loops: 50 ms doubling to 2 s.
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub fn new() -> Backoff {
        Backoff(Duration::from_millis(50))
    }

    pub fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
        d
    }

    pub fn reset(&mut self) {
        *self = Backoff::new();
    }
}
