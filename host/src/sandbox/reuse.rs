//! An instance kept for the slot's next job, with `--reuse N` (N > 1): it serves up to N
//! jobs, one at a time, and is dropped after any job that did not complete (a trap, a
//! timeout, an error it returned, a limit it hit), when the handler is reloaded, and when it
//! has used half of the HTTP header bytes an instance may make.
//!
//! Why opt-in: a fresh instance per job is what makes a job unable to see or spoil another's
//! state. A kept one gives that up (globals, caches, a module's variables carry over to the
//! next job of the same slot) for speed where instantiation dominates: a Python or
//! JavaScript runtime costs ~1 ms to instantiate and microseconds to call.

use std::sync::Arc;

use wasmtime::Store;

use crate::sandbox::handler::Handler;
use crate::sandbox::limits::{MAX_HTTP_BODIES, MAX_HTTP_FIELD_BYTES};
use crate::sandbox::state::State;
use crate::sandbox::world::current::Handler as Instance;

/// A warm instance, its store, and how many jobs it has served.
pub struct Warm {
    pub(crate) handler: Arc<Handler>,
    pub(crate) store: Store<State>,
    pub(crate) instance: Instance,
    pub(crate) served: u32,
}

impl Warm {
    /// Whether it may serve a job of `handler`.
    pub(crate) fn fits(&self, handler: &Arc<Handler>) -> bool {
        Arc::ptr_eq(&self.handler, handler)
            && self.store.data().http_field_bytes_left >= MAX_HTTP_FIELD_BYTES / 2
            && self.store.data().http_bodies_left >= MAX_HTTP_BODIES / 2
    }
}
