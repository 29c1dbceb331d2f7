//! One connection set for many roles (`Options::share_connection`): the connection for
//! commands and scripts, made by the first role to open, and, on one server, one connection
//! for the wake-ups of every queue the roles serve and one blocking pop for all their
//! workers' inboxes (`inboxes.rs`). A host serving ten queues then holds three connections
//! for them where it held forty.
//!
//! Wake-ups: each queue's dispatcher subscribes to its channel on the shared connection, and
//! a task passes each message on to every subscription of its channel (a queue removed on
//! reload may still be draining while it is added back: both hear it). When Redis drops the
//! connection, every subscription ends, as a subscription of its own would: each dispatcher
//! subscribes again (and sweeps for what it missed), and the first to do so makes the new
//! connection. When the last subscription of a channel is dropped (its queue left), the
//! channel is unsubscribed, under the same lock as subscribing, so that it never undoes a
//! subscription made meanwhile. On a Cluster or through Sentinel, each dispatcher keeps a
//! connection of its own for its wake-ups: there they follow a shard, or a master that may
//! move.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::OnceCell;

use super::inboxes::Inboxes;
use super::{lock, plain, resp3, Backend, Conn, Subscription};
use crate::error::{Error, Result};

/// Where each channel's messages go: its subscriptions.
type Routes = Arc<Mutex<HashMap<Vec<u8>, Vec<UnboundedSender<PushInfo>>>>>;

#[derive(Default)]
pub(crate) struct Shared {
    /// The Redis URL of the first role to open, how to reach it, and the connection for
    /// commands and scripts.
    pub(crate) commands: OnceCell<(String, Backend, Conn)>,
    /// The connection for wake-ups, while it lives.
    wakes: Arc<tokio::sync::Mutex<Option<Wakes>>>,
    /// The one blocking pop for the inboxes of every worker (`inboxes.rs`).
    pub(crate) inboxes: Inboxes,
}

struct Wakes {
    con: MultiplexedConnection,
    routes: Routes,
    /// Set when Redis dropped the connection: the next subscription makes a new one.
    closed: Arc<AtomicBool>,
}

/// Held by a subscription on the shared connection: when dropped, unsubscribes its channel
/// if no other subscription of it is left.
pub(crate) struct Leave {
    wakes: Arc<tokio::sync::Mutex<Option<Wakes>>>,
    channel: Vec<u8>,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (wakes, channel) = (self.wakes.clone(), std::mem::take(&mut self.channel));
        runtime.spawn(async move {
            // Under the lock subscribing takes: no subscription of the channel can be made
            // between the look and the SUNSUBSCRIBE.
            let mut wakes = wakes.lock().await;
            let Some(live) = wakes.as_mut() else { return };
            let none_left = {
                let mut routes = lock(&live.routes);
                let left = routes.get_mut(&channel).map(|subs| {
                    subs.retain(|s| !s.is_closed());
                    subs.len()
                });
                if left == Some(0) {
                    routes.remove(&channel);
                }
                left == Some(0)
            };
            if none_left && !live.closed.load(Ordering::SeqCst) {
                // A failure here only leaves messages nobody reads, dropped as they come.
                let _ = redis::cmd("SUNSUBSCRIBE")
                    .arg(&channel)
                    .exec_async(&mut live.con)
                    .await;
            }
        });
    }
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
        if wakes
            .as_ref()
            .is_none_or(|w| w.closed.load(Ordering::SeqCst))
        {
            *wakes = Some(Wakes::connect(client).await?);
        }
        let live = wakes.as_mut().expect("made above");
        let (sender, messages) = unbounded_channel();
        lock(&live.routes)
            .entry(channel.as_bytes().to_vec())
            .or_default()
            .push(sender.clone());
        // With RESP3 the confirmation is a push that also answers the command.
        let subscribed = redis::cmd("SSUBSCRIBE")
            .arg(channel)
            .exec_async(&mut live.con)
            .await;
        if let Err(e) = subscribed {
            if let Some(subs) = lock(&live.routes).get_mut(channel.as_bytes()) {
                subs.retain(|s| !s.same_channel(&sender));
            }
            // A connection that broke is made anew by the next subscription; one that
            // refused (an ACL, a timeout) is kept for the subscriptions it holds.
            if e.is_io_error() || e.is_connection_dropped() {
                live.closed.store(true, Ordering::SeqCst);
            }
            return Err(Error::from(e));
        }
        Ok(Subscription {
            _con: Conn::Plain(live.con.clone()),
            messages,
            moved: None,
            _leave: Some(Leave {
                wakes: self.wakes.clone(),
                channel: channel.as_bytes().to_vec(),
            }),
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
                        if let Some(subs) = lock(&to).get_mut(channel) {
                            subs.retain(|s| s.send(push.clone()).is_ok());
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

    /// Subscribers of `channel` on the server, as `PUBSUB SHARDNUMSUB` counts them.
    fn subscribers(redis: &RedisServer, channel: &str) -> i64 {
        let reply: (String, i64) = query(redis, &["PUBSUB", "SHARDNUMSUB", channel]);
        reply.1
    }

    #[tokio::test]
    async fn two_subscriptions_of_one_channel_both_hear_it_and_the_last_one_dropped_leaves_it() {
        let redis = RedisServer::start();
        if sque_testing::on_cluster() {
            return;
        }
        let opts = Options::default().redis(redis.url()).share_connection();
        let q = Queue::open("q", opts).await.unwrap();
        // A queue removed on reload and still draining, and the same queue added back.
        let mut old = q.subscribe(&q.keys.wake).await.unwrap();
        let mut new = q.subscribe(&q.keys.wake).await.unwrap();
        let _: i64 = query(&redis, &["SPUBLISH", &q.keys.wake, "children"]);
        assert_eq!(next(&mut old).await, Some(Wake::Children));
        assert_eq!(next(&mut new).await, Some(Wake::Children));
        drop(old);
        let _: i64 = query(&redis, &["SPUBLISH", &q.keys.wake, "scheduled"]);
        assert_eq!(next(&mut new).await, Some(Wake::Scheduled));
        assert_eq!(subscribers(&redis, &q.keys.wake), 1);
        drop(new);
        sque_testing::eventually("the channel left once no one listens", || async {
            subscribers(&redis, &q.keys.wake) == 0
        })
        .await;
    }
}
