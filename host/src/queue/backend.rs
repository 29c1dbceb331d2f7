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

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline,
    ProtocolVersion, PushInfo, PushKind, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::watch;

use crate::queue::duty::{Backoff, Duty, Shutdown};
use crate::queue::error::{Error, Result};
use crate::queue::options::Options;

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
                Ok(Backend::Sentinel(Arc::new(Sentinel {
                    service,
                    client: tokio::sync::Mutex::new(client),
                    current: Mutex::new(None),
                    watcher: OnceLock::new(),
                    moves: watch::channel(0).0,
                })))
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
                sentinel.watcher.get_or_init(|| {
                    let weak = Arc::downgrade(sentinel);
                    Duty::start("sentinel watcher", move |shutdown| {
                        watch_switches(weak, shutdown)
                    })
                });
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
                });
            }
            Backend::Single(client) => ((**client).clone(), None),
            Backend::Sentinel(sentinel) => {
                let moved = sentinel.moves.subscribe();
                (sentinel.master_client().await?, Some(moved))
            }
        };
        // The same server, spoken to in RESP3, whose pushes carry the messages.
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))?;
        let mut con = plain(&client, Some(sender)).await?;
        // With RESP3 the confirmation is a push that also answers the command.
        redis::cmd("SSUBSCRIBE")
            .arg(channel)
            .exec_async(&mut con)
            .await?;
        Ok(Subscription {
            _con: Conn::Plain(con),
            messages,
            moved,
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
}

impl Subscription {
    /// Waits for the next message; false once the subscription is lost (reconnect then).
    pub async fn next(&mut self) -> bool {
        let moved = async {
            match &mut self.moved {
                Some(moved) => {
                    let _ = moved.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            push = self.messages.recv() => push.is_some_and(|p| p.kind != PushKind::Disconnection),
            () = moved => false,
        }
    }

    /// Takes a message already received, if any, without waiting.
    pub fn try_next(&mut self) -> bool {
        self.messages
            .try_recv()
            .is_ok_and(|push| push.kind != PushKind::Disconnection)
    }
}

/// A master found through Sentinel, found again when the sentinels announce a new one or
/// when it stops acting as one.
pub(crate) struct Sentinel {
    service: String,
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<ConnectionManager>>,
    /// Listens for `+switch-master`; stops when the last connection is dropped.
    watcher: OnceLock<Duty>,
    /// Counts the masters forgotten, so that connections of their own (blocking pops, the
    /// subscription) let go of a master that no longer is one.
    moves: watch::Sender<u64>,
}

impl Sentinel {
    /// Asks the sentinels for the master.
    async fn master_client(&self) -> Result<redis::Client> {
        Ok(self.client.lock().await.async_get_client().await?)
    }

    /// Connects to the master the sentinels name now.
    async fn find_master(&self) -> Result<ConnectionManager> {
        let con = managed(&self.master_client().await?).await?;
        *self.current.lock().expect("not poisoned") = Some(con.clone());
        Ok(con)
    }

    async fn current(&self) -> RedisResult<ConnectionManager> {
        let current = self.current.lock().expect("not poisoned").clone();
        match current {
            Some(con) => Ok(con),
            None => self.find_master().await.map_err(into_redis_error),
        }
    }

    fn forget_master(&self) {
        *self.current.lock().expect("not poisoned") = None;
        self.moves.send_modify(|n| *n += 1);
    }

    /// After an error that says this is no longer the master (it is gone, or it was turned
    /// into a replica), the next call asks the sentinels again.
    fn forget_master_after(&self, error: &redis::RedisError) {
        let read_only = error.code() == Some("READONLY");
        if read_only
            || error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
        {
            self.forget_master();
        }
    }
}

/// Forgets the master as soon as the sentinels announce a new one (`+switch-master`), rather
/// than when the old one refuses a write: a demoted master may accept writes for seconds
/// before the sentinels reconfigure it, and whatever it takes then is lost.
async fn watch_switches(sentinel: Weak<Sentinel>, mut shutdown: Shutdown) {
    let mut first = true;
    let mut backoff = Backoff::new();
    while !shutdown.is_set() {
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
                let wait = backoff.next();
                tracing::warn!("cannot listen to the sentinels: {e}; retrying in {wait:?}");
                shutdown.sleep(wait).await;
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
                _ = shutdown.wait() => return,
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

fn master_moved() -> redis::RedisError {
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

async fn managed(client: &redis::Client) -> Result<ConnectionManager> {
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

fn single_client(url: &str, certificates: Option<TlsCertificates>) -> RedisResult<redis::Client> {
    match certificates {
        None => redis::Client::open(url),
        Some(certificates) => redis::Client::build_with_tls(url, certificates),
    }
}

/// What a Redis URL names.
#[derive(Debug)]
enum Target {
    Single,
    Cluster(Vec<ConnectionInfo>),
    Sentinel {
        sentinels: Vec<ConnectionAddr>,
        service: String,
        /// Credentials and database of the data nodes.
        node: redis::RedisConnectionInfo,
    },
}

impl Target {
    fn parse(url: &str) -> std::result::Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "it has no scheme".to_string())?;
        let (kind, node_scheme) = match scheme {
            "redis+cluster" => ("cluster", "redis"),
            "rediss+cluster" => ("cluster", "rediss"),
            "redis+sentinel" => ("sentinel", "redis"),
            "rediss+sentinel" => ("sentinel", "rediss"),
            _ => return Ok(Target::Single),
        };
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
        if hosts.is_empty() {
            return Err("it names no host".into());
        }
        let info = |host: &str, path: &str| {
            format!("{node_scheme}://{userinfo}{host}/{path}")
                .into_connection_info()
                .map_err(|e| e.to_string())
        };
        if kind == "cluster" {
            if !path.is_empty() {
                return Err("a cluster has only database 0; leave the path out".into());
            }
            let nodes = hosts
                .iter()
                .map(|h| info(h, ""))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            return Ok(Target::Cluster(nodes));
        }
        let (service, db) = path.split_once('/').unwrap_or((path, ""));
        if service.is_empty() {
            return Err("it names no service (the master's name the sentinels know)".into());
        }
        let sentinels = hosts
            .iter()
            .map(|h| {
                // The sentinels' own addresses; their default port is 26379.
                let host = if h.contains(':') {
                    h.to_string()
                } else {
                    format!("{h}:26379")
                };
                format!("{node_scheme}://{host}")
                    .into_connection_info()
                    .map(|i| i.addr().clone())
                    .map_err(|e| e.to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let node = info(hosts[0], db)?.redis_settings().clone();
        Ok(Target::Sentinel {
            sentinels,
            service: service.to_string(),
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_one_server_a_cluster_or_a_sentinel_service() {
        assert!(matches!(
            Target::parse("redis://h:1/2").unwrap(),
            Target::Single
        ));
        let Target::Cluster(nodes) = Target::parse("redis+cluster://u:p@a:7000,b:7001").unwrap()
        else {
            panic!("not a cluster")
        };
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].redis_settings().password(), Some("p"));
        assert_eq!(nodes[1].redis_settings().username(), Some("u"));
        let Target::Sentinel {
            sentinels,
            service,
            node,
        } = Target::parse("redis+sentinel://:pw@s1,s2:5000/mymaster/3").unwrap()
        else {
            panic!("not a sentinel")
        };
        assert_eq!(service, "mymaster");
        assert_eq!(node.db(), 3);
        assert_eq!(node.password(), Some("pw"));
        assert_eq!(
            sentinels,
            vec![
                ConnectionAddr::Tcp("s1".into(), 26379),
                ConnectionAddr::Tcp("s2".into(), 5000)
            ]
        );
    }

    #[test]
    fn incomplete_urls_are_refused() {
        for url in [
            "redis+cluster://",
            "redis+cluster://a:1/3",
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "no-scheme",
        ] {
            assert!(Target::parse(url).is_err(), "{url} was accepted");
        }
    }
}
