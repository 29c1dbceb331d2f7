//! The inspector role: looks into a queue (counts, a job by id, results of completed jobs,
//! the dead list) and never writes to Redis. Opening one creates nothing: a queue that does
//! not exist is an error, so `sque-host stats --queue typo` changes nothing, and an ACL user
//! with read-only rights can use it (`docs/PROTOCOL.md`).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::job::JobId;
use crate::options::Options;
use crate::queue::Queue;
use crate::settings::QueueSettings;
use crate::wire::Token;

/// Reads one queue.
#[derive(Clone)]
pub struct Inspector {
    queue: Queue,
}

/// A snapshot of one queue.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: String,
    /// Jobs waiting to be dispatched.
    pub waiting: u64,
    /// Jobs dispatched and not yet completed or failed (leased).
    pub in_flight: u64,
    /// Jobs waiting out a retry backoff.
    pub delayed: u64,
    /// Jobs in the dead list.
    pub dead: u64,
    /// Workers whose heartbeat is current.
    pub workers: u64,
    /// Open "I am free" requests.
    pub requests: u64,
    /// Completed jobs whose results are kept.
    pub results: u64,
    /// Counters since the queue was created.
    pub pushed: u64,
    pub dispatched: u64,
    pub completed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub expired: u64,
}

/// A job in the dead list.
#[derive(Clone, Debug, Serialize)]
pub struct DeadJob {
    pub id: JobId,
    pub data: Value,
    /// The attempts it had made.
    pub attempts: u32,
    /// The last error it failed with.
    pub error: Option<String>,
}

/// What the queue holds of one job.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct JobInfo {
    pub id: JobId,
    /// The job's data while it is not completed (or purged).
    pub data: Option<Value>,
    /// The result of a completed job, while it is kept.
    pub result: Option<Value>,
    /// The last error of a job that failed, was retried or is dead.
    pub last_error: Option<String>,
}

impl Inspector {
    /// Connects to Redis and reads the queue's meta; a queue that does not exist is
    /// [`Error::NoSuchQueue`]. Writes nothing.
    pub async fn new(queue: &str, opts: Options) -> Result<Inspector> {
        Ok(Inspector {
            queue: Queue::open_existing(queue, opts).await?,
        })
    }

    pub(crate) fn from_queue(queue: Queue) -> Inspector {
        Inspector { queue }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue.keys.queue
    }

    /// The queue's settings, as they were when this inspector was made.
    pub fn settings(&self) -> &QueueSettings {
        &self.queue.settings
    }

    /// Counts of the queue, read in one round trip.
    pub async fn stats(&self) -> Result<QueueStats> {
        let k = &self.queue.keys;
        let (waiting, in_flight, delayed, dead, workers, requests, results, counters): (
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            u64,
            HashMap<String, u64>,
        ) = redis::pipe()
            .llen(&k.waiting)
            .zcard(&k.leases)
            .zcard(&k.delayed)
            .llen(&k.dead)
            // The reaper drops workers whose heartbeat ran out, on Redis's clock.
            .zcard(&k.workers)
            .llen(&k.requests)
            .zcard(&k.results_at)
            .hgetall(&k.stats)
            .query_async(&mut self.queue.con.clone())
            .await?;
        let c = |name: &str| counters.get(name).copied().unwrap_or(0);
        Ok(QueueStats {
            queue: k.queue.clone(),
            waiting,
            in_flight,
            delayed,
            dead,
            workers,
            requests,
            results,
            pushed: c("pushed"),
            dispatched: c("dispatched"),
            completed: c("completed"),
            retried: c("retried"),
            dead_lettered: c("dead"),
            expired: c("expired"),
        })
    }

    /// The result a completed job left, while it is kept (see `Options::result_ttl`).
    /// `None` when the job left no result, is not complete, or its result was dropped.
    pub async fn result(&self, id: &JobId) -> Result<Option<Value>> {
        let text: Option<String> = redis::cmd("HGET")
            .arg(&self.queue.keys.results)
            .arg(id.as_str())
            .query_async(&mut self.queue.con.clone())
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| Error::Corrupt(format!("result of job {id}: {e}")))
        })
        .transpose()
    }

    /// The last error of a job (failed, retried or dead), while the job is not completed.
    pub async fn last_error(&self, id: &JobId) -> Result<Option<String>> {
        Ok(redis::cmd("HGET")
            .arg(&self.queue.keys.errors)
            .arg(id.as_str())
            .query_async(&mut self.queue.con.clone())
            .await?)
    }

    /// What the queue holds of the job `id`, read in one round trip; `None` when it holds
    /// nothing (an unknown id, or a completed job whose result was dropped or never given).
    pub async fn job(&self, id: &JobId) -> Result<Option<JobInfo>> {
        let k = &self.queue.keys;
        let (data, result, last_error): (Option<String>, Option<String>, Option<String>) =
            redis::pipe()
                .hget(&k.jobs, id.as_str())
                .hget(&k.results, id.as_str())
                .hget(&k.errors, id.as_str())
                .query_async(&mut self.queue.con.clone())
                .await?;
        if data.is_none() && result.is_none() && last_error.is_none() {
            return Ok(None);
        }
        let json = |what: &str, text: Option<String>| {
            text.map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| Error::Corrupt(format!("{what} of job {id}: {e}")))
            })
            .transpose()
        };
        Ok(Some(JobInfo {
            id: id.clone(),
            data: json("data", data)?,
            result: json("result", result)?,
            last_error,
        }))
    }

    /// Up to `limit` dead jobs, newest first.
    pub async fn dead_jobs(&self, limit: usize) -> Result<Vec<DeadJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let k = &self.queue.keys;
        let mut con = self.queue.con.clone();
        let tokens: Vec<String> = redis::cmd("LRANGE")
            .arg(&k.dead)
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut con)
            .await?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let tokens = tokens
            .iter()
            .map(|t| Token::parse(t).map_err(Error::Corrupt))
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<&str> = tokens.iter().map(|t| t.id.as_str()).collect();
        let (datas, errors): (Vec<Option<String>>, Vec<Option<String>>) = redis::pipe()
            .cmd("HMGET")
            .arg(&k.jobs)
            .arg(&ids)
            .cmd("HMGET")
            .arg(&k.errors)
            .arg(&ids)
            .query_async(&mut con)
            .await?;
        tokens
            .into_iter()
            .zip(datas.into_iter().zip(errors))
            .map(|(token, (data, error))| {
                let data = match data {
                    Some(text) => serde_json::from_str(&text).map_err(|e| {
                        Error::Corrupt(format!("data of dead job {}: {e}", token.id))
                    })?,
                    None => Value::Null,
                };
                Ok(DeadJob {
                    id: token.id,
                    data,
                    attempts: token.attempt,
                    error,
                })
            })
            .collect()
    }
}

/// The names of all queues under the prefix of `opts` (those ever opened).
pub async fn queue_names(opts: &Options) -> Result<Vec<String>> {
    let mut con = crate::backend::Backend::new(opts)?.connection().await?;
    let mut names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{}:queues", opts.prefix))
        .query_async(&mut con)
        .await?;
    names.sort();
    Ok(names)
}
