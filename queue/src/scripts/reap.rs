//! `reap.lua`: the queue's housekeeping (expired leases, due retries, old results, dead
//! workers, the dead list's bounds).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;

pub(crate) static SCRIPT: LazyLock<Script> = script!("reap.lua");

pub(crate) struct Reaped {
    pub expired: usize,
    pub promoted: usize,
    /// Results dropped, or push records, or unique keys freed, whichever more.
    pub dropped_results: usize,
    /// Dead entries trimmed, or moved from an older version's dead list.
    pub dead_work: usize,
    /// The queue's lease now.
    pub lease: Duration,
}

impl Reaped {
    /// Whether any kind filled the batch: call again at once.
    pub fn full(&self, batch: usize) -> bool {
        [
            self.expired,
            self.promoted,
            self.dropped_results,
            self.dead_work,
        ]
        .iter()
        .any(|n| *n >= batch)
    }
}

/// One pass of at most `batch` entries of each kind.
pub(crate) async fn call(q: &Queue, batch: usize) -> Result<Reaped> {
    let k = &q.keys;
    let (expired, promoted, dropped_results, dead_work, lease): (usize, usize, usize, usize, u64) =
        invocation(
            &SCRIPT,
            &[
                &k.meta,
                &k.leases,
                &k.waiting,
                &k.delayed,
                &k.dead_at,
                &k.errors,
                &k.stats,
                &k.results,
                &k.results_at,
                &k.workers,
                &k.requests,
                &k.jobs,
                &k.dead,
            ],
        )
        .arg(batch)
        .invoke_async(&mut q.con.clone())
        .await?;
    Ok(Reaped {
        expired,
        promoted,
        dropped_results,
        dead_work,
        lease: Duration::from_millis(lease),
    })
}

#[cfg(test)]
mod tests {
    use sque_testing::{query, RedisServer};

    use crate::options::Options;
    use crate::queue::Queue;

    /// Keys whose windows ended together, more than a batch of them, are all freed by one
    /// reaper pass: a full batch of them asks for another call at once, as results do.
    #[tokio::test]
    async fn a_full_batch_of_unique_keys_freed_asks_for_another_call() {
        let redis = RedisServer::start();
        let queue = Queue::open("reap", Options::default().redis(redis.url()))
            .await
            .unwrap();
        let held = format!("{}unique", queue.keys.base);
        let until = format!("{}unique_until", queue.keys.base);
        for n in 0..600 {
            let key = format!("k{n}");
            let _: i64 = query(&redis, &["HSET", &held, &key, &n.to_string()]);
            let _: i64 = query(&redis, &["ZADD", &until, "1", &key]);
        }
        let first = super::call(&queue, 500).await.unwrap();
        assert!(first.full(500), "500 keys freed: call again");
        let second = super::call(&queue, 500).await.unwrap();
        assert!(!second.full(500), "the last 100");
        let left: i64 = query(&redis, &["HLEN", &held]);
        assert_eq!(left, 0, "every key freed");
    }
}
