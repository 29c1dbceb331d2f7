//! What one client has asked for and what it holds: its open requests, the jobs delivered and
//! not yet acknowledged, the caller's request ids, and the acknowledgements in flight. One
//! private type owns all of it, and its methods keep it consistent:
//!
//! - a request id maps to at most one open request or one held job, and to nothing once that
//!   request is withdrawn or that job is let go, acknowledged or lost;
//! - a job is "being acknowledged" only while a `complete`, `fail` or `release` call for it
//!   is on its way, however that call ends;
//! - nothing is asked or delivered after `close`.
//!
//! The truth is in Redis: this is only what the client needs to route deliveries and renew
//! leases, and losing it loses nothing. No Redis here: the client's tasks call these methods
//! and do the talking.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::job::Job;

#[derive(Default)]
pub(crate) struct Registry {
    next_seq: u64,
    /// Requests stored in Redis and not yet served, by sequence number.
    pending: HashMap<u64, Pending>,
    /// Jobs delivered and not yet acknowledged, by lease token.
    held: HashMap<String, Job>,
    /// The caller's request ids, while their request is pending or their job held.
    by_request_id: HashMap<String, Slot>,
    /// Tokens being acknowledged right now: a renewal that finds them gone is no news.
    acking: HashSet<String>,
    closed: bool,
}

struct Pending {
    request_id: Option<String>,
    waiters: Vec<oneshot::Sender<Result<Job>>>,
}

/// What a waiter of a request receives: its job, or why the request ended without one.
pub(crate) type Reply = oneshot::Receiver<Result<Job>>;

#[derive(Clone)]
enum Slot {
    Pending(u64),
    Held(String),
}

/// What an `i_am_free` call gets from the registry.
pub(crate) enum Asked {
    /// The job already held under this request id.
    Held(Job),
    /// Waiting on a request already open under this request id.
    Joined(u64, Reply),
    /// A new request, to be sent to Redis.
    New(u64, Reply),
}

/// How an acknowledgement ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acked {
    /// Recorded, refused as stale, or given back: the client no longer holds the job.
    Done,
    /// The call failed (Redis unreachable): the job is still held, its lease still renewed,
    /// and the caller may try again or let go of it.
    Failed,
}

impl Registry {
    /// Opens a request, or joins the one already open (or finds the job already held) under
    /// `request_id`.
    pub fn ask(&mut self, request_id: Option<&str>) -> Result<Asked> {
        if self.closed {
            return Err(Error::Closed);
        }
        let (tx, rx) = oneshot::channel();
        if let Some(id) = request_id {
            match self.by_request_id.get(id).cloned() {
                Some(Slot::Held(token)) => {
                    if let Some(job) = self.held.get(&token) {
                        return Ok(Asked::Held(job.clone()));
                    }
                }
                Some(Slot::Pending(seq)) => {
                    if let Some(pending) = self.pending.get_mut(&seq) {
                        pending.waiters.push(tx);
                        return Ok(Asked::Joined(seq, rx));
                    }
                }
                None => {}
            }
        }
        // No request open under this id (or what it named is gone): a new one.
        self.next_seq += 1;
        let seq = self.next_seq;
        self.pending.insert(
            seq,
            Pending {
                request_id: request_id.map(str::to_string),
                waiters: vec![tx],
            },
        );
        if let Some(id) = request_id {
            self.by_request_id
                .insert(id.to_string(), Slot::Pending(seq));
        }
        Ok(Asked::New(seq, rx))
    }

    /// Routes a delivered job to the request it answers. Returns the job's token when
    /// nobody waits for it any more, so that the caller gives it back.
    pub fn deliver(&mut self, seq: u64, mut job: Job) -> Option<String> {
        let Some(pending) = self.pending.remove(&seq) else {
            return Some(job.lease.token.clone());
        };
        if let Some(id) = &pending.request_id {
            self.by_request_id.remove(id);
        }
        job.request_id = pending.request_id.clone();
        let token = job.lease.token.clone();
        let mut taken = false;
        for waiter in pending.waiters {
            taken |= waiter.send(Ok(job.clone())).is_ok();
        }
        if !taken {
            return Some(token);
        }
        if let Some(id) = &pending.request_id {
            self.by_request_id
                .insert(id.clone(), Slot::Held(token.clone()));
        }
        self.held.insert(token, job);
        None
    }

    /// Whether request `seq` is still open (not yet served, withdrawn or ended).
    pub fn is_pending(&self, seq: u64) -> bool {
        self.pending.contains_key(&seq)
    }

    /// Ends request `seq` without a job: its waiters receive `error`.
    pub fn end_with(&mut self, seq: u64, error: Error) {
        let Some(pending) = self.pending.remove(&seq) else {
            return;
        };
        if let Some(id) = &pending.request_id {
            self.by_request_id.remove(id);
        }
        for waiter in pending.waiters {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    /// A waiter of request `seq` went away. When it was the last one, the request is
    /// forgotten and true returned: the caller withdraws it from Redis.
    pub fn abandon(&mut self, seq: u64) -> bool {
        let Some(pending) = self.pending.get_mut(&seq) else {
            return false;
        };
        pending.waiters.retain(|w| !w.is_closed());
        if !pending.waiters.is_empty() {
            return false;
        }
        let pending = self.pending.remove(&seq).expect("present");
        if let Some(id) = pending.request_id {
            self.by_request_id.remove(&id);
        }
        true
    }

    /// Whether the held job under `token` has nobody but the registry holding it (its last
    /// clone was dropped unacknowledged).
    pub fn is_let_go(&self, token: &str) -> bool {
        self.held
            .get(token)
            .is_some_and(|job| Arc::strong_count(&job.lease) == 1)
    }

    /// Marks a held job as being acknowledged.
    pub fn begin_ack(&mut self, token: &str) {
        self.acking.insert(token.to_string());
    }

    /// Ends an acknowledgement begun with [`Registry::begin_ack`].
    pub fn end_ack(&mut self, token: &str, how: Acked) {
        self.acking.remove(token);
        if how == Acked::Done {
            self.forget(token);
        }
    }

    /// A renewal found the lease of `token` gone. True when that is news (the job was held
    /// and no acknowledgement of it was on its way): the job is forgotten.
    pub fn lost(&mut self, token: &str) -> bool {
        if !self.held.contains_key(token) || self.acking.contains(token) {
            return false;
        }
        self.forget(token);
        true
    }

    /// The job held under `token` was cancelled: tells its holder (`Job::cancelled`) and
    /// forgets it, unless an acknowledgement of it is on its way (which ends it). Returns
    /// whether the job was held.
    pub fn cancelled(&mut self, token: &str) -> bool {
        let Some(job) = self.held.get(token) else {
            return false;
        };
        job.lease.cancelled.cancel();
        if !self.acking.contains(token) {
            self.forget(token);
        }
        true
    }

    /// What a renewal sends: the tokens held and the open requests. Jobs whose every clone
    /// was dropped unacknowledged are let go first: their leases run out as if the worker
    /// had died.
    pub fn renewal(&mut self) -> (Vec<String>, Vec<u64>) {
        let let_go: Vec<String> = self
            .held
            .iter()
            .filter(|(token, job)| {
                Arc::strong_count(&job.lease) == 1 && !self.acking.contains(*token)
            })
            .map(|(token, _)| token.clone())
            .collect();
        for token in &let_go {
            self.forget(token);
        }
        let mut seqs: Vec<u64> = self.pending.keys().copied().collect();
        seqs.sort_unstable();
        (self.held.keys().cloned().collect(), seqs)
    }

    /// Refuses every later request and forgets the open ones (their waiters see the client
    /// closed); returns their sequence numbers, for withdrawing them from Redis.
    pub fn close(&mut self) -> Vec<u64> {
        self.closed = true;
        self.by_request_id
            .retain(|_, slot| matches!(slot, Slot::Held(_)));
        let mut seqs: Vec<u64> = self.pending.drain().map(|(seq, _)| seq).collect();
        seqs.sort_unstable();
        seqs
    }

    /// The jobs held (delivered, not yet acknowledged).
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    fn forget(&mut self, token: &str) {
        self.acking.remove(token);
        if let Some(job) = self.held.remove(token) {
            if let Some(id) = &job.request_id {
                if matches!(self.by_request_id.get(id), Some(Slot::Held(t)) if t == token) {
                    self.by_request_id.remove(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobId, Lease};

    fn job(id: &str, attempt: u32) -> Job {
        Job {
            id: JobId::from(id),
            queue: "q".into(),
            data: serde_json::json!(id),
            attempt,
            request_id: None,
            lease: Arc::new(Lease::delivered(format!("{id}|{attempt}|5"), None)),
        }
    }

    fn new_request(asked: Asked) -> (u64, Reply) {
        match asked {
            Asked::New(seq, rx) => (seq, rx),
            _ => panic!("expected a new request"),
        }
    }

    #[test]
    fn a_request_id_gives_the_same_request_then_the_same_job() {
        let mut r = Registry::default();
        let (seq, mut rx) = new_request(r.ask(Some("a")).unwrap());
        assert!(matches!(r.ask(Some("a")).unwrap(), Asked::Joined(s, _) if s == seq));
        assert_eq!(r.deliver(seq, job("1", 1)), None);
        let got = rx.try_recv().unwrap().unwrap();
        assert_eq!(got.request_id.as_deref(), Some("a"));
        assert!(matches!(r.ask(Some("a")).unwrap(), Asked::Held(j) if j.id == got.id));
    }

    #[test]
    fn a_request_id_whose_job_was_let_go_opens_a_new_request() {
        // The job of request id "a" is dropped unacknowledged and a renewal notices: asking
        // again with "a" opens a new request (it used to recurse until the stack overflowed).
        let mut r = Registry::default();
        let (seq, mut rx) = new_request(r.ask(Some("a")).unwrap());
        r.deliver(seq, job("1", 1));
        drop(rx.try_recv().unwrap().unwrap());
        let (tokens, _) = r.renewal();
        assert!(tokens.is_empty(), "the let-go job is no longer renewed");
        assert!(matches!(r.ask(Some("a")).unwrap(), Asked::New(..)));
    }

    #[test]
    fn a_failed_acknowledgement_leaves_nothing_marked_as_acknowledging() {
        let mut r = Registry::default();
        let (seq, mut rx) = new_request(r.ask(None).unwrap());
        r.deliver(seq, job("1", 1));
        let held = rx.try_recv().unwrap().unwrap();
        r.begin_ack(held.lease_token());
        r.end_ack(held.lease_token(), Acked::Failed);
        assert_eq!(r.held_count(), 1, "still held: the caller may try again");
        assert!(
            r.lost(held.lease_token()),
            "no longer acknowledging: a lost lease is news again"
        );
        assert_eq!(r.held_count(), 0);
    }

    #[test]
    fn an_acknowledged_job_is_forgotten_and_a_lost_one_during_its_ack_is_no_news() {
        let mut r = Registry::default();
        let (seq, mut rx) = new_request(r.ask(Some("a")).unwrap());
        r.deliver(seq, job("1", 1));
        let held = rx.try_recv().unwrap().unwrap();
        r.begin_ack(held.lease_token());
        assert!(!r.lost(held.lease_token()), "an ack is on its way");
        r.end_ack(held.lease_token(), Acked::Done);
        assert_eq!(r.held_count(), 0);
        assert!(matches!(r.ask(Some("a")).unwrap(), Asked::New(..)));
    }

    #[test]
    fn a_delivery_nobody_waits_for_is_returned_to_be_given_back() {
        let mut r = Registry::default();
        let (seq, rx) = new_request(r.ask(None).unwrap());
        drop(rx);
        assert!(r.abandon(seq), "the last waiter went: withdraw it");
        assert_eq!(r.deliver(seq, job("1", 1)).as_deref(), Some("1|1|5"));
        let (seq, rx) = new_request(r.ask(None).unwrap());
        drop(rx);
        assert_eq!(
            r.deliver(seq, job("2", 1)).as_deref(),
            Some("2|1|5"),
            "a closed waiter takes nothing"
        );
        assert_eq!(r.held_count(), 0);
    }

    #[test]
    fn a_request_ended_without_a_job_tells_its_waiters_why() {
        let mut r = Registry::default();
        let (seq, mut rx) = new_request(r.ask(Some("a")).unwrap());
        r.end_with(seq, Error::Closed);
        assert!(matches!(rx.try_recv().unwrap(), Err(Error::Closed)));
        assert!(!r.is_pending(seq));
        assert!(matches!(r.ask(Some("a")).unwrap(), Asked::New(..)));
    }

    #[test]
    fn closing_refuses_new_requests_and_lists_the_open_ones() {
        let mut r = Registry::default();
        let (a, _ra) = new_request(r.ask(None).unwrap());
        let (b, _rb) = new_request(r.ask(Some("x")).unwrap());
        assert_eq!(r.close(), vec![a, b]);
        assert!(matches!(r.ask(None), Err(Error::Closed)));
    }
}
