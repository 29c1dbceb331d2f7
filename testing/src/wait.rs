//! Bounded waits: a test awaits events, and fails (instead of hanging) when one does not
//! come within [`PATIENCE`].

use std::future::Future;
use std::time::{Duration, Instant};

/// The most any awaited event may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits (blocking) until `check` holds; fails the test after [`PATIENCE`].
pub fn await_condition(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Awaits `fut`, failing the test (instead of hanging) if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for: {what}"),
    }
}

/// Waits until `check` holds, looking again every 10 ms; fails the test after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// As [`eventually`], for a check that also gives what it saw (`(holds, seen)`): a test that
/// times out shows the last thing seen, so that a stall met only under load says where it was.
pub async fn eventually_showing<F, Fut, T>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (bool, T)>,
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (holds, seen) = check().await;
        if holds {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for: {what}; last seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
