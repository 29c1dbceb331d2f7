//! Looking into a queue: counts, results of completed jobs, and the dead list.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::queue::error::{Error, Result};
use crate::queue::job::{JobId, Token};
use crate::queue::manager::Manager;
use crate::queue::scripts;

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

impl Manager {
    /// Counts of the queue, read in one round trip.
    pub async fn stats(&self) -> Result<QueueStats> {
        let k = &self.inner().keys;
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
            .query_async(&mut self.inner().con.clone())
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
            .arg(&self.inner().keys.results)
            .arg(id.as_str())
            .query_async(&mut self.inner().con.clone())
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| Error::Corrupt(format!("result of job {id}: {e}")))
        })
        .transpose()
    }

    /// The last error of a job (failed, retried or dead), while the job is not completed.
    pub async fn last_error(&self, id: &JobId) -> Result<Option<String>> {
        Ok(redis::cmd("HGET")
            .arg(&self.inner().keys.errors)
            .arg(id.as_str())
            .query_async(&mut self.inner().con.clone())
            .await?)
    }

    /// Up to `limit` dead jobs, newest first.
    pub async fn dead_jobs(&self, limit: usize) -> Result<Vec<DeadJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let k = &self.inner().keys;
        let mut con = self.inner().con.clone();
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
            .map(|t| Token::parse(t))
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

    /// Puts dead jobs back at the tail of the queue with their attempts started again: the one
    /// with this id, or all. Returns how many.
    pub async fn retry_dead(&self, id: Option<&JobId>) -> Result<u64> {
        self.dead_op("retry", id).await
    }

    /// Deletes dead jobs for good: the one with this id, or all. Returns how many.
    pub async fn purge_dead(&self, id: Option<&JobId>) -> Result<u64> {
        self.dead_op("purge", id).await
    }

    async fn dead_op(&self, op: &str, id: Option<&JobId>) -> Result<u64> {
        let k = &self.inner().keys;
        Ok(scripts::DEAD
            .key(&k.dead)
            .key(&k.waiting)
            .key(&k.jobs)
            .key(&k.errors)
            .key(&k.requests)
            .arg(op)
            .arg(id.map(JobId::as_str).unwrap_or(""))
            .arg(&k.wake)
            .invoke_async(&mut self.inner().con.clone())
            .await?)
    }
}

/// The names of all queues under the prefix of `opts` (those ever opened).
pub async fn queue_names(opts: &crate::Options) -> Result<Vec<String>> {
    let mut con = crate::queue::backend::Backend::new(opts)?
        .connection()
        .await?;
    let mut names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{}:queues", opts.prefix))
        .query_async(&mut con)
        .await?;
    names.sort();
    Ok(names)
}
