//! Connecting to Redis and opening a queue: the state a [`Manager`](crate::Manager) and a
//! [`Client`](crate::Client) share.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::AsyncConnectionConfig;

use crate::queue::error::{Error, Result};
use crate::queue::keys::Keys;
use crate::queue::options::Options;
use crate::queue::{scripts, PROTOCOL_VERSION};

/// How long one command may take before the call fails with [`Error::Unavailable`].
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One opened queue: its keys, its settings and a shared, self-healing connection.
#[derive(Clone)]
pub(crate) struct Queue {
    pub keys: Keys,
    pub opts: Options,
    pub client: redis::Client,
    /// Multiplexed and cheap to clone; reconnects in the background after an error (the
    /// call that met the error fails, the next one uses the new connection).
    pub con: ConnectionManager,
}

impl Queue {
    /// Connects, creates the queue or joins it, and checks its protocol version.
    pub async fn open(name: &str, opts: Options) -> Result<Queue> {
        opts.validate()?;
        let keys = Keys::new(&opts.prefix, name)?;
        let client = redis_client(&opts)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let mut con = client.get_connection_manager_with_config(config).await?;
        scripts::load_all(&mut con).await?;

        let found: String = scripts::OPEN
            .key(&keys.meta)
            .arg(PROTOCOL_VERSION)
            .invoke_async(&mut con)
            .await?;
        if major(&found) != major(PROTOCOL_VERSION) {
            return Err(Error::Protocol {
                queue: name.to_string(),
                found,
                supported: PROTOCOL_VERSION.to_string(),
            });
        }
        // The registry lives outside the queue's slot; it only serves `stats` over all queues.
        let _: () = redis::cmd("SADD")
            .arg(&keys.registry)
            .arg(name)
            .query_async(&mut con)
            .await?;
        Ok(Queue {
            keys,
            opts,
            client,
            con,
        })
    }

    /// A connection of its own for blocking pops: no response timeout, since a blocking pop
    /// waits as long as it was told to.
    pub async fn blocking_connection(&self) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

/// A Redis client for the URL of `opts` (TLS with `rediss://`, trusting `opts.tls_ca` if set).
pub(crate) fn redis_client(opts: &Options) -> Result<redis::Client> {
    let bad_url = |e: redis::RedisError| {
        Error::InvalidInput(format!(
            "bad Redis URL {}: {e} (expected redis://[user:password@]host[:port][/db] or rediss://...)",
            opts.redis_url_redacted()
        ))
    };
    match &opts.tls_ca {
        None => redis::Client::open(opts.redis.as_str()).map_err(bad_url),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot read the TLS CA file {}: {e}",
                    path.display()
                ))
            })?;
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(opts.redis.as_str(), certificates).map_err(bad_url)
        }
    }
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}
