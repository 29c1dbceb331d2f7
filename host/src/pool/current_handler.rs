//! The handler a queue's jobs start on, with the sandbox it runs in: swapped whole on reload,
//! so a running job keeps the handler, limits and grants it started with.

use std::sync::{Arc, RwLock};

use crate::sandbox::{Handler, Sandbox};

/// A handler and the sandbox (limits, grants) it was loaded for.
pub struct Loaded {
    pub sandbox: Arc<Sandbox>,
    pub handler: Arc<Handler>,
}

pub struct CurrentHandler(RwLock<Arc<Loaded>>);

impl CurrentHandler {
    pub fn new(sandbox: Arc<Sandbox>, handler: Handler) -> CurrentHandler {
        CurrentHandler(RwLock::new(Arc::new(Loaded {
            sandbox,
            handler: Arc::new(handler),
        })))
    }

    pub fn get(&self) -> Arc<Loaded> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, sandbox: Arc<Sandbox>, handler: Handler) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Loaded {
            sandbox,
            handler: Arc::new(handler),
        });
    }
}
