//! The `sque-host` binary's own code: the command line (`cli/`), what a host serves
//! (`config.rs`: the queues, from flags or `sque.toml`; `serving.rs`: each queue's handler,
//! manager and lane, started, reloaded and left), the worker pool (`pool/`),
//! the sandbox that runs handlers (`sandbox/`), what Prometheus is told (`metrics/`) and the
//! web dashboard (`dashboard/`, which shares what it reads with `stats`: `readings`), over the
//! `sque` queue library; `allocator.rs` says what the host asks of mimalloc. A library only
//! so that the binary's tests and benches can reach its parts: it is not an API. Producers
//! and workers in Rust use the `sque` crate.
//!
//! Imports run one way: `cli` → (`config`, `serving`) → `pool` → (`sandbox`, `sque`); `sandbox` never sees the queue.
//! `metrics` sits beside them: the pool records into it, and it names the sandbox's endings.

pub mod allocator;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod metrics;
pub mod pool;
pub mod readings;
pub mod sandbox;
pub mod serving;
