//! # sque-guest
//!
//! Write a sque job handler in Rust. Build it with `cargo build --release --target
//! wasm32-wasip2` and run it with `sque-host run --handler your_handler.wasm`.
//!
//! ```ignore
//! use sque_guest::{handler, Error, Job};
//!
//! #[derive(serde::Deserialize)]
//! struct Email { email: String }
//!
//! #[handler]
//! fn send(job: Job) -> Result<(), Error> {
//!     let mail: Email = job.json()?;          // a bad payload becomes Error::Fail
//!     sque_guest::info!("sending to {}", mail.email);
//!     Ok(())
//! }
//! ```
//!
//! - Return `Ok(())` to complete the job, or `Ok(value)` to keep `value` (any `Serialize`) as
//!   its result.
//! - Return `Err(Error::Retry(..))` to try again after a backoff, `Err(Error::Fail(..))` to
//!   send the job straight to the dead list.
//! - A panic is logged with its message (the host reports it as the job's error) and traps.
//! - The log macros (`trace!` … `error!`) go to the host's log, tagged with the job; a line
//!   below the host's level is not even formatted (`enabled`).
//! - `progress(40, "rendered")` reports how far the job has come.
//! - `push("emails", &data)?` pushes a follow-up job, committed only if this job completes
//!   (refused unless the host grants the queue).
//! - `std::env::var` reads the values `sque-host run --env` grants; `sque_guest::wasi::http`
//!   makes outgoing requests to the hosts `--allow-http` names.
//!
//! Built against `sque:handler@0.2.1` (`wit/handler.wit` in this crate).

use std::fmt;
use std::sync::Once;

pub use sque_guest_macro::handler;

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "handler",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export",
        default_bindings_module: "::sque_guest::__bindings",
        // The WASI interfaces the world imports, generated here: a handler reaches them as
        // `sque_guest::wasi`, at the version the world names.
        generate_all,
    });
}

#[doc(hidden)]
pub use __bindings::__export;

pub use __bindings::sque::handler::follow_up::PushOptions;
pub use __bindings::sque::handler::log::Level;

/// The WASI interfaces the world imports (`wasi:cli/environment`, `wasi:http/outgoing-handler`
/// and the types they use), for handlers that make HTTP requests.
pub use __bindings::wasi;

/// The prefix of the log line the panic hook writes. The host recognises it and reports the
/// panic's message as the job's error.
pub const PANIC_PREFIX: &str = "guest panicked: ";

/// A job as the handler sees it.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub queue: String,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// The job's data as JSON text.
    pub data: String,
}

impl Job {
    /// The job's data, deserialized. A payload that does not fit `T` is `Error::Fail`: no
    /// retry would change it.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.data)
            .map_err(|e| Error::Fail(format!("job data does not fit the expected shape: {e}")))
    }
}

/// Why a job did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Try again after a backoff (a timeout, a service that is down).
    Retry(String),
    /// Give up now: straight to the dead list (bad data, a permanent refusal).
    Fail(String),
}

impl Error {
    pub fn retry(message: impl fmt::Display) -> Error {
        Error::Retry(message.to_string())
    }

    pub fn fail(message: impl fmt::Display) -> Error {
        Error::Fail(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retry(m) => write!(f, "retry: {m}"),
            Error::Fail(m) => write!(f, "fail: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Writes one line to the host's log, whatever its level (the macros ask [`enabled`] first).
pub fn log(level: Level, message: &str) {
    __bindings::sque::handler::log::log(level, message);
}

/// Whether the host records lines at `level` (its `--log`). The log macros ask it before
/// they format a line, so that a line the host would drop costs next to nothing; ask it
/// yourself before work done only for a log line.
pub fn enabled(level: Level) -> bool {
    __bindings::sque::handler::log::enabled(level)
}

/// Reports how far the job has come: `percent` (capped at 100) and a short note (cut at 256
/// bytes; empty for none). The host records the latest, at most about once a second.
pub fn progress(percent: u8, note: &str) {
    let note = (!note.is_empty()).then_some(note);
    __bindings::sque::handler::progress::report(percent, note);
}

/// Pushes a follow-up job of `data` to `queue`, committed only when this job completes (a job
/// that fails or is retried pushes nothing). Returns its index among this job's pushes. A
/// push the host refuses is an `Error::Fail`: no retry would change it.
pub fn push<T: serde::Serialize + ?Sized>(queue: &str, data: &T) -> Result<u32, Error> {
    push_with(
        queue,
        data,
        &PushOptions {
            delay_ms: None,
            unique_key: None,
        },
    )
}

/// `push`, with a delay or a unique key.
pub fn push_with<T: serde::Serialize + ?Sized>(
    queue: &str,
    data: &T,
    options: &PushOptions,
) -> Result<u32, Error> {
    use __bindings::sque::handler::follow_up::PushError;
    let json = serde_json::to_string(data).map_err(|e| {
        Error::fail(format!(
            "the data pushed to {queue:?} does not serialize: {e}"
        ))
    })?;
    __bindings::sque::handler::follow_up::push(queue, &json, options).map_err(|e| match e {
        PushError::Denied => Error::fail(format!(
            "pushing to {queue:?} was denied: this host does not let handlers push there"
        )),
        PushError::TooLarge(bytes) => Error::fail(format!(
            "the job pushed to {queue:?} is too large ({bytes} bytes)"
        )),
        PushError::Invalid(why) => Error::fail(format!("the push to {queue:?} is invalid: {why}")),
        PushError::Limit => Error::fail("this job has pushed as many jobs as it may"),
    })
}

#[doc(hidden)]
pub fn __run<T: serde::Serialize>(
    job: __bindings::Job,
    handler: fn(Job) -> Result<T, Error>,
) -> Result<Option<String>, __bindings::Error> {
    static PANIC_HOOK: Once = Once::new();
    PANIC_HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(a panic without a message)");
            let place = info
                .location()
                .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                .unwrap_or_default();
            // Sent whatever the host's level (not through `error!`, which asks `enabled`):
            // the host reads this line as the job's error.
            log(Level::Error, &format!("{PANIC_PREFIX}{message}{place}"));
        }));
    });
    let job = Job {
        id: job.id,
        queue: job.queue,
        attempt: job.attempt,
        data: job.data,
    };
    match handler(job) {
        Ok(value) => match serde_json::to_value(&value) {
            Ok(serde_json::Value::Null) => Ok(None),
            Ok(v) => Ok(Some(v.to_string())),
            Err(e) => Err(__bindings::Error::Fail(format!(
                "the handler's result does not serialize: {e}"
            ))),
        },
        Err(Error::Retry(m)) => Err(__bindings::Error::Retry(m)),
        Err(Error::Fail(m)) => Err(__bindings::Error::Fail(m)),
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:ident, $($arg:tt)*) => {
        if $crate::enabled($crate::Level::$level) {
            $crate::log($crate::Level::$level, &::std::format!($($arg)*))
        }
    };
}

/// Logs at trace level, like `format!`.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::__log!(Trace, $($arg)*) }; }
/// Logs at debug level, like `format!`.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::__log!(Debug, $($arg)*) }; }
/// Logs at info level, like `format!`.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::__log!(Info, $($arg)*) }; }
/// Logs at warn level, like `format!`.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::__log!(Warn, $($arg)*) }; }
/// Logs at error level, like `format!`.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::__log!(Error, $($arg)*) }; }
