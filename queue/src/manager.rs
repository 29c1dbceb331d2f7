//! The manager: the original design's face. `Manager::new` creates or joins the queue and,
//! unless it is producer-only (`Options::dispatch(false)`), starts listening for free workers
//! at once. It is the four roles over one connection: a [`Producer`], a [`Dispatcher`], an
//! [`Inspector`] and an [`Admin`]; its methods are theirs.

use serde_json::Value;

use crate::admin::Admin;
use crate::dispatcher::Dispatcher;
use crate::error::Result;
use crate::inspector::{DeadJob, Inspector, QueueStats};
use crate::job::JobId;
use crate::options::Options;
use crate::producer::{EncodedJob, JobOptions, Producer};
use crate::queue::Queue;

/// Pushes jobs into one queue and dispatches them to free workers.
pub struct Manager {
    producer: Producer,
    inspector: Inspector,
    admin: Admin,
    dispatcher: Option<Dispatcher>,
}

impl Manager {
    /// Connects to Redis, creates the queue or joins it, and (unless `opts.dispatch(false)`)
    /// starts listening for free workers at once.
    pub async fn new(queue: &str, opts: Options) -> Result<Manager> {
        let queue = Queue::open(queue, opts).await?;
        let dispatcher = match queue.opts.dispatch {
            true => Some(Dispatcher::start(queue.clone()).await),
            false => None,
        };
        Ok(Manager {
            producer: Producer::from_queue(queue.clone()),
            inspector: Inspector::from_queue(queue.clone()),
            admin: Admin::from_queue(queue),
            dispatcher,
        })
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        self.producer.queue()
    }

    /// The producer role of this manager.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The inspector role of this manager.
    pub fn inspector(&self) -> &Inspector {
        &self.inspector
    }

    /// The admin role of this manager.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// Adds a job at the tail of the queue.
    pub async fn push(&self, data: Value) -> Result<JobId> {
        self.producer.push(data).await
    }

    /// Adds a job with its own settings.
    pub async fn push_with(&self, data: Value, options: JobOptions) -> Result<JobId> {
        self.producer.push_with(data, options).await
    }

    /// Adds many jobs, in order; one bad job fails the call with nothing pushed.
    pub async fn push_many(&self, jobs: impl IntoIterator<Item = Value>) -> Result<Vec<JobId>> {
        self.producer.push_many(jobs).await
    }

    /// Pushes jobs checked and encoded by [`Manager::encode`].
    pub async fn push_encoded(&self, jobs: &[EncodedJob]) -> Result<Vec<JobId>> {
        self.producer.push_encoded(jobs).await
    }

    /// Checks a job against the queue's limits and encodes it.
    pub fn encode(&self, data: &Value, options: &JobOptions) -> Result<EncodedJob> {
        self.producer.encode(data, options)
    }

    /// Like [`Manager::encode`], for JSON text already known to be valid.
    pub fn encode_json(&self, json: String, options: &JobOptions) -> Result<EncodedJob> {
        self.producer.encode_json(json, options)
    }

    /// Counts of the queue.
    pub async fn stats(&self) -> Result<QueueStats> {
        self.inspector.stats().await
    }

    /// The result a completed job left, while it is kept.
    pub async fn result(&self, id: &JobId) -> Result<Option<Value>> {
        self.inspector.result(id).await
    }

    /// The last error of a job, while the job is not completed.
    pub async fn last_error(&self, id: &JobId) -> Result<Option<String>> {
        self.inspector.last_error(id).await
    }

    /// Up to `limit` dead jobs, newest first.
    pub async fn dead_jobs(&self, limit: usize) -> Result<Vec<DeadJob>> {
        self.inspector.dead_jobs(limit).await
    }

    /// Puts dead jobs back at the tail of the queue: the one with this id, or all.
    pub async fn retry_dead(&self, id: Option<&JobId>) -> Result<u64> {
        self.admin.retry_dead(id).await
    }

    /// Deletes dead jobs for good: the one with this id, or all.
    pub async fn purge_dead(&self, id: Option<&JobId>) -> Result<u64> {
        self.admin.purge_dead(id).await
    }

    /// Stops dispatching and reaping. Jobs and requests stay in Redis for other managers.
    pub async fn shutdown(&self) -> Result<()> {
        if let Some(dispatcher) = &self.dispatcher {
            dispatcher.shutdown().await;
        }
        Ok(())
    }
}
