//! The manager: stores pushed jobs in Redis and, unless it is producer-only, runs the
//! dispatcher (hands waiting jobs to free workers) and the reaper (brings back jobs whose
//! lease ran out). Any number of managers may run on one queue: every step they take is one
//! atomic script, so no two of them ever hand out the same job.

use serde_json::Value;

use crate::queue::connection::Queue;
use crate::queue::duty::Duty;
use crate::queue::error::{Error, Result};
use crate::queue::job::JobId;
use crate::queue::options::Options;
use crate::queue::{dispatcher, reaper, scripts};

/// Jobs per `push` script call, and calls per pipeline, for [`Manager::push_many`].
const PUSH_CHUNK: usize = 1000;
const CHUNKS_PER_PIPELINE: usize = 16;

/// Settings of one job, where they differ from the queue's.
#[derive(Clone, Debug, Default)]
pub struct JobOptions {
    /// How many attempts this job gets; the queue's default when `None`.
    pub max_attempts: Option<u32>,
}

/// Pushes jobs into one queue and dispatches them to free workers.
pub struct Manager {
    queue: Queue,
    duties: Vec<Duty>,
}

impl Manager {
    /// Connects to Redis, creates the queue or joins it, and (unless `opts.dispatch(false)`)
    /// starts listening for free workers at once.
    pub async fn new(queue: &str, opts: Options) -> Result<Manager> {
        let queue = Queue::open(queue, opts).await?;
        let mut duties = Vec::new();
        if queue.opts.dispatch {
            // The dispatching managers' settings, last one wins: the queue's default attempts,
            // and the lease and inbox lifetime with which `push.lua` serves waiting workers.
            let _: () = redis::cmd("HSET")
                .arg(&queue.keys.meta)
                .arg("max_attempts")
                .arg(queue.opts.max_attempts)
                .arg("lease")
                .arg(queue.opts.lease.as_millis() as u64)
                .arg("inbox_ttl")
                .arg(queue.opts.inbox_ttl().as_millis() as u64)
                .query_async(&mut queue.con.clone())
                .await?;
            warn_unless_noeviction(&queue).await;
            duties.push(dispatcher::start(queue.clone()));
            duties.push(reaper::start(queue.clone()));
        }
        Ok(Manager { queue, duties })
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue.keys.queue
    }

    pub(crate) fn inner(&self) -> &Queue {
        &self.queue
    }

    /// Adds a job at the tail of the queue.
    pub async fn push(&self, data: Value) -> Result<JobId> {
        self.push_with(data, JobOptions::default()).await
    }

    /// Adds a job with its own settings.
    pub async fn push_with(&self, data: Value, options: JobOptions) -> Result<JobId> {
        let job = self.encode(&data, &options)?;
        let first: u64 = self
            .push_invocation(std::slice::from_ref(&job))
            .invoke_async(&mut self.queue.con.clone())
            .await?;
        Ok(JobId::from(first.to_string()))
    }

    /// Adds many jobs, in order, pipelined in chunks. Every job is checked before anything is
    /// written: one bad job fails the call with nothing pushed. Returns the ids in order.
    pub async fn push_many(&self, jobs: impl IntoIterator<Item = Value>) -> Result<Vec<JobId>> {
        let encoded = jobs
            .into_iter()
            .map(|data| self.encode(&data, &JobOptions::default()))
            .collect::<Result<Vec<_>>>()?;
        self.push_encoded(&encoded).await
    }

    /// Pushes jobs already checked and encoded by [`Manager::encode`] (the CLI's streaming
    /// push checks each line as it reads it).
    pub async fn push_encoded(&self, jobs: &[EncodedJob]) -> Result<Vec<JobId>> {
        let mut ids = Vec::with_capacity(jobs.len());
        let mut con = self.queue.con.clone();
        for group in jobs.chunks(PUSH_CHUNK * CHUNKS_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            // Loaded in the same round trip, so a Redis that restarted still knows the script.
            pipe.load_script(&scripts::PUSH).ignore();
            let chunks: Vec<&[EncodedJob]> = group.chunks(PUSH_CHUNK).collect();
            for chunk in &chunks {
                pipe.invoke_script(&self.push_invocation(chunk));
            }
            let firsts: Vec<u64> = pipe.query_async(&mut con).await?;
            for (chunk, first) in chunks.iter().zip(firsts) {
                ids.extend(
                    (first..first + chunk.len() as u64).map(|id| JobId::from(id.to_string())),
                );
            }
        }
        Ok(ids)
    }

    /// Checks a job against the queue's limits and encodes it for [`Manager::push_encoded`].
    pub fn encode(&self, data: &Value, options: &JobOptions) -> Result<EncodedJob> {
        let json = serde_json::to_string(data).expect("a serde_json::Value always serializes");
        self.encode_json(json, options)
    }

    /// Like [`Manager::encode`], for JSON text already known to be valid.
    pub fn encode_json(&self, json: String, options: &JobOptions) -> Result<EncodedJob> {
        let limit = self.queue.opts.max_job_bytes;
        if json.len() > limit {
            return Err(Error::JobTooLarge {
                size: json.len(),
                limit,
            });
        }
        if options.max_attempts == Some(0) {
            return Err(Error::InvalidInput(
                "max_attempts must be at least 1".into(),
            ));
        }
        Ok(EncodedJob {
            json,
            max_attempts: options.max_attempts,
        })
    }

    fn push_invocation(&self, jobs: &[EncodedJob]) -> redis::ScriptInvocation<'static> {
        let k = &self.queue.keys;
        let mut inv = scripts::PUSH.prepare_invoke();
        inv.key(&k.waiting)
            .key(&k.jobs)
            .key(&k.meta)
            .key(&k.stats)
            .key(&k.requests)
            .key(&k.leases)
            .key(&k.workers)
            .arg(&k.wake);
        for job in jobs {
            inv.arg(&job.json);
            match job.max_attempts {
                Some(n) => inv.arg(n),
                None => inv.arg(""),
            };
        }
        inv
    }

    /// Stops dispatching and reaping. Jobs and requests stay in Redis for other managers.
    pub async fn shutdown(mut self) -> Result<()> {
        for duty in self.duties.drain(..) {
            duty.shutdown().await;
        }
        Ok(())
    }
}

/// A job checked against the queue's limits, ready to push.
#[derive(Clone, Debug)]
pub struct EncodedJob {
    json: String,
    max_attempts: Option<u32>,
}

impl EncodedJob {
    /// Bytes of JSON.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

/// With any eviction policy but `noeviction`, a Redis under memory pressure silently deletes
/// keys, and with them jobs. Say so loudly; an ACL that denies CONFIG is not an error.
async fn warn_unless_noeviction(queue: &Queue) {
    let policy: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut queue.con.clone())
        .await;
    if let Ok(pair) = policy {
        if let Some(policy) = pair.get(1).filter(|p| p.as_str() != "noeviction") {
            tracing::warn!(
                policy = %policy,
                "Redis maxmemory-policy is {policy:?}, not \"noeviction\": under memory pressure Redis will silently delete jobs. Set `maxmemory-policy noeviction`."
            );
        }
    }
}
