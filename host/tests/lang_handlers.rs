//! Python and JavaScript handlers end to end: components built by componentize-py and
//! componentize-js from their SDKs (`guest-sdk/python`, `guest-sdk/js`) and from bare
//! bindings, run by `sque-host`. The same fixtures in both languages: results, `Fail` and
//! `Retry`, an uncaught exception's type, message and traceback in the job's error (with the
//! SDK) or from its stderr (without), `--env` and the host's log level read, progress
//! recorded, a push refused, `--reuse` honoured and dropped after an error, and each
//! language's `send-email` example posting where `--allow-http` lets it; and a host stopped
//! while such a large guest compiles.

mod support;

use std::path::PathBuf;

use serde_json::json;
use sque::{Inspector, Manager};
use support::guests::{js_guest, python_guest};
use support::host::{run_until_with, Host, HttpServer};
use support::{dead_jobs, eventually, RedisServer};

/// The module cache these tests' hosts share (but the one that stops a host while it
/// compiles): a Python or JavaScript guest takes seconds to compile, and each is run by
/// several tests.
const MODULE_CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/lang-module-cache");

/// What differs between the languages.
struct Lang {
    name: &'static str,
    /// The SDK fixture (`host/tests/fixtures/<lang>/sdk_app`).
    sdk_guest: fn() -> PathBuf,
    /// The fixture without the SDK.
    raw_guest: fn() -> PathBuf,
    /// The `send-email` example.
    example: fn() -> PathBuf,
    /// Where the fixture's traceback or stack names it.
    stack_mentions: &'static str,
    /// The example's error for `{"email": "no-at-sign"}`.
    bad_address: &'static str,
    /// What the example logs for a dry run.
    dry_run: &'static str,
}

const PYTHON: Lang = Lang {
    name: "python",
    sdk_guest: || python_guest("host/tests/fixtures/python", "sdk_app", "py_sdk_fixture"),
    raw_guest: || python_guest("host/tests/fixtures/python", "raw_app", "py_raw_fixture"),
    example: || python_guest("examples/send-email-python", "app", "send_email_py"),
    stack_mentions: "in misbehave",
    bad_address: "handler failed: invalid email address 'no-at-sign': no @",
    dry_run: "dry run (no MAIL_API_URL)",
};

const JS: Lang = Lang {
    name: "js",
    sdk_guest: || js_guest("host/tests/fixtures/js/sdk_app.js", "js_sdk_fixture"),
    raw_guest: || js_guest("host/tests/fixtures/js/raw/raw_app.js", "js_raw_fixture"),
    example: || js_guest("examples/send-email-js/app.js", "send_email_js"),
    stack_mentions: "sdk_app.js",
    bad_address: "handler failed: invalid email address \"no-at-sign\": no @",
    dry_run: "dry run (no MAIL_API_URL)",
};

/// Results, none, Fail, Retry, an exception's type, message and traceback; `--env`;
/// progress; a push, which this host refuses; the host's log level, as `enabled` tells it.
async fn completes_fails_retries_reads_its_env_and_reports(lang: &Lang) {
    let redis = RedisServer::start();
    let opts = support::producer(&redis).max_attempts(1);
    let m = Manager::new("lang", opts.clone()).await.unwrap();
    let jobs = vec![
        json!({"do": "ok"}),
        json!({"do": "none"}),
        json!({"do": "fail"}),
        json!({"do": "retry"}),
        json!({"do": "raise"}),
        json!({"do": "env", "name": "GREETING"}),
        json!({"do": "env", "name": "NOT_GRANTED"}),
        json!({"do": "progress"}),
        json!({"do": "push"}),
        json!({"do": "levels"}),
        json!({"do": "unjson"}),
        json!({"do": "bad-push"}),
        json!({"do": "odd-progress"}),
        // One language's each (the other fails it as an unknown order).
        json!({"do": "odd-result"}),
        json!({"do": "unshowable"}),
    ];
    let total = jobs.len() as u64;
    let ids = m.push_many(jobs).await.unwrap();
    let guest = (lang.sdk_guest)();
    let host = Host::start(
        &redis,
        "lang",
        &[
            "--handler",
            guest.to_str().unwrap(),
            "--cache-dir",
            MODULE_CACHE,
            "--max-attempts",
            "1",
            "--env",
            "GREETING=hello",
            // What `enabled` is asked of, whatever SQUE_LOG the tests run with.
            "--log",
            "info",
        ],
    );
    eventually("every job ended", || async {
        let s = m.stats().await.unwrap();
        s.completed + s.dead == total
    })
    .await;
    let name = lang.name;
    assert_eq!(
        m.result(&ids[0]).await.unwrap(),
        Some(json!({"ok": true, "attempt": 1})),
        "{name}"
    );
    assert_eq!(m.result(&ids[1]).await.unwrap(), None, "{name}");
    assert_eq!(
        m.result(&ids[5]).await.unwrap(),
        Some(json!({"value": "hello"})),
        "{name}"
    );
    assert_eq!(
        m.result(&ids[6]).await.unwrap(),
        Some(json!({"value": null})),
        "{name}: only what is granted"
    );
    assert_eq!(
        m.result(&ids[7]).await.unwrap(),
        Some(json!({"progressed": true})),
        "{name}"
    );
    assert_eq!(
        m.result(&ids[9]).await.unwrap(),
        Some(json!({"info": true, "debug": false})),
        "{name}: the host's level (info)"
    );
    assert_eq!(
        m.result(&ids[12]).await.unwrap(),
        Some(json!({"progressed": true})),
        "{name}: percentages that are no number, and notes with no text, are not the job's end"
    );

    let dead = dead_jobs(&Inspector::new("lang", opts).await.unwrap()).await;
    let find = |order: &str| {
        dead.iter()
            .find(|(data, _, _)| data["do"] == order)
            .unwrap_or_else(|| panic!("{name}: {order} is not dead: {dead:?}"))
            .clone()
    };
    let (_, code, error) = find("fail");
    assert_eq!(
        (code.as_deref(), error.as_str()),
        (Some("fail"), "handler failed: asked to fail"),
        "{name}"
    );
    let (_, code, error) = find("retry");
    assert_eq!(
        (code.as_deref(), error.as_str()),
        (Some("retry"), "handler asked to retry: asked to retry"),
        "{name}"
    );
    let (_, code, error) = find("raise");
    assert_eq!(code.as_deref(), Some("retry"), "{name}: {error}");
    assert!(
        error.starts_with(&format!(
            "handler asked to retry: ValueError: no address in job {}\n",
            ids[4]
        )),
        "{name}: {error}"
    );
    assert!(
        error.contains(lang.stack_mentions),
        "{name}, the stack: {error}"
    );
    // The handler's own mistakes, which another attempt would repeat: the dead list at once
    // (a result retried as an exception, a negative delay sent as a hundred years, before).
    let (_, code, error) = find("unjson");
    assert_eq!(code.as_deref(), Some("fail"), "{name}: {error}");
    assert!(
        error.contains("the handler's result is not JSON"),
        "{name}: {error}"
    );
    // Python: a result json.dumps cannot take for a reason other than its type or value
    // (a RecursionError, an error of the value's own) fails too; it trapped. JavaScript: a thrown value
    // that even instanceof cannot look at (a Proxy whose traps throw) is retried with a
    // message; it trapped.
    let (order, code, wanted) = match name {
        "python" => (
            "odd-result",
            "fail",
            "the handler's result is not JSON: items refused",
        ),
        _ => ("unshowable", "retry", "cannot be shown as text"),
    };
    let (_, got, error) = find(order);
    assert_eq!(got.as_deref(), Some(code), "{name}: {error}");
    assert!(error.contains(wanted), "{name}: {error}");
    let (_, code, error) = find("bad-push");
    assert_eq!(code.as_deref(), Some("fail"), "{name}: {error}");
    assert!(
        error.contains("whole number of milliseconds from 0"),
        "{name}: {error}"
    );
    let (_, code, error) = find("push");
    assert_eq!(code.as_deref(), Some("fail"), "{name}: {error}");
    assert!(
        error.contains("was denied: this host does not let handlers push there"),
        "{name}: {error}"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("hello from job"),
        "{name}, the log import: {log}"
    );
    // Fifty reports in a moment: the first is recorded at once, the last when the job ends,
    // and those between are dropped.
    for line in ["progress 1%: step 1", "progress 50%: step 50"] {
        assert!(log.contains(line), "{name}: {line} in {log}");
    }
    assert!(!log.contains("progress 2%"), "{name}: {log}");
    assert!(
        log.contains("denied the guest a follow-up job to elsewhere"),
        "{name}: {log}"
    );
}

/// With `--reuse 100` one slot's instance serves job after job, and none after an error.
async fn reuse_serves_several_jobs_and_none_after_an_error(lang: &Lang) {
    let redis = RedisServer::start();
    let m = Manager::new("reuse", support::producer(&redis))
        .await
        .unwrap();
    let count = json!({"do": "count"});
    let ids = m
        .push_many(vec![
            count.clone(),
            count.clone(),
            json!({"do": "raise"}),
            count.clone(),
            count.clone(),
        ])
        .await
        .unwrap();
    let guest = (lang.sdk_guest)();
    let host = Host::start(
        &redis,
        "reuse",
        &[
            "--handler",
            guest.to_str().unwrap(),
            "--cache-dir",
            MODULE_CACHE,
            "--slots",
            "1",
            "--prefetch",
            "1",
            "--max-attempts",
            "1",
            "--reuse",
            "100",
        ],
    );
    eventually("every job ended", || async {
        let s = m.stats().await.unwrap();
        s.completed + s.dead == 5
    })
    .await;
    let mut counts = Vec::new();
    for id in &ids {
        counts.push(m.result(id).await.unwrap().map(|r| r["count"].clone()));
    }
    assert_eq!(
        counts,
        vec![
            Some(json!(1)),
            Some(json!(2)),
            None,
            Some(json!(1)),
            Some(json!(2))
        ],
        "{}: one instance for the first two, a fresh one after the exception",
        lang.name
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// Without the SDK an uncaught exception traps the runtime, which has printed it on stderr:
/// the job's error holds it.
async fn without_the_sdk_an_uncaught_exception_is_in_the_job_s_error(lang: &Lang) {
    let ran = run_until_with(
        &(lang.raw_guest)(),
        vec![json!({"do": "raise"}), json!({"do": "ok"})],
        &["--cache-dir", MODULE_CACHE],
        1,
        1,
    )
    .await;
    let (_, code, error) = &ran.dead[0];
    assert_eq!(code.as_deref(), Some("trap"), "{}: {error}", lang.name);
    // The runtime may print more after the exception (componentize-py: a panic of its own).
    assert!(
        error.starts_with("guest trapped: ")
            && error.contains("; the guest's stderr ended with:\n")
            && error.contains("the raw guest's own message"),
        "{}: {error}",
        lang.name
    );
    let (code, log) = ran.host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// Addresses the Rust example refuses as containing whitespace: a space, a tab, NEL (both
/// whitespace and a control character), DEL and a C1 control character (not whitespace).
const SPACED_ADDRESSES: [&str; 5] = [
    "a b@mail.org",
    "a\tb@mail.org",
    "a\u{85}b@mail.org",
    "a\u{7f}b@mail.org",
    "a\u{80}b@mail.org",
];

/// The `send-email` example does what the Rust one does without `MAIL_API_URL`: checks the
/// address (a bad one fails for good) and renders a dry run.
async fn the_send_email_example_checks_and_renders(lang: &Lang) {
    let mut jobs = vec![
        json!({"email": "test1@mail.org"}),
        json!({"email": "no-at-sign"}),
    ];
    jobs.extend(SPACED_ADDRESSES.map(|a| json!({ "email": a })));
    let ran = run_until_with(
        &(lang.example)(),
        jobs,
        &["--cache-dir", MODULE_CACHE],
        1,
        1 + SPACED_ADDRESSES.len() as u64,
    )
    .await;
    // The dead job of the address `email`: its code and error.
    let dead = |email: &str| {
        let (_, code, error) = ran
            .dead
            .iter()
            .find(|(data, _, _)| data["email"] == email)
            .unwrap_or_else(|| panic!("{}: {email:?} is not dead", lang.name));
        (code.as_deref(), error.as_str())
    };
    for address in SPACED_ADDRESSES {
        let (code, error) = dead(address);
        assert_eq!(code, Some("fail"), "{}: {address:?}", lang.name);
        assert!(
            error.ends_with(": contains whitespace"),
            "{}: {address:?}: {error}",
            lang.name
        );
    }
    assert_eq!(
        ran.manager.result(&ran.ids[0]).await.unwrap(),
        Some(json!({"to": "test1@mail.org", "status": null})),
        "{}",
        lang.name
    );
    let (code, error) = dead("no-at-sign");
    assert_eq!(code, Some("fail"), "{}", lang.name);
    assert_eq!(error, lang.bad_address);
    let (code, log) = ran.host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains(lang.dry_run), "{}: {log}", lang.name);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_completes_fails_retries_reads_its_env_and_reports() {
    completes_fails_retries_reads_its_env_and_reports(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_completes_fails_retries_reads_its_env_and_reports() {
    completes_fails_retries_reads_its_env_and_reports(&JS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_reuse_serves_several_jobs_and_none_after_an_error() {
    reuse_serves_several_jobs_and_none_after_an_error(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_reuse_serves_several_jobs_and_none_after_an_error() {
    reuse_serves_several_jobs_and_none_after_an_error(&JS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_without_the_sdk_an_uncaught_exception_is_in_the_job_s_error() {
    without_the_sdk_an_uncaught_exception_is_in_the_job_s_error(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_without_the_sdk_a_thrown_error_is_in_the_job_s_error() {
    without_the_sdk_an_uncaught_exception_is_in_the_job_s_error(&JS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_send_email_checks_and_renders() {
    the_send_email_example_checks_and_renders(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_send_email_checks_and_renders() {
    the_send_email_example_checks_and_renders(&JS).await;
}

/// With `MAIL_API_URL` and `--allow-http` for its host, the example posts the message; with
/// the variable but no grant, the host refuses the request and says so.
async fn the_send_email_example_posts_where_allowed(lang: &Lang) {
    let name = lang.name;
    let api = HttpServer::start().await;
    let url = format!("MAIL_API_URL=http://127.0.0.1:{}/send", api.port);
    let allow = format!("127.0.0.1:{}", api.port);
    let example = (lang.example)();
    let ran = run_until_with(
        &example,
        vec![json!({"email": "test1@mail.org", "name": "Ann"})],
        &[
            "--env",
            &url,
            "--allow-http",
            &allow,
            "--cache-dir",
            MODULE_CACHE,
        ],
        1,
        0,
    )
    .await;
    assert_eq!(
        ran.manager.result(&ran.ids[0]).await.unwrap(),
        Some(json!({"to": "test1@mail.org", "status": 200})),
        "{name}"
    );
    let sent: Vec<serde_json::Value> = api
        .requests()
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(sent.len(), 1, "{name}: {sent:?}");
    assert_eq!(sent[0]["to"], "test1@mail.org", "{name}");
    assert!(
        sent[0]["text"].as_str().unwrap().contains("Hi Ann"),
        "{name}: {sent:?}"
    );
    assert_eq!(api.paths(), ["/send"], "{name}");
    let (code, log) = ran.host.stop().await;
    assert_eq!(code, Some(0), "{log}");

    let ran = run_until_with(
        &example,
        vec![json!({"email": "test2@mail.org"})],
        &["--env", &url, "--cache-dir", MODULE_CACHE],
        0,
        1,
    )
    .await;
    assert_eq!(api.requests().len(), 1, "{name}: nothing more was sent");
    let (code, log) = ran.host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains(&format!("denied the guest an HTTP request to {allow}")),
        "{name}: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_send_email_posts_where_allowed() {
    the_send_email_example_posts_where_allowed(&PYTHON).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn js_send_email_posts_where_allowed() {
    the_send_email_example_posts_where_allowed(&JS).await;
}

/// A SIGTERM while a large handler compiles (a Python guest takes seconds, and the tests'
/// hosts run without the module cache) stops the host within a second: exit 0, a line that says so,
/// and nothing written to Redis, since it had joined no queue. Until the host installed its
/// signal handlers before compiling, the signal killed it on the spot (no exit code).
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_while_a_large_handler_compiles_ends_the_host_cleanly() {
    let redis = RedisServer::start();
    let handler = (PYTHON.example)();
    // One compile thread: the compile takes twice as long (about 10 s here), so that it is
    // still under way when the signal comes, on a faster machine too.
    let host = Host::serve_with_env(
        &redis.url(),
        &[
            "--queue",
            "starting",
            "--handler",
            handler.to_str().unwrap(),
        ],
        &[("RAYON_NUM_THREADS", "1")],
    );
    // Said once a load has taken two seconds: a compile, still under way.
    host.wait_for_log("compiling the handler to native code")
        .await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("SIGTERM while loading the handlers: stopped before joining any queue"),
        "{log}"
    );
    assert!(!log.contains("started"), "{log}");
    let keys: u64 = redis::cmd("DBSIZE").query(&mut *redis.con()).unwrap();
    assert_eq!(keys, 0, "the host wrote to Redis");
}

/// A SIGTERM while a reload compiles a large handler stops the host at once, with the queues
/// it served as they were: the reload is dropped, the queue it would have added is never
/// joined. Before, the signal waited for the compile to end (about 10 s here with one compile
/// thread), and the host joined the new queue only to leave it.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_while_a_reload_compiles_a_large_handler_ends_the_host_at_once() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sque.toml");
    let table = |name: &str, handler: &std::path::Path| {
        format!(
            "[[queue]]\nname = \"{name}\"\nhandler = \"{}\"\n",
            handler.display()
        )
    };
    let noop = support::guests::guest("noop");
    std::fs::write(&file, table("first", &noop)).unwrap();
    let host = Host::serve_with_env(
        &redis.url(),
        &["--config", file.to_str().unwrap()],
        &[("RAYON_NUM_THREADS", "1")],
    );
    host.wait_for_log("started").await;
    let python = (PYTHON.example)();
    std::fs::write(
        &file,
        format!("{}{}", table("first", &noop), table("python", &python)),
    )
    .unwrap();
    host.signal("-HUP");
    // Said once a load has taken two seconds: a compile, still under way.
    host.wait_for_log("compiling the handler to native code")
        .await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("SIGTERM while reloading: stopping with the handlers and queues as they were"),
        "{log}"
    );
    assert!(!log.contains("the host serves it from now on"), "{log}");
    let python_keys: Vec<String> = redis::cmd("KEYS")
        .arg("*python*")
        .query(&mut *redis.con())
        .unwrap();
    assert!(python_keys.is_empty(), "{python_keys:?}");
}
