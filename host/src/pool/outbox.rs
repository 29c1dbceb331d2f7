//! The slots' outcomes on their way to the main runtime, sent on in bursts.
//!
//! Every message to the main runtime wakes its thread when it sleeps: an eventfd write on
//! the wasm thread and a context switch on the main one, about a microsecond each. Sent one
//! by one at 90,000 jobs/s, that was 6% of the host's CPU, on the thread that bounds the
//! rate. So an outcome waits here until one of these comes first:
//!
//! - [`FLUSH_AT`] outcomes are waiting: the slot that adds the last one sends the burst;
//! - [`FLUSH_AFTER`] has passed since the last burst: the slot sends at once (a slow job's
//!   outcome never waits for others);
//! - the wasm runtime has no other task ready: the forwarder, which waits for that with
//!   `yield_now`, sends whatever is there. On an idle host that is at once;
//! - the sweeper, a thread of its own, finds it has waited [`FLUSH_AFTER`] (it looks every
//!   [`SWEEP_EVERY`]). That is for a runtime kept busy by guests that compute: it polls the
//!   forwarder only at its maintenance ticks, which are then up to 61 time slices apart.
//!
//! The bound matters: a credit comes back with its outcome, and the fetcher asks for the
//! next job only then. Waiting only for the runtime to go idle held outcomes, and so the
//! requests, for as long as the slots had jobs in hand, and the slots then ran dry.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// The most outcomes that wait for a burst.
pub const FLUSH_AT: usize = 64;

/// The longest an outcome waits for others while slots keep finishing jobs.
pub const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// How often the sweeper looks.
pub const SWEEP_EVERY: Duration = Duration::from_millis(5);

/// Gathers items from many tasks of one runtime and sends them on in bursts.
pub struct Outbox<T> {
    pending: Mutex<Pending<T>>,
    /// Told when the first item of a burst arrives; the forwarder waits on it.
    arrived: Notify,
    out: mpsc::UnboundedSender<Vec<T>>,
    flush_after: Duration,
}

struct Pending<T> {
    items: Vec<T>,
    last_sent: Instant,
}

impl<T: Send + 'static> Outbox<T> {
    /// An outbox sending its bursts to `out`. The channel closes once the outbox and its
    /// forwarder are gone.
    pub fn new(out: mpsc::UnboundedSender<Vec<T>>) -> Arc<Outbox<T>> {
        Outbox::with_flush_after(out, FLUSH_AFTER)
    }

    fn with_flush_after(
        out: mpsc::UnboundedSender<Vec<T>>,
        flush_after: Duration,
    ) -> Arc<Outbox<T>> {
        Arc::new(Outbox {
            pending: Mutex::new(Pending {
                items: Vec::with_capacity(FLUSH_AT),
                last_sent: Instant::now(),
            }),
            arrived: Notify::new(),
            out,
            flush_after,
        })
    }

    /// Adds one item, and sends the burst if it is full or due.
    pub fn put(&self, item: T) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.items.push(item);
        if pending.items.len() >= FLUSH_AT || pending.last_sent.elapsed() >= self.flush_after {
            self.send(pending);
        } else if pending.items.len() == 1 {
            self.arrived.notify_one();
        }
    }

    /// Sends whatever waits.
    pub fn flush(&self) {
        self.flush_when(|_| true);
    }

    /// Sends whatever waits if there is any and `due` says so.
    fn flush_when(&self, due: impl FnOnce(&Pending<T>) -> bool) {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.items.is_empty() && due(&pending) {
            self.send(pending);
        }
    }

    /// Sends what waits as one burst, letting go of the lock before the send.
    fn send(&self, mut pending: MutexGuard<'_, Pending<T>>) {
        pending.last_sent = Instant::now();
        let burst = std::mem::replace(&mut pending.items, Vec::with_capacity(FLUSH_AT));
        drop(pending);
        let _ = self.out.send(burst);
    }

    /// Starts the sweeper: every [`SWEEP_EVERY`], until `stop` is cancelled, it sends what
    /// has waited since the last burst for the outbox's bound. It holds the outbox until then
    /// (the outbox's channel closes only once the sweeper has let go of it too).
    pub fn start_sweeper(self: &Arc<Self>, stop: CancellationToken) {
        let outbox = self.clone();
        std::thread::Builder::new()
            .name("sque-outbox".into())
            .spawn(move || {
                while !stop.is_cancelled() {
                    std::thread::sleep(SWEEP_EVERY);
                    outbox.flush_when(|p| p.last_sent.elapsed() >= outbox.flush_after);
                }
            })
            .expect("spawn the outbox's sweeper thread");
    }

    /// Sends what waits once the runtime it runs on has no other task ready (`yield_now`
    /// puts it back only then, or at the runtime's next maintenance tick). Runs until `stop`
    /// is cancelled; flush once more after it ends.
    pub async fn forward(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.arrived.notified() => {}
            }
            tokio::task::yield_now().await;
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_burst_goes_at_once_and_in_order() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outbox = Outbox::with_flush_after(tx, Duration::from_secs(3600));
        for i in 0..FLUSH_AT - 1 {
            outbox.put(i);
        }
        assert!(rx.try_recv().is_err(), "sent before the burst was full");
        outbox.put(FLUSH_AT - 1);
        assert_eq!(rx.try_recv().unwrap(), (0..FLUSH_AT).collect::<Vec<_>>());
    }

    #[test]
    fn an_item_after_a_pause_goes_at_once() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outbox = Outbox::new(tx);
        // The clock only moves forward: after this the last burst is at least FLUSH_AFTER old.
        std::thread::sleep(FLUSH_AFTER);
        outbox.put(7);
        assert_eq!(rx.try_recv().unwrap(), vec![7]);
    }

    #[tokio::test]
    async fn the_sweeper_sends_what_waited_with_no_forwarder_and_no_more_items() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outbox = Outbox::with_flush_after(tx, Duration::from_millis(50));
        let stop = CancellationToken::new();
        outbox.start_sweeper(stop.clone());
        outbox.put(1);
        let burst = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(burst.expect("the sweeper sent nothing"), Some(vec![1]));
        stop.cancel();
        drop(outbox);
        let closed = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(closed.expect("the channel stayed open"), None);
    }

    #[tokio::test]
    async fn the_forwarder_sends_a_lone_item_once_the_runtime_is_idle() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Time never sends here: only the forwarder can.
        let outbox = Outbox::with_flush_after(tx, Duration::from_secs(3600));
        let stop = CancellationToken::new();
        let forwarder = tokio::spawn(outbox.clone().forward(stop.clone()));
        outbox.put(1);
        outbox.put(2);
        // Bounded, so that a forwarder that never sends fails the test instead of hanging it.
        let burst = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(burst.expect("the forwarder sent nothing"), Some(vec![1, 2]));
        stop.cancel();
        forwarder.await.unwrap();
        drop(outbox);
        assert!(
            rx.recv().await.is_none(),
            "the channel closes with the outbox"
        );
    }
}
