//! A handler: a component file, compiled once and checked against the `sque:handler` world,
//! kept as an `InstancePre` so that each job only instantiates it.

use std::fmt;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use crate::sandbox::engine::{Sandbox, MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES};
use crate::sandbox::shape::{size_text, Shape};
use crate::sandbox::state::State;
use crate::sandbox::world::current::HandlerPre;

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
    #[error("{path}: a component, but not a sque handler ({reason}); build it against wit/handler.wit with a sque guest SDK")]
    WrongWorld { path: String, reason: String },
    #[error("{path}: a precompiled handler (native code); load it only if you made it, with --trust-precompiled (SQUE_TRUST_PRECOMPILED=1), or pass the .wasm it was compiled from")]
    Untrusted { path: String },
    #[error("{path}: a precompiled handler that {why}; it runs as native code, so only this user may own and write it: `chown` it and `chmod go-w` it")]
    UnsafeFile { path: String, why: String },
    #[error("{dir}: the module cache's directory {why}; it holds native code the host runs, so only this user may own and write it: `chown` it and `chmod 700` it, or pass another --cache-dir")]
    UnsafeCache { dir: String, why: String },
    #[error("{path}: a precompiled handler this sque-host cannot load ({reason}); compile it again with this sque-host: `sque-host compile HANDLER.wasm`")]
    Incompatible { path: String, reason: String },
    #[error("{path}: this handler needs {needs} of linear memory at start; --max-memory is {limit}: raise --max-memory (SQUE_MAX_MEMORY) above it")]
    MemoryAtStart {
        path: String,
        needs: String,
        limit: String,
    },
    #[error(
        "{path}: this handler {over}, and no flag raises that: build it without what adds them"
    )]
    TooMany {
        path: String,
        /// What it has and what a handler may have, e.g. "has 70 core module instances,
        /// where a handler may have at most 64".
        over: String,
    },
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
    pub(crate) pre: HandlerPre<State>,
    path: PathBuf,
    imports: Vec<String>,
    /// `None` for a precompiled handler, which does not keep it.
    shape: Option<Shape>,
}

/// What tells one `.cwasm` from another without reading it: its real path, size and time.
fn precompiled_key(path: &Path) -> Option<Vec<u8>> {
    let real = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    let modified = meta.modified().ok()?;
    let mut key = b"cwasm\0".to_vec();
    key.extend_from_slice(real.as_os_str().as_encoded_bytes());
    key.extend_from_slice(format!("\0{}\0{modified:?}", meta.len()).as_bytes());
    Some(key)
}

impl Handler {
    /// Reads, compiles (or takes from the cache) and checks a handler component; or, with
    /// `trust_precompiled`, loads one `sque-host compile` made.
    pub fn load(sandbox: &Sandbox, path: &Path) -> Result<Handler, LoadError> {
        let shown = path.display().to_string();
        let read_error = |source: std::io::Error| LoadError::Read {
            path: shown.clone(),
            source,
        };
        if is_native(path).map_err(read_error)? {
            let kind = wasmtime::Engine::detect_precompiled_file(path)
                .map_err(|e| read_error(std::io::Error::other(format!("{e:#}"))))?;
            return match kind {
                Some(kind) => Handler::load_precompiled(sandbox, path, kind),
                None => Err(LoadError::NotWasm { path: shown }),
            };
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(LoadError::NotWasm { path: shown });
        }
        // The layer field: 0 for a core module, 1 for a component.
        if bytes[6..8] == [0, 0] {
            return Err(LoadError::CoreModule { path: shown });
        }
        let shape = Shape::read(&bytes).map_err(|e| LoadError::Invalid {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        check_shape(sandbox, &shape, &shown)?;
        let component = sandbox
            .same_component(&bytes, || sandbox.compile(&bytes))
            .map_err(|e| LoadError::Invalid {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        Handler::checked(sandbox, path, component, Some(shape))
    }

    /// A `.cwasm`: native code, so only by flag, only from a file no one else controls.
    /// Mapped, not read: the native code is shared with the page cache, not copied.
    fn load_precompiled(
        sandbox: &Sandbox,
        path: &Path,
        kind: wasmtime::Precompiled,
    ) -> Result<Handler, LoadError> {
        let shown = path.display().to_string();
        if !sandbox.trust_precompiled {
            return Err(LoadError::Untrusted { path: shown });
        }
        if let Some(why) = unsafe_to_run(path) {
            return Err(LoadError::UnsafeFile { path: shown, why });
        }
        if kind != wasmtime::Precompiled::Component {
            return Err(LoadError::CoreModule { path: shown });
        }
        // SAFETY: wasmtime checks that this engine's version and settings made the bytes;
        // what it cannot check, that they are what `precompile` wrote, rests on the flag and
        // on the file's owner and mode, checked above.
        let deserialize = || unsafe { Component::deserialize_file(&sandbox.engine, path) };
        // Mapped, not read: one handler is known by its file, its size and its time.
        let component = match precompiled_key(path) {
            Some(key) => sandbox.same_component(&key, deserialize),
            None => deserialize(),
        }
        .map_err(|e| {
            let reason = format!("{e:#}");
            if reason.contains("does not fit in pooling allocator") {
                LoadError::MemoryAtStart {
                    path: shown.clone(),
                    needs: format!("more than {}", size_text(sandbox.limits.max_memory as u64)),
                    limit: size_text(sandbox.limits.max_memory as u64),
                }
            } else {
                LoadError::Incompatible {
                    path: shown.clone(),
                    reason,
                }
            }
        })?;
        // The shape was checked when it was compiled; a .cwasm does not keep it.
        Handler::checked(sandbox, path, component, None)
    }

    /// A compiled component, checked against the world and ready to instantiate.
    fn checked(
        sandbox: &Sandbox,
        path: &Path,
        component: Component,
        shape: Option<Shape>,
    ) -> Result<Handler, LoadError> {
        let shown = path.display().to_string();
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
        let pre = HandlerPre::new(instance_pre).map_err(wrong_world)?;
        Ok(Handler {
            pre,
            path: path.to_path_buf(),
            imports,
            shape,
        })
    }

    /// What the component is made of: core instances, memories, memory at start (`None` if
    /// it was loaded precompiled).
    pub fn shape(&self) -> Option<Shape> {
        self.shape
    }

    /// Its native code, as a `.cwasm` file holds it (`sque-host compile`).
    pub fn native_code(&self) -> anyhow::Result<Vec<u8>> {
        self.pre
            .instance_pre()
            .component()
            .serialize()
            .map_err(|e| anyhow::anyhow!("cannot serialize the compiled handler: {e:#}"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version of the `sque:handler` world its imports name (`None`: it imports
    /// nothing of it, and runs under any).
    pub fn world(&self) -> Option<&'static str> {
        crate::sandbox::world_of(&self.imports)
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

/// Whether a file is native code (an ELF object, as `.cwasm` files are), by its first bytes.
pub fn is_native(path: &Path) -> std::io::Result<bool> {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    let mut file = open_handler_file(path)?;
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got == magic.len() && magic == *b"\x7fELF")
}

/// The largest handler file read: far above any component built so far (a Python one is
/// about 20 MiB, its native code twice that), low enough that a wrong path cannot fill the
/// host's memory.
const MAX_HANDLER_FILE_BYTES: u64 = 1 << 30;

/// Opens a handler file for reading: a regular file within [`MAX_HANDLER_FILE_BYTES`]. A
/// device or a pipe (`/dev/zero`) would be read without end.
fn open_handler_file(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a directory, a device or a pipe); pass the handler's .wasm file",
        ));
    }
    if meta.len() > MAX_HANDLER_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "{} MiB, over the {} MiB a handler may be; is this the handler's .wasm file?",
            meta.len() >> 20,
            MAX_HANDLER_FILE_BYTES >> 20
        )));
    }
    Ok(file)
}

/// Why a precompiled file (or the module cache's directory) is not safe to run code from:
/// another user owns it, or others may write it.
pub(crate) fn unsafe_to_run(path: &Path) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("cannot be inspected ({e})")),
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Some(format!(
            "is owned by user {}, not by this one ({me})",
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Some("may be written by other users".to_string());
    }
    None
}

/// Refuses, with the limit's name, a component the pool or `--max-memory` could not hold.
fn check_shape(sandbox: &Sandbox, shape: &Shape, path: &str) -> Result<(), LoadError> {
    let limit = sandbox.limits.max_memory as u64;
    if shape.initial_memory > limit {
        return Err(LoadError::MemoryAtStart {
            path: path.to_string(),
            needs: size_text(shape.initial_memory),
            limit: size_text(limit),
        });
    }
    let over = |count: u32, most: u32, what: &str| {
        (count > most).then(|| LoadError::TooMany {
            path: path.to_string(),
            over: format!("has {count} {what}, where a handler may have at most {most}"),
        })
    };
    let checks = [
        over(
            shape.core_instances,
            MAX_CORE_INSTANCES,
            "core module instances",
        ),
        over(shape.memories, MAX_MEMORIES, "linear memories"),
        over(shape.tables, MAX_TABLES, "tables"),
    ];
    if let Some(error) = checks.into_iter().flatten().next() {
        return Err(error);
    }
    Ok(())
}
