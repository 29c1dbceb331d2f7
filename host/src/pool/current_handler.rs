//! The handler jobs start on: swapped whole on reload, so a running job keeps the one it
//! started with.

use std::sync::{Arc, RwLock};

use crate::sandbox::Handler;

pub struct CurrentHandler(RwLock<Arc<Handler>>);

impl CurrentHandler {
    pub fn new(handler: Handler) -> CurrentHandler {
        CurrentHandler(RwLock::new(Arc::new(handler)))
    }

    pub fn get(&self) -> Arc<Handler> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, handler: Handler) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(handler);
    }
}
