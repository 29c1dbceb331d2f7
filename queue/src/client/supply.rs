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
    /// Times the queue ran dry: a watcher compares it with the last it saw to tell a new
    /// spell from the one it acted on.
    spells: AtomicU64,
    /// Woken each time the queue runs dry.
    watcher: OnceLock<Waker>,
}

impl Supply {
    /// An exchange stored some of its requests: nothing was waiting for them.
    pub fn ran_dry(&self) {
        if !self.dry.swap(true, Ordering::AcqRel) {
            self.spells.fetch_add(1, Ordering::AcqRel);
            if let Some(watcher) = self.watcher.get() {
                watcher.wake_by_ref();
            }
        }
    }

    /// A job was handed over.
    pub fn has_work(&self) {
        // Read first: a job a time, a write only when it changes (the flag's cache line is
        // read by the host's fetcher at every credit).
        if self.dry.load(Ordering::Relaxed) {
            self.dry.store(false, Ordering::Release);
        }
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
        supply.ran_dry();
        supply.ran_dry();
        assert!(supply.is_dry());
        assert_eq!(
            (supply.spells(), wakes.0.load(Ordering::SeqCst)),
            (1, 1),
            "one spell, told once"
        );
        supply.has_work();
        assert!(!supply.is_dry());
        supply.ran_dry();
        assert_eq!((supply.spells(), wakes.0.load(Ordering::SeqCst)), (2, 2));
    }
}
