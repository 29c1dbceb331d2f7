//! Connecting to Redis and opening a queue: the state a [`Manager`](crate::Manager) and a
//! [`Client`](crate::Client) share.

use crate::queue::backend::{Backend, Conn};
use crate::queue::error::{Error, Result};
use crate::queue::keys::Keys;
use crate::queue::options::Options;
use crate::queue::{scripts, PROTOCOL_VERSION};

/// One opened queue: its keys, its settings and a shared, self-healing connection.
#[derive(Clone)]
pub(crate) struct Queue {
    pub keys: Keys,
    pub opts: Options,
    pub backend: Backend,
    /// Multiplexed and cheap to clone; reconnects in the background after an error (the
    /// call that met the error fails, the next one uses the new connection).
    pub con: Conn,
}

impl Queue {
    /// Connects, creates the queue or joins it, and checks its protocol version.
    pub async fn open(name: &str, opts: Options) -> Result<Queue> {
        opts.validate()?;
        let keys = Keys::new(&opts.prefix, name)?;
        let backend = Backend::new(&opts)?;
        let mut con = backend.connection().await?;
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
            backend,
            con,
        })
    }

    /// A connection of its own for blocking pops.
    pub async fn blocking_connection(&self) -> Result<Conn> {
        self.backend.blocking_connection().await
    }
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}
