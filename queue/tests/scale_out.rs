//! Scale-out on real distributed Redis: queues spread over a three-master Redis Cluster, a
//! master restarted under load, wake-ups that stay on their shard, and a master found (and
//! found again after a failover) through Sentinel. These start their own cluster or sentinel
//! whatever `SQUE_TEST_REDIS` says; with `SQUE_TEST_REDIS=cluster` every other suite runs on a
//! cluster too.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::json;
use sque::{Client, Manager};
use support::workers::{clients, start_workers};
use support::{eventually, opts, within, RedisServer, SentinelSetup};

/// Queue names whose keys land on each of the cluster's nodes, in node order.
fn a_queue_on_each_node(redis: &RedisServer) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; redis.node_count()];
    for i in 0.. {
        let name = format!("spread-{i}");
        let node = redis.node_of(&format!("sque:{{{name}}}:waiting"));
        found[node].get_or_insert(name);
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn queues_spread_over_a_cluster_and_a_restarted_master_loses_nothing() {
    let mut redis =
        RedisServer::start_cluster_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let queues = a_queue_on_each_node(&redis);
    let per_queue = 1000i64;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let mut managers = Vec::new();
    let mut workers = Vec::new();
    for (q, name) in queues.iter().enumerate() {
        let manager = Manager::new(name, opts(&redis)).await.unwrap();
        let base = q as i64 * per_queue;
        manager
            .push_many((base..base + per_queue).map(|i| json!(i)))
            .await
            .unwrap();
        managers.push(manager);
        workers.extend(start_workers(
            clients(&redis, name, 2).await,
            handled.clone(),
        ));
    }
    eventually("some jobs handled", || async {
        handled.lock().unwrap().len() >= 600
    })
    .await;
    // The master of the first queue dies (no replica, no failover) and comes back from AOF.
    let victim = redis.node_of(&format!("sque:{{{}}}:waiting", queues[0]));
    redis.restart_node(victim);
    let at_restart = handled.lock().unwrap().len();
    for manager in &managers {
        eventually("every queue drained and acknowledged", || async {
            match manager.stats().await {
                Ok(s) => s.waiting + s.in_flight + s.delayed == 0 && s.completed > 0,
                Err(_) => false,
            }
        })
        .await;
    }
    for w in workers {
        w.abort();
    }
    let total = per_queue as usize * queues.len();
    assert!(at_restart < total, "the restart landed mid-stream");
    let handled = handled.lock().unwrap().clone();
    let unique: HashSet<i64> = handled.iter().copied().collect();
    assert_eq!(unique.len(), total, "no job was lost");
    eprintln!(
        "cluster master restart: {} jobs over {} masters, {} handled, {} duplicates",
        total,
        queues.len(),
        handled.len(),
        handled.len() - unique.len()
    );
}

/// Sharded pub/sub keeps a wake-up on the node of its queue; plain `PUBLISH` would send
/// every message over the cluster bus to every node (and the mutation to `PUBLISH` in
/// `release.lua` fails this test).
#[tokio::test(flavor = "multi_thread")]
async fn wake_ups_stay_on_the_queues_shard() {
    let redis = RedisServer::start_cluster_with(&[]);
    let name = &a_queue_on_each_node(&redis)[1];
    let channel = format!("sque:{{{name}}}:wake");
    let owner = redis.node_of(&channel);
    let bus_publishes = |redis: &RedisServer| -> u64 {
        (0..redis.node_count())
            .map(|i| {
                let info: String = redis.on_node(i, &["CLUSTER", "INFO"]);
                info.lines()
                    .filter_map(|l| l.strip_prefix("cluster_stats_messages_publish_sent:"))
                    .map(|n| n.trim().parse::<u64>().unwrap())
                    .sum::<u64>()
            })
            .sum()
    };
    let before = bus_publishes(&redis);

    let manager = Manager::new(name, opts(&redis)).await.unwrap();
    let clients = [
        Client::new(name, opts(&redis)).await.unwrap(),
        Client::new(name, opts(&redis)).await.unwrap(),
    ];
    eventually("the dispatcher subscribed on the queue's node", || async {
        let subscribers: Vec<redis::Value> =
            redis.on_node(owner, &["PUBSUB", "SHARDNUMSUB", &channel]);
        subscribers.get(1) == Some(&redis::Value::Int(1))
    })
    .await;
    let spublish_calls = || redis.command_calls(owner, "spublish");
    let published_before = spublish_calls();
    // One job passed back and forth: each holder gives it back while the other's request is
    // stored, so each `release` publishes a wake-up, and the dispatcher serves the other.
    manager.push(json!("ball")).await.unwrap();
    let mut job = within("first job", clients[0].i_am_free(None))
        .await
        .unwrap();
    for round in 0..50 {
        let (holder, other) = (&clients[round % 2], &clients[(round + 1) % 2]);
        let (next, ()) = within("the job, passed on", async {
            tokio::join!(other.i_am_free(None), async {
                eventually("the other request stored", || async {
                    manager.stats().await.unwrap().requests == 1
                })
                .await;
                holder.release(&job).await.unwrap();
            })
        })
        .await;
        job = next.unwrap();
        assert_eq!(job.data, json!("ball"));
    }
    assert!(
        spublish_calls() >= published_before + 50,
        "every release published a wake-up"
    );
    assert_eq!(
        bus_publishes(&redis),
        before,
        "no wake-up crossed the cluster bus"
    );
    for other in (0..redis.node_count()).filter(|&i| i != owner) {
        let channels: Vec<String> = redis.on_node(other, &["PUBSUB", "SHARDCHANNELS"]);
        assert!(channels.is_empty(), "node {other} carries {channels:?}");
    }
    // The counter is live: one plain PUBLISH does cross the bus.
    let _: i64 = redis.on_node(owner, &["PUBLISH", "control", "x"]);
    eventually("a plain publish counted", || async {
        bus_publishes(&redis) > before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentinel_url_finds_the_master_and_finds_the_new_one_after_the_old_one_dies() {
    let mut setup = SentinelSetup::start();
    let options = opts(&setup.master).redis(setup.url());
    let manager = Manager::new("sentinel", options.clone()).await.unwrap();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let client = Client::new("sentinel", options.clone()).await.unwrap();
        workers.extend(start_workers(vec![client], handled.clone()));
    }
    manager.push_many((0..500).map(|i| json!(i))).await.unwrap();
    eventually("the first jobs handled", || async {
        handled.lock().unwrap().len() >= 500
    })
    .await;

    setup.crash_master();
    // Pushes go on: a push refused while the master changes is sent again.
    for i in 500..1000 {
        within("push after the failover", async {
            while manager.push(json!(i)).await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await;
    }
    eventually(
        "every job handled, the later ones on the new master",
        || async {
            let unique: HashSet<i64> = handled.lock().unwrap().iter().copied().collect();
            unique.len() == 1000
        },
    )
    .await;
    for w in workers {
        w.abort();
    }
    let on_new_master: u64 = setup
        .replica
        .on_node(0, &["HGET", "sque:{sentinel}:meta", "seq"]);
    assert_eq!(on_new_master, 1000, "every push is on the new master");
}
