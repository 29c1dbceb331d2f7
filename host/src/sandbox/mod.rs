//! The sandbox: runs a job handler, a WebAssembly component of the `sque:handler` world
//! (`wit/handler.wit`, or the older `wit/v0.2.0/` and `wit/v0.1.0/`), in a fresh instance per
//! job (or, opted into, one kept for N jobs), within limits of time and memory and with no
//! capability it was not granted.
//!
//! - `engine.rs`: the one wasmtime engine of the process (pooling allocator, epochs, cache),
//!   and a sandbox on it per queue (that queue's limits and grants).
//! - `handler.rs`: a handler loaded from a file and checked against the world, ready to
//!   instantiate (`InstancePre`).
//! - `shape.rs`: what a component is made of (core instances, memories, memory at start),
//!   read before it is compiled, so that a limit it is over can be named.
//! - `limits.rs`: per-job limits and granted capabilities.
//! - `world.rs`: the bindings of the world's two versions, and the host functions it imports
//!   (log, progress, follow-up jobs).
//! - `progress.rs`: a job's progress reports, rate-limited and bounded.
//! - `follow_up.rs`: a job's follow-up jobs, checked and kept until it completes.
//! - `state.rs`: what one job's store holds: WASI context, resource table, log, limiter.
//! - `output.rs`: guest stdout/stderr into the host's log, capped and escaped per job, and
//!   the job's denials.
//! - `http.rs`: outgoing HTTP, allowed only to the hosts and ports granted.
//! - `guards.rs`: host functions replaced to count HTTP header bytes and log name lookups.
//! - `run.rs`: one job, start to end, and what became of it.
//! - `reuse.rs`: an instance kept for the next job (`--reuse N`), and when it is dropped.
//! - `outcome.rs`: the table of how a job ends.

mod engine;
mod follow_up;
mod guards;
mod handler;
mod http;
mod limits;
mod outcome;
mod output;
mod progress;
mod reuse;
mod run;
mod shape;
mod state;
mod world;

pub use engine::{EngineConfig, GuestEngine, Sandbox, SandboxConfig};
pub use follow_up::{DEFAULT_MAX_PUSHES, MAX_FOLLOW_UP_BYTES, MAX_ONE_FOLLOW_UP_BYTES};
pub use handler::{is_native, Capability, Handler, LoadError};
pub use limits::{
    check_http_grant, Grants, Limits, MAX_HTTP_FIELD_BYTES, MAX_LINEAR_MEMORY, MAX_RANDOM_BYTES,
};
pub use outcome::{cut, escaped, Ending, Outcome};
pub use progress::{JobProgress, ProgressSink, Report};
pub use reuse::Warm;
pub use run::JobInput;
pub use shape::{size_text, Shape};
pub use world::{world_of, WORLDS};
