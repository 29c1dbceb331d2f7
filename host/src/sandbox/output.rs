//! Guest stdout and stderr, line by line into the host's log, tagged with the queue and job,
//! within the job's log budgets (bytes and lines: what is over either is counted, not
//! kept), escaped so that guest text can never start a line of the host's log; and the
//! job's denied capabilities, logged once per kind and counted.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use crate::sandbox::outcome::escaped;

/// How many bytes a guest may write in one go (what `check-write` grants).
const WRITE_PERMIT: usize = 64 << 10;
/// A line that never ends is cut here.
const LONGEST_LINE: usize = 8 << 10;

/// A capability the guest was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    Http,
    Tcp,
    Udp,
    NameLookup,
}

impl Denied {
    fn what(self) -> &'static str {
        match self {
            Denied::Http => "an HTTP request",
            Denied::Tcp => "a TCP socket",
            Denied::Udp => "a UDP socket",
            Denied::NameLookup => "a name lookup",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Denied::Http => "not allowed by --allow-http",
            Denied::Tcp | Denied::Udp => "sockets are never granted",
            Denied::NameLookup => {
                "name lookups are never granted (HTTP to a granted host needs none)"
            }
        }
    }
}

/// The log budgets, identity and denials of one job, shared by its stdout, stderr, the log
/// import and the capability checks.
#[derive(Clone)]
pub(crate) struct JobLog(Arc<Mutex<LogState>>);

struct LogState {
    queue: String,
    job: String,
    bytes_left: usize,
    lines_left: usize,
    dropped_bytes: usize,
    dropped_lines: usize,
    /// Denials by kind, in the order of `Denied`.
    denials: [u64; 4],
}

impl JobLog {
    pub fn new(queue: &str, job: &str, max_bytes: usize, max_lines: usize) -> JobLog {
        JobLog(Arc::new(Mutex::new(LogState {
            queue: queue.to_string(),
            job: job.to_string(),
            bytes_left: max_bytes,
            lines_left: max_lines,
            dropped_bytes: 0,
            dropped_lines: 0,
            denials: [0; 4],
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs one line from the guest if both budgets allow; every line counts, empty ones too.
    pub fn line(&self, stream: &str, level: tracing::Level, text: &str) {
        let mut s = self.state();
        if s.lines_left == 0 || text.len() > s.bytes_left {
            s.dropped_bytes += text.len();
            s.dropped_lines += 1;
            return;
        }
        s.lines_left -= 1;
        s.bytes_left -= text.len();
        let (queue, job) = (s.queue.as_str(), s.job.as_str());
        let text = escaped(text);
        match level {
            tracing::Level::ERROR => tracing::error!(%queue, %job, %stream, "{text}"),
            tracing::Level::WARN => tracing::warn!(%queue, %job, %stream, "{text}"),
            tracing::Level::INFO => tracing::info!(%queue, %job, %stream, "{text}"),
            tracing::Level::DEBUG => tracing::debug!(%queue, %job, %stream, "{text}"),
            tracing::Level::TRACE => tracing::trace!(%queue, %job, %stream, "{text}"),
        }
    }

    /// A refused capability: the first of each kind is logged, the rest counted.
    pub fn denied(&self, kind: Denied, target: &str) {
        let mut s = self.state();
        s.denials[kind as usize] += 1;
        if s.denials[kind as usize] == 1 {
            let (queue, job) = (s.queue.as_str(), s.job.as_str());
            tracing::warn!(%queue, %job, "denied the guest {} to {}: {}", kind.what(), escaped(target), kind.flag());
        }
    }

    /// Says how much was dropped and denied, once the job is over.
    pub fn finish(&self) {
        let s = self.state();
        let (queue, job) = (s.queue.as_str(), s.job.as_str());
        if s.dropped_lines > 0 {
            tracing::warn!(%queue, %job, "guest output over the per-job log limits (--max-log-bytes, --max-log-lines): {} line(s), {} byte(s) dropped", s.dropped_lines, s.dropped_bytes);
        }
        for kind in [Denied::Http, Denied::Tcp, Denied::Udp, Denied::NameLookup] {
            let n = s.denials[kind as usize];
            if n > 1 {
                tracing::warn!(%queue, %job, "denied the guest {} {n} times in all", kind.what());
            }
        }
    }
}

/// A guest's stdout or stderr.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    log: JobLog,
    stream: &'static str,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    pub fn new(log: JobLog, stream: &'static str) -> GuestOutput {
        GuestOutput {
            log,
            stream,
            partial: Arc::default(),
        }
    }

    fn take(&self, buf: &[u8]) {
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        partial.extend_from_slice(buf);
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        // A line that never ends must not grow without bound: cut it.
        if partial.len() > LONGEST_LINE {
            let line: Vec<u8> = std::mem::take(&mut *partial);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let level = if self.stream == "stderr" {
            tracing::Level::WARN
        } else {
            tracing::Level::INFO
        };
        self.log
            .line(self.stream, level, &String::from_utf8_lossy(line));
    }
}

impl Drop for GuestOutput {
    fn drop(&mut self) {
        // The last clone flushes a line left without its newline.
        if Arc::strong_count(&self.partial) == 1 {
            let rest = std::mem::take(&mut *self.partial.lock().unwrap_or_else(|p| p.into_inner()));
            if !rest.is_empty() {
                self.emit(&rest);
            }
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// Written in place: the default adapter passes every write to a background task and
    /// makes the guest wait for it, so a guest that prints waited for its turn on the runtime
    /// once per line, behind every other guest's time slice (a few hundred lines could take
    /// seconds beside guests that compute).
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
