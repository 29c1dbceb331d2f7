//! What a handler file may be and what the host says of it: `check` reports its world and
//! shape; a component that needs more memory at start than `--max-memory` is refused with
//! both figures; `compile` makes a `.cwasm` that a host loads only when trusted by flag, owned
//! by its user, not writable by others and made by its own wasmtime; the module cache is
//! likewise this user's alone.

mod support;

use serde_json::{json, Value};
use sque::Manager;
use support::guests::guest;
use support::host::{assert_refused, cli, run_until, run_until_with, stderr, Host};
use support::{eventually, RedisServer};

#[test]
fn check_reports_the_world_and_what_the_handler_is_made_of() {
    let cache = tempfile::tempdir().unwrap();
    let fixtures = guest("fixtures");
    let out = cli(
        &[
            "check",
            fixtures.to_str().unwrap(),
            "--json",
            "--cache-dir",
            cache.path().to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["world"], "sque:handler/handler@0.2.1");
    assert_eq!(report["precompiled"], false);
    // A Rust guest: its module and the WASI adapter's, and the shims between them.
    let instances = report["core_instances"].as_u64().unwrap();
    assert!((2..=16).contains(&instances), "{report}");
    let memory = report["initial_memory_bytes"].as_u64().unwrap();
    assert!(
        memory >= 64 << 10 && memory.is_multiple_of(64 << 10),
        "{report}"
    );
    assert!(
        std::fs::read_dir(cache.path()).unwrap().next().is_some(),
        "check compiles through the module cache"
    );

    let text = cli(&["check", fixtures.to_str().unwrap(), "--no-cache"], b"");
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(&format!("{instances} core instance(s)"))
            && text.contains("of linear memory at start (--max-memory: 64.0 MiB)"),
        "{text}"
    );
}

/// The module cache holds native code the host runs: a directory others may write is
/// refused; one the host makes is its user's alone whatever the umask; and, as a smoke test,
/// hosts started together on a new one all open it (they once removed each other's
/// ownership probe, a window of microseconds: `No such file or directory`).
#[test]
fn hosts_open_one_module_cache_together_and_only_their_users() {
    use std::os::unix::fs::PermissionsExt;
    let fixtures = guest("fixtures");
    let top = tempfile::tempdir().unwrap();
    let cache = top.path().join("modules");
    let args = [
        "check",
        fixtures.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    std::thread::scope(|s| {
        let together: Vec<_> = (0..4).map(|_| s.spawn(|| cli(&args, b""))).collect();
        for check in together {
            let out = check.join().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        }
    });
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "made for this user alone: {mode:o}");

    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let refused = cli(&args, b"");
    assert_refused(&refused, "may be written by other users");
    assert!(
        stderr(&refused).contains("another --cache-dir"),
        "{}",
        stderr(&refused)
    );
}

/// What `check --json` reports of `handler`, which it must accept.
fn checked(handler: &std::path::Path) -> Value {
    let out = cli(
        &["check", handler.to_str().unwrap(), "--json", "--no-cache"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A handler built against the first version of the world still loads and runs, and
/// `check` says which version it targets.
#[tokio::test(flavor = "multi_thread")]
async fn a_handler_of_the_first_world_runs_and_check_names_its_world() {
    let raw = guest("raw_fixture");
    let report = checked(&raw);
    assert_eq!(report["world"], "sque:handler/handler@0.1.0", "{report}");
    let text = cli(&["check", raw.to_str().unwrap(), "--no-cache"], b"");
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("a sque handler (world sque:handler/handler@0.1.0)"),
        "{}",
        stderr(&text)
    );
    let ran = run_until(&raw, vec![json!("ok")], 1, 0).await;
    assert_eq!(
        ran.manager.result(&ran.ids[0]).await.unwrap(),
        Some(json!({"ok": true}))
    );
    let (code, log) = ran.host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// A handler asks whether the host records a level (`log.enabled`, new in 0.2.1) and is told
/// the host's `--log`.
#[tokio::test(flavor = "multi_thread")]
async fn a_handler_asks_the_hosts_log_level() {
    let fixtures = guest("fixtures");
    for (level, info, debug) in [("warn", false, false), ("debug", true, true)] {
        let ran = run_until_with(
            &fixtures,
            vec![json!({"do": "levels"})],
            &["--log", level],
            1,
            0,
        )
        .await;
        assert_eq!(
            ran.manager.result(&ran.ids[0]).await.unwrap(),
            Some(json!({"info": info, "debug": debug})),
            "--log {level}"
        );
        let (code, log) = ran.host.stop().await;
        assert_eq!(code, Some(0), "{log}");
    }
}

/// A handler built against 0.2.0, which cannot ask the host's level, still loads, logs and
/// reads its `--env` on a host of 0.2.1, and `check` names its world.
#[tokio::test(flavor = "multi_thread")]
async fn a_handler_built_against_0_2_0_still_runs() {
    let older = guest("v0_2_0_fixture");
    let report = checked(&older);
    assert_eq!(report["world"], "sque:handler/handler@0.2.0", "{report}");
    let ran = run_until_with(
        &older,
        vec![json!("any")],
        &["--env", "GREETING=hello"],
        1,
        0,
    )
    .await;
    assert_eq!(
        ran.manager.result(&ran.ids[0]).await.unwrap(),
        Some(json!({"greeting": "hello"}))
    );
    let (code, log) = ran.host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("hello from a 0.2.0 handler, job"),
        "the 0.2.0 log import: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_that_needs_more_memory_at_start_than_allowed_is_refused_with_both_figures() {
    let redis = RedisServer::start();
    let manager = Manager::new("small", support::producer(&redis))
        .await
        .unwrap();
    manager.push(json!({"do": "ok"})).await.unwrap();
    let fixtures = guest("fixtures");
    let f = fixtures.to_str().unwrap();
    let out = cli(&["check", f, "--no-cache", "--json"], b"");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let needs = report["initial_memory_bytes"].as_u64().unwrap();
    assert!(
        needs >= 1 << 20,
        "a Rust guest's stack alone is 1 MiB: {report}"
    );
    let needs = format!("{:.1} MiB", needs as f64 / (1 << 20) as f64);

    let says = format!(
        "this handler needs {needs} of linear memory at start; --max-memory is 64 KiB: raise --max-memory"
    );
    assert_refused(
        &cli(&["check", f, "--no-cache", "--max-memory", "64KiB"], b""),
        &says,
    );
    let url = redis.url();
    let run = [
        "run",
        "--queue",
        "small",
        "--redis",
        &url,
        "--handler",
        f,
        "--no-cache",
        "--max-memory",
        "64KiB",
    ];
    assert_refused(&cli(&run, b""), &says);
    let s = manager.stats().await.unwrap();
    assert_eq!((s.waiting, s.dispatched), (1, 0), "no job was taken");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compiled_handler_runs_only_when_trusted_and_safe_and_made_by_this_wasmtime() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cwasm = dir.path().join("fixtures.cwasm");
    let c = cwasm.to_str().unwrap();
    let out = cli(
        &["compile", guest("fixtures").to_str().unwrap(), "-o", c],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("--trust-precompiled"), "{said}");
    let mode = std::fs::metadata(&cwasm).unwrap().permissions().mode();
    assert_eq!(mode & 0o022, 0, "written for this user only: {mode:o}");

    let redis = RedisServer::start();
    let manager = Manager::new("native", support::producer(&redis))
        .await
        .unwrap();
    manager.push(json!({"do": "ok"})).await.unwrap();
    let url = redis.url();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--queue",
            "native",
            "--redis",
            &url,
            "--handler",
            c,
            "--no-cache",
        ];
        args.extend_from_slice(extra);
        cli(&args, b"")
    };
    assert_refused(&run(&[]), "with --trust-precompiled");
    assert_refused(&cli(&["check", c], b""), "with --trust-precompiled");
    assert_refused(
        &cli(&["compile", c, "-o", "again.cwasm"], b""),
        "already compiled",
    );

    std::fs::set_permissions(&cwasm, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_refused(
        &run(&["--trust-precompiled"]),
        "may be written by other users",
    );
    std::fs::set_permissions(&cwasm, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Made by another wasmtime: the version its engine section records (a version byte, the
    // length, wasmtime's major version) changed.
    let native = std::fs::read(&cwasm).unwrap();
    let major = wasmtime_major_version();
    let mut record = vec![0u8, major.len() as u8];
    record.extend_from_slice(major.as_bytes());
    let at = native
        .windows(record.len())
        .position(|w| w == record)
        .expect("the .cwasm records its wasmtime's version")
        + 2;
    let mut other = native.clone();
    other[at] = if other[at] == b'9' {
        b'1'
    } else {
        other[at] + 1
    };
    let foreign = dir.path().join("foreign.cwasm");
    std::fs::write(&foreign, &other).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_refused(
        &cli(
            &["check", foreign.to_str().unwrap(), "--trust-precompiled"],
            b"",
        ),
        "compile it again with this sque-host",
    );
    let s = manager.stats().await.unwrap();
    assert_eq!((s.waiting, s.dispatched), (1, 0), "no job was taken");

    let out = cli(&["check", c, "--trust-precompiled", "--json"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["precompiled"], true, "{report}");

    let host = Host::start(&redis, "native", &["--handler", c, "--trust-precompiled"]);
    eventually("the job done by the compiled handler", || async {
        manager.stats().await.unwrap().completed == 1
    })
    .await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// The major version of wasmtime the host is built with, from the lock file.
fn wasmtime_major_version() -> String {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let entry = "name = \"wasmtime\"\nversion = \"";
    let rest = &lock[lock.find(entry).unwrap() + entry.len()..];
    rest[..rest.find('.').unwrap()].to_string()
}
