//! The Lua scripts, each in its own file beside the Rust wrapper that calls it: the wrapper
//! names the script's KEYS and ARGV once, in the order its header gives, and turns its reply
//! into a type. Every state change of a job is one of these scripts, so it happens whole or
//! not at all. Each script's text is `lib.lua` (the helpers they share) followed by its own
//! file; they are sent by SHA and loaded again by the redis crate when Redis answers NOSCRIPT
//! (after a restart).
//!
//! Every script takes the queue's meta as KEYS[1] and the caller's protocol version as
//! ARGV[1] (added here, once), and refuses a caller of another major version.

pub(crate) mod cancel;
pub(crate) mod children;
pub(crate) mod configure;
pub(crate) mod dead;
pub(crate) mod dispatch;
pub(crate) mod exchange;
pub(crate) mod fail;
pub(crate) mod leave;
pub(crate) mod open;
pub(crate) mod pause;
pub(crate) mod poison;
pub(crate) mod progress;
pub(crate) mod promote;
pub(crate) mod push;
pub(crate) mod push_unique;
pub(crate) mod reap;
pub(crate) mod release;
pub(crate) mod renew;
pub(crate) mod schedule;
pub(crate) mod schedules;
pub(crate) mod stage;
pub(crate) mod tick;

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
    ("pause", include_str!("pause.lua")),
    ("push", include_str!("push.lua")),
    ("push_unique", include_str!("push_unique.lua")),
    ("schedule", include_str!("schedule.lua")),
    ("promote", include_str!("promote.lua")),
    ("progress", include_str!("progress.lua")),
    ("cancel", include_str!("cancel.lua")),
    ("stage", include_str!("stage.lua")),
    ("children", include_str!("children.lua")),
    ("schedules", include_str!("schedules.lua")),
    ("tick", include_str!("tick.lua")),
    ("exchange", include_str!("exchange.lua")),
    ("dispatch", include_str!("dispatch.lua")),
    ("fail", include_str!("fail.lua")),
    ("poison", include_str!("poison.lua")),
    ("release", include_str!("release.lua")),
    ("leave", include_str!("leave.lua")),
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
fn all() -> [&'static LazyLock<Script>; 22] {
    [
        &open::SCRIPT,
        &configure::SCRIPT,
        &pause::SCRIPT,
        &push::SCRIPT,
        &push_unique::SCRIPT,
        &schedule::SCRIPT,
        &promote::SCRIPT,
        &progress::SCRIPT,
        &cancel::SCRIPT,
        &stage::SCRIPT,
        &children::SCRIPT,
        &schedules::SCRIPT,
        &tick::SCRIPT,
        &exchange::SCRIPT,
        &dispatch::SCRIPT,
        &fail::SCRIPT,
        &poison::SCRIPT,
        &release::SCRIPT,
        &leave::SCRIPT,
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

    /// The bundle's manifest (`manifest.json` beside the scripts): the protocol version, each
    /// script's file and SHA-1 (of the text Redis runs), the prelude every script starts with,
    /// and the settings a new queue gets by default, in meta's units.
    fn manifest() -> serde_json::Value {
        let scripts: serde_json::Map<String, serde_json::Value> = bundle()
            .into_iter()
            .map(|(name, text)| {
                (
                    name.to_string(),
                    serde_json::json!({
                        "file": format!("{name}.lua"),
                        "sha1": Script::new(&text).get_hash(),
                    }),
                )
            })
            .collect();
        let settings: serde_json::Map<String, serde_json::Value> =
            crate::settings::QueueSettings::default()
                .to_fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect();
        serde_json::json!({
            "protocol": PROTOCOL_VERSION,
            "prelude": "lib.lua",
            "scripts": scripts,
            "settings": settings,
        })
    }

    /// The committed manifest is the one the scripts give. `SQUE_UPDATE_BUNDLE=1 cargo test
    /// -p sque --lib manifest` writes it anew; `scripts/copies` then copies the bundle to the
    /// Node package.
    #[test]
    fn the_committed_manifest_matches_the_scripts() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/manifest.json");
        let expected = serde_json::to_string_pretty(&manifest()).unwrap() + "\n";
        if std::env::var_os("SQUE_UPDATE_BUNDLE").is_some() {
            std::fs::write(&path, &expected).unwrap();
        }
        let found = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            found == expected,
            "{} is stale: run `SQUE_UPDATE_BUNDLE=1 cargo test -p sque --lib manifest`, then `scripts/copies`",
            path.display()
        );
    }

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
