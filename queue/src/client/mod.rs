//! The worker's side: ask for jobs with [`Client::i_am_free`], then complete or fail them.
//!
//! A client is one worker identity (a number unique per process start, from the queue's
//! `meta.workers_seq`). Its parts:
//! - `registry.rs`: what it asked for and what it holds (one owner, no Redis);
//! - `worker.rs`: what the parts share, and the routing of deliveries;
//! - `exchanger.rs`: requests and completions sent to Redis together (`exchange.lua`);
//! - `inbox.rs`: the duty that pops jobs a dispatcher put in this worker's inbox;
//! - `renewer.rs`: the duty that keeps the leases and the heartbeat alive.
//!
//! The truth is in Redis, so losing the process loses nothing.

mod exchanger;
mod inbox;
mod registry;
mod renewer;
mod supply;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::follow_up::{FollowUp, MAX_FOLLOW_UPS};
use crate::job::Job;
use crate::options::Options;
use crate::queue::Queue;
use crate::scripts;
use crate::scripts::exchange::Completed;
use crate::scripts::fail::Failed;
use crate::scripts::stage::Staged;
use crate::tasks::{Stop, Tasks};
use registry::{Acked, Asked, Reply};
use worker::{Answer, Exchange, Worker};

/// The longest request id accepted by [`Client::i_am_free`].
const MAX_REQUEST_ID: usize = 200;

/// What became of a failed job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will be tried again after this delay (backoff with jitter); it then rejoins the tail
    /// of the queue.
    Retry { after: Duration },
    /// It is in the dead list, with its error.
    Dead,
}

/// Why an attempt failed, as [`Client::fail_with`] records it.
#[derive(Clone, Copy, Debug)]
pub struct Failure<'a> {
    /// How the attempt ended, in a word (`retry`, `timeout`, `trap`, ...).
    pub code: &'a str,
    pub message: &'a str,
    /// Whether another attempt may mend it (else: the dead list at once).
    pub retry: bool,
}

impl<'a> Failure<'a> {
    /// A failure worth another attempt.
    pub fn retry(code: &'a str, message: &'a str) -> Failure<'a> {
        Failure {
            code,
            message,
            retry: true,
        }
    }

    /// A failure no retry can mend.
    pub fn permanent(code: &'a str, message: &'a str) -> Failure<'a> {
        Failure {
            code,
            message,
            retry: false,
        }
    }

    /// A code is a word of 1 to 32 lowercase letters and underscores, and not `poison`: that
    /// one is the queue's own mark of data no worker can be given, which `retry_dead` refuses
    /// for good.
    fn check(&self) -> Result<()> {
        let word = |c: char| c.is_ascii_lowercase() || c == '_';
        if self.code.is_empty() || self.code.len() > 32 || !self.code.chars().all(word) {
            return Err(Error::InvalidInput(format!(
                "a failure's code is a word of 1 to 32 lowercase letters and underscores (retry, timeout, ...), not {:?}",
                crate::wire::shown(self.code)
            )));
        }
        if self.code == "poison" {
            return Err(Error::InvalidInput(
                "the failure code \"poison\" is the queue's own (data no worker can be given): choose another".into(),
            ));
        }
        Ok(())
    }
}

/// A worker of one queue.
pub struct Client {
    worker: Arc<Worker>,
    /// Dropping the client stops its tasks.
    _stop: Stop,
}

/// The longest progress note kept, in bytes.
pub const MAX_PROGRESS_NOTE_BYTES: usize = 256;

impl Client {
    /// Connects to Redis, joins the queue (creating it if need be) and starts the inbox reader
    /// and the lease renewer.
    pub async fn new(queue: &str, opts: Options) -> Result<Client> {
        let queue = Queue::open(queue, opts).await?;
        let id: u64 = redis::cmd("HINCRBY")
            .arg(&queue.keys.meta)
            .arg("workers_seq")
            .arg(1)
            .query_async(&mut queue.con.clone())
            .await?;
        let id = id.to_string();
        // The heartbeat is written here, before the first exchange: only a renewal writes it
        // (exchange.lua says why).
        scripts::renew::call(&queue, &id, &[], &[], false).await?;
        // Who this worker is, for inspectors; the reaper deletes it once the heartbeat is gone.
        let _: () = redis::cmd("SET")
            .arg(queue.keys.worker_info(&id))
            .arg(worker_info())
            .query_async(&mut queue.con.clone())
            .await?;
        let inbox = queue.inbox(&id).await?;
        let (tasks, stop) = Tasks::new();
        let worker = Worker::start(queue, id, tasks);
        inbox::start(&worker, inbox);
        renewer::start(&worker);
        Ok(Client {
            worker,
            _stop: stop,
        })
    }

    /// The queue this client works for.
    pub fn queue(&self) -> &str {
        &self.worker.queue.keys.queue
    }

    /// This worker's id within the queue.
    pub fn worker_id(&self) -> &str {
        &self.worker.id
    }

    /// Whether the queue had no job for this client's latest request: Redis stored it rather
    /// than hand one out (nothing waited, older requests waited first, the queue is paused,
    /// or its rate limit or cap held it back), and no job has come to this client since. A
    /// host serving several queues gives its slots to the others meanwhile.
    pub fn is_dry(&self) -> bool {
        self.worker.supply.is_dry()
    }

    /// How many times the queue ran dry (`is_dry` became true) since this client joined it.
    pub fn dry_spells(&self) -> u64 {
        self.worker.supply.spells()
    }

    /// Has `waker` woken each time the queue runs dry. Only the first waker given is kept.
    pub fn watch_dry(&self, waker: std::task::Waker) {
        self.worker.supply.watch(waker);
    }

    /// The queue's settings, as they were when this client joined it.
    pub fn settings(&self) -> &crate::settings::QueueSettings {
        &self.worker.queue.settings
    }

    /// Asks for a job and waits until one is handed over.
    ///
    /// The request is stored in Redis when the future is first polled; requests are served
    /// in the order they were stored. With `Some(id)`, asking again with the id of a request
    /// still pending, or of a job still held, gives that same job, not a second one.
    /// Dropping the future withdraws the request; a job that already reached it goes back to
    /// the head of the queue.
    pub async fn i_am_free(&self, request_id: Option<&str>) -> Result<Job> {
        if let Some(id) = request_id {
            if id.is_empty() || id.len() > MAX_REQUEST_ID {
                return Err(Error::InvalidInput(format!(
                    "request id must be 1 to {MAX_REQUEST_ID} bytes"
                )));
            }
        }
        let asked = self.worker.registry().ask(request_id)?;
        let (seq, rx, new) = match asked {
            Asked::Held(job) => return Ok(job),
            Asked::Joined(seq, rx) => (seq, rx, false),
            Asked::New(seq, rx) => (seq, rx, true),
        };
        let mut waiting = Waiting {
            worker: &self.worker,
            seq,
            rx: Some(rx),
        };
        if new {
            self.worker.exchanger.submit(Exchange::Ask(seq)).await?;
        }
        let answer = waiting
            .rx
            .as_mut()
            .expect("receiver present until resolved")
            .await
            .map_err(|_| Error::Closed)?;
        waiting.rx = None;
        answer
    }

    /// Marks the job done and keeps `result` (if any) readable by its id for a while.
    /// Fails with [`Error::StaleLease`] if the lease ran out and the job moved on. If the
    /// call fails otherwise (Redis unreachable), the job is still held and its lease renewed:
    /// call again, or drop it and it comes back when its lease runs out.
    pub async fn complete(&self, job: &Job, result: Option<Value>) -> Result<()> {
        let result = result.map(|v| serde_json::to_string(&v).expect("a Value serializes"));
        self.complete_json(job, result).await
    }

    /// Like [`Client::complete`], with the result as JSON text the caller has checked (valid,
    /// nested under 128 levels): a host that ran a guest has it as text already.
    pub async fn complete_json(&self, job: &Job, result: Option<String>) -> Result<()> {
        self.check_queue(job)?;
        let token = job.lease_token();
        let ack = self.worker.begin_ack(token);
        let completed = match result {
            // Boxed: this rare path may make a connection (TLS, Cluster, Sentinel), whose
            // future is large. Inline, it would make every completion's future as large, and a
            // host keeps hundreds of them at once and moves each one around.
            Some(r) if r.len() > worker::LARGE_RESULT => {
                Box::pin(self.worker.complete_alone(token, &r)).await
            }
            result => self
                .worker
                .exchanger
                .submit(Exchange::Complete(token.to_string(), result))
                .await
                .map(|answer| match answer {
                    Answer::Completed(c) => c,
                    Answer::Asked | Answer::Withdrawn => Completed::Stale,
                }),
        };
        match completed {
            Ok(Completed::Held) => {
                ack.end(Acked::Done);
                Ok(())
            }
            Ok(Completed::Stale) => {
                ack.end(Acked::Done);
                Err(stale(job))
            }
            Ok(Completed::Cancelled) => {
                ack.end(Acked::Done);
                job.lease.cancelled.cancel();
                Err(cancelled(job))
            }
            Ok(Completed::TooLarge) => {
                ack.end(Acked::Done);
                Err(Error::InvalidInput(format!(
                    "job {}: the result is over the queue's max_result_bytes ({}); nothing was kept and the job went to the dead list",
                    job.id, self.worker.queue.settings.max_result_bytes
                )))
            }
            Err(e) => {
                ack.end(Acked::Failed);
                Err(e)
            }
        }
    }

    /// Completes the job and, with it, pushes `follow_ups` (each to its queue, exactly once,
    /// by a manager's mover). They are staged under the job's lease first, and committed only
    /// by the completion: when the completion is refused (stale, cancelled) or fails, nothing
    /// is pushed. With no follow-ups this is [`Client::complete_json`].
    pub async fn complete_with_follow_ups(
        &self,
        job: &Job,
        result: Option<String>,
        follow_ups: &[FollowUp],
    ) -> Result<()> {
        self.check_queue(job)?;
        if follow_ups.len() > MAX_FOLLOW_UPS {
            return Err(Error::InvalidInput(format!(
                "job {}: {} follow-up jobs, over the most one job may push ({MAX_FOLLOW_UPS})",
                job.id,
                follow_ups.len()
            )));
        }
        if !follow_ups.is_empty() {
            match scripts::stage::call(&self.worker.queue, job.lease_token(), follow_ups).await? {
                Staged::Kept => {}
                Staged::Cancelled => return Err(cancelled(job)),
                Staged::Stale if job.is_cancelled() => return Err(cancelled(job)),
                Staged::Stale => return Err(stale(job)),
            }
        }
        self.complete_json(job, result).await
    }

    /// Reports a failure: the job is tried again after a backoff, or goes to the dead list
    /// when it has used up its attempts. Its last error gets the code `retry`.
    pub async fn fail(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        self.fail_with(job, &Failure::retry("retry", error)).await
    }

    /// Reports a failure that no retry can mend: the job goes straight to the dead list. Its
    /// last error gets the code `fail`.
    pub async fn fail_permanently(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        self.fail_with(job, &Failure::permanent("fail", error))
            .await
    }

    /// Reports a failure with its own code (how the attempt ended: `timeout`, `trap`, ...,
    /// `docs/HOST.md`), kept beside its message as the job's last error.
    pub async fn fail_with(&self, job: &Job, failure: &Failure<'_>) -> Result<FailOutcome> {
        self.check_queue(job)?;
        failure.check()?;
        let ack = self.worker.begin_ack(job.lease_token());
        let failed = scripts::fail::call(
            &self.worker.queue,
            job.lease_token(),
            failure.code,
            failure.message,
            !failure.retry,
        )
        .await;
        match failed {
            Ok(failed) => {
                ack.end(Acked::Done);
                match failed {
                    Failed::Cancelled => Err(cancelled(job)),
                    Failed::Stale if job.is_cancelled() => Err(cancelled(job)),
                    Failed::Stale => Err(stale(job)),
                    Failed::Dead => Ok(FailOutcome::Dead),
                    Failed::Retry(after) => Ok(FailOutcome::Retry { after }),
                }
            }
            Err(e) => {
                ack.end(Acked::Failed);
                Err(e)
            }
        }
    }

    /// Records how far a running job has come: `percent` (capped at 100) and a note (cut at
    /// 256 bytes), kept for the queue's result_ttl and shown by `Inspector::job`. Returns
    /// false when the lease is no longer held (the report changed nothing). Meant for a
    /// report a second at most: each is one call to Redis.
    pub async fn progress(&self, job: &Job, percent: u8, note: Option<&str>) -> Result<bool> {
        self.check_queue(job)?;
        self.progress_of(job.lease_token(), percent, note).await
    }

    /// [`Client::progress`] of the job held under `token`, for a caller that keeps only the
    /// token (a host whose guest reports while it runs).
    pub async fn progress_of(&self, token: &str, percent: u8, note: Option<&str>) -> Result<bool> {
        let note = note.map(|n| {
            let mut end = n.len().min(MAX_PROGRESS_NOTE_BYTES);
            while !n.is_char_boundary(end) {
                end -= 1;
            }
            &n[..end]
        });
        scripts::progress::call(&self.worker.queue, token, percent, note).await
    }

    /// Gives a job back to the head of the queue without counting the attempt: for a worker
    /// that took a job and must stop before starting it.
    pub async fn release(&self, job: &Job) -> Result<()> {
        self.check_queue(job)?;
        match self.worker.release(job.lease_token()).await? {
            true => Ok(()),
            false => Err(stale(job)),
        }
    }

    /// The jobs this client holds (delivered, not yet acknowledged).
    pub fn held(&self) -> usize {
        self.worker.registry().held_count()
    }

    /// Leaves the queue cleanly (`leave.lua`): withdraws the open requests, gives back the jobs
    /// a dispatcher had put in this worker's inbox and it had not taken yet, drops its
    /// heartbeat, and stops renewing. Pending `i_am_free` calls fail with [`Error::Closed`].
    /// Jobs still held keep their leases until they run out, so complete or release them
    /// first. Safe to call more than once, and from a client shared between tasks.
    pub async fn shutdown(&self) -> Result<()> {
        let seqs = self.worker.registry().close();
        self.worker.tasks.shutdown().await;
        let requests: Vec<String> = seqs.iter().map(|s| self.worker.request_entry(*s)).collect();
        let (withdrawn, released) =
            scripts::leave::call(&self.worker.queue, &self.worker.id, &requests, &[]).await?;
        tracing::debug!(queue = %self.worker.queue.keys.queue, worker = %self.worker.id, withdrawn, released, "left the queue");
        Ok(())
    }

    fn check_queue(&self, job: &Job) -> Result<()> {
        if job.queue == self.worker.queue.keys.queue {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "job {} belongs to queue {:?}, not {:?}",
                job.id, job.queue, self.worker.queue.keys.queue
            )))
        }
    }
}

/// What a worker says of itself: the machine, the process, when it started and which sque.
fn worker_info() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    serde_json::json!({
        "host": host,
        "pid": std::process::id(),
        "started": started,
        "sque": env!("CARGO_PKG_VERSION"),
    })
    .to_string()
}

fn cancelled(job: &Job) -> Error {
    Error::Cancelled {
        job: job.id.clone(),
        attempt: job.attempt,
    }
}

fn stale(job: &Job) -> Error {
    Error::StaleLease {
        job: job.id.clone(),
        attempt: job.attempt,
    }
}

/// The state of one `i_am_free` call, so that dropping the call cleans up after it.
struct Waiting<'a> {
    worker: &'a Arc<Worker>,
    seq: u64,
    rx: Option<Reply>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        rx.close();
        // A job sent to us that we never returned: give it back unless someone else has it.
        if let Ok(Ok(job)) = rx.try_recv() {
            let token = job.lease.token.clone();
            drop(job);
            if self.worker.registry().is_let_go(&token) {
                self.worker.release_later(token);
            }
            return;
        }
        // Sent under the registry's lock: a client closing (which takes it) finds either the
        // request still pending (`leave.lua` withdraws it) or its withdrawal in the
        // exchanger's channel, which the exchanger sends before it stops.
        let mut registry = self.worker.registry();
        if registry.abandon(self.seq) {
            self.worker.withdraw_later(self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;

    #[test]
    fn a_failure_s_code_is_a_word_and_not_the_queue_s_own() {
        for good in ["retry", "timeout", "out_of_memory", "x"] {
            assert!(Failure::retry(good, "m").check().is_ok(), "{good}");
        }
        for bad in ["", "poison", "Trap", "two words", "a-b", &"x".repeat(33)] {
            assert!(Failure::permanent(bad, "m").check().is_err(), "{bad:?}");
        }
    }
}
