//! The queue library proper: everything that talks to Redis, and nothing that runs wasm.
//!
//! One job's way through these modules: [`Manager::push`] (`manager.rs`, script `push.lua`)
//! puts it at the tail of `waiting`; a worker's [`Client::i_am_free`] (`client.rs`,
//! `exchange.lua`) takes it under a lease at once if it waits, else stores a request; the
//! manager's dispatcher (`dispatcher.rs`, `dispatch.lua`) pairs the oldest job with the
//! oldest stored request and puts it in the worker's inbox under a lease, where the client's
//! inbox reader (`inbox.rs`) finds it; the client's renewer (`renewer.rs`) keeps the lease
//! alive until `exchange.lua` (a completion, sent with the next requests) or `fail.lua` ends
//! it. The reaper (`reaper.rs`, `reap.lua`) brings back jobs whose lease ran out.

mod backend;
mod batcher;
mod client;
mod connection;
mod dispatcher;
mod duty;
mod error;
mod inbox;
mod inspect;
mod job;
mod keys;
mod manager;
mod options;
mod reaper;
mod renewer;
mod scripts;

pub use client::{Client, FailOutcome};
pub use error::Error;
pub use inspect::{queue_names, DeadJob, QueueStats};
pub use job::{parse_delivery, Delivery, Job, JobId};
pub use keys::validate_queue_name;
pub use manager::{EncodedJob, JobOptions, Manager};
pub use options::{redact_url, Options};

/// The protocol this library speaks, stored in each queue's `meta` hash. A queue created with
/// another major version is refused: its keys may not mean what we think they mean.
pub const PROTOCOL_VERSION: &str = "1.0";
