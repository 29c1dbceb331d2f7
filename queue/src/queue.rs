//! An opened queue: its keys, its settings as Redis holds them, and a shared, self-healing
//! connection. Every role holds one.
//!
//! Two ways to open: [`Queue::open`] creates the queue or joins it (writing its settings the
//! first time, and saying once when this program's settings differ from the queue's), for
//! roles that write; [`Queue::open_existing`] only reads, and refuses a queue that does not
//! exist, for the inspector.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use crate::backend::{Backend, Conn, InboxRoute, Subscription};
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::options::Options;
use crate::scripts;
use crate::settings::QueueSettings;
use crate::PROTOCOL_VERSION;

#[derive(Clone)]
pub(crate) struct Queue {
    pub keys: Keys,
    pub opts: Options,
    pub backend: Backend,
    /// Multiplexed and cheap to clone; reconnects in the background after an error (the
    /// call that met the error fails, the next one uses the new connection).
    pub con: Conn,
    /// The queue's settings when it was opened (scripts read the current ones from meta).
    pub settings: QueueSettings,
}

impl Queue {
    /// Connects, creates the queue or joins it, and checks its protocol version.
    pub async fn open(name: &str, opts: Options) -> Result<Queue> {
        opts.validate()?;
        let keys = Keys::new(&opts.prefix, name)?;
        let (backend, mut con) = connect(&opts).await?;
        scripts::load_all(&mut con).await?;
        let meta = scripts::open::call(&keys, &mut con, &opts.queue_settings()).await?;
        let settings = QueueSettings::from_fields(&meta)?;
        warn_of_differences(&opts, name, &settings);
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
            settings,
        })
    }

    /// Connects and reads the queue's meta, writing nothing. A queue that was never created
    /// is [`Error::NoSuchQueue`].
    pub async fn open_existing(name: &str, opts: Options) -> Result<Queue> {
        crate::keys::validate_name("prefix", &opts.prefix)?;
        let keys = Keys::new(&opts.prefix, name)?;
        let (backend, mut con) = connect(&opts).await?;
        let meta: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&keys.meta)
            .query_async(&mut con)
            .await?;
        let Some(found) = meta.get("protocol") else {
            return Err(Error::NoSuchQueue(name.to_string()));
        };
        check_protocol(name, found)?;
        let settings = QueueSettings::from_fields(&meta)?;
        Ok(Queue {
            keys,
            opts,
            backend,
            con,
            settings,
        })
    }

    /// Wake-ups of `channel`: on the connection for wake-ups that roles sharing a connection
    /// share, on one server; on a connection of its own otherwise.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        match (&self.opts.shared, &self.backend) {
            (Some(shared), Backend::Single(client)) => shared.subscribe(client, channel).await,
            _ => self.backend.subscribe(channel).await,
        }
    }

    /// A connection of its own for blocking pops.
    pub async fn blocking_connection(&self) -> Result<Conn> {
        self.backend.blocking_connection().await
    }

    /// Where the entries of worker `worker`'s inbox come from: the one pop that roles sharing
    /// a connection share, on one server; a connection of its own otherwise.
    pub async fn inbox(&self, worker: &str) -> Result<Inbox> {
        let key = self.keys.inbox(worker);
        Ok(match (&self.opts.shared, &self.backend) {
            (Some(shared), Backend::Single(client)) => {
                Inbox::Shared(shared.inboxes.join(client, &self.con, key))
            }
            _ => Inbox::Own(self.blocking_connection().await?),
        })
    }
}

/// Where a worker's inbox is read (`Queue::inbox`).
pub(crate) enum Inbox {
    /// By the worker, with a blocking pop on this connection of its own.
    Own(Conn),
    /// By the pop shared with other workers, which passes its entries on here.
    Shared(InboxRoute),
}

/// How to reach Redis and the connection for commands: the shared one when `opts` share one
/// (made now if this is the first role to open), or a new one.
async fn connect(opts: &Options) -> Result<(Backend, Conn)> {
    let open = || async {
        let backend = Backend::new(opts)?;
        let con = backend.connection().await?;
        Ok::<_, Error>((backend, con))
    };
    let Some(shared) = &opts.shared else {
        return open().await;
    };
    let (url, backend, con) = shared
        .commands
        .get_or_try_init(|| async {
            let (backend, con) = open().await?;
            Ok::<_, Error>((opts.redis.clone(), backend, con))
        })
        .await?;
    if *url != opts.redis {
        return Err(Error::InvalidInput(format!(
            "these options share a connection to {}, not to {}: call share_connection again after changing the Redis URL",
            crate::options::redact_url(url),
            opts.redis_url_redacted()
        )));
    }
    Ok((backend.clone(), con.clone()))
}

pub(crate) fn check_protocol(queue: &str, found: &str) -> Result<()> {
    let major = |v: &str| v.split('.').next().unwrap_or(v).to_string();
    if major(found) == major(PROTOCOL_VERSION) {
        Ok(())
    } else {
        Err(Error::Protocol {
            queue: queue.to_string(),
            found: found.to_string(),
            supported: PROTOCOL_VERSION.to_string(),
        })
    }
}

/// Says once per process and setting when a setting this program was given differs from the
/// queue's: the queue's value is the one used.
fn warn_of_differences(opts: &Options, queue: &str, settings: &QueueSettings) {
    /// (prefix, queue, setting) already warned about.
    type Warned = HashSet<(String, String, &'static str)>;
    static WARNED: OnceLock<Mutex<Warned>> = OnceLock::new();
    for (field, ours, theirs) in opts.settings.differences(settings) {
        let first = WARNED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((opts.prefix.clone(), queue.to_string(), field));
        if first {
            tracing::warn!(
                queue,
                "this program's {field} is {ours}, the queue's is {theirs}: using the queue's (change it with `sque-host queue config --queue {queue} --{}`)",
                field.replace('_', "-")
            );
        }
    }
}
