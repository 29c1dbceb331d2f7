//! How a job ends: one table (docs/HOST.md, "How a job ends"). Each ending has a code, kept
//! beside the job's last error in Redis (what metrics and the dashboard count by), a message
//! that says what happened, and a rule: retried (after backoff; dead once out of attempts)
//! or dead at once. The codes `poison` and `lease_expired` are the queue library's; the rest
//! come from the host.

use std::borrow::Cow;
use std::fmt;

/// What became of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done, with the JSON result the handler returned, if any (checked: valid JSON nested
    /// under 128 levels, within the result limit), and the follow-up jobs it pushed.
    Completed(Option<String>, Vec<sque::FollowUp>),
    /// It did not complete: how, and the message kept as its last error (cut to the error
    /// limit).
    Failed(Ending, String),
    /// The job was cancelled while it ran (`sque-host job cancel`): the slot stopped it, and
    /// there is nothing to record (the cancel did).
    Cancelled,
}

/// Every way an attempt can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ending {
    /// A wasm trap (`unreachable`, an out-of-bounds access, a stack overflow, invalid UTF-8
    /// passed to the host...).
    Trap,
    /// The job ran past `--timeout`.
    Timeout,
    /// The guest asked for more linear memory than `--max-memory`.
    OutOfMemory,
    /// The guest held more host resources than `--max-resources`, or more HTTP header bytes
    /// or random bytes than the host gives one job.
    ResourceLimit,
    /// The guest panicked (the SDK reports the message).
    Panic,
    /// The guest called `exit`, with any code, 0 too: a handler returns, it does not exit.
    Exit,
    /// The handler asked for another attempt (`Error::Retry`).
    Retry,
    /// The handler said no retry can help (`Error::Fail`).
    Fail,
    /// The handler's result is not JSON, or is nested 128 levels deep or more.
    BadResult,
    /// The handler's result is over the queue's `max_result_bytes`.
    ResultTooLarge,
    /// A host call failed for a reason of the host's (or Redis refused the job's outcome).
    HostError,
    /// The host shut down and the job did not finish within `--grace`.
    Shutdown,
}

impl Ending {
    /// The code kept in Redis.
    pub fn code(self) -> &'static str {
        match self {
            Ending::Trap => "trap",
            Ending::Timeout => "timeout",
            Ending::OutOfMemory => "out_of_memory",
            Ending::ResourceLimit => "resource_limit",
            Ending::Panic => "panic",
            Ending::Exit => "exit",
            Ending::Retry => "retry",
            Ending::Fail => "fail",
            Ending::BadResult => "bad_result",
            Ending::ResultTooLarge => "result_too_large",
            Ending::HostError => "host_error",
            Ending::Shutdown => "shutdown",
        }
    }

    /// Whether another attempt may mend it (else: the dead list at once).
    pub fn retried(self) -> bool {
        !matches!(
            self,
            Ending::Fail | Ending::BadResult | Ending::ResultTooLarge
        )
    }

    /// Every ending, for the table in docs/HOST.md and the metrics.
    pub const ALL: [Ending; 12] = [
        Ending::Trap,
        Ending::Timeout,
        Ending::OutOfMemory,
        Ending::ResourceLimit,
        Ending::Panic,
        Ending::Exit,
        Ending::Retry,
        Ending::Fail,
        Ending::BadResult,
        Ending::ResultTooLarge,
        Ending::HostError,
        Ending::Shutdown,
    ];
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// `text` cut to at most `limit` bytes (at a character boundary), saying how long it was.
pub fn cut(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let mark = format!(" … (cut: {} bytes in all)", text.len());
    let mut end = limit.saturating_sub(mark.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{mark}", &text[..end]))
}

/// `message`, then the end of what the guest wrote to stderr, within `limit` bytes: the
/// message is kept whole (cut only if it alone is over), and the stderr text loses its
/// beginning rather than its end, where a runtime writes why it died.
pub fn with_stderr(message: &str, stderr: &str, limit: usize) -> String {
    const JOINT: &str = "; the guest's stderr ended with:\n";
    let room = limit.saturating_sub(message.len() + JOINT.len());
    if room < 16 {
        return cut(message, limit).into_owned();
    }
    let mut start = stderr.len().saturating_sub(room);
    while !stderr.is_char_boundary(start) {
        start += 1;
    }
    if start > 0 {
        // Start at a line where one begins close enough, as the tail itself does.
        if let Some(nl) = stderr[start..].find('\n') {
            if nl < room / 2 {
                start += nl + 1;
            }
        }
    }
    format!("{message}{JOINT}{}", &stderr[start..])
}

/// Guest text made safe for one line of the host's log: newlines and other control
/// characters escaped (`\n`, `\r`, `\t`, `\u{1b}`), so that guest output cannot forge a log
/// line or steer a terminal.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_with_a_mark_and_fit() {
        assert_eq!(cut("short", 100), "short");
        let long = "é".repeat(10_000);
        let c = cut(&long, 4096);
        assert!(c.len() <= 4096, "{}", c.len());
        assert!(c.ends_with("(cut: 20000 bytes in all)"), "{c}");
    }

    #[test]
    fn stderr_keeps_its_end_and_the_whole_fits() {
        let message = "guest trapped: wasm trap: wasm `unreachable` instruction executed";
        let short = with_stderr(message, "Traceback:\nValueError: bad", 4096);
        assert_eq!(
            short,
            format!("{message}; the guest's stderr ended with:\nTraceback:\nValueError: bad")
        );
        let noise = "noise é\n".repeat(2000);
        let long = with_stderr(message, &format!("{noise}ValueError: the reason"), 1024);
        assert!(long.len() <= 1024, "{}", long.len());
        assert!(long.starts_with(message), "{long}");
        assert!(long.ends_with("\nValueError: the reason"), "{long}");
        assert!(
            long.contains("ended with:\nnoise é\n"),
            "starts at a line: {long}"
        );
        // No room for stderr: the message alone.
        assert_eq!(with_stderr(message, "x", 40), cut(message, 40));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escaped("a\nFORGED ERROR\r\x1b[31m\tb"),
            "a\\nFORGED ERROR\\r\\u{1b}[31m\\tb"
        );
        assert!(matches!(escaped("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_codes_are_distinct_and_some_go_straight_to_the_dead_list() {
        let codes: std::collections::HashSet<_> = Ending::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), Ending::ALL.len());
        assert!(!Ending::BadResult.retried() && Ending::Exit.retried());
    }
}
