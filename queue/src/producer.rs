//! The producer role: pushes jobs, and nothing else. It runs no background task; each push
//! is one script call (many jobs per call for `push_many`), checked against the queue's size
//! limit before anything is written. A job with a delay or a time goes to the queue's
//! scheduled set instead (`schedule.lua`), and a manager's promoter moves it to the tail of
//! the queue when it is due.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands as _;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::job::JobId;
use crate::options::Options;
use crate::queue::Queue;
use crate::scripts;

/// Jobs per `push` script call, and calls per pipeline, for [`Producer::push_many`].
const PUSH_CHUNK: usize = 1000;
const CHUNKS_PER_PIPELINE: usize = 16;

/// Settings of one job, where they differ from the queue's.
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// How many attempts this job gets; the queue's default when `None`.
    pub max_attempts: Option<u32>,
    /// Ready this long after the push, on Redis's clock (not this machine's); then it joins
    /// the tail of the queue. Not with `at`.
    pub delay: Option<Duration>,
    /// Ready at this time (read on Redis's clock: a time already past is ready at once);
    /// then it joins the tail of the queue. Not with `delay`.
    pub at: Option<SystemTime>,
    /// A key (1 to 1024 bytes) unique within the queue: while a job with this key waits, is
    /// scheduled or runs (and for `unique_for` after it completes), a push with the same key
    /// writes nothing and returns that job's id. Freed when its job completes (after the
    /// window), is dead-lettered or purged.
    pub unique_key: Option<String>,
    /// How long the key stays held after its job completed; none by default.
    pub unique_for: Option<Duration>,
    /// Its priority, 0 to [`HIGHEST_PRIORITY`]: a job of a higher priority is handed out
    /// before any of a lower one; jobs of one priority go in the order they were pushed.
    /// `None` is [`NORMAL_PRIORITY`], as every job of a queue where nobody sets one.
    pub priority: Option<u8>,
}

/// The priority of a job pushed without one (`low` is 0, `high` is 9).
pub const NORMAL_PRIORITY: u8 = 5;
/// The highest priority, served first.
pub const HIGHEST_PRIORITY: u8 = 9;

/// When a scheduled job is due, as the `schedule` script takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// This many ms after the push, on Redis's clock.
    After(u64),
    /// At this time, in ms since the epoch.
    At(u64),
}

/// The furthest a job can be scheduled ahead, and the latest time: the protocol's 15 digits
/// of ms would allow more, but a job due in 30,000 years is a mistake in the caller's units.
const LONGEST_DELAY: Duration = crate::settings::LONGEST_DURATION;

/// The longest unique key, in bytes.
pub const MAX_UNIQUE_KEY_BYTES: usize = 1024;

/// `level` if it is a priority (0 to [`HIGHEST_PRIORITY`]), else the error that says so: one
/// check for pushed jobs and schedules.
pub(crate) fn check_priority(level: u8) -> Result<u8> {
    match level {
        level if level <= HIGHEST_PRIORITY => Ok(level),
        level => Err(Error::InvalidInput(format!(
            "a priority is 0 (low) to {HIGHEST_PRIORITY} (high), {NORMAL_PRIORITY} being normal; not {level}"
        ))),
    }
}

impl JobOptions {
    /// Checks the options as a push would, without a connection: a caller that checks first
    /// writes nothing (not even the queue's creation) for options that would be refused.
    pub fn validate(&self) -> Result<()> {
        // The checks `encode_json` makes of each job, as it makes them.
        self.attempts()?;
        self.priority()?;
        self.unique()?;
        self.due()?;
        Ok(())
    }

    /// The attempt limit, checked.
    fn attempts(&self) -> Result<Option<u32>> {
        match self.max_attempts {
            Some(0) => Err(Error::InvalidInput(
                "max_attempts must be at least 1".into(),
            )),
            max => Ok(max),
        }
    }

    /// The priority, checked.
    fn priority(&self) -> Result<u8> {
        check_priority(self.priority.unwrap_or(NORMAL_PRIORITY))
    }

    /// The unique key and its window in ms, checked.
    fn unique(&self) -> Result<Option<(String, u64)>> {
        let Some(key) = &self.unique_key else {
            if self.unique_for.is_some() {
                return Err(Error::InvalidInput(
                    "unique_for needs a unique_key: it is how long that key stays held".into(),
                ));
            }
            return Ok(None);
        };
        if key.is_empty() || key.len() > MAX_UNIQUE_KEY_BYTES {
            return Err(Error::InvalidInput(format!(
                "a unique key is 1 to {MAX_UNIQUE_KEY_BYTES} bytes, not {}",
                key.len()
            )));
        }
        let window = self.unique_for.unwrap_or_default();
        if window > LONGEST_DELAY {
            return Err(Error::InvalidInput(
                "unique_for is over the longest allowed, 100 years".into(),
            ));
        }
        Ok(Some((key.clone(), window.as_millis() as u64)))
    }

    /// The job's due time, checked; `None` for a job ready at once.
    fn due(&self) -> Result<Option<Due>> {
        match (self.delay, self.at) {
            (Some(_), Some(_)) => Err(Error::InvalidInput(
                "a job takes a delay or a time to run at, not both".into(),
            )),
            (Some(d), None) if d > LONGEST_DELAY => Err(Error::InvalidInput(format!(
                "a delay of {}s is over the longest allowed, 100 years",
                d.as_secs()
            ))),
            // A zero delay is a plain push: ready at once, in order.
            (Some(d), None) if d.is_zero() => Ok(None),
            (Some(d), None) => Ok(Some(Due::After(d.as_millis().max(1) as u64))),
            (None, Some(at)) => {
                let ms = at
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .filter(|since| *since <= LONGEST_DELAY * 2)
                    .ok_or_else(|| {
                        Error::InvalidInput(
                            "the time to run at must be between 1970 and the year 2170".into(),
                        )
                    })?;
                Ok(Some(Due::At(ms.as_millis() as u64)))
            }
            (None, None) => Ok(None),
        }
    }
}

/// Pushes jobs into one queue.
#[derive(Clone)]
pub struct Producer {
    queue: Queue,
    /// The queue's size limit as last read (`max_job_bytes`): read when the queue is opened,
    /// and again after a job over it is refused, since the limit may have been raised since
    /// (docs/PROTOCOL.md, "Producers read them"). Shared by the producer's clones.
    limit: Arc<AtomicUsize>,
}

/// A job checked against the queue's limits, ready to push.
#[derive(Clone, Debug)]
pub struct EncodedJob {
    pub(crate) json: String,
    pub(crate) max_attempts: Option<u32>,
    /// `None`: ready at once (`push.lua`); else kept aside until due (`schedule.lua`).
    pub(crate) due: Option<Due>,
    /// The unique key and its window after completion, in ms (`push_unique.lua`).
    pub(crate) unique: Option<(String, u64)>,
    /// Its priority: the list it joins (`Keys::waiting_at`).
    pub(crate) priority: u8,
}

impl EncodedJob {
    /// A job of valid JSON text whose size the push script alone checks, against the queue's
    /// limit at that moment (a mover's follow-up: the limit it read when it opened the queue
    /// may have changed since).
    pub(crate) fn checked_by_script(json: String, options: &JobOptions) -> Result<EncodedJob> {
        Ok(EncodedJob {
            json,
            max_attempts: options.max_attempts,
            due: options.due()?,
            unique: options.unique()?,
            priority: options.priority()?,
        })
    }

    /// Bytes of JSON.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

impl Producer {
    /// Connects to Redis and creates the queue or joins it.
    pub async fn new(queue: &str, opts: Options) -> Result<Producer> {
        Ok(Producer::from_queue(Queue::open(queue, opts).await?))
    }

    pub(crate) fn from_queue(queue: Queue) -> Producer {
        let limit = Arc::new(AtomicUsize::new(queue.settings.max_job_bytes as usize));
        Producer { queue, limit }
    }

    /// [`Producer::encode`], and when the job is over the size limit last read, again once the
    /// limit is read anew: a producer opened before the limit was raised would refuse by the
    /// old one for as long as it lives.
    async fn encode_now(&self, data: &Value, options: &JobOptions) -> Result<EncodedJob> {
        match self.encode(data, options) {
            Err(Error::JobTooLarge { limit, .. }) if self.read_limit_again(limit).await? => {
                self.encode(data, options)
            }
            other => other,
        }
    }

    /// Reads the queue's size limit again and keeps it; whether it is not `refused_by`, the
    /// limit a job was just refused by. Compared with that, not with the limit kept: pushes
    /// at once through clones of one producer (which share the limit) are all refused by the
    /// old one, and each must see the new one, not only the first to read it.
    async fn read_limit_again(&self, refused_by: usize) -> Result<bool> {
        let mut con = self.queue.con.clone();
        let read: Option<String> = con.hget(&self.queue.keys.meta, "max_job_bytes").await?;
        let Some(limit) = read.and_then(|l| l.parse::<usize>().ok()) else {
            return Ok(false);
        };
        self.limit.store(limit, Ordering::Relaxed);
        Ok(limit != refused_by)
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue.keys.queue
    }

    /// Adds a job at the tail of the queue.
    pub async fn push(&self, data: Value) -> Result<JobId> {
        self.push_with(data, JobOptions::default()).await
    }

    /// Adds a job with its own settings.
    pub async fn push_with(&self, data: Value, options: JobOptions) -> Result<JobId> {
        let job = self.encode_now(&data, &options).await?;
        let mut ids = self.push_encoded(std::slice::from_ref(&job)).await?;
        Ok(ids.pop().expect("one id for one job"))
    }

    /// Adds many jobs, in order, pipelined in chunks. Every job is checked before anything is
    /// written: one bad job fails the call with nothing pushed. Returns the ids in order.
    /// More than 1,000 jobs go in several script calls, each all or nothing: should Redis
    /// refuse one of them (the queue's size limit lowered since it was read), the calls
    /// beside it may have been written, and the error does not give their ids.
    pub async fn push_many(&self, jobs: impl IntoIterator<Item = Value>) -> Result<Vec<JobId>> {
        let jobs: Vec<Value> = jobs.into_iter().collect();
        let encode = |jobs: &[Value]| {
            jobs.iter()
                .map(|data| self.encode(data, &JobOptions::default()))
                .collect::<Result<Vec<_>>>()
        };
        let encoded = match encode(&jobs) {
            Err(Error::JobTooLarge { limit, .. }) if self.read_limit_again(limit).await? => {
                encode(&jobs)?
            }
            other => other?,
        };
        self.push_encoded(&encoded).await
    }

    /// Pushes jobs already checked and encoded by [`Producer::encode`] (the CLI's streaming
    /// push checks each line as it reads it). Ids follow the order of `jobs`, whether they
    /// are ready at once, scheduled or unique (a job whose unique key is held gets the id of
    /// the job that holds it, and nothing is written for it).
    pub async fn push_encoded(&self, jobs: &[EncodedJob]) -> Result<Vec<JobId>> {
        let mut ids = Vec::with_capacity(jobs.len());
        let mut con = self.queue.con.clone();
        for group in jobs.chunks(PUSH_CHUNK * CHUNKS_PER_PIPELINE) {
            // Runs of jobs of one kind and priority, each in calls of at most PUSH_CHUNK.
            let chunks: Vec<&[EncodedJob]> = group
                .chunk_by(|a, b| a.kind() == b.kind() && a.priority == b.priority)
                .flat_map(|run| run.chunks(PUSH_CHUNK))
                .collect();
            let replies: Vec<redis::RedisResult<redis::Value>> = if let [chunk] = chunks[..] {
                // One call alone (a push of one job, most often): sent by SHA, loaded again
                // only if Redis answers NOSCRIPT, as every other call is.
                vec![
                    invocation_for(&self.queue.keys, chunk)
                        .invoke_async(&mut con)
                        .await,
                ]
            } else {
                let mut pipe = redis::pipe();
                // Loaded in the same round trip, so a Redis that restarted still knows them
                // (waiting for NOSCRIPT instead could let a later chunk pass this one).
                for (kind, script) in [
                    (Kind::Ready, &scripts::push::SCRIPT),
                    (Kind::Scheduled, &scripts::schedule::SCRIPT),
                    (Kind::Unique, &scripts::push_unique::SCRIPT),
                ] {
                    if chunks.iter().any(|c| c[0].kind() == kind) {
                        pipe.load_script(script).ignore();
                    }
                }
                for chunk in &chunks {
                    pipe.invoke_script(&invocation_for(&self.queue.keys, chunk));
                }
                // Each call's error is its script's own, with its code (SQUE_TOOLARGE, ...),
                // rather than a failure of the whole pipeline that wraps it.
                pipe.ignore_errors().query_async(&mut con).await?
            };
            for (chunk, reply) in chunks.iter().zip(replies) {
                let reply = match reply.map_err(Error::from) {
                    Ok(reply) => reply,
                    Err(e) => {
                        // The limit the script read is the queue's now.
                        if let Error::JobTooLarge { limit, .. } = e {
                            self.limit.store(limit, Ordering::Relaxed);
                        }
                        return Err(e);
                    }
                };
                match chunk[0].kind() {
                    // The first new id, then each job not pushed with its key's holder.
                    Kind::Unique => {
                        let reply: Vec<String> = redis::from_redis_value(reply)
                            .map_err(|e| Error::Corrupt(format!("push_unique's reply: {e}")))?;
                        ids.extend(
                            scripts::push_unique::ids(&reply, chunk.len())
                                .map_err(|e| Error::Corrupt(format!("push_unique's reply: {e}")))?,
                        );
                    }
                    // The first new id; the others follow it.
                    Kind::Ready | Kind::Scheduled => {
                        let first: u64 = redis::from_redis_value(reply)
                            .map_err(|e| Error::Corrupt(format!("push's reply: {e}")))?;
                        ids.extend(
                            (first..first + chunk.len() as u64)
                                .map(|id| JobId::from(id.to_string())),
                        );
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Checks a job against the queue's limits and encodes it for [`Producer::push_encoded`].
    /// Data nested 128 levels deep or more is refused: no worker could read it.
    pub fn encode(&self, data: &Value, options: &JobOptions) -> Result<EncodedJob> {
        if depth(data) >= crate::wire::MAX_DEPTH {
            return Err(Error::InvalidInput(format!(
                "the job's data is nested {} levels deep or more; the most allowed is {}",
                crate::wire::MAX_DEPTH,
                crate::wire::MAX_DEPTH - 1
            )));
        }
        let json = serde_json::to_string(data).expect("a serde_json::Value always serializes");
        self.encode_json(json, options)
    }

    /// Like [`Producer::encode`], for JSON text already known to be valid (and nested under
    /// 128 levels, as anything serde_json parsed is).
    pub fn encode_json(&self, json: String, options: &JobOptions) -> Result<EncodedJob> {
        let limit = self.max_job_bytes();
        if json.len() > limit {
            return Err(Error::JobTooLarge {
                size: json.len(),
                limit,
            });
        }
        Ok(EncodedJob {
            json,
            max_attempts: options.attempts()?,
            due: options.due()?,
            unique: options.unique()?,
            priority: options.priority()?,
        })
    }

    /// The queue's size limit, in bytes of JSON, as last read.
    pub fn max_job_bytes(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }
}

/// How a job is pushed: which script takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `push.lua`: to the tail of the queue.
    Ready,
    /// `schedule.lua`: aside until due.
    Scheduled,
    /// `push_unique.lua`: with a unique key (ready or scheduled).
    Unique,
}

impl EncodedJob {
    /// Its attempt limit as the scripts take it: a number, or "" for the queue's.
    pub(crate) fn max_attempts_arg(&self) -> String {
        self.max_attempts.map(|n| n.to_string()).unwrap_or_default()
    }

    /// Its due time as the scripts take it: "+MS" (a delay), "@MS" (a time) or "" (now).
    pub(crate) fn due_arg(&self) -> String {
        match self.due {
            Some(Due::After(ms)) => format!("+{ms}"),
            Some(Due::At(ms)) => format!("@{ms}"),
            None => String::new(),
        }
    }

    fn kind(&self) -> Kind {
        match (&self.unique, &self.due) {
            (Some(_), _) => Kind::Unique,
            (None, Some(_)) => Kind::Scheduled,
            (None, None) => Kind::Ready,
        }
    }
}

/// The call for a run of jobs of one kind.
fn invocation_for(
    keys: &crate::keys::Keys,
    jobs: &[EncodedJob],
) -> redis::ScriptInvocation<'static> {
    match jobs.first().map_or(Kind::Ready, EncodedJob::kind) {
        Kind::Ready => scripts::push::invocation_for(keys, jobs),
        Kind::Scheduled => scripts::schedule::invocation_for(keys, jobs),
        Kind::Unique => scripts::push_unique::invocation_for(keys, jobs),
    }
}

/// How deeply arrays and objects nest in `value` (a scalar: 0), looking no deeper than the
/// limit.
pub(crate) fn depth(value: &Value) -> usize {
    fn walk(value: &Value, level: usize) -> usize {
        if level >= crate::wire::MAX_DEPTH {
            return level;
        }
        match value {
            Value::Array(items) => items
                .iter()
                .map(|v| walk(v, level + 1))
                .max()
                .unwrap_or(level + 1),
            Value::Object(map) => map
                .values()
                .map(|v| walk(v, level + 1))
                .max()
                .unwrap_or(level + 1),
            _ => level,
        }
    }
    walk(value, 0)
}

#[cfg(test)]
mod tests {
    use super::depth;
    use serde_json::json;

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        let mut deep = json!(1);
        for _ in 0..500 {
            deep = json!([deep]);
        }
        assert_eq!(depth(&deep), 128, "it stops looking at the limit");
    }
}
