//! Where Redis is and how to talk to it: one server, a Redis Cluster, or a master found
//! through Sentinel. Everything above this file sees a [`Conn`] (commands and scripts), a
//! blocking connection (inbox pops) and a [`Subscription`] (wake-ups), whichever it is.
//!
//! The URL says which:
//! - `redis://[user:password@]host[:port][/db]` (`rediss://` for TLS): one server;
//! - `redis+cluster://[user:password@]host:port[,host:port...]` (`rediss+cluster://`): a
//!   cluster, found from any of the seed nodes; a queue's keys all live in its `{queue}` slot;
//! - `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`
//!   (`rediss+sentinel://`): the master the sentinels name for `service`, found again after
//!   a failover. The credentials are the data nodes'; the sentinels are asked without.
//!
//! Wake-ups use sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7) everywhere, so on a cluster
//! they stay on the queue's shard instead of being broadcast to every node.

mod inboxes;
mod sentinel;
mod shared;
mod url;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, Pipeline, ProtocolVersion, PushInfo, PushKind, RedisFuture,
    RedisResult, TlsCertificates, TlsMode, Value,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::options::Options;
pub(crate) use inboxes::{answered_in_time, inbox_pop, InboxRoute, Popped, INBOX_POP_WAIT_SECS};
use sentinel::{master_moved, Sentinel};
pub(crate) use shared::Shared;
use url::Target;

/// How long one command may take before the call fails with [`Error::Unavailable`].
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries of one cluster request (redirections, reconnections) before it fails.
const CLUSTER_RETRIES: u32 = 4;

/// How to reach Redis. Cheap to clone.
#[derive(Clone)]
pub(crate) enum Backend {
    Single(Box<redis::Client>),
    Cluster(Arc<ClusterClients>),
    Sentinel(Arc<Sentinel>),
}

pub(crate) struct ClusterClients {
    /// RESP2, for commands and scripts.
    commands: ClusterClient,
    /// RESP3, which a cluster subscription needs for its pushed messages.
    pushes: ClusterClient,
}

/// A connection for commands and scripts: multiplexed, cheap to clone, and self-healing (the
/// call that meets a broken connection fails; the next one reconnects).
#[derive(Clone)]
pub(crate) enum Conn {
    Managed(ConnectionManager),
    Plain(MultiplexedConnection),
    /// A connection of its own to the master Sentinel named when it was made; it refuses
    /// further commands once the sentinels name another master.
    Pinned(MultiplexedConnection, watch::Receiver<u64>),
    Cluster(ClusterConnection),
    Sentinel(Arc<Sentinel>),
}

impl Backend {
    /// Reads the URL (and TLS CA) of `opts`; connects to nothing yet.
    pub fn new(opts: &Options) -> Result<Backend> {
        let bad_url = |reason: String| {
            Error::InvalidInput(format!(
                "bad Redis URL {}: {reason} (expected redis://[user:password@]host[:port][/db], \
                 redis+cluster://host:port[,host:port...] or \
                 redis+sentinel://host:port[,host:port...]/service; rediss… for TLS)",
                opts.redis_url_redacted()
            ))
        };
        let certificates = match &opts.tls_ca {
            None => None,
            Some(path) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(path).map_err(|e| {
                    Error::InvalidInput(format!(
                        "cannot read the TLS CA file {}: {e}",
                        path.display()
                    ))
                })?),
            }),
        };
        let url = opts.redis.as_str();
        match Target::parse(url).map_err(bad_url)? {
            Target::Single => Ok(Backend::Single(Box::new(
                single_client(url, certificates).map_err(|e| bad_url(e.to_string()))?,
            ))),
            Target::Cluster(nodes) => {
                let client = |protocol| {
                    let mut builder = ClusterClientBuilder::new(nodes.clone())
                        .use_protocol(protocol)
                        .connection_timeout(CONNECT_TIMEOUT)
                        .retries(CLUSTER_RETRIES)
                        .min_retry_wait(50)
                        .max_retry_wait(1000)
                        // Per attempt only (set per connection below): a blocking pop may
                        // wait as long as it was told to.
                        .overall_response_timeout(None);
                    if let Some(certificates) = certificates.clone() {
                        builder = builder.certs(certificates);
                    }
                    builder.build().map_err(|e| bad_url(e.to_string()))
                };
                Ok(Backend::Cluster(Arc::new(ClusterClients {
                    commands: client(ProtocolVersion::RESP2)?,
                    pushes: client(ProtocolVersion::RESP3)?,
                })))
            }
            Target::Sentinel {
                sentinels,
                service,
                node,
            } => {
                let mut builder =
                    SentinelClientBuilder::new(sentinels, &service, SentinelServerType::Master)
                        .map_err(|e| bad_url(e.to_string()))?
                        .set_client_to_redis_db(node.db());
                if let Some(user) = node.username() {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = node.password() {
                    builder = builder.set_client_to_redis_password(password);
                }
                if url.starts_with("rediss") {
                    builder = builder
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                    if let Some(certificates) = certificates {
                        builder = builder
                            .set_client_to_redis_certificates(certificates.clone())
                            .set_client_to_sentinel_certificates(certificates);
                    }
                }
                let client = builder.build().map_err(|e| bad_url(e.to_string()))?;
                Ok(Backend::Sentinel(Arc::new(Sentinel::new(service, client))))
            }
        }
    }

    /// The shared connection for commands and scripts.
    pub async fn connection(&self) -> Result<Conn> {
        Ok(match self {
            Backend::Single(client) => Conn::Managed(managed(client).await?),
            Backend::Cluster(clients) => Conn::Cluster(
                clients
                    .commands
                    .get_async_connection_with_config(
                        ClusterConfig::new()
                            .set_connection_timeout(CONNECT_TIMEOUT)
                            .set_response_timeout(RESPONSE_TIMEOUT),
                    )
                    .await?,
            ),
            Backend::Sentinel(sentinel) => {
                sentinel.find_master().await?;
                sentinel.watch();
                Conn::Sentinel(sentinel.clone())
            }
        })
    }

    /// A connection of its own for blocking pops: no response timeout, since a blocking pop
    /// waits as long as it was told to.
    pub async fn blocking_connection(&self) -> Result<Conn> {
        Ok(match self {
            Backend::Single(client) => Conn::Plain(plain(client, None).await?),
            Backend::Cluster(clients) => Conn::Cluster(
                clients
                    .commands
                    .get_async_connection_with_config(
                        ClusterConfig::new().set_connection_timeout(CONNECT_TIMEOUT),
                    )
                    .await?,
            ),
            Backend::Sentinel(sentinel) => {
                let moved = sentinel.moves.subscribe();
                Conn::Pinned(plain(&sentinel.master_client().await?, None).await?, moved)
            }
        })
    }

    /// Subscribes to the sharded channel `channel`.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        let (sender, messages) = unbounded_channel();
        let (client, moved) = match self {
            Backend::Cluster(clients) => {
                let mut con = clients
                    .pushes
                    .get_async_connection_with_config(
                        ClusterConfig::new()
                            .set_connection_timeout(CONNECT_TIMEOUT)
                            .set_response_timeout(RESPONSE_TIMEOUT)
                            .set_push_sender(sender),
                    )
                    .await?;
                con.ssubscribe(channel).await?;
                return Ok(Subscription {
                    _con: Conn::Cluster(con),
                    messages,
                    moved: None,
                    _leave: None,
                });
            }
            Backend::Single(client) => ((**client).clone(), None),
            Backend::Sentinel(sentinel) => {
                let moved = sentinel.moves.subscribe();
                (sentinel.master_client().await?, Some(moved))
            }
        };
        let mut con = plain(&resp3(&client)?, Some(sender)).await?;
        // With RESP3 the confirmation is a push that also answers the command.
        redis::cmd("SSUBSCRIBE")
            .arg(channel)
            .exec_async(&mut con)
            .await?;
        Ok(Subscription {
            _con: Conn::Plain(con),
            messages,
            moved,
            _leave: None,
        })
    }
}

/// Wake-ups from one sharded channel.
pub(crate) struct Subscription {
    /// Kept open for as long as the messages are wanted.
    _con: Conn,
    messages: UnboundedReceiver<PushInfo>,
    /// Through Sentinel: changes when the sentinels name another master.
    moved: Option<watch::Receiver<u64>>,
    /// On the connection for wake-ups that roles share: leaves the channel when dropped
    /// (declared last: dropped after `messages`, so the channel's route is seen closed).
    _leave: Option<shared::Leave>,
}

impl Subscription {
    /// Waits for the next message; `None` once the subscription is lost (reconnect then).
    pub async fn next(&mut self) -> Option<Wake> {
        let moved = async {
            match &mut self.moved {
                Some(moved) => {
                    let _ = moved.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            push = self.messages.recv() => push.and_then(Wake::from_push),
            () = moved => None,
        }
    }

    /// A message already received, if any; `None` also when the subscription was lost (the
    /// next `next` says so).
    pub fn try_next(&mut self) -> Option<Wake> {
        self.messages.try_recv().ok().and_then(Wake::from_push)
    }
}

/// A wake-up: the message published on the queue's channel (`docs/PROTOCOL.md`, "Keys").
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Jobs were scheduled sooner than the promoters knew (`scheduled`).
    Scheduled,
    /// Completed jobs' follow-ups wait for a mover (`children`).
    Children,
    /// Anything else: jobs or requests to pair (`pushed`, `free`, `requeued`, ...).
    Dispatch,
}

impl Wake {
    fn from_push(push: PushInfo) -> Option<Wake> {
        if push.kind == PushKind::Disconnection {
            return None;
        }
        // A message is [channel, payload].
        Some(match push.data.get(1) {
            Some(redis::Value::BulkString(b)) if b.as_slice() == b"scheduled" => Wake::Scheduled,
            Some(redis::Value::BulkString(b)) if b.as_slice() == b"children" => Wake::Children,
            _ => Wake::Dispatch,
        })
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Managed(c) => c.req_packed_command(cmd),
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Pinned(c, moved) => match moved.has_changed() {
                Ok(false) => c.req_packed_command(cmd),
                _ => Box::pin(async { Err(master_moved()) }),
            },
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => Box::pin(async move {
                let result = s.current().await?.req_packed_command(cmd).await;
                if let Err(e) = &result {
                    s.forget_master_after(e);
                }
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Pinned(c, moved) => match moved.has_changed() {
                Ok(false) => c.req_packed_commands(pipeline, offset, count),
                _ => Box::pin(async { Err(master_moved()) }),
            },
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(s) => Box::pin(async move {
                let result = s
                    .current()
                    .await?
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                if let Err(e) = &result {
                    s.forget_master_after(e);
                }
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Managed(c) => c.get_db(),
            Conn::Plain(c) | Conn::Pinned(c, _) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(_) => 0,
        }
    }
}

pub(crate) async fn managed(client: &redis::Client) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    Ok(client.get_connection_manager_with_config(config).await?)
}

/// A multiplexed connection; `pushes` receives pushed messages (RESP3 clients only).
async fn plain(
    client: &redis::Client,
    pushes: Option<tokio::sync::mpsc::UnboundedSender<PushInfo>>,
) -> Result<MultiplexedConnection> {
    let mut config = AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT));
    config = match pushes {
        // Only the subscription command itself is answered; no timeout waits on messages.
        Some(sender) => config
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_push_sender(sender),
        None => config.set_response_timeout(None),
    };
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// The same server as `client`, spoken to in RESP3, whose pushes carry pub/sub messages.
fn resp3(client: &redis::Client) -> Result<redis::Client> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Ok(redis::Client::open(info.set_redis_settings(settings))?)
}

fn single_client(url: &str, certificates: Option<TlsCertificates>) -> RedisResult<redis::Client> {
    match certificates {
        None => redis::Client::open(url),
        Some(certificates) => redis::Client::build_with_tls(url, certificates),
    }
}

/// A lock of state that a panic cannot leave half-changed (each holder changes it in one
/// step), so a poisoned lock is taken as it is.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
