//! Guest stdout and stderr, line by line into the host's log, tagged with the queue and job,
//! within the job's log budget (what is over it is counted, not kept).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How many bytes a guest may write in one go (what `check-write` grants).
const WRITE_PERMIT: usize = 64 << 10;

/// The log budget and identity of one job, shared by its stdout, stderr and log import.
#[derive(Clone)]
pub(crate) struct JobLog(Arc<Mutex<LogState>>);

struct LogState {
    queue: String,
    job: String,
    budget: usize,
    dropped: usize,
}

impl JobLog {
    pub fn new(queue: &str, job: &str, budget: usize) -> JobLog {
        JobLog(Arc::new(Mutex::new(LogState {
            queue: queue.to_string(),
            job: job.to_string(),
            budget,
            dropped: 0,
        })))
    }

    /// Logs one line from the guest if the budget allows.
    pub fn line(&self, stream: &str, level: tracing::Level, text: &str) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if text.len() > s.budget {
            s.dropped += text.len();
            return;
        }
        s.budget -= text.len();
        let (queue, job) = (s.queue.as_str(), s.job.as_str());
        match level {
            tracing::Level::ERROR => tracing::error!(%queue, %job, %stream, "{text}"),
            tracing::Level::WARN => tracing::warn!(%queue, %job, %stream, "{text}"),
            tracing::Level::INFO => tracing::info!(%queue, %job, %stream, "{text}"),
            tracing::Level::DEBUG => tracing::debug!(%queue, %job, %stream, "{text}"),
            tracing::Level::TRACE => tracing::trace!(%queue, %job, %stream, "{text}"),
        }
    }

    /// Says how much was dropped, once the job is over.
    pub fn finish(&self) {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.dropped > 0 {
            tracing::warn!(queue = %s.queue, job = %s.job, "guest output over the per-job log limit: {} bytes dropped", s.dropped);
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
        // A line that never ends must not grow without bound: cut it at 8 KiB.
        if partial.len() > 8192 {
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
