//! # sque
//!
//! A Redis-backed job queue. Producers push JSON jobs into named FIFO queues; workers ask for
//! work with [`Client::i_am_free`], get one job per request, and acknowledge it with
//! [`Client::complete`] or [`Client::fail`]. Delivery is at-least-once: a job whose holder
//! dies comes back when its lease runs out.
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
//! ## Roles
//!
//! [`Manager`] is the original design's face: it creates or joins the queue, pushes, and
//! listens all the time for free workers. It is built from roles a program can also take one
//! at a time, as asynq splits Client, Inspector and Server:
//!
//! - [`Producer`]: pushes, and nothing else (no background task);
//! - [`Dispatcher`]: hands waiting jobs to stored requests and brings back jobs whose lease
//!   ran out (the reaper);
//! - [`Inspector`]: reads counts, jobs by id and the dead list, and never writes to Redis;
//! - [`Admin`]: changes the queue's settings and retries or purges dead jobs.
//!
//! [`Client`] is the worker's side.
//!
//! One job's way through the modules: [`Producer::push`] (`producer.rs`, script `push`) puts
//! it at the tail of `waiting`; a worker's [`Client::i_am_free`] (`client/`, script
//! `exchange`) takes it under a lease at once if it waits, else stores a request; the
//! dispatcher (`dispatcher/dispatch.rs`, script `dispatch`) pairs the oldest job with the
//! oldest stored request and puts it in the worker's inbox under a lease, where the client's
//! inbox reader (`client/inbox.rs`) finds it; the client's renewer (`client/renewer.rs`) keeps
//! the lease alive until `exchange` (a completion, sent with the next requests) or `fail` ends
//! it. The reaper (`dispatcher/reaper.rs`, script `reap`) brings back jobs whose lease ran out.
//!
//! The Redis layout and scripts are described in `docs/PROTOCOL.md`, the guarantees in
//! `docs/GUARANTEES.md`.

mod admin;
mod backend;
#[doc(hidden)]
pub mod backoff;
mod client;
mod dispatcher;
mod error;
mod follow_up;
mod inspector;
mod job;
mod keys;
mod manager;
mod options;
mod producer;
mod queue;
mod schedules;
mod scripts;
mod settings;
mod tasks;

#[doc(hidden)]
pub mod ndjson;
#[doc(hidden)]
pub mod wire;

/// The protocol's scripts, as another implementation loads them (`docs/PROTOCOL.md`).
#[doc(hidden)]
pub fn script_bundle() -> Vec<(&'static str, String)> {
    scripts::bundle()
}

pub use admin::{Admin, Cancelled, DeadJobs, DeadReport};
pub use client::{Client, FailOutcome, Failure};
pub use dispatcher::Dispatcher;
pub use error::Error;
pub use follow_up::{Child, FollowUp, MAX_FOLLOW_UPS, ORIGIN_KEY_PREFIX};
pub use inspector::{
    queue_names, DeadJob, DeadPage, Inspector, JobInfo, JobState, QueueStats, RunningJob,
    WorkerInfo,
};
pub use job::{Job, JobId};
pub use keys::validate_queue_name;
pub use manager::Manager;
pub use options::{redact_url, Options};
pub use producer::{EncodedJob, JobOptions, Producer, HIGHEST_PRIORITY, NORMAL_PRIORITY};
pub use schedules::{validate_name as validate_schedule_name, Schedule, ScheduleInfo};
pub use settings::{QueueSettings, SettingsChange};
pub use wire::LastError;

/// The protocol this library speaks, stored in each queue's `meta` hash and given to every
/// script, which refuses a caller of another major version. A queue created with another
/// major version is refused: its keys may not mean what we think they mean.
pub const PROTOCOL_VERSION: &str = "1.2";
