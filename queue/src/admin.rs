//! The admin role: what an operator changes in a queue. Its settings (one source, the
//! queue's meta: see `settings.rs`), and its dead list (retry or purge). It never creates a
//! queue by mistake: opening one that does not exist is an error.

use crate::error::Result;
use crate::job::JobId;
use crate::options::Options;
use crate::queue::Queue;
use crate::scripts;
use crate::settings::{QueueSettings, SettingsChange};

/// Changes one queue.
#[derive(Clone)]
pub struct Admin {
    queue: Queue,
}

impl Admin {
    /// Connects to Redis and opens the queue, which must exist ([`crate::Error::NoSuchQueue`]
    /// otherwise).
    pub async fn new(queue: &str, opts: Options) -> Result<Admin> {
        let mut queue = Queue::open_existing(queue, opts).await?;
        scripts::load_all(&mut queue.con).await?;
        Ok(Admin { queue })
    }

    pub(crate) fn from_queue(queue: Queue) -> Admin {
        Admin { queue }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue.keys.queue
    }

    /// The queue's settings now.
    pub async fn settings(&self) -> Result<QueueSettings> {
        self.configure(&SettingsChange::default()).await
    }

    /// Changes the settings given in `change` (the others stay) and returns the queue's
    /// settings after it. Refused, with nothing changed, when the result would not work
    /// (a lease under 100 ms, a backoff over its cap, ...). Every host and client uses the new
    /// values at its next call.
    pub async fn configure(&self, change: &SettingsChange) -> Result<QueueSettings> {
        if !change.is_empty() {
            let current = QueueSettings::from_fields(
                &scripts::configure::call(&self.queue, &SettingsChange::default()).await?,
            )?;
            current.with(change).validate()?;
        }
        QueueSettings::from_fields(&scripts::configure::call(&self.queue, change).await?)
    }

    /// Puts dead jobs back at the tail of the queue with their attempts started again: the one
    /// with this id, or all. Returns how many.
    pub async fn retry_dead(&self, id: Option<&JobId>) -> Result<u64> {
        scripts::dead::call(&self.queue, scripts::dead::Action::Retry, id).await
    }

    /// Deletes dead jobs for good: the one with this id, or all. Returns how many.
    pub async fn purge_dead(&self, id: Option<&JobId>) -> Result<u64> {
        scripts::dead::call(&self.queue, scripts::dead::Action::Purge, id).await
    }
}
