//! Test support of the host suites: `sque-testing`'s servers, guests and waits, and the
//! `sque-host` binary run as a real process (`host.rs`).
#![allow(dead_code, unused_imports)]

pub use sque_testing::{
    eventually, eventually_showing, guests, on_cluster, query, within, RedisServer, PATIENCE,
};

pub mod host;

/// Options for a test's own producer or inspector of a queue that hosts run on: the queue's
/// lease matches the hosts' (`Host::start` gives `--lease 1s`), so that whoever creates the
/// queue gives it the short lease recovery tests count on.
pub fn producer(redis: &RedisServer) -> sque::Options {
    sque::Options::default()
        .redis(redis.url())
        .dispatch(false)
        .lease(std::time::Duration::from_secs(1))
}

/// The dead jobs of a queue: each one's data, code and last error (empty if none).
pub async fn dead_jobs(
    inspector: &sque::Inspector,
) -> Vec<(serde_json::Value, Option<String>, String)> {
    inspector
        .dead_jobs(10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.data, d.code, d.error.unwrap_or_default()))
        .collect()
}
