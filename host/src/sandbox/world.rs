//! The `sque:handler` world on the host's side: the bindings of the versions it runs, and the
//! functions a handler imports from the host (log, progress, follow-up jobs).
//!
//! `0.2.1` (`wit/handler.wit`) is what the SDKs build against; `0.1.0` (`wit/v0.1.0/`) is
//! what handlers built before 0.2.0 import, and they keep running: the linker holds the
//! imports of both. Handlers built against `0.2.0` (`wit/v0.2.0/`) need no bindings of their
//! own: Wasmtime's linker satisfies an import of `@0.2.0` with the `@0.2.1` definition, which
//! only adds to it (`log.enabled`). The export, `handle`, and its types are the same in all,
//! so one set of export bindings calls any. WASI and `wasi:http`, which 0.2.0 names, are
//! linked from wasmtime-wasi (see `engine.rs`), not from here.

use wasmtime::component::{HasSelf, Linker};

use crate::sandbox::follow_up::Refused;
use crate::sandbox::state::State;

/// Bindings of `sque:handler@0.2.1`: `Handler` (the world), `HandlerPre`, the host traits.
pub(crate) mod current {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "wit",
        exports: { default: async },
        // Linked by wasmtime-wasi and wasmtime-wasi-http; not generated again here.
        with: {
            "wasi:cli": wasmtime_wasi::p2::bindings::cli,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        },
    });
}

/// Bindings of `sque:handler@0.1.0`, for its imports only.
mod v0_1 {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "wit/v0.1.0",
    });
}

use current::sque::handler::follow_up::{Host as FollowUpHost, PushError, PushOptions};
use current::sque::handler::progress::Host as ProgressHost;

/// The versions of the world this host runs, newest first, as `check` names them.
pub const WORLDS: [&str; 3] = [
    "sque:handler/handler@0.2.1",
    "sque:handler/handler@0.2.0",
    "sque:handler/handler@0.1.0",
];

/// Adds the host functions of the world's versions to `linker`: 0.2.1, which 0.2.0's imports
/// resolve to, and 0.1.0.
pub(crate) fn link(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    current::sque::handler::types::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    current::sque::handler::log::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    current::sque::handler::progress::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    current::sque::handler::follow_up::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    v0_1::sque::handler::types::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    v0_1::sque::handler::log::add_to_linker::<State, HasSelf<State>>(linker, |s| s)?;
    Ok(())
}

/// Which version of the world a component's imports name, newest first; `None` if it
/// imports nothing of `sque:handler` (it runs under any).
pub fn world_of(imports: &[String]) -> Option<&'static str> {
    WORLDS.into_iter().find(|world| {
        let version = world.rsplit_once('@').map_or("", |(_, v)| v);
        imports
            .iter()
            .any(|name| name.starts_with("sque:handler/") && name.ends_with(&format!("@{version}")))
    })
}

impl current::sque::handler::types::Host for State {}
impl v0_1::sque::handler::types::Host for State {}

/// A guest's log level as the host's.
macro_rules! tracing_level {
    ($version:ident, $level:expr) => {{
        use $version::sque::handler::log::Level;
        match $level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        }
    }};
}

impl current::sque::handler::log::Host for State {
    fn log(&mut self, level: current::sque::handler::log::Level, message: String) {
        self.guest_log(tracing_level!(current, level), &message);
    }

    fn enabled(&mut self, level: current::sque::handler::log::Level) -> bool {
        self.log.enabled(tracing_level!(current, level))
    }
}

impl v0_1::sque::handler::log::Host for State {
    fn log(&mut self, level: v0_1::sque::handler::log::Level, message: String) {
        self.guest_log(tracing_level!(v0_1, level), &message);
    }
}

impl ProgressHost for State {
    fn report(&mut self, percent: u8, note: Option<String>) {
        self.progress.report(
            percent,
            note.as_deref(),
            &self.log,
            self.progress_sink.as_ref(),
        );
    }
}

impl FollowUpHost for State {
    fn push(
        &mut self,
        queue: String,
        data: String,
        options: PushOptions,
    ) -> Result<u32, PushError> {
        self.push_follow_up(&queue, data, options.delay_ms, options.unique_key)
            .map_err(|refused| match refused {
                Refused::Denied => PushError::Denied,
                Refused::TooLarge(n) => PushError::TooLarge(n),
                Refused::Invalid(why) => PushError::Invalid(why),
                Refused::Limit => PushError::Limit,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_newest_version_imported_names_the_world() {
        let old = names(&["sque:handler/log@0.1.0", "wasi:cli/stdout@0.2.0"]);
        assert_eq!(world_of(&old), Some(WORLDS[2]));
        let new = names(&["sque:handler/types@0.2.1", "sque:handler/log@0.2.1"]);
        assert_eq!(world_of(&new), Some(WORLDS[0]));
        let between = names(&["sque:handler/types@0.2.0", "sque:handler/log@0.2.0"]);
        assert_eq!(world_of(&between), Some(WORLDS[1]));
        // wasi:cli 0.2.0 is not sque:handler 0.2.0.
        assert_eq!(world_of(&names(&["wasi:cli/environment@0.2.0"])), None);
        assert_eq!(world_of(&names(&["sque:handler/log@9.0.0"])), None);
    }
}
