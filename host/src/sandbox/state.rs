//! What one job's store holds: its WASI context (empty unless granted), its resource table,
//! HTTP state, memory limiter and log. One `State` per job, dropped with the store.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::sandbox::follow_up::{FollowUps, Refused};
use crate::sandbox::http::AllowList;
use crate::sandbox::limits::{
    Grants, Limits, MAX_HTTP_BODIES, MAX_HTTP_FIELD_BYTES, MAX_RANDOM_BYTES,
};
use crate::sandbox::outcome::cut;
use crate::sandbox::output::{Denied, GuestOutput, JobLog};
use crate::sandbox::progress::{JobProgress, Progress};

/// The prefix the guest SDK's panic hook puts before the panic message.
const PANIC_PREFIX: &str = "guest panicked: ";

pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: AllowList,
    pub limiter: MemoryLimiter,
    pub log: JobLog,
    pub progress: Progress,
    /// Where the job's progress reports go besides its log (Redis), if anywhere.
    pub progress_sink: Option<JobProgress>,
    /// The follow-up jobs it pushed, sent on only if it completes.
    pub follow_ups: FollowUps,
    /// The message of a panic the guest reported before it trapped (cut to the error limit).
    pub panic: Option<String>,
    /// HTTP header bytes the guest may still create (`guards.rs` counts them).
    pub http_field_bytes_left: usize,
    /// Outgoing HTTP bodies the guest may still create (`guards.rs` counts them).
    pub http_bodies_left: usize,
    /// Set when a host limit other than memory ended the job: what it was.
    pub resource_limit_hit: Option<String>,
    max_error_bytes: usize,
}

impl State {
    pub fn new(
        limits: &Limits,
        max_error_bytes: usize,
        grants: &Arc<Grants>,
        queue: &str,
        job: &str,
        progress_sink: Option<JobProgress>,
    ) -> State {
        let log = JobLog::new(
            queue,
            job,
            limits.max_log_bytes,
            limits.max_log_lines,
            max_error_bytes,
        );
        // Empty unless granted: no preopened directories, no arguments, no sockets (refused
        // when made, and logged, in guards.rs, as name lookups are). Every address is
        // refused besides, should a socket ever be made.
        let mut wasi = WasiCtx::builder();
        let denials = log.clone();
        wasi.stdout(GuestOutput::new(log.clone(), "stdout"))
            .stderr(GuestOutput::new(log.clone(), "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES)
            .socket_addr_check(move |addr, usage| {
                use wasmtime_wasi::sockets::SocketAddrUse as Use;
                let kind = match usage {
                    Use::UdpBind | Use::UdpSend | Use::UdpReceive => Denied::Udp,
                    _ => Denied::Tcp,
                };
                denials.denied(kind, &addr.to_string());
                Box::pin(async { false })
            });
        for (k, v) in &grants.env {
            wasi.env(k, v);
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        State {
            wasi: wasi.build(),
            table,
            http: WasiHttpCtx::new(),
            hooks: AllowList {
                grants: grants.clone(),
                log: log.clone(),
            },
            limiter: MemoryLimiter {
                max_memory: limits.max_memory,
                total: 0,
                hit: None,
            },
            log,
            progress: Progress::default(),
            progress_sink,
            follow_ups: FollowUps::default(),
            panic: None,
            http_field_bytes_left: MAX_HTTP_FIELD_BYTES,
            http_bodies_left: MAX_HTTP_BODIES,
            resource_limit_hit: None,
            max_error_bytes,
        }
    }
}

impl State {
    /// Readies the state of a kept instance for its next job (`--reuse`): what describes a
    /// job's ending starts empty. The HTTP header budget is the instance's, not the job's:
    /// headers a guest keeps across jobs stay in the host's memory (see `reuse.rs`).
    pub fn begin_job(
        &mut self,
        queue: &str,
        job: &str,
        max_error_bytes: usize,
        progress_sink: Option<JobProgress>,
    ) {
        self.log.begin(queue, job);
        self.progress_sink = progress_sink;
        self.follow_ups = FollowUps::default();
        self.limiter.hit = None;
        self.panic = None;
        self.resource_limit_hit = None;
        self.max_error_bytes = max_error_bytes;
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl State {
    /// A line from the guest's `log` import (either version of the world). The guest SDK
    /// reports a panic this way before it traps: its message becomes the job's error.
    pub fn guest_log(&mut self, level: tracing::Level, message: &str) {
        if let Some(panic) = message.strip_prefix(PANIC_PREFIX) {
            self.panic = Some(cut(panic, self.max_error_bytes).into_owned());
        }
        self.log.line("log", level, message);
    }

    /// A follow-up job the guest pushes (`follow-up.push`); a refusal is logged once a kind.
    pub fn push_follow_up(
        &mut self,
        queue: &str,
        data: String,
        delay_ms: Option<u64>,
        unique_key: Option<String>,
    ) -> Result<u32, Refused> {
        let pushed = self
            .follow_ups
            .push(&self.hooks.grants, queue, data, delay_ms, unique_key);
        if pushed == Err(Refused::Denied) {
            self.log.denied(Denied::Push, queue);
        }
        pushed
    }

    /// Once the job is over: records what the rates kept back and what was dropped.
    pub fn finish_job(&mut self) {
        self.progress.finish(&self.log, self.progress_sink.as_ref());
        self.log.finish();
    }
}

/// Caps linear memory and tables; remembers that the cap was hit, so that the job's error
/// says "out of memory" rather than whatever trap the guest's allocator turned it into.
/// The cap is on the instance's memories together: a component may define several (the
/// pool allows `MAX_MEMORIES`, more on demand), and each one capped alone would give it
/// that many times `--max-memory`.
pub(crate) struct MemoryLimiter {
    max_memory: usize,
    /// The bytes of linear memory the instance's memories have together.
    total: usize,
    pub hit: Option<usize>,
}

/// The most table elements an instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    /// Asked as each memory is made (from 0) and as it grows: the growth is counted before
    /// it is known to succeed, so a growth that then fails stays counted (a cap reached
    /// sooner, never a cap exceeded).
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(desired.saturating_sub(current));
        if total > self.max_memory {
            self.hit = Some(total);
            return Err(wasmtime::format_err!(
                "out of memory: the guest asked for {total} bytes of linear memory in all, the limit is {}",
                self.max_memory
            ));
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryLimiter;
    use wasmtime::ResourceLimiter as _;

    const MIB: usize = 1 << 20;

    #[test]
    fn the_memory_cap_holds_for_an_instance_s_memories_together() {
        let mut limiter = MemoryLimiter {
            max_memory: 64 * MIB,
            total: 0,
            hit: None,
        };
        // Two memories made, the first grown: 60 MiB in all.
        assert!(limiter.memory_growing(0, 30 * MIB, None).unwrap());
        assert!(limiter.memory_growing(0, 20 * MIB, None).unwrap());
        assert!(limiter.memory_growing(30 * MIB, 40 * MIB, None).unwrap());
        assert_eq!(limiter.hit, None);
        // Each alone would fit; together they do not.
        assert!(limiter.memory_growing(20 * MIB, 30 * MIB, None).is_err());
        assert_eq!(limiter.hit, Some(70 * MIB));
        assert!(
            limiter.memory_growing(0, 5 * MIB, None).is_err(),
            "a third memory"
        );
        assert!(
            limiter.memory_growing(40 * MIB, 44 * MIB, None).unwrap(),
            "up to the cap"
        );
    }
}
