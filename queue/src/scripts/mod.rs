//! The Lua scripts, each in its own file beside the Rust wrapper that calls it: the wrapper
//! names the script's KEYS and ARGV once, in the order its header gives, and turns its reply
//! into a type. Every state change of a job is one of these scripts, so it happens whole or
//! not at all. Each script's text is `lib.lua` (the helpers they share) followed by its own
//! file; they are sent by SHA and loaded again by the redis crate when Redis answers NOSCRIPT
//! (after a restart).
//!
//! Every script takes the queue's meta as KEYS[1] and the caller's protocol version as
//! ARGV[1] (added here, once), and refuses a caller of another major version.

pub(crate) mod configure;
pub(crate) mod dead;
pub(crate) mod dispatch;
pub(crate) mod exchange;
pub(crate) mod fail;
pub(crate) mod open;
pub(crate) mod poison;
pub(crate) mod push;
pub(crate) mod reap;
pub(crate) mod release;
pub(crate) mod renew;

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use crate::backend::Conn;
use crate::PROTOCOL_VERSION;

/// A script: `lib.lua` and the named file, compiled into the library.
macro_rules! script {
    ($file:literal) => {
        std::sync::LazyLock::new(|| {
            redis::Script::new(concat!(include_str!("lib.lua"), include_str!($file)))
        })
    };
}
pub(crate) use script;

/// Each script's own file, by name; what Redis runs is `lib.lua` followed by it.
const SOURCES: &[(&str, &str)] = &[
    ("open", include_str!("open.lua")),
    ("configure", include_str!("configure.lua")),
    ("push", include_str!("push.lua")),
    ("exchange", include_str!("exchange.lua")),
    ("dispatch", include_str!("dispatch.lua")),
    ("fail", include_str!("fail.lua")),
    ("poison", include_str!("poison.lua")),
    ("release", include_str!("release.lua")),
    ("renew", include_str!("renew.lua")),
    ("reap", include_str!("reap.lua")),
    ("dead", include_str!("dead.lua")),
];

/// The scripts as other implementations of the protocol load them: each one's name and the
/// text Redis runs (`lib.lua` followed by the script's own file).
pub fn bundle() -> Vec<(&'static str, String)> {
    SOURCES
        .iter()
        .map(|(name, text)| (*name, format!("{}{}", include_str!("lib.lua"), text)))
        .collect()
}

/// Every script, for loading them at once.
fn all() -> [&'static LazyLock<Script>; 11] {
    [
        &open::SCRIPT,
        &configure::SCRIPT,
        &push::SCRIPT,
        &exchange::SCRIPT,
        &dispatch::SCRIPT,
        &fail::SCRIPT,
        &poison::SCRIPT,
        &release::SCRIPT,
        &renew::SCRIPT,
        &reap::SCRIPT,
        &dead::SCRIPT,
    ]
}

/// A call of `script` with these keys (meta first) and the protocol version as ARGV[1]; the
/// wrapper adds the rest of ARGV.
fn invocation(script: &'static LazyLock<Script>, keys: &[&str]) -> ScriptInvocation<'static> {
    let mut inv = script.prepare_invoke();
    for key in keys {
        inv.key(*key);
    }
    inv.arg(PROTOCOL_VERSION);
    inv
}

/// Loads every script. Called when a queue is opened, so that the first calls find their
/// script: a NOSCRIPT answer makes the redis crate load and resend, and two calls resent that
/// way may swap places, which would break the order of one client's requests. On one server
/// this is one round trip; on a cluster each `SCRIPT LOAD` goes to every node.
pub(crate) async fn load_all(con: &mut Conn) -> redis::RedisResult<()> {
    if let Conn::Cluster(_) = con {
        for script in all() {
            script.load_async(con).await?;
        }
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for script in all() {
        pipe.load_script(script).ignore();
    }
    pipe.query_async(con).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_holds_exactly_the_scripts_the_library_runs() {
        let mut bundled: Vec<String> = bundle()
            .iter()
            .map(|(_, text)| Script::new(text).get_hash().to_string())
            .collect();
        let mut run: Vec<String> = all().iter().map(|s| s.get_hash().to_string()).collect();
        bundled.sort();
        run.sort();
        assert_eq!(bundled, run);
    }
}
