//! The producer role: pushes jobs, and nothing else. It runs no background task; each push
//! is one script call (many jobs per call for `push_many`), checked against the queue's size
//! limit before anything is written.

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
}

/// Pushes jobs into one queue.
#[derive(Clone)]
pub struct Producer {
    queue: Queue,
}

/// A job checked against the queue's limits, ready to push.
#[derive(Clone, Debug)]
pub struct EncodedJob {
    pub(crate) json: String,
    pub(crate) max_attempts: Option<u32>,
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

impl Producer {
    /// Connects to Redis and creates the queue or joins it.
    pub async fn new(queue: &str, opts: Options) -> Result<Producer> {
        Ok(Producer::from_queue(Queue::open(queue, opts).await?))
    }

    pub(crate) fn from_queue(queue: Queue) -> Producer {
        Producer { queue }
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
        let job = self.encode(&data, &options)?;
        let first: u64 =
            scripts::push::invocation_for(&self.queue.keys, std::slice::from_ref(&job))
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

    /// Pushes jobs already checked and encoded by [`Producer::encode`] (the CLI's streaming
    /// push checks each line as it reads it).
    pub async fn push_encoded(&self, jobs: &[EncodedJob]) -> Result<Vec<JobId>> {
        let mut ids = Vec::with_capacity(jobs.len());
        let mut con = self.queue.con.clone();
        for group in jobs.chunks(PUSH_CHUNK * CHUNKS_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            // Loaded in the same round trip, so a Redis that restarted still knows the script.
            pipe.load_script(&scripts::push::SCRIPT).ignore();
            let chunks: Vec<&[EncodedJob]> = group.chunks(PUSH_CHUNK).collect();
            for chunk in &chunks {
                pipe.invoke_script(&scripts::push::invocation_for(&self.queue.keys, chunk));
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

    /// The queue's size limit, in bytes of JSON.
    pub fn max_job_bytes(&self) -> usize {
        self.queue.settings.max_job_bytes as usize
    }
}

/// How deeply arrays and objects nest in `value` (a scalar: 0), looking no deeper than the
/// limit.
fn depth(value: &Value) -> usize {
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
