//! Test support of the queue suites: `sque-testing`'s servers and waits, options for a test
//! queue, and workers that record what they handle.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

pub use sque_testing::{eventually, query, within, RedisServer, SentinelSetup};

pub mod workers;

/// Options for a test queue: a short lease and backoff so that recovery is quick.
pub fn opts(server: &RedisServer) -> sque::Options {
    sque::Options::default()
        .redis(server.url())
        .lease(Duration::from_millis(600))
        .backoff(Duration::from_millis(20))
        .backoff_max(Duration::from_millis(100))
}
