//! Whether a worker's queue had a job for its latest request, as Redis's replies tell: a
//! request that the exchange stored rather than served found no job waiting (or older
//! requests before it, which are served first); a job handed over means the queue has work.
//!
//! Why: a host serving several queues gives its slots to the queues with work
//! (`sque-host`'s `pool/share.rs`). Told by the reply that a queue ran dry, it withdraws that
//! queue's requests and hands its credits on at once; otherwise it learns it only when the
//! requests have gone unanswered for a while, and every credit it gives that queue meanwhile
//! sits in a stored request while the slots idle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::Waker;

#[derive(Default)]
pub(crate) struct Supply {
    dry: AtomicBool,
    /// Batches of jobs handed over: a reply that stored requests while the inbox brought
    /// jobs tells of a moment already past.
    deliveries: AtomicU64,
    /// Times the queue ran dry: a watcher compares it with the last it saw to tell a new
    /// spell from the one it acted on.
    spells: AtomicU64,
    /// Woken each time the queue runs dry.
    watcher: OnceLock<Waker>,
}

impl Supply {
    /// An exchange stored some of its requests: nothing was waiting for them. Unless jobs
    /// were handed over meanwhile (the count of deliveries is no longer `seen`): then the
    /// queue has work again, and the reply is older news.
    pub fn ran_dry(&self, seen: u64) {
        // Sequentially consistent, with `has_work`'s: a delivery counted after the flag was
        // set sees the flag and clears it; one counted before is seen here, and the flag is
        // cleared again.
        if self.deliveries.load(Ordering::SeqCst) != seen {
            return;
        }
        if !self.dry.swap(true, Ordering::SeqCst) {
            if self.deliveries.load(Ordering::SeqCst) != seen {
                self.dry.store(false, Ordering::SeqCst);
                return;
            }
            self.spells.fetch_add(1, Ordering::SeqCst);
            if let Some(watcher) = self.watcher.get() {
                watcher.wake_by_ref();
            }
        }
    }

    /// A batch of jobs was handed over.
    pub fn has_work(&self) {
        self.deliveries.fetch_add(1, Ordering::SeqCst);
        // Read first: a write only when it changes (the flag is read by the host's fetcher
        // at every credit).
        if self.dry.load(Ordering::SeqCst) {
            self.dry.store(false, Ordering::SeqCst);
        }
    }

    /// Batches of jobs handed over so far.
    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Acquire)
    }

    pub fn is_dry(&self) -> bool {
        self.dry.load(Ordering::Acquire)
    }

    pub fn spells(&self) -> u64 {
        self.spells.load(Ordering::Acquire)
    }

    /// Has `waker` woken each time the queue runs dry; the first watcher only.
    pub fn watch(&self, waker: Waker) {
        let _ = self.watcher.set(waker);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use futures_util::task::{waker, ArcWake};

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl ArcWake for Count {
        fn wake_by_ref(count: &Arc<Self>) {
            count.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_spell_starts_when_a_request_finds_nothing_and_ends_when_a_job_comes() {
        let supply = Supply::default();
        let wakes = Arc::new(Count::default());
        supply.watch(waker(wakes.clone()));
        assert!(!supply.is_dry());
        supply.ran_dry(supply.deliveries());
        supply.ran_dry(supply.deliveries());
        assert!(supply.is_dry());
        assert_eq!(
            (supply.spells(), wakes.0.load(Ordering::SeqCst)),
            (1, 1),
            "one spell, told once"
        );
        supply.has_work();
        assert!(!supply.is_dry());
        supply.ran_dry(supply.deliveries());
        assert_eq!((supply.spells(), wakes.0.load(Ordering::SeqCst)), (2, 2));
    }

    #[test]
    fn a_reply_that_stored_requests_is_old_news_when_jobs_came_meanwhile() {
        let supply = Supply::default();
        let seen = supply.deliveries();
        // The inbox brought jobs while the reply was on its way.
        supply.has_work();
        supply.ran_dry(seen);
        assert_eq!((supply.is_dry(), supply.spells()), (false, 0));
    }
}
