//! # sque
//!
//! A Redis-backed job queue. Producers push JSON jobs into named FIFO queues through a
//! [`Manager`]; workers ask for work with [`Client::i_am_free`], get one job per request, and
//! acknowledge it with [`Client::complete`] or [`Client::fail`]. Delivery is at-least-once:
//! a job whose holder dies comes back when its lease runs out.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sque::Error> {
//! use serde_json::json;
//! let opts = sque::Options::default().redis("redis://127.0.0.1:6379");
//! let manager = sque::Manager::new("emails", opts.clone()).await?;
//! manager.push(json!({"email": "test1@mail.org"})).await?;
//! let client = sque::Client::new("emails", opts).await?;
//! let job = client.i_am_free(None).await?;
//! client.complete(&job, None).await?;
//! # Ok(()) }
//! ```
//!
//! The Redis layout and scripts are described in `docs/PROTOCOL.md`, the guarantees in
//! `docs/GUARANTEES.md`.

pub mod ndjson;
pub mod queue;

pub use queue::{
    queue_names, validate_queue_name, Client, DeadJob, EncodedJob, Error, FailOutcome, Job, JobId,
    JobOptions, Manager, Options, QueueStats,
};

#[cfg(feature = "host")]
pub mod sandbox;

#[cfg(feature = "host")]
pub mod pool;

#[cfg(feature = "host")]
pub mod prefetch;

#[cfg(feature = "host")]
pub mod outbox;

#[cfg(feature = "host")]
pub mod cli;
