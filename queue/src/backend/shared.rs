//! One connection set for many roles (`Options::share_connection`): the connection for
//! commands and scripts, made by the first role to open, and, on one server, one connection
//! for the wake-ups of every queue the roles serve. A host serving ten queues then holds two
//! connections for them where it held twenty (plus a blocking pop a queue, which cannot
//! share: a pop blocks its connection).
//!
//! Wake-ups: each queue's dispatcher subscribes to its channel on the shared connection, and
//! a task passes each message on to the subscription of its channel. When Redis drops the
//! connection, every subscription ends, as a subscription of its own would: each dispatcher
//! subscribes again (and sweeps for what it missed), and the first to do so makes the new
//! connection. A subscription dropped (its queue left) is forgotten at its channel's next
//! message. On a Cluster or through Sentinel, each dispatcher keeps a connection of its own
//! for its wake-ups: there they follow a shard, or a master that may move.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::OnceCell;

use super::{plain, resp3, Backend, Conn, Subscription};
use crate::error::{Error, Result};

/// Where each channel's messages go.
type Routes = Arc<Mutex<HashMap<Vec<u8>, UnboundedSender<PushInfo>>>>;

#[derive(Default)]
pub(crate) struct Shared {
    /// How to reach Redis, and the connection for commands and scripts.
    pub(crate) commands: OnceCell<(Backend, Conn)>,
    /// The connection for wake-ups, while it lives.
    wakes: tokio::sync::Mutex<Option<Wakes>>,
}

struct Wakes {
    con: MultiplexedConnection,
    routes: Routes,
    /// Set when Redis dropped the connection: the next subscription makes a new one.
    closed: Arc<AtomicBool>,
}

impl Shared {
    /// Subscribes to the sharded channel `channel` on the shared connection for wake-ups
    /// of `client`'s server, made now if there is none (or Redis dropped it).
    pub(crate) async fn subscribe(
        &self,
        client: &redis::Client,
        channel: &str,
    ) -> Result<Subscription> {
        let mut wakes = self.wakes.lock().await;
        let live = match wakes.take() {
            Some(w) if !w.closed.load(Ordering::SeqCst) => w,
            _ => Wakes::connect(client).await?,
        };
        let (sender, messages) = unbounded_channel();
        lock(&live.routes).insert(channel.as_bytes().to_vec(), sender);
        let mut con = live.con.clone();
        // With RESP3 the confirmation is a push that also answers the command.
        let subscribed = redis::cmd("SSUBSCRIBE")
            .arg(channel)
            .exec_async(&mut con)
            .await;
        if let Err(e) = subscribed {
            // The connection is of no use: the next subscription makes a new one.
            lock(&live.routes).remove(channel.as_bytes());
            return Err(Error::from(e));
        }
        *wakes = Some(live);
        Ok(Subscription {
            _con: Conn::Plain(con),
            messages,
            moved: None,
        })
    }
}

impl Wakes {
    async fn connect(client: &redis::Client) -> Result<Wakes> {
        let (sender, mut pushes) = unbounded_channel::<PushInfo>();
        let con = plain(&resp3(client)?, Some(sender)).await?;
        let routes: Routes = Default::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (to, gone) = (routes.clone(), closed.clone());
        tokio::spawn(async move {
            // Ends when Redis drops the connection, or once no one holds it any more.
            while let Some(push) = pushes.recv().await {
                match push.kind {
                    PushKind::Disconnection => break,
                    PushKind::SMessage | PushKind::Message => {
                        let Some(Value::BulkString(channel)) = push.data.first() else {
                            continue;
                        };
                        let mut routes = lock(&to);
                        let delivered = routes.get(channel).map(|r| r.send(push.clone()));
                        if let Some(Err(_)) = delivered {
                            routes.remove(&channel.clone());
                        }
                    }
                    _ => {}
                }
            }
            gone.store(true, Ordering::SeqCst);
            // Every subscription ends, and its dispatcher subscribes again.
            lock(&to).clear();
        });
        Ok(Wakes {
            con,
            routes,
            closed,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sque_testing::{query, RedisServer};

    use crate::backend::Wake;
    use crate::options::Options;
    use crate::queue::Queue;

    async fn next(s: &mut super::Subscription) -> Option<Wake> {
        tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("a message within 10 s")
    }

    #[tokio::test]
    async fn each_queue_hears_its_own_wake_ups_on_the_one_shared_connection_also_after_redis_dropped_it(
    ) {
        let redis = RedisServer::start();
        if sque_testing::on_cluster() {
            // Sharing wake-ups is for one server; a Cluster keeps a subscription a queue.
            return;
        }
        let opts = Options::default().redis(redis.url()).share_connection();
        let a = Queue::open("a", opts.clone()).await.unwrap();
        let b = Queue::open("b", opts.clone()).await.unwrap();
        for round in 0..2 {
            let mut wa = a.subscribe(&a.keys.wake).await.unwrap();
            let mut wb = b.subscribe(&b.keys.wake).await.unwrap();
            let subscribers: String = query(&redis, &["CLIENT", "LIST", "TYPE", "pubsub"]);
            assert_eq!(
                subscribers.lines().count(),
                1,
                "one connection: {subscribers}"
            );
            let _: i64 = query(&redis, &["SPUBLISH", &b.keys.wake, "children"]);
            let _: i64 = query(&redis, &["SPUBLISH", &a.keys.wake, "scheduled"]);
            assert_eq!(next(&mut wa).await, Some(Wake::Scheduled), "round {round}");
            assert_eq!(next(&mut wb).await, Some(Wake::Children), "round {round}");
            // Redis drops it: both subscriptions end, and subscribing again makes a new one.
            let _: () = query(&redis, &["CLIENT", "KILL", "TYPE", "pubsub"]);
            assert_eq!(next(&mut wa).await, None);
            assert_eq!(next(&mut wb).await, None);
        }
    }
}
