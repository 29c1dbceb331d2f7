//! How many jobs a host asks for ahead of its free slots.
//!
//! Jobs asked for ahead wait in the host, leased, so that no slot waits for a round trip to
//! Redis. How many that takes depends on how fast jobs finish: a noop handler finishes
//! ~100,000 jobs a second on two cores and needs a few hundred in hand to hide a batched
//! round trip; a handler that takes 100 ms needs none. A fixed number is wrong for one or the
//! other, so by default the prefetch adapts (like a TCP window sized to the bandwidth-delay
//! product): it keeps about [`WINDOW`] of work in hand at the rate jobs have been finishing,
//! times the number of queues that share that work ([`busy_queues`]), never fewer than the
//! slots and never more than [`MAX`]. A job held ahead is a job another host cannot take, so
//! the window stays short; `--prefetch N` fixes it instead.
//!
//! Why times the queues: each queue's client makes its own round trips, one call on its way
//! at a time, and a queue's call waits at Redis behind the other queues' calls, so the round
//! trip a queue's jobs in hand must cover grows with the queues that ask. Sized for the host
//! as a whole, ten busy queues of a noop handler left the guests' thread waiting for jobs a
//! third of the time (bench/README.md, "Many queues in one host"). The queues are counted by
//! their shares of the answers, not one each: a queue that gets a job now and then beside a
//! busy one makes few calls, and must not double the jobs held.

use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// The work, in time at the current rate, the adaptive prefetch keeps in hand.
pub const WINDOW: Duration = Duration::from_millis(5);
/// The most jobs the adaptive prefetch asks for ahead.
pub const MAX: usize = 1024;
/// How often the adaptive prefetch looks at the rate again.
pub const RETUNE_EVERY: Duration = Duration::from_millis(25);

/// The prefetch of one pool: fixed, or adapted to the rate of finished jobs.
#[derive(Debug)]
pub struct Prefetch {
    current: usize,
    adaptive: Option<Rate>,
}

#[derive(Debug)]
struct Rate {
    floor: usize,
    finished: u64,
    at: Instant,
}

impl Prefetch {
    /// `Some(n)`: always `n`. `None`: adaptive, starting from (and never below) `slots`.
    pub fn new(fixed: Option<usize>, slots: usize) -> Prefetch {
        match fixed {
            Some(n) => Prefetch {
                current: n,
                adaptive: None,
            },
            None => Prefetch {
                current: slots,
                adaptive: Some(Rate {
                    floor: slots,
                    finished: 0,
                    at: Instant::now(),
                }),
            },
        }
    }

    /// Jobs asked for ahead right now.
    pub fn current(&self) -> usize {
        self.current
    }

    pub fn is_adaptive(&self) -> bool {
        self.adaptive.is_some()
    }

    /// Looks at how many jobs have finished in all (`finished`) and how many queues share the
    /// work (`queues`, from [`busy_queues`]), and resizes the window: credits are added to
    /// `credits` at once; credits to take away are taken as they come free (a credit in use
    /// is never taken from its job).
    pub fn retune(&mut self, finished: u64, queues: f64, credits: &Semaphore) {
        let Some(rate) = &mut self.adaptive else {
            return;
        };
        let now = Instant::now();
        let elapsed = now.duration_since(rate.at).as_secs_f64();
        if elapsed <= 0.0 {
            return;
        }
        let per_sec = finished.saturating_sub(rate.finished) as f64 / elapsed;
        (rate.finished, rate.at) = (finished, now);
        let target = target(per_sec, queues, rate.floor);
        if target > self.current {
            credits.add_permits(target - self.current);
            tracing::debug!(
                "prefetch {} -> {target} ({per_sec:.0} jobs/s)",
                self.current
            );
            self.current = target;
        } else if target < self.current {
            let taken = credits.forget_permits(self.current - target);
            if taken > 0 {
                tracing::debug!(
                    "prefetch {} -> {} ({per_sec:.0} jobs/s)",
                    self.current,
                    self.current - taken
                );
            }
            self.current -= taken;
        }
    }
}

/// How many queues share the work, from how many jobs each one's requests were answered
/// lately: n equally busy queues count n; one busy queue beside queues that get a job now
/// and then counts about one (the inverse of the sum of the squared shares). At least one.
pub fn busy_queues(answered: impl IntoIterator<Item = usize>) -> f64 {
    let (sum, squares) = answered.into_iter().fold((0.0, 0.0), |(sum, squares), n| {
        let n = n as f64;
        (sum + n, squares + n * n)
    });
    if squares == 0.0 {
        1.0
    } else {
        (sum * sum / squares).max(1.0)
    }
}

/// The adaptive window: [`WINDOW`] of work at `per_sec` for each of `queues` (at least one),
/// between `floor` (the slots) and [`MAX`].
fn target(per_sec: f64, queues: f64, floor: usize) -> usize {
    ((per_sec * WINDOW.as_secs_f64() * queues.max(1.0)).ceil() as usize)
        .clamp(floor, MAX.max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_each_busy_queue_between_the_slots_and_the_cap() {
        // 40,000 jobs/s: 200 in 5 ms for one queue.
        assert_eq!(target(40_000.0, 1.0, 50), 200);
        assert_eq!(target(40_000.0, 0.0, 50), 200, "no queue counted: as one");
        assert_eq!(
            target(40_000.0, 3.0, 50),
            600,
            "three queues, each its round trips"
        );
        assert_eq!(target(40_000.0, 10.0, 50), MAX);
        assert_eq!(target(1_000.0, 10.0, 50), 50, "never below the slots");
        assert_eq!(
            target(1e9, 1.0, 2_000),
            2_000,
            "more slots than the cap: the slots"
        );
    }

    #[test]
    fn queues_count_by_their_shares_of_the_answers() {
        assert_eq!(busy_queues([]), 1.0, "none answered: one");
        assert_eq!(busy_queues([0, 0, 0]), 1.0);
        assert_eq!(busy_queues([500]), 1.0);
        assert_eq!(busy_queues([100; 10]), 10.0, "ten equally busy queues");
        assert_eq!(
            busy_queues([300, 300, 0]),
            2.0,
            "an idle queue does not count"
        );
        // One busy queue and nine that get a job now and then: about one, not ten.
        let trickles = busy_queues([4_500, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert!((1.0..1.01).contains(&trickles), "{trickles}");
    }

    #[test]
    fn a_fixed_prefetch_never_moves() {
        let credits = Semaphore::new(10);
        let mut p = Prefetch::new(Some(6), 4);
        std::thread::sleep(Duration::from_millis(2));
        p.retune(1_000_000, 1.0, &credits);
        assert_eq!((p.current(), credits.available_permits()), (6, 10));
    }

    #[test]
    fn the_adaptive_prefetch_follows_the_rate_between_the_slots_and_the_cap() {
        // 4 slots + 4 ahead to start with.
        let credits = Semaphore::new(8);
        let mut p = Prefetch::new(None, 4);
        // Fast: far more than the cap's worth of work in the window.
        std::thread::sleep(Duration::from_millis(20));
        p.retune(10_000_000, 1.0, &credits);
        assert_eq!(p.current(), MAX);
        assert_eq!(credits.available_permits(), 4 + MAX);
        // Slow: nothing finished; the window shrinks back to the slots, as credits come free.
        let held = credits.try_acquire_many((4 + MAX - 10) as u32).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        p.retune(10_000_000, 1.0, &credits);
        assert_eq!(p.current(), MAX - 10, "only free credits are taken");
        drop(held);
        p.retune(10_000_000, 1.0, &credits);
        assert_eq!(p.current(), 4);
        assert_eq!(credits.available_permits(), 8);
    }
}
