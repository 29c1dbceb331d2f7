//! A handler: a component file, compiled once and checked against the `sque:handler` world,
//! kept as an `InstancePre` so that each job only instantiates it.

use std::fmt;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use crate::sandbox::engine::Sandbox;
use crate::sandbox::state::State;
use crate::sandbox::Handler_Pre;

/// Why a file cannot serve as a handler. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read the handler: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a WebAssembly file; build the handler with `cargo build --release --target wasm32-wasip2` and pass the .wasm it writes")]
    NotWasm { path: String },
    #[error("{path}: a core WebAssembly module, not a component; build the handler for the wasm32-wasip2 target with the sque-guest crate")]
    CoreModule { path: String },
    #[error("{path}: not a valid WebAssembly component: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path}: a component, but not a sque handler ({reason}); build it against wit/handler.wit with the sque-guest crate")]
    WrongWorld { path: String, reason: String },
}

/// A capability a handler imports. Imported is not granted: see `Grants`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    Files,
    Environment,
    Sockets,
    Http,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Files => "files (wasi:filesystem)",
            Capability::Environment => "environment (wasi:cli/environment)",
            Capability::Sockets => "sockets (wasi:sockets)",
            Capability::Http => "outgoing HTTP (wasi:http)",
        })
    }
}

/// A loaded handler, ready to instantiate once per job.
pub struct Handler {
    pub(crate) pre: Handler_Pre<State>,
    path: PathBuf,
    imports: Vec<String>,
}

impl Handler {
    /// Reads, compiles (or takes from the cache) and checks a handler component.
    pub fn load(sandbox: &Sandbox, path: &Path) -> Result<Handler, LoadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: shown.clone(),
            source,
        })?;
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(LoadError::NotWasm { path: shown });
        }
        // The layer field: 0 for a core module, 1 for a component.
        if bytes[6..8] == [0, 0] {
            return Err(LoadError::CoreModule { path: shown });
        }
        let component =
            Component::new(&sandbox.engine, &bytes).map_err(|e| LoadError::Invalid {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let imports = component
            .component_type()
            .imports(&sandbox.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            path: shown.clone(),
            reason: format!("{e:#}"),
        };
        let instance_pre = sandbox
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = Handler_Pre::new(instance_pre).map_err(wrong_world)?;
        Ok(Handler {
            pre,
            path: path.to_path_buf(),
            imports,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The interfaces the component imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// The capabilities among the imports (whether granted or not).
    pub fn capabilities(&self) -> Vec<Capability> {
        let mut caps: Vec<Capability> = self
            .imports
            .iter()
            .filter_map(|name| {
                if name.starts_with("wasi:filesystem/") {
                    Some(Capability::Files)
                } else if name.starts_with("wasi:cli/environment") {
                    Some(Capability::Environment)
                } else if name.starts_with("wasi:sockets/") {
                    Some(Capability::Sockets)
                } else if name.starts_with("wasi:http/") {
                    Some(Capability::Http)
                } else {
                    None
                }
            })
            .collect();
        caps.sort();
        caps.dedup();
        caps
    }
}
