//! Which queue the pool asks for a job next, when one host serves several.
//!
//! Every job a host holds took a credit (`mod.rs`), and a queue gets a credit only while it
//! has work to give ([`Want::Yes`]): while its requests are being answered, or when it has
//! none open (it needs one to hear of work). Once Redis stored a request of it rather than
//! serve it (it ran dry: the client's `is_dry`), or its requests have waited [`IDLE_AFTER`]
//! unanswered, it is idle ([`Want::No`]): it keeps one request open (its probe) and no more,
//! so it holds no slots another queue could use. In between, just after it asked, it is not
//! known yet ([`Want::Wait`]). Among the queues with work:
//!
//! - [`Order::Strict`]: the first in the configured order takes every credit while it has
//!   work, and the next ones get none, not even a probe, until it is idle (Sidekiq's strict
//!   order).
//! - [`Order::Weighted`]: credits go in proportion to the queues' weights, by stride
//!   scheduling: each queue has a pass that grows by `STRIDE / weight` each time it is
//!   chosen, and the lowest pass goes next. A queue coming back from idle starts at the
//!   current pass rather than its old one, so time spent idle is not saved up as a burst
//!   (Sidekiq's and Asynq's weighted order gives the same shares by chance; this gives them
//!   exactly, and over any stretch, not only on average).
//!
//! A job asked for is a job run (the slots take them in the order asked), so these are also
//! the shares of jobs started while the queues have work.

use std::time::Duration;

/// The pass one choice adds at weight 1.
const STRIDE: u64 = 1 << 20;

/// How long a queue's requests may wait unanswered before it counts as idle: it then gets
/// no more credits, and its requests but one are withdrawn. Most often Redis's reply tells
/// sooner (a request stored, not served); this catches the rest, such as a queue that got
/// one job after it ran dry while its other requests still wait.
pub const IDLE_AFTER: Duration = Duration::from_millis(50);

/// How queues share a host's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// The first queue (in the order given) while it has work, then the next.
    Strict,
    /// In proportion to each queue's weight.
    Weighted,
}

/// Whether a queue takes the next credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// It has work, or no request open.
    Yes,
    /// It asked and has had no answer yet, for less than [`IDLE_AFTER`]: under strict order,
    /// the queues after it wait to know.
    Wait,
    /// It is idle, at its most, or waiting out a failure.
    No,
}

/// One queue's place in the sharing.
#[derive(Clone, Debug)]
pub struct Turn {
    pub weight: u32,
    pass: u64,
}

impl Turn {
    pub fn new(weight: u32) -> Turn {
        Turn {
            weight: weight.max(1),
            pass: 0,
        }
    }
}

/// The shares of one pool.
#[derive(Debug)]
pub struct Shares {
    order: Order,
    /// The pass of the last queue chosen: where a queue coming back from idle starts.
    now: u64,
}

impl Shares {
    pub fn new(order: Order) -> Shares {
        Shares { order, now: 0 }
    }

    pub fn order(&self) -> Order {
        self.order
    }

    /// The queue to give the next credit to, of `queues` (their index, turn and want, in the
    /// configured order); `None` if none takes it now.
    pub fn choose<'a>(
        &mut self,
        queues: impl Iterator<Item = (usize, &'a mut Turn, Want)>,
    ) -> Option<usize> {
        match self.order {
            Order::Strict => {
                for (i, _, want) in queues {
                    match want {
                        Want::Yes => return Some(i),
                        Want::Wait => return None,
                        Want::No => continue,
                    }
                }
                None
            }
            Order::Weighted => {
                let mut best: Option<(usize, &mut Turn)> = None;
                for (i, turn, _) in queues.filter(|(_, _, want)| *want == Want::Yes) {
                    // Idle time is not saved up.
                    turn.pass = turn.pass.max(self.now);
                    if best.as_ref().is_none_or(|(_, b)| turn.pass < b.pass) {
                        best = Some((i, turn));
                    }
                }
                let (i, turn) = best?;
                self.now = turn.pass;
                turn.pass += STRIDE / turn.weight as u64;
                Some(i)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wants(wanting: &[bool]) -> Vec<Want> {
        wanting
            .iter()
            .map(|w| if *w { Want::Yes } else { Want::No })
            .collect()
    }

    fn counts(
        shares: &mut Shares,
        turns: &mut [Turn],
        wanting: &[bool],
        picks: usize,
    ) -> Vec<usize> {
        let wants = wants(wanting);
        let mut n = vec![0; turns.len()];
        for _ in 0..picks {
            let queues = turns.iter_mut().enumerate().map(|(i, t)| (i, t, wants[i]));
            let i = shares.choose(queues).unwrap();
            n[i] += 1;
        }
        n
    }

    #[test]
    fn weighted_shares_follow_the_weights_exactly() {
        let mut shares = Shares::new(Order::Weighted);
        let mut turns = vec![Turn::new(3), Turn::new(1), Turn::new(6)];
        assert_eq!(
            counts(&mut shares, &mut turns, &[true; 3], 10_000),
            [3000, 1000, 6000]
        );
        // And over a short stretch too.
        assert_eq!(counts(&mut shares, &mut turns, &[true; 3], 10), [3, 1, 6]);
    }

    #[test]
    fn a_queue_back_from_idle_gets_its_share_not_a_burst() {
        let mut shares = Shares::new(Order::Weighted);
        let mut turns = vec![Turn::new(1), Turn::new(1)];
        // The second queue idles while the first takes 1,000.
        assert_eq!(
            counts(&mut shares, &mut turns, &[true, false], 1000),
            [1000, 0]
        );
        // Back, it shares evenly from now on instead of taking the next 1,000.
        assert_eq!(
            counts(&mut shares, &mut turns, &[true, true], 100),
            [50, 50]
        );
    }

    #[test]
    fn strict_order_serves_the_first_queue_with_work() {
        let mut shares = Shares::new(Order::Strict);
        let mut turns = vec![Turn::new(1), Turn::new(5), Turn::new(1)];
        assert_eq!(
            counts(&mut shares, &mut turns, &[true, true, true], 100),
            [100, 0, 0]
        );
        assert_eq!(
            counts(&mut shares, &mut turns, &[false, true, true], 100),
            [0, 100, 0]
        );
        let none = shares.choose(turns.iter_mut().enumerate().map(|(i, t)| (i, t, Want::No)));
        assert_eq!(none, None);
    }

    #[test]
    fn under_strict_order_a_queue_not_known_yet_holds_back_the_ones_after_it() {
        let mut turns = [Turn::new(1), Turn::new(1)];
        let mut choose = |order, first, second| {
            let mut shares = Shares::new(order);
            let want = [first, second];
            shares.choose(turns.iter_mut().enumerate().map(|(i, t)| (i, t, want[i])))
        };
        assert_eq!(choose(Order::Strict, Want::Wait, Want::Yes), None);
        assert_eq!(choose(Order::Strict, Want::No, Want::Yes), Some(1));
        // Weighted order gives the others their share meanwhile.
        assert_eq!(choose(Order::Weighted, Want::Wait, Want::Yes), Some(1));
    }
}
