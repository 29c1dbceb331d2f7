//! One worker identity and what its parts share: the opened queue, the worker's id, its
//! [`Registry`] (the one owner of what it asked for and holds), its tasks, and the exchanger
//! through which requests and completions go to Redis together. The `Client` API, the inbox
//! reader and the renewer all work through this.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::backend::Conn;
use crate::client::exchanger::{self, Exchanger};
use crate::client::registry::{Acked, Registry};
use crate::client::supply::Supply;
use crate::error::Result;
use crate::job::{Job, Lease};
use crate::queue::Queue;
use crate::scripts;
use crate::scripts::exchange::{Completed, Completion};
use crate::tasks::Tasks;
use crate::wire::parse_delivery;

/// A completion whose result is larger than this goes to Redis alone, on a connection of its
/// own: if Redis refuses so large a request (`proto-max-bulk-len`) and drops the connection,
/// no other job's traffic was on it.
pub(crate) const LARGE_RESULT: usize = 64 << 10;

/// One item of a worker's traffic to Redis, answered with whether it held.
pub(crate) enum Exchange {
    /// "I am free": the request with this sequence number.
    Ask(u64),
    /// The job under this lease token is done, with its result JSON, if any.
    Complete(String, Option<String>),
    /// Request `seq` is withdrawn. It goes the way its request went, so it reaches Redis
    /// after the request was stored, never before (a withdrawal that came first would remove
    /// nothing, and the request, stored after it, would stay for a worker that no longer
    /// waits on it).
    Withdraw(u64),
}

/// How Redis answered one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A request was made.
    Asked,
    /// A completion: what became of it.
    Completed(Completed),
    /// A withdrawal was sent.
    Withdrawn,
}

pub(crate) struct Worker {
    pub queue: Queue,
    /// This worker's id within the queue (from `meta.workers_seq`).
    pub id: String,
    registry: Mutex<Registry>,
    /// Whether the queue had a job for the latest request.
    pub supply: Supply,
    pub tasks: Tasks,
    pub exchanger: Exchanger<Exchange, Answer>,
    /// The connection for large completions, made when the first one comes, and made anew
    /// after one fails.
    side: tokio::sync::Mutex<Option<Conn>>,
    /// Whether a pop of this worker's inbox failed on its way back since the last renewal
    /// (see [`Worker::pop_may_be_lost`]).
    pop_lost: AtomicBool,
}

impl Worker {
    /// A worker of `queue` under `id`, with its exchanger running in `tasks`.
    pub fn start(queue: Queue, id: String, tasks: Tasks) -> Arc<Worker> {
        let (exchanger, batches) = exchanger::channel();
        let worker = Arc::new(Worker {
            queue,
            id,
            registry: Mutex::new(Registry::default()),
            supply: Supply::default(),
            tasks,
            exchanger,
            side: tokio::sync::Mutex::new(None),
            pop_lost: AtomicBool::new(false),
        });
        let me = worker.clone();
        worker.tasks.spawn("exchanger", move |stop| {
            exchanger::run(
                batches,
                move |items| {
                    let me = me.clone();
                    async move { me.exchange(items).await }
                },
                stop,
            )
        });
        worker
    }

    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pop of this worker's inbox failed on its way back: Redis may have taken deliveries
    /// whose requests are then answered by nothing (the jobs come back when their leases run
    /// out; the requests would not). The next renewal stores every open request again.
    pub fn pop_may_be_lost(&self) {
        self.pop_lost.store(true, Ordering::Relaxed);
    }

    /// Whether a pop may have been lost since this was last asked.
    pub fn take_pop_lost(&self) -> bool {
        self.pop_lost.swap(false, Ordering::Relaxed)
    }

    /// The entry a request has in the queue's `requests` list.
    pub fn request_entry(&self, seq: u64) -> String {
        format!("{}:{seq}", self.id)
    }

    /// Marks the job under `token` as being acknowledged until the guard ends it.
    pub fn begin_ack<'a>(&'a self, token: &'a str) -> AckGuard<'a> {
        self.registry().begin_ack(token);
        AckGuard {
            worker: self,
            token,
        }
    }

    /// Takes deliveries (from the inbox or an exchange's reply) and routes each to its
    /// request; a job nobody waits for any more goes back to the head of the queue.
    pub fn accept(self: &Arc<Self>, entries: Vec<Vec<u8>>) {
        if !entries.is_empty() {
            self.supply.has_work();
        }
        for entry in entries {
            let delivery = match parse_delivery(&entry) {
                Ok(d) => d,
                Err(e) => {
                    // No token to act on: its lease runs out and the reaper moves it on.
                    tracing::error!(queue = %self.queue.keys.queue, "unreadable delivery: {e}");
                    continue;
                }
            };
            let data = match delivery.data {
                Ok(data) => data,
                Err(problem) => {
                    self.bury_poison_later(delivery.request, delivery.token, problem);
                    continue;
                }
            };
            let job = Job {
                id: delivery.id,
                queue: self.queue.keys.queue.clone(),
                data,
                attempt: delivery.attempt,
                request_id: None,
                lease: Arc::new(Lease::delivered(
                    delivery.token,
                    delivery.waited_ms.map(Duration::from_millis),
                )),
            };
            let orphan = self.registry().deliver(delivery.request, job);
            if let Some(token) = orphan {
                self.release_later(token);
            }
        }
    }

    /// Gives a job back to the head of the queue (`release.lua`). False when the lease had
    /// already moved on.
    pub async fn release(&self, token: &str) -> Result<bool> {
        let ack = self.begin_ack(token);
        let released = scripts::release::call(&self.queue, token).await;
        // Given back or not, this client no longer holds it (if the call failed, the lease
        // runs out and the reaper brings the job back).
        ack.end(Acked::Done);
        released
    }

    /// Releases in a tracked task, from places that cannot wait (drop handlers, the inbox
    /// reader). If it fails, the lease runs out and the reaper brings the job back anyway.
    pub fn release_later(self: &Arc<Self>, token: String) {
        let me = self.clone();
        self.tasks.spawn_errand("release", async move {
            if let Err(e) = me.release(&token).await {
                tracing::warn!(queue = %me.queue.keys.queue, token, "could not give a job back: {e}; its lease will run out instead");
            }
        });
    }

    /// A delivery whose data cannot be given to a handler (written past the push script): the
    /// job goes to the dead list as poison (`poison.lua`), and the request it answered is made
    /// again, so that the next job serves it. Nothing waits behind it.
    fn bury_poison_later(self: &Arc<Self>, seq: u64, token: String, problem: String) {
        let me = self.clone();
        self.tasks.spawn_errand("poison", async move {
            let queue = &me.queue.keys.queue;
            match scripts::poison::call(&me.queue, &token, &problem).await {
                Ok(true) => tracing::error!(%queue, %token, "poison: {problem}; moved to the dead list (no retry can mend it)"),
                Ok(false) => {}
                Err(e) => tracing::warn!(%queue, %token, "could not record poison ({problem}): {e}; its lease will run out"),
            }
            if !me.registry().is_pending(seq) {
                return;
            }
            if let Err(e) = me.exchanger.submit(Exchange::Ask(seq)).await {
                me.registry().end_with(seq, e);
            }
        });
    }

    /// Withdraws request `seq`, through the exchanger (`Exchange::Withdraw`): the withdrawals
    /// of a moment go together, in one round trip. If it fails, the request is served later
    /// and its job given back, or dropped once this worker's heartbeat runs out.
    pub fn withdraw_later(&self, seq: u64) {
        self.exchanger.send_only(Exchange::Withdraw(seq));
    }

    /// Sends completions and requests (`exchange.lua`), routes the jobs handed out at once, and
    /// answers each item. A batch that Redis refuses for another reason than being away is
    /// sent again item by item, so that one item's trouble (a script error over one job's
    /// arguments) is that item's alone.
    async fn exchange(self: &Arc<Self>, items: Vec<Exchange>) -> Vec<Result<Answer>> {
        match self.send(&self.queue.con, &items).await {
            Ok(answers) => answers.into_iter().map(Ok).collect(),
            Err(e) if items.len() > 1 && !e.is_unavailable() => {
                tracing::warn!(queue = %self.queue.keys.queue, "Redis refused a batch of {} ({e}); sending them one by one", items.len());
                // A request withdrawn in this batch stays out of it, with its withdrawal, as
                // in the batch (`send`).
                let (withdrawn, asked) = (withdrawn_in(&items), asked_in(&items));
                let mut answers = Vec::with_capacity(items.len());
                for item in &items {
                    match item {
                        Exchange::Ask(seq) if withdrawn.contains(seq) => {
                            answers.push(Ok(Answer::Asked));
                            continue;
                        }
                        Exchange::Withdraw(seq) if asked.contains(seq) => {
                            answers.push(Ok(Answer::Withdrawn));
                            continue;
                        }
                        _ => {}
                    }
                    let answer = self.send(&self.queue.con, std::slice::from_ref(item)).await;
                    answers.push(answer.map(|mut a| a.remove(0)));
                }
                answers
            }
            Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// A completion with a large result, alone on the side connection. Redis drops a
    /// connection after refusing a request too large for it: after a failure the connection
    /// is made anew and the completion tried once more, which gives Redis's own answer (a
    /// refusal) rather than the dropped connection.
    pub async fn complete_alone(self: &Arc<Self>, token: &str, result: &str) -> Result<Completed> {
        let item = Exchange::Complete(token.to_string(), Some(result.to_string()));
        let once = std::slice::from_ref(&item);
        let mut side = self.side.lock().await;
        let mut answer = None;
        for _ in 0..2 {
            let con = match side.as_ref() {
                Some(con) => con.clone(),
                None => side.insert(self.queue.backend.connection().await?).clone(),
            };
            match self.send(&con, once).await {
                Err(e) if e.is_unavailable() => {
                    *side = None;
                    answer = Some(Err(e));
                }
                done => {
                    answer = Some(done);
                    break;
                }
            }
        }
        let answer = match answer.expect("tried at least once") {
            // Dropped twice while Redis answers the main connection: it is this request that
            // Redis will not take.
            Err(e) if e.is_unavailable() && self.answers().await => {
                return Err(crate::error::Error::Refused(format!(
                    "a completion with a result of {} bytes, twice (is Redis's proto-max-bulk-len smaller?): {e}",
                    result.len()
                )));
            }
            answer => answer?,
        };
        match answer.into_iter().next() {
            Some(Answer::Completed(c)) => Ok(c),
            _ => Ok(Completed::Stale),
        }
    }

    /// Whether Redis answers on the main connection.
    async fn answers(&self) -> bool {
        redis::cmd("PING")
            .query_async::<String>(&mut self.queue.con.clone())
            .await
            .is_ok()
    }

    /// One `exchange.lua` call on `con` with `items`, and one pipeline of the withdrawals
    /// among them. A request withdrawn in the same batch as it was made is neither stored
    /// nor withdrawn.
    async fn send(self: &Arc<Self>, con: &Conn, items: &[Exchange]) -> Result<Vec<Answer>> {
        let withdrawn = withdrawn_in(items);
        let completions: Vec<Completion> = items
            .iter()
            .filter_map(|item| match item {
                Exchange::Complete(token, result) => Some(Completion {
                    token,
                    result: result.as_deref(),
                }),
                _ => None,
            })
            .collect();
        let asks: Vec<String> = items
            .iter()
            .filter_map(|item| match item {
                Exchange::Ask(seq) if !withdrawn.contains(seq) => Some(self.request_entry(*seq)),
                _ => None,
            })
            .collect();
        let mut completed = Vec::new().into_iter();
        if !completions.is_empty() || !asks.is_empty() {
            let seen = self.supply.deliveries();
            let reply =
                scripts::exchange::call(&self.queue, con, &self.id, &completions, &asks).await?;
            // Requests not served at once were stored: no job was waiting for them.
            let stored = reply.delivered.len() < asks.len();
            let seen = seen + u64::from(!reply.delivered.is_empty());
            self.accept(reply.delivered);
            if stored {
                self.supply.ran_dry(seen);
            }
            completed = reply.completed.into_iter();
        }
        // Most batches withdraw nothing: their requests are not listed again.
        let asked = if withdrawn.is_empty() {
            Vec::new()
        } else {
            asked_in(items)
        };
        let stored_earlier: Vec<u64> = withdrawn
            .iter()
            .filter(|seq| !asked.contains(seq))
            .copied()
            .collect();
        if !stored_earlier.is_empty() {
            let mut pipe = redis::pipe();
            for seq in &stored_earlier {
                // From the tail: a request withdrawn is most often among the newest.
                pipe.cmd("LREM")
                    .arg(&self.queue.keys.requests)
                    .arg(-1)
                    .arg(self.request_entry(*seq))
                    .ignore();
            }
            // The batch's other items held whatever becomes of these: their answers stand.
            if let Err(e) = pipe.query_async::<()>(&mut con.clone()).await {
                tracing::debug!(queue = %self.queue.keys.queue, "could not withdraw {} request(s): {e}", stored_earlier.len());
            }
        }
        Ok(items
            .iter()
            .map(|item| match item {
                Exchange::Ask(_) => Answer::Asked,
                Exchange::Complete(..) => {
                    Answer::Completed(completed.next().unwrap_or(Completed::Stale))
                }
                Exchange::Withdraw(_) => Answer::Withdrawn,
            })
            .collect())
    }
}

/// The requests a batch withdraws.
fn withdrawn_in(items: &[Exchange]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|item| match item {
            Exchange::Withdraw(seq) => Some(*seq),
            _ => None,
        })
        .collect()
}

/// The requests a batch makes.
fn asked_in(items: &[Exchange]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|item| match item {
            Exchange::Ask(seq) => Some(*seq),
            _ => None,
        })
        .collect()
}

/// An acknowledgement on its way: ended with how it went, or, if the call was dropped
/// half-way, as failed (the job stays held, its lease renewed, until its holder lets go).
pub(crate) struct AckGuard<'a> {
    worker: &'a Worker,
    token: &'a str,
}

impl AckGuard<'_> {
    pub fn end(self, how: Acked) {
        self.worker.registry().end_ack(self.token, how);
        std::mem::forget(self);
    }
}

impl Drop for AckGuard<'_> {
    fn drop(&mut self) {
        self.worker.registry().end_ack(self.token, Acked::Failed);
    }
}
