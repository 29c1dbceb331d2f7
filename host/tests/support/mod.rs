//! Test support of the host suites: `sque-testing`'s servers, guests and waits, and the
//! `sque-host` binary run as a real process (`host.rs`).
#![allow(dead_code, unused_imports)]

pub use sque_testing::{eventually, guests, within, RedisServer};

pub mod host;
