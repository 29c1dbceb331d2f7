//! Test support shared by sque's integration tests, its bench and its examples: a private
//! `redis-server`, a three-master Redis Cluster, a Sentinel setup and a TLS-only server, each
//! on free ports (never the shared Redis on 6379) and each killable and restartable; the guest
//! components built from `examples/` and the fixtures; bounded waits for events.

pub mod guests;
pub mod sentinel;
pub mod server;
pub mod wait;

pub use sentinel::SentinelSetup;
pub use server::{on_cluster, query, RedisServer};
pub use wait::{await_condition, eventually, eventually_showing, within, PATIENCE};
