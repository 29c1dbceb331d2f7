//! Guest stdout and stderr, line by line into the host's log, tagged with the queue and job,
//! within the job's log budgets (bytes and lines: what is over either is counted, not
//! kept), escaped so that guest text can never start a line of the host's log; the last
//! bytes of stderr, kept apart for the job's error; and the job's denied capabilities,
//! logged once per kind and counted.
//!
//! Why a tail of stderr: the log budgets keep a job's *first* lines, but a guest runtime
//! that dies of an uncaught exception (Python's, JavaScript's) writes the reason last, to
//! stderr, and then traps. The job's error takes the tail, so a handler built without an SDK
//! still fails with its own message rather than "unreachable instruction executed".

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
/// How much of a denied target (the guest's text) a log line shows.
const DENIED_TARGET_SHOWN: usize = 200;

/// A capability the guest was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    Http,
    Tcp,
    Udp,
    NameLookup,
    Push,
}

impl Denied {
    const ALL: [Denied; 5] = [
        Denied::Http,
        Denied::Tcp,
        Denied::Udp,
        Denied::NameLookup,
        Denied::Push,
    ];

    fn what(self) -> &'static str {
        match self {
            Denied::Http => "an HTTP request",
            Denied::Tcp => "a TCP socket",
            Denied::Udp => "a UDP socket",
            Denied::NameLookup => "a name lookup",
            Denied::Push => "a follow-up job",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Denied::Http => "not allowed by --allow-http",
            Denied::Tcp | Denied::Udp => "sockets are never granted",
            Denied::NameLookup => {
                "name lookups are never granted (HTTP to a granted host needs none)"
            }
            Denied::Push => "not allowed by --allow-push",
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
    /// Bytes and lines each job may log.
    budgets: (usize, usize),
    bytes_left: usize,
    lines_left: usize,
    dropped_bytes: usize,
    dropped_lines: usize,
    /// Denials by kind, in the order of `Denied`.
    denials: [u64; Denied::ALL.len()],
    /// The last bytes the guest wrote to stderr: at most `tail_limit` once trimmed.
    stderr_tail: Vec<u8>,
    tail_limit: usize,
    /// Whether stderr bytes were dropped from the front of the tail.
    tail_trimmed: bool,
}

/// `tracing::$macro!` at `level`, with the rest of its arguments: one arm a level, since
/// tracing's macros take the level as a constant of their callsite. [`JobLog::line`] and
/// [`JobLog::enabled`] share it, so that the filter `enabled` asks is the one `line` meets.
macro_rules! at_level {
    ($level:expr, $macro:ident!($($args:tt)*)) => {
        match $level {
            tracing::Level::ERROR => tracing::$macro!(tracing::Level::ERROR, $($args)*),
            tracing::Level::WARN => tracing::$macro!(tracing::Level::WARN, $($args)*),
            tracing::Level::INFO => tracing::$macro!(tracing::Level::INFO, $($args)*),
            tracing::Level::DEBUG => tracing::$macro!(tracing::Level::DEBUG, $($args)*),
            tracing::Level::TRACE => tracing::$macro!(tracing::Level::TRACE, $($args)*),
        }
    };
}

impl JobLog {
    /// A job's log: `max_bytes` and `max_lines` are its budgets, `tail_bytes` how much of
    /// the end of its stderr to keep for its error.
    pub fn new(
        queue: &str,
        job: &str,
        max_bytes: usize,
        max_lines: usize,
        tail_bytes: usize,
    ) -> JobLog {
        JobLog(Arc::new(Mutex::new(LogState {
            queue: queue.to_string(),
            job: job.to_string(),
            budgets: (max_bytes, max_lines),
            bytes_left: max_bytes,
            lines_left: max_lines,
            dropped_bytes: 0,
            dropped_lines: 0,
            denials: [0; Denied::ALL.len()],
            stderr_tail: Vec::new(),
            tail_limit: tail_bytes,
            tail_trimmed: false,
        })))
    }

    /// Starts the log anew for another job on the same instance (`--reuse`): its identity,
    /// budgets, stderr tail and denials are that job's own.
    pub fn begin(&self, queue: &str, job: &str) {
        let mut s = self.state();
        let (max_bytes, max_lines) = s.budgets;
        s.queue.clear();
        s.queue.push_str(queue);
        s.job.clear();
        s.job.push_str(job);
        s.bytes_left = max_bytes;
        s.lines_left = max_lines;
        s.dropped_bytes = 0;
        s.dropped_lines = 0;
        s.denials = [0; Denied::ALL.len()];
        s.stderr_tail.clear();
        s.tail_trimmed = false;
    }

    /// Keeps `bytes` as the latest of stderr, within twice the tail's size (trimmed in
    /// batches, so that each byte is moved at most once or twice).
    fn keep_stderr(&self, bytes: &[u8]) {
        let mut s = self.state();
        let limit = s.tail_limit;
        if bytes.len() >= limit {
            s.tail_trimmed |= bytes.len() > limit || !s.stderr_tail.is_empty();
            s.stderr_tail.clear();
            s.stderr_tail
                .extend_from_slice(&bytes[bytes.len() - limit..]);
            return;
        }
        if s.stderr_tail.len() + bytes.len() > 2 * limit {
            let excess = s.stderr_tail.len() + bytes.len() - limit;
            s.stderr_tail.drain(..excess);
            s.tail_trimmed = true;
        }
        s.stderr_tail.extend_from_slice(bytes);
    }

    /// The last lines the guest wrote to stderr, at most the tail's size, from the start of
    /// a line where the tail was cut; `None` if it wrote nothing but blanks.
    pub fn stderr_tail(&self) -> Option<String> {
        let s = self.state();
        let tail = &s.stderr_tail[s.stderr_tail.len().saturating_sub(s.tail_limit)..];
        let whole = !s.tail_trimmed && tail.len() == s.stderr_tail.len();
        let text = String::from_utf8_lossy(tail);
        let text = match text.split_once('\n') {
            // Cut inside a line: start at the next one, unless that leaves nothing.
            Some((_, rest)) if !whole && !rest.trim().is_empty() => rest,
            _ => &text,
        };
        let text = text.trim_end();
        (!text.trim().is_empty()).then(|| text.to_string())
    }

    /// Lines and bytes counted so far: (logged, dropped) of each.
    #[cfg(test)]
    fn counted(&self) -> ((usize, usize), (usize, usize)) {
        let s = self.state();
        let logged = (s.budgets.1 - s.lines_left, s.budgets.0 - s.bytes_left);
        (logged, (s.dropped_lines, s.dropped_bytes))
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
        at_level!(level, event!(%queue, %job, %stream, "{text}"));
    }

    /// Whether [`JobLog::line`] at `level` would reach the log (`log.enabled`): asked from
    /// here, with the fields `line` writes, so that the answer is the filter of the very
    /// events `line` writes. The budgets are left out: a line over them is still counted, and
    /// said once the job is over.
    pub fn enabled(&self, level: tracing::Level) -> bool {
        at_level!(level, event_enabled!(queue, job, stream, message))
    }

    /// A refused capability: the first of each kind is logged, the rest counted.
    pub fn denied(&self, kind: Denied, target: &str) {
        let mut s = self.state();
        s.denials[kind as usize] += 1;
        if s.denials[kind as usize] == 1 {
            let (queue, job) = (s.queue.as_str(), s.job.as_str());
            // The target is the guest's text (a host name, a queue name): cut before it is
            // escaped, which may make it six times longer.
            let target =
                escaped(&crate::sandbox::outcome::cut(target, DENIED_TARGET_SHOWN)).into_owned();
            tracing::warn!(%queue, %job, "denied the guest {} to {target}: {}", kind.what(), kind.flag());
        }
    }

    /// Says how much was dropped and denied, once the job is over.
    pub fn finish(&self) {
        let s = self.state();
        let (queue, job) = (s.queue.as_str(), s.job.as_str());
        if s.dropped_lines > 0 {
            tracing::warn!(%queue, %job, "guest output over the per-job log limits (--max-log-bytes, --max-log-lines): {} line(s), {} byte(s) dropped", s.dropped_lines, s.dropped_bytes);
        }
        for kind in Denied::ALL {
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

    /// Emits a whole line, cut into lines of LONGEST_LINE bytes if it is longer (a line that
    /// ends within a write may be as long as the write).
    fn emit_cut(&self, line: &[u8]) {
        if line.len() <= LONGEST_LINE {
            self.emit(line);
        } else {
            for piece in line.chunks(LONGEST_LINE) {
                self.emit(piece);
            }
        }
    }

    fn take(&self, buf: &[u8]) {
        if self.stream == "stderr" {
            self.log.keep_stderr(buf);
        }
        let mut partial = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        // One pass over the write, each byte looked at once: a write of many short lines
        // (64 KiB of newlines) must cost its length, not its length squared, since the guest
        // cannot be interrupted while the host works for it.
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            if partial.is_empty() {
                self.emit_cut(&rest[..end]);
            } else {
                partial.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut *partial);
                self.emit_cut(&line);
            }
            rest = &rest[end + 1..];
        }
        partial.extend_from_slice(rest);
        // A line that never ends must not grow without bound: it is cut into lines of
        // LONGEST_LINE bytes, the rest left to be continued.
        if partial.len() > LONGEST_LINE {
            let cut = partial.len() - partial.len() % LONGEST_LINE;
            for line in partial[..cut].chunks(LONGEST_LINE) {
                self.emit(line);
            }
            partial.drain(..cut);
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
    /// A write over what `check-write` granted is the guest's error (WASI says to trap):
    /// refused, so that the host's work for one write stays bounded.
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if bytes.len() > WRITE_PERMIT {
            return Err(StreamError::trap(&format!(
                "the guest wrote {} bytes to {} in one write; check-write permits {WRITE_PERMIT}",
                bytes.len(),
                self.stream
            )));
        }
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

#[cfg(test)]
mod tests {
    use super::{GuestOutput, JobLog, LONGEST_LINE, WRITE_PERMIT};
    use bytes::Bytes;
    use wasmtime_wasi::p2::OutputStream as _;

    fn write(out: &mut GuestOutput, bytes: &[u8]) {
        out.write(Bytes::copy_from_slice(bytes)).unwrap();
    }

    #[test]
    fn lines_are_joined_across_writes_and_a_line_without_end_is_cut() {
        let log = JobLog::new("q", "1", 1 << 20, 1000, 64);
        let mut out = GuestOutput::new(log.clone(), "stdout");
        write(&mut out, b"ab");
        write(&mut out, b"c\nd\n\n");
        assert_eq!(log.counted(), ((3, 4), (0, 0)), "abc, d and an empty line");
        // 20 KiB with no newline: two lines of LONGEST_LINE now, the rest when it ends.
        write(&mut out, &[b'x'; 20 << 10]);
        assert_eq!(log.counted().0, (5, 4 + 2 * LONGEST_LINE));
        write(&mut out, b"\n");
        assert_eq!(log.counted().0, (6, 4 + (20 << 10)));
        // 20 KiB and its end in one write: three lines too, none over LONGEST_LINE.
        let mut long = vec![b'y'; 20 << 10];
        long.push(b'\n');
        write(&mut out, &long);
        assert_eq!(log.counted().0, (9, 4 + (40 << 10)));
    }

    #[test]
    fn a_write_of_many_lines_counts_each_once_and_one_over_the_permit_is_refused() {
        let log = JobLog::new("q", "1", 1 << 20, 1000, 64);
        let mut out = GuestOutput::new(log.clone(), "stderr");
        write(&mut out, &[b'\n'; WRITE_PERMIT]);
        let ((logged, _), (dropped, _)) = log.counted();
        assert_eq!((logged, dropped), (1000, WRITE_PERMIT - 1000));
        let over = Bytes::from(vec![b'y'; WRITE_PERMIT + 1]);
        assert!(
            out.write(over).is_err(),
            "a write over check-write's permit"
        );
        let ((logged, _), (dropped, _)) = log.counted();
        assert_eq!(
            (logged, dropped),
            (1000, WRITE_PERMIT - 1000),
            "nothing taken"
        );
        assert_eq!(log.stderr_tail(), None, "nor kept for the error");
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines() {
        let log = JobLog::new("q", "1", 0, 0, 64);
        assert_eq!(log.stderr_tail(), None);
        log.keep_stderr(b"  \n");
        assert_eq!(log.stderr_tail(), None, "blanks are nothing");
        log.keep_stderr(b"first\n");
        assert_eq!(log.stderr_tail().as_deref(), Some("  \nfirst"));
        for i in 0..100 {
            log.keep_stderr(format!("noise line {i}\n").as_bytes());
        }
        log.keep_stderr(b"ValueError: the reason\n");
        let tail = log.stderr_tail().unwrap();
        assert!(tail.len() <= 64, "{tail:?}");
        assert!(
            tail.starts_with("noise line "),
            "from a line's start: {tail:?}"
        );
        assert!(tail.ends_with("\nValueError: the reason"), "{tail:?}");
        // One write longer than the tail.
        log.keep_stderr(&[b'x'; 1000]);
        assert_eq!(log.stderr_tail().unwrap(), "x".repeat(64));
    }
}
