//! The sandbox: runs a job handler, a WebAssembly component of the `sque:handler` world
//! (`wit/handler.wit`), in a fresh instance per job, within limits of time and memory and
//! with no capability it was not granted.
//!
//! - `engine.rs`: the one wasmtime engine of the process (pooling allocator, epochs, cache).
//! - `handler.rs`: a handler loaded from a file and checked against the world, ready to
//!   instantiate (`InstancePre`).
//! - `limits.rs`: per-job limits and granted capabilities.
//! - `state.rs`: what one job's store holds: WASI context, log, memory limiter.
//! - `output.rs`: guest stdout/stderr into the host's log, capped per job.
//! - `http.rs`: outgoing HTTP, allowed only to the hosts granted.
//! - `run.rs`: one job, start to end, and what became of it.

mod engine;
mod handler;
mod http;
mod limits;
mod output;
mod run;
mod state;

pub use engine::{Sandbox, SandboxConfig};
pub use handler::{Capability, Handler, LoadError};
pub use limits::{Grants, Limits};
pub use run::{JobInput, Outcome};

// The bindings of the `sque:handler` world: `Handler_` (the world), `Handler_Pre`, and the
// `sque::handler::{types, log}` host traits. Renamed so that `Handler` names our own type.
mod bindings {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "wit",
        exports: { default: async },
    });
}
pub(crate) use bindings::sque;
pub(crate) use bindings::{Handler as Handler_, HandlerPre as Handler_Pre};
