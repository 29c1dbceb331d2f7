//! The one wasmtime engine of a process ([`GuestEngine`]: the engine, the linker with WASI
//! with an empty context, `wasi:http` behind an allow-list and the `log` import), and a
//! [`Sandbox`] on it for each queue a host serves: that queue's limits and grants.
//!
//! - Pooling allocator sized to the slots: instances, memories and fiber stacks are reused
//!   instead of mapped and unmapped per job. Where the address-space reservation fails (a
//!   small `ulimit -v`), it falls back to on-demand allocation and says so.
//! - Epoch interruption: a ticker thread advances the epoch every 10 ms, and each job's
//!   store yields to the runtime at every tick, so a guest burning CPU cannot hold a thread
//!   past its timeout, and the job's timeout can drop it.
//! - Copy-on-write memory images and a compiled-module cache on disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::metrics::histogram::Histogram;
use tokio_util::sync::{CancellationToken, DropGuard};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::sandbox::limits::{Grants, Limits};
use crate::sandbox::state::State;

/// How often the epoch advances: the granularity of timeouts and of yielding.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each linear memory reset in place (not decommitted) when an instance ends.
const KEEP_RESIDENT: usize = 4 << 20;

/// The most core module instances one handler may make. Language runtimes make many:
/// componentize-py's output makes 14, or 38 built with `--stub-wasi`. Only a count: core
/// instances take no room in the pool.
pub(crate) const MAX_CORE_INSTANCES: u32 = 64;
/// The most linear memories one handler's modules may define: each takes a slot of the
/// pool (an address-space reservation), so the pool has room for this many per instance.
pub(crate) const MAX_MEMORIES: u32 = 4;
/// The most tables one handler's modules may define.
pub(crate) const MAX_TABLES: u32 = 16;

/// How to build a [`Sandbox`] with an engine of its own.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Jobs that may run at once (sizes the instance pool).
    pub slots: u32,
    pub limits: Limits,
    pub grants: Grants,
    /// Where compiled modules are cached (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Whether precompiled handlers (`.cwasm`: native code) may be loaded.
    pub trust_precompiled: bool,
}

/// How to build the [`GuestEngine`] that several sandboxes share.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Jobs that may run at once, over all the sandboxes on the engine (sizes the pool).
    pub slots: u32,
    /// The most linear memory any sandbox on the engine may give an instance: the pool's
    /// slots are this large, so a sandbox asking for more is refused.
    pub max_memory: usize,
    pub cache_dir: Option<PathBuf>,
    pub trust_precompiled: bool,
}

/// The engine and the linker: one a process, whatever the queues it serves.
pub struct GuestEngine {
    engine: Engine,
    linker: Arc<Linker<State>>,
    pooling: bool,
    max_memory: usize,
    cache_dir: Option<PathBuf>,
    trust_precompiled: bool,
    /// Stops the epoch ticker when the engine is dropped.
    _ticker: DropGuard,
    /// The components loaded since [`GuestEngine::forget_loaded`], by what names them:
    /// queues that name the same handler get one component (see [`Sandbox::same_component`]).
    loaded: Mutex<Vec<(Vec<u8>, Component)>>,
}

impl GuestEngine {
    /// Forgets the components loaded so far (the queues that use them keep them): called once
    /// all the handlers of a start or a reload are loaded, so that a replaced handler's
    /// compiled code is not kept for nothing.
    pub fn forget_loaded(&self) {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn new(config: EngineConfig) -> anyhow::Result<GuestEngine> {
        let cache = match &config.cache_dir {
            Some(dir) => Some(open_cache(dir)?),
            None => None,
        };
        let pagemap = reset_by_pagemap(swaps().as_deref());
        let pooled = Engine::new(&engine_config(&config, cache.clone(), true, pagemap));
        let (engine, pooling) = match pooled {
            Ok(engine) => {
                if !pagemap {
                    tracing::info!("swap is on: the instance pool resets each memory's kept pages in full, not only the written ones (wasmtime 48.0.10 misses swapped-out pages), which makes fresh instances slower");
                }
                (engine, true)
            }
            Err(e) => {
                tracing::warn!("the pooling allocator is unavailable ({e}); instances are allocated on demand, which is slower");
                let engine = Engine::new(&engine_config(&config, cache, false, pagemap))
                    .map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e}"))?;
                (engine, false)
            }
        };
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking WASI: {e}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking wasi:http: {e}"))?;
        crate::sandbox::world::link(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking the handler world: {e}"))?;
        crate::sandbox::guards::install(&mut linker)
            .map_err(|e| anyhow::anyhow!("linking the host's guards: {e}"))?;
        let ticker = start_ticker(engine.clone());
        Ok(GuestEngine {
            engine,
            linker: Arc::new(linker),
            pooling,
            max_memory: config.max_memory,
            cache_dir: config.cache_dir,
            trust_precompiled: config.trust_precompiled,
            _ticker: ticker,
            loaded: Mutex::new(Vec::new()),
        })
    }

    /// Compiles a component on an engine made for this compile alone, then loads the result
    /// on this one. wasmtime 48 keeps each compile thread's scratch (regalloc's, as large as
    /// the largest function compiled) for as long as the engine that compiled lives: compiled
    /// on the serving engine, the Python `send-email` left the host about 60 MiB larger for
    /// good (203 MiB three seconds after its start, against 142). The same settings, so the
    /// code is what this engine would have made, and the same module cache, which the
    /// compiling engine fills or hits; the code comes over as bytes, which costs a cached
    /// start of that handler 0.1 s (0.24 s instead of 0.11). Freed memory goes back to the
    /// system at once meanwhile (`PromptPurge`).
    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let _compiling = crate::allocator::PromptPurge::hold();
        let mut config = self.engine.config().clone();
        // It makes no instances: no pool to reserve.
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        let compiler = Engine::new(&config)?;
        let native = match self.cache_dir {
            // A hit or a miss, the cache then holds it.
            Some(_) => Component::new(&compiler, bytes)?.serialize()?,
            None => compiler.precompile_component(bytes)?,
        };
        drop(compiler);
        // SAFETY: `native` was made from `bytes` just now, by an engine of this one's settings.
        unsafe { Component::deserialize(&self.engine, &native) }
    }

    /// The most memory a sandbox on this engine may give an instance.
    pub fn max_memory(&self) -> usize {
        self.max_memory
    }
}

/// What the jobs of one queue run in: the shared engine, and that queue's limits and grants.
pub struct Sandbox {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<State>>,
    pub(crate) limits: Limits,
    /// The queue's result and error limits (its `max_result_bytes`, `max_error_bytes`),
    /// known once the host has joined the queue: `Limits` has this host's own until then.
    result_limit: AtomicUsize,
    error_limit: AtomicUsize,
    pub(crate) grants: Arc<Grants>,
    pub(crate) trust_precompiled: bool,
    /// Where the time fresh instances take to make is recorded, once metrics are on.
    pub(crate) instantiation: OnceLock<Histogram>,
    shared: Arc<GuestEngine>,
}

impl Sandbox {
    /// A sandbox with an engine of its own (one queue, or a command that only loads).
    pub fn new(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let engine = Arc::new(GuestEngine::new(EngineConfig {
            slots: config.slots,
            max_memory: config.limits.max_memory,
            cache_dir: config.cache_dir,
            trust_precompiled: config.trust_precompiled,
        })?);
        Sandbox::on(&engine, config.limits, config.grants)
    }

    /// A sandbox on a shared engine. Refused if its memory limit is over the engine's.
    pub fn on(
        engine: &Arc<GuestEngine>,
        limits: Limits,
        grants: Grants,
    ) -> anyhow::Result<Sandbox> {
        if limits.max_memory > engine.max_memory {
            anyhow::bail!(
                "a memory limit of {} is over the {} this host's instance pool was made for; restart the host to raise it",
                crate::sandbox::size_text(limits.max_memory as u64),
                crate::sandbox::size_text(engine.max_memory as u64)
            );
        }
        Ok(Sandbox {
            engine: engine.engine.clone(),
            linker: engine.linker.clone(),
            result_limit: AtomicUsize::new(limits.max_result_bytes),
            error_limit: AtomicUsize::new(limits.max_error_bytes),
            limits,
            grants: Arc::new(grants),
            trust_precompiled: engine.trust_precompiled,
            instantiation: OnceLock::new(),
            shared: engine.clone(),
        })
    }

    /// The component of the handler `key` names (its file's bytes; for a `.cwasm`, its path,
    /// size and time): the one loaded for the same key since the engine last forgot its
    /// loads, or `compile`'s. One component for every queue that names
    /// the same handler: its compiled code is kept once, and, more than that, the instance
    /// pool keeps its slots warm for one module instead of a copy for each queue. Ten queues
    /// of one handler, each with a copy, made the pool map a module's memory image into a
    /// slot again for most jobs (a third of the host's CPU: bench/README.md).
    pub(crate) fn same_component(
        &self,
        key: &[u8],
        compile: impl FnOnce() -> Result<Component, wasmtime::Error>,
    ) -> Result<Component, wasmtime::Error> {
        let lock = || self.shared.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = lock().iter().find(|(k, _)| k.as_slice() == key) {
            return Ok(c.clone());
        }
        // Compiled outside the lock: another queue's handler may compile meanwhile.
        let component = compile()?;
        lock().push((key.to_vec(), component.clone()));
        Ok(component)
    }

    /// Compiles a handler's component (see [`GuestEngine::compile`]).
    pub(crate) fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        self.shared.compile(bytes)
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.shared.pooling
    }

    /// Records from now on how long each fresh instance takes to make, into `histogram`
    /// (`/metrics`). Until then, nothing is timed.
    pub fn time_instantiation(&self, histogram: Histogram) {
        let _ = self.instantiation.set(histogram);
    }

    /// Where compiled handlers are cached, if they are.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.shared.cache_dir.as_deref()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes the queue's result and error limits, which are the ones that hold.
    pub fn use_queue_limits(&self, max_result_bytes: usize, max_error_bytes: usize) {
        self.result_limit.store(max_result_bytes, Ordering::Relaxed);
        self.error_limit.store(max_error_bytes, Ordering::Relaxed);
    }

    /// The largest result a job may return, in bytes.
    pub fn max_result_bytes(&self) -> usize {
        self.result_limit.load(Ordering::Relaxed)
    }

    /// The longest error text kept, in bytes.
    pub fn max_error_bytes(&self) -> usize {
        self.error_limit.load(Ordering::Relaxed)
    }
}

/// The engine's settings; `pagemap`: whether the pool may reset memory by PAGEMAP_SCAN
/// ([`reset_by_pagemap`]).
fn engine_config(
    config: &EngineConfig,
    cache: Option<wasmtime::Cache>,
    pooling: bool,
    pagemap: bool,
) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true)
        .wasm_component_model(true)
        .memory_init_cow(true)
        .cache(cache)
        // Guests are small; a small stack makes fresh instances cheaper and deep recursion a
        // clean "call stack exhausted" trap.
        .max_wasm_stack(512 << 10)
        .async_stack_size(1 << 20);
    if pooling {
        // Room for every slot twice over (a reload runs old and new handlers side by side)
        // plus the checks `sque-host check` makes.
        let instances = config.slots.saturating_mul(2).saturating_add(4);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .total_core_instances(instances.saturating_mul(MAX_CORE_INSTANCES))
            .max_memories_per_component(MAX_MEMORIES)
            .total_memories(instances.saturating_mul(MAX_MEMORIES))
            .max_tables_per_component(MAX_TABLES)
            .total_tables(instances.saturating_mul(MAX_TABLES))
            .total_stacks(instances)
            .max_memory_size(config.max_memory)
            // Every memory slot may stay warm (keeping what `KEEP_RESIDENT` says), so that
            // each handler keeps slots with its memory image mapped: with fewer, split over
            // the pool's shards, ten queues' handlers took each other's slots and remapped
            // their images for most jobs (bench/README.md, "Many queues in one host").
            .max_unused_warm_slots(instances.saturating_mul(MAX_MEMORIES))
            // Teardown is most of a fresh instance's cost. Resetting the pages a guest touched
            // with memset (found with PAGEMAP_SCAN where the kernel has it) keeps them
            // resident and avoids madvise, whose TLB shootdowns interrupt every other core;
            // what must still be decommitted is batched. Not where swap is on (see
            // `reset_by_pagemap`).
            .pagemap_scan(if pagemap {
                wasmtime::Enabled::Auto
            } else {
                wasmtime::Enabled::No
            })
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            .decommit_batch_size(instances.min(64) as usize);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// Whether the pool may reset memory by what PAGEMAP_SCAN reports, given `/proc/swaps`.
/// wasmtime 48.0.10 asks the scan for the written pages that are *present*: a page the kernel
/// swapped out is not, so it was neither reset nor decommitted, and the next instance in that
/// slot (another job, perhaps another queue's handler) could read what the last one wrote
/// there (fixed in wasmtime 48.0.11, which this host cannot take yet: Cargo.toml). Without the
/// scan, the pool resets the whole kept region, swapped or not, which costs a fresh instance
/// more. Without swap no page is swapped out; a swap turned on while the host runs is not
/// seen (docs/HOST.md says so).
fn reset_by_pagemap(proc_swaps: Option<&str>) -> bool {
    match proc_swaps {
        // The first line is the header; every further line is a swap area in use.
        Some(text) => text.lines().skip(1).all(|line| line.trim().is_empty()),
        // Unreadable: no way to know, so the safe reset.
        None => false,
    }
}

/// `/proc/swaps`, if it can be read.
fn swaps() -> Option<String> {
    std::fs::read_to_string("/proc/swaps").ok()
}

/// A compiled-module cache in `dir`. The cache holds native code that the host will run, so
/// the directory must be writable by this user alone.
fn open_cache(dir: &Path) -> anyhow::Result<wasmtime::Cache> {
    use std::os::unix::fs::DirBuilderExt as _;
    // Made for this user alone whatever the umask: under the common 002, `create_dir_all`
    // made a directory the check below then refused.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the cache directory {}", dir.display()))?;
    // The directory checked is the one wasmtime is given, even if `dir` is a link that
    // someone repoints meanwhile.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve the cache directory {}", dir.display()))?;
    // Asked of this process's user, not of a file made to compare with: hosts that start
    // together on one cache would remove each other's probe file (a clean-clone CI run
    // once failed on that: two test hosts, one `No such file or directory`).
    if let Some(why) = crate::sandbox::handler::unsafe_to_run(&dir) {
        let dir = dir.display().to_string();
        return Err(crate::sandbox::LoadError::UnsafeCache { dir, why }.into());
    }
    let mut cfg = wasmtime::CacheConfig::new();
    cfg.with_directory(dir);
    wasmtime::Cache::new(cfg).map_err(|e| anyhow::anyhow!("cannot open the module cache: {e}"))
}

/// Starts the thread that advances the engine's epoch, until the guard is dropped.
fn start_ticker(engine: Engine) -> DropGuard {
    let stop = CancellationToken::new();
    let ticking = stop.clone();
    std::thread::Builder::new()
        .name("sque-epoch".into())
        .spawn(move || {
            while !ticking.is_cancelled() {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawn the epoch thread");
    stop.drop_guard()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// The smallest component: the magic, version 0x0d and layer 1.
    const EMPTY: &[u8] = &[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn memory_is_reset_by_pagemap_only_where_no_swap_is_on() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(reset_by_pagemap(Some(header)));
        assert!(!reset_by_pagemap(Some(&format!(
            "{header}/swapfile                               file\t\t1048572\t\t0\t\t-2\n"
        ))));
        assert!(!reset_by_pagemap(Some(&format!(
            "{header}/dev/zram0                              partition\t4194300\t\t0\t\t100\n"
        ))));
        assert!(!reset_by_pagemap(None));
    }

    #[test]
    fn queues_naming_one_handler_get_one_component_until_the_engine_forgets_its_loads() {
        let engine = Arc::new(
            GuestEngine::new(EngineConfig {
                slots: 1,
                max_memory: Limits::default().max_memory,
                cache_dir: None,
                trust_precompiled: false,
            })
            .unwrap(),
        );
        let (a, b) = (
            Sandbox::on(&engine, Limits::default(), Grants::default()).unwrap(),
            Sandbox::on(&engine, Limits::default(), Grants::default()).unwrap(),
        );
        let compiled = Cell::new(0);
        let load = |sandbox: &Sandbox, bytes: &[u8]| {
            sandbox
                .same_component(bytes, || {
                    compiled.set(compiled.get() + 1);
                    Component::new(&sandbox.engine, bytes)
                })
                .unwrap()
        };
        load(&a, EMPTY);
        load(&b, EMPTY);
        assert_eq!(compiled.get(), 1, "two queues, one handler: compiled once");
        // Other bytes are another handler.
        let mut other = EMPTY.to_vec();
        // A custom section of one byte: a name of length 0.
        other.extend_from_slice(&[0x00, 0x01, 0x00]);
        assert!(Component::new(&a.engine, &other).is_ok());
        load(&a, &other);
        assert_eq!(compiled.get(), 2);
        // A reload's loads are its own.
        engine.forget_loaded();
        load(&b, EMPTY);
        assert_eq!(compiled.get(), 3);
    }
}
