//! Waiting before trying Redis again: exponential backoff with jitter, shared by every loop
//! that reconnects (the dispatcher, the inbox reader, the sentinel watcher, a host's
//! fetcher). The jitter matters: after a Redis restart, a hundred hosts whose waits were
//! equal would all reconnect in the same millisecond.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The first wait.
pub const FIRST: Duration = Duration::from_millis(50);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(2);

/// Exponential backoff from [`FIRST`] doubling to [`MAX`], each wait drawn at random from its
/// upper half ("equal jitter": never less than half, so a crowd still spreads out).
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { next: FIRST }
    }

    /// The wait before the next try.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(MAX);
        jittered(ceiling)
    }

    /// After a success: the next failure waits [`FIRST`] again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// A duration drawn at random between half of `d` and `d`.
pub fn jittered(d: Duration) -> Duration {
    let half = d / 2;
    let span = (d - half).as_micros() as u64;
    half + Duration::from_micros(random() % (span + 1))
}

/// A random number good enough to spread waits: std's per-process random hash keys, mixed
/// with the clock.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_within_their_upper_half() {
        let mut b = Backoff::new();
        let mut ceiling = FIRST;
        for _ in 0..10 {
            let w = b.next_wait();
            assert!(
                w >= ceiling / 2 && w <= ceiling,
                "{w:?} outside {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(MAX);
        }
        b.reset();
        assert!(b.next_wait() <= FIRST);
    }

    #[test]
    fn waits_are_spread() {
        let waits: std::collections::HashSet<Duration> =
            (0..50).map(|_| jittered(Duration::from_secs(1))).collect();
        assert!(waits.len() > 40, "only {} distinct waits", waits.len());
    }
}
