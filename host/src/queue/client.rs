//! The worker's side: ask for jobs with [`Client::i_am_free`], then complete or fail them.
//!
//! A client is one worker identity (a number unique per process start, from the queue's
//! `meta.seq`). It keeps its open requests and the jobs it holds in memory only to route
//! deliveries and to renew leases: the truth is in Redis, so losing the process loses nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use crate::queue::batcher::Batcher;
use crate::queue::connection::Queue;
use crate::queue::duty::Duty;
use crate::queue::error::{Error, Result};
use crate::queue::job::{parse_delivery, Job, Lease};
use crate::queue::options::Options;
use crate::queue::{inbox, renewer, scripts};

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

/// A worker of one queue.
pub struct Client {
    inner: Arc<ClientInner>,
    duties: Vec<Duty>,
}

pub(crate) struct ClientInner {
    pub queue: Queue,
    pub worker: String,
    state: Mutex<State>,
    /// Completions and requests, sent together when they come together (`exchange.lua`).
    exchanger: Batcher<Exchange, bool>,
}

/// One item of a worker's traffic to Redis, answered with whether it held.
enum Exchange {
    /// "I am free": the request with this sequence number (always holds).
    Ask(u64),
    /// The job under this lease token is done, with its result JSON, if any (holds unless
    /// the lease had moved on).
    Complete(String, Option<String>),
}

#[derive(Default)]
pub(crate) struct State {
    next_seq: u64,
    /// Requests stored in Redis and not yet served, by sequence number.
    pub pending: HashMap<u64, Pending>,
    /// Jobs delivered and not yet acknowledged, by lease token.
    pub held: HashMap<String, Job>,
    /// The caller's request ids, while their request is pending or their job held.
    by_request_id: HashMap<String, Slot>,
    /// Tokens being acknowledged right now: a renewal that finds them gone is no news.
    acking: std::collections::HashSet<String>,
    closed: bool,
}

pub(crate) struct Pending {
    request_id: Option<String>,
    waiters: Vec<oneshot::Sender<Job>>,
}

#[derive(Clone)]
enum Slot {
    Pending(u64),
    Held(String),
}

impl Client {
    /// Connects to Redis, joins the queue (creating it if need be) and starts the inbox reader
    /// and the lease renewer.
    pub async fn new(queue: &str, opts: Options) -> Result<Client> {
        let queue = Queue::open(queue, opts).await?;
        let worker: u64 = redis::cmd("HINCRBY")
            .arg(&queue.keys.meta)
            .arg("workers_seq")
            .arg(1)
            .query_async(&mut queue.con.clone())
            .await?;
        let worker = worker.to_string();
        let blocking = queue.blocking_connection().await?;
        // The exchanger routes the jobs its replies carry, so it needs the client it serves.
        let mut exchanging = None;
        let inner = Arc::new_cyclic(|me: &Weak<ClientInner>| {
            let me = me.clone();
            let (exchanger, duty) = Batcher::start("exchanger", move |items| {
                let me = me.upgrade();
                async move {
                    match me {
                        Some(inner) => exchange(&inner, items).await,
                        None => Err(Error::Closed),
                    }
                }
            });
            exchanging = Some(duty);
            ClientInner {
                queue,
                worker,
                state: Mutex::new(State::default()),
                exchanger,
            }
        });
        let duties = vec![
            inbox::start(inner.clone(), blocking),
            renewer::start(inner.clone()),
            exchanging.expect("set by new_cyclic"),
        ];
        Ok(Client { inner, duties })
    }

    /// This worker's id within the queue.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker
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
        let (tx, rx) = oneshot::channel();
        let mut guard = Waiting {
            inner: &self.inner,
            seq: None,
            rx: Some(rx),
        };
        let new_seq = {
            let mut state = self.inner.lock();
            if state.closed {
                return Err(Error::Closed);
            }
            match request_id.and_then(|id| state.by_request_id.get(id).cloned()) {
                Some(Slot::Held(token)) => {
                    if let Some(job) = state.held.get(&token) {
                        return Ok(job.clone());
                    }
                    None
                }
                Some(Slot::Pending(seq)) => {
                    if let Some(p) = state.pending.get_mut(&seq) {
                        p.waiters.push(tx);
                        guard.seq = Some(seq);
                        None
                    } else {
                        None
                    }
                }
                None => {
                    state.next_seq += 1;
                    let seq = state.next_seq;
                    state.pending.insert(
                        seq,
                        Pending {
                            request_id: request_id.map(str::to_string),
                            waiters: vec![tx],
                        },
                    );
                    if let Some(id) = request_id {
                        state
                            .by_request_id
                            .insert(id.to_string(), Slot::Pending(seq));
                    }
                    guard.seq = Some(seq);
                    Some(seq)
                }
            }
        };
        if guard.seq.is_none() {
            // The request id pointed at a job that has just been acknowledged: ask anew.
            drop(guard);
            return Box::pin(self.i_am_free(request_id)).await;
        }
        if let Some(seq) = new_seq {
            self.inner.exchanger.submit(Exchange::Ask(seq)).await?;
        }
        let rx = guard.rx.as_mut().expect("receiver present until resolved");
        let job = rx.await.map_err(|_| Error::Closed)?;
        guard.rx = None;
        Ok(job)
    }

    /// Marks the job done and keeps `result` (if any) readable by its id for a while.
    /// Fails with [`Error::StaleLease`] if the lease ran out and the job moved on.
    pub async fn complete(&self, job: &Job, result: Option<Value>) -> Result<()> {
        self.check_queue(job)?;
        let result = result.map(|v| serde_json::to_string(&v).expect("a Value serializes"));
        self.inner.begin_ack(job.lease_token());
        let held = self
            .inner
            .exchanger
            .submit(Exchange::Complete(job.lease_token().to_string(), result))
            .await?;
        self.inner.forget(job.lease_token());
        if held {
            Ok(())
        } else {
            Err(stale(job))
        }
    }

    /// Reports a failure: the job is tried again after a backoff, or goes to the dead list
    /// when it has used up its attempts.
    pub async fn fail(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        self.fail_inner(job, error, false).await
    }

    /// Reports a failure that no retry can mend: the job goes straight to the dead list.
    pub async fn fail_permanently(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        self.fail_inner(job, error, true).await
    }

    async fn fail_inner(&self, job: &Job, error: &str, permanent: bool) -> Result<FailOutcome> {
        self.check_queue(job)?;
        let k = &self.inner.queue.keys;
        let opts = &self.inner.queue.opts;
        self.inner.begin_ack(job.lease_token());
        let delay: i64 = scripts::FAIL
            .key(&k.leases)
            .key(&k.delayed)
            .key(&k.dead)
            .key(&k.errors)
            .key(&k.stats)
            .arg(job.lease_token())
            .arg(error)
            .arg(if permanent { "1" } else { "0" })
            .arg(opts.backoff.as_millis() as u64)
            .arg(opts.backoff_max.as_millis() as u64)
            .invoke_async(&mut self.inner.queue.con.clone())
            .await?;
        self.inner.forget(job.lease_token());
        match delay {
            -1 => Err(stale(job)),
            0 => Ok(FailOutcome::Dead),
            ms => Ok(FailOutcome::Retry {
                after: Duration::from_millis(ms as u64),
            }),
        }
    }

    /// Gives a job back to the head of the queue without counting the attempt: for a worker
    /// that took a job and must stop before starting it.
    pub async fn release(&self, job: &Job) -> Result<()> {
        self.check_queue(job)?;
        let released = self.inner.release(job.lease_token()).await?;
        if released {
            Ok(())
        } else {
            Err(stale(job))
        }
    }

    /// The jobs this client holds (delivered, not yet acknowledged).
    pub fn held(&self) -> usize {
        self.inner.lock().held.len()
    }

    /// Withdraws the open requests, stops renewing, and forgets this worker. Pending
    /// `i_am_free` calls fail with [`Error::Closed`]. Jobs still held keep their leases until
    /// they run out, so complete or release them first.
    pub async fn shutdown(mut self) -> Result<()> {
        let entries: Vec<String> = {
            let mut state = self.inner.lock();
            state.closed = true;
            let seqs: Vec<u64> = state.pending.keys().copied().collect();
            state.pending.clear();
            state.by_request_id.clear();
            seqs.iter().map(|s| self.inner.request_entry(*s)).collect()
        };
        for duty in self.duties.drain(..) {
            duty.shutdown().await;
        }
        let k = &self.inner.queue.keys;
        let mut pipe = redis::pipe();
        for entry in &entries {
            pipe.lrem(&k.requests, 1, entry).ignore();
        }
        pipe.zrem(&k.workers, &self.inner.worker).ignore();
        let _: () = pipe.query_async(&mut self.inner.queue.con.clone()).await?;
        Ok(())
    }

    fn check_queue(&self, job: &Job) -> Result<()> {
        if job.queue == self.inner.queue.keys.queue {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "job {} belongs to queue {:?}, not {:?}",
                job.id, job.queue, self.inner.queue.keys.queue
            )))
        }
    }
}

fn stale(job: &Job) -> Error {
    Error::StaleLease {
        job: job.id.clone(),
        attempt: job.attempt,
    }
}

impl ClientInner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The entry a request has in the queue's `requests` list.
    pub fn request_entry(&self, seq: u64) -> String {
        format!("{}:{seq}", self.worker)
    }

    /// How long this worker counts as alive without a heartbeat.
    pub fn heartbeat_ttl(&self) -> Duration {
        self.queue.opts.lease
    }

    /// Routes a job from the inbox to the request it answers. Returns the job's token when
    /// nobody waits for it any more, so that the caller gives it back.
    pub fn deliver(&self, seq: u64, mut job: Job) -> Option<String> {
        let mut state = self.lock();
        let Some(pending) = state.pending.remove(&seq) else {
            return Some(job.lease.token.clone());
        };
        job.request_id = pending.request_id.clone();
        let token = job.lease.token.clone();
        let mut taken = false;
        for waiter in pending.waiters {
            taken |= waiter.send(job.clone()).is_ok();
        }
        if let Some(id) = &pending.request_id {
            state.by_request_id.remove(id);
        }
        if !taken {
            return Some(token);
        }
        if let Some(id) = &pending.request_id {
            state
                .by_request_id
                .insert(id.clone(), Slot::Held(token.clone()));
        }
        state.held.insert(token, job);
        None
    }

    /// Takes a delivery (from the inbox or an exchange's reply) and routes it to its request;
    /// a job nobody waits for any more goes back to the head of the queue.
    pub fn accept(self: &Arc<Self>, entry: &str) {
        let delivery = match parse_delivery(entry) {
            Ok(d) => d,
            Err(e) => {
                // Its lease will run out and the reaper will move it on; nothing here can fix it.
                tracing::error!(queue = %self.queue.keys.queue, "{e}: {entry:.200}");
                return;
            }
        };
        let job = Job {
            id: delivery.id,
            queue: self.queue.keys.queue.clone(),
            data: delivery.data,
            attempt: delivery.attempt,
            request_id: None,
            lease: Arc::new(Lease {
                token: delivery.token,
            }),
        };
        if let Some(orphan) = self.deliver(delivery.request, job) {
            self.release_later(orphan);
        }
    }

    /// Marks a held job as being acknowledged (completed, failed or given back).
    fn begin_ack(&self, token: &str) {
        self.lock().acking.insert(token.to_string());
    }

    /// Whether the job is held and not being acknowledged.
    pub fn holds_unacked(&self, token: &str) -> bool {
        let state = self.lock();
        state.held.contains_key(token) && !state.acking.contains(token)
    }

    /// Stops tracking a held job (acknowledged, given back, or lost).
    pub fn forget(&self, token: &str) {
        let mut state = self.lock();
        state.acking.remove(token);
        if let Some(job) = state.held.remove(token) {
            if let Some(id) = &job.request_id {
                if matches!(state.by_request_id.get(id), Some(Slot::Held(t)) if t == token) {
                    state.by_request_id.remove(id);
                }
            }
        }
    }

    /// Gives a job back to the head of the queue (`release.lua`). False when the lease had
    /// already moved on.
    pub async fn release(&self, token: &str) -> Result<bool> {
        self.begin_ack(token);
        let k = &self.queue.keys;
        let released: redis::RedisResult<i64> = scripts::RELEASE
            .key(&k.leases)
            .key(&k.waiting)
            .key(&k.requests)
            .arg(token)
            .arg(&k.wake)
            .invoke_async(&mut self.queue.con.clone())
            .await;
        // Given back or not, this client no longer holds it (if the call failed, the lease
        // runs out and the reaper brings the job back).
        self.forget(token);
        Ok(released? == 1)
    }

    /// Releases in the background, from places that cannot wait (drop handlers, the inbox
    /// reader). If it fails, the lease runs out and the reaper brings the job back anyway.
    pub fn release_later(self: &Arc<Self>, token: String) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.clone();
        rt.spawn(async move {
            if let Err(e) = inner.release(&token).await {
                tracing::warn!(queue = %inner.queue.keys.queue, token, "could not give a job back: {e}; its lease will run out instead");
            }
        });
    }
}

/// The state of one `i_am_free` call, so that dropping the call cleans up after it.
struct Waiting<'a> {
    inner: &'a Arc<ClientInner>,
    seq: Option<u64>,
    rx: Option<oneshot::Receiver<Job>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let (Some(seq), Some(mut rx)) = (self.seq, self.rx.take()) else {
            return;
        };
        rx.close();
        // A job sent to us that we never returned: give it back unless someone else has it.
        if let Ok(job) = rx.try_recv() {
            let token = job.lease.token.clone();
            drop(job);
            let orphan = {
                let state = self.inner.lock();
                state
                    .held
                    .get(&token)
                    .is_some_and(|held| Arc::strong_count(&held.lease) == 1)
            };
            if orphan {
                self.inner.release_later(token);
            }
            return;
        }
        let mut state = self.inner.lock();
        let Some(pending) = state.pending.get_mut(&seq) else {
            return;
        };
        pending.waiters.retain(|w| !w.is_closed());
        if pending.waiters.is_empty() {
            let pending = state.pending.remove(&seq).expect("present");
            if let Some(id) = pending.request_id {
                state.by_request_id.remove(&id);
            }
            drop(state);
            let inner = self.inner.clone();
            let entry = inner.request_entry(seq);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let k = &inner.queue.keys;
                    let withdrawn: redis::RedisResult<i64> = redis::cmd("LREM")
                        .arg(&k.requests)
                        .arg(1)
                        .arg(&entry)
                        .query_async(&mut inner.queue.con.clone())
                        .await;
                    if let Err(e) = withdrawn {
                        tracing::debug!(queue = %k.queue, "could not withdraw request {entry}: {e}");
                    }
                });
            }
        }
    }
}

/// Sends completions and requests (`exchange.lua`), routes the jobs handed out at once, and
/// answers, for each item, whether it held.
async fn exchange(inner: &Arc<ClientInner>, items: Vec<Exchange>) -> Result<Vec<bool>> {
    let (k, opts) = (&inner.queue.keys, &inner.queue.opts);
    let mut inv = scripts::EXCHANGE.prepare_invoke();
    inv.key(&k.requests)
        .key(&k.waiting)
        .key(&k.workers)
        .key(&k.jobs)
        .key(&k.leases)
        .key(&k.stats)
        .key(&k.meta)
        .key(&k.errors)
        .key(&k.results)
        .key(&k.results_at)
        .arg(&k.wake)
        .arg(&inner.worker)
        .arg(inner.heartbeat_ttl().as_millis() as u64)
        .arg(opts.lease.as_millis() as u64)
        .arg(opts.max_attempts)
        .arg(&k.base)
        .arg(opts.inbox_ttl().as_millis() as u64);
    let completions = items
        .iter()
        .filter(|i| matches!(i, Exchange::Complete(..)))
        .count();
    inv.arg(completions);
    for item in &items {
        if let Exchange::Complete(token, result) = item {
            match result {
                Some(json) => inv.arg(token).arg("1").arg(json),
                None => inv.arg(token).arg("0").arg(""),
            };
        }
    }
    for item in &items {
        if let Exchange::Ask(seq) = item {
            inv.arg(inner.request_entry(*seq));
        }
    }
    let (held, delivered): (Vec<i64>, Vec<String>) =
        inv.invoke_async(&mut inner.queue.con.clone()).await?;
    for entry in &delivered {
        inner.accept(entry);
    }
    let mut held = held.into_iter();
    Ok(items
        .iter()
        .map(|item| match item {
            Exchange::Ask(_) => true,
            Exchange::Complete(..) => held.next() == Some(1),
        })
        .collect())
}
