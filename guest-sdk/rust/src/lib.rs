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
//! - The log macros (`trace!` … `error!`) go to the host's log, tagged with the job.

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
    });
}

#[doc(hidden)]
pub use __bindings::__export;

pub use __bindings::sque::handler::log::Level;

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

/// Writes one line to the host's log.
pub fn log(level: Level, message: &str) {
    __bindings::sque::handler::log::log(level, message);
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
        $crate::log($crate::Level::$level, &::std::format!($($arg)*))
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
