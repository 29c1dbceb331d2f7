//! A master found through Sentinel: asked of the sentinels at connect, and again when they
//! announce a new one (`+switch-master`) or when the node stops acting as a master.

use std::sync::{Mutex, Weak};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::sentinel::SentinelClient;
use redis::RedisResult;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::backend::managed;
use crate::backoff::Backoff;
use crate::error::{Error, Result};

pub(crate) struct Sentinel {
    service: String,
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<ConnectionManager>>,
    /// Started with the first connection; the watcher ends when the last handle on this
    /// sentinel is dropped (this guard cancels it).
    watcher: Mutex<Option<DropGuard>>,
    /// Counts the masters forgotten, so that connections of their own (blocking pops, the
    /// subscription) let go of a master that no longer is one.
    pub moves: watch::Sender<u64>,
}

impl Sentinel {
    pub fn new(service: String, client: SentinelClient) -> Sentinel {
        Sentinel {
            service,
            client: tokio::sync::Mutex::new(client),
            current: Mutex::new(None),
            watcher: Mutex::new(None),
            moves: watch::channel(0).0,
        }
    }

    /// Asks the sentinels for the master.
    pub async fn master_client(&self) -> Result<redis::Client> {
        Ok(self.client.lock().await.async_get_client().await?)
    }

    /// Connects to the master the sentinels name now.
    pub async fn find_master(&self) -> Result<ConnectionManager> {
        let con = managed(&self.master_client().await?).await?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(con.clone());
        Ok(con)
    }

    pub async fn current(&self) -> RedisResult<ConnectionManager> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match current {
            Some(con) => Ok(con),
            None => self.find_master().await.map_err(into_redis_error),
        }
    }

    fn forget_master(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.moves.send_modify(|n| *n += 1);
    }

    /// After an error that says this is no longer the master (it is gone, or it was turned
    /// into a replica), the next call asks the sentinels again.
    pub fn forget_master_after(&self, error: &redis::RedisError) {
        let read_only = error.code() == Some("READONLY");
        if read_only
            || error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
        {
            self.forget_master();
        }
    }

    /// Starts the watcher of `+switch-master` once.
    pub fn watch(self: &std::sync::Arc<Self>) {
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if watcher.is_none() {
            let token = CancellationToken::new();
            tokio::spawn(watch_switches(
                std::sync::Arc::downgrade(self),
                token.clone(),
            ));
            *watcher = Some(token.drop_guard());
        }
    }
}

/// Forgets the master as soon as the sentinels announce a new one (`+switch-master`), rather
/// than when the old one refuses a write: a demoted master may accept writes for seconds
/// before the sentinels reconfigure it, and whatever it takes then is lost.
async fn watch_switches(sentinel: Weak<Sentinel>, stop: CancellationToken) {
    let mut first = true;
    let mut backoff = Backoff::new();
    while !stop.is_cancelled() {
        let Some(strong) = sentinel.upgrade() else {
            return;
        };
        let service = strong.service.clone();
        let subscribed = async {
            let client = strong
                .client
                .lock()
                .await
                .async_get_sentinel_client()
                .await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            RedisResult::Ok(pubsub.into_on_message())
        }
        .await;
        let mut messages = match subscribed {
            Ok(messages) => messages,
            Err(e) => {
                drop(strong);
                let wait = backoff.next_wait();
                tracing::warn!("cannot listen to the sentinels: {e}; retrying in {wait:?}");
                crate::tasks::sleep_unless(&stop, wait).await;
                continue;
            }
        };
        backoff.reset();
        // A switch may have been missed while not listening.
        if !first {
            strong.forget_master();
        }
        first = false;
        drop(strong);
        loop {
            let message = tokio::select! {
                _ = stop.cancelled() => return,
                message = messages.next() => message,
            };
            let Some(message) = message else { break };
            // "<service> <old ip> <old port> <new ip> <new port>"
            let payload: String = message.get_payload().unwrap_or_default();
            if payload.split(' ').next() == Some(service.as_str()) {
                let Some(strong) = sentinel.upgrade() else {
                    return;
                };
                tracing::info!("the sentinels moved the master: {payload}");
                strong.forget_master();
            }
        }
    }
}

pub(crate) fn master_moved() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Io,
        "the sentinels named another master; connect again",
    ))
}

fn into_redis_error(e: Error) -> redis::RedisError {
    match e {
        Error::Unavailable(e) | Error::Auth(e) | Error::Permission(e) | Error::Redis(e) => e,
        other => redis::RedisError::from((
            redis::ErrorKind::Io,
            "cannot reach the master",
            other.to_string(),
        )),
    }
}
