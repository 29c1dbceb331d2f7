//! JavaScript handlers end to end: components built by componentize-js from the JavaScript
//! SDK (`guest-sdk/js`) and from a bare export, run by `sque-host`: results, `Fail` and
//! `Retry`, a thrown error's name, message and stack in the job's error, `--reuse` honoured
//! and dropped after an error, and the `send-email` example.

mod support;

use serde_json::{json, Value};
use sque::{Inspector, Manager};
use support::guests::js_guest;
use support::host::Host;
use support::{eventually, RedisServer};

fn sdk_guest() -> std::path::PathBuf {
    js_guest("host/tests/fixtures/js/sdk_app.js", "js_sdk_fixture")
}

/// The dead jobs' data, code and error.
async fn dead(inspector: &Inspector) -> Vec<(Value, Option<String>, String)> {
    inspector
        .dead_jobs(100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.data, d.code, d.error.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_handler_completes_fails_and_retries() {
    let redis = RedisServer::start();
    let opts = support::producer(&redis).max_attempts(1);
    let m = Manager::new("js", opts.clone()).await.unwrap();
    let ids = m
        .push_many(vec![
            json!({"do": "ok"}),
            json!({"do": "none"}),
            json!({"do": "fail"}),
            json!({"do": "retry"}),
            json!({"do": "throw"}),
        ])
        .await
        .unwrap();
    let guest = sdk_guest();
    let host = Host::start(
        &redis,
        "js",
        &["--handler", guest.to_str().unwrap(), "--max-attempts", "1"],
    );
    eventually("every job ended", || async {
        let s = m.stats().await.unwrap();
        s.completed + s.dead == 5
    })
    .await;
    assert_eq!(
        m.result(&ids[0]).await.unwrap(),
        Some(json!({"ok": true, "attempt": 1}))
    );
    assert_eq!(m.result(&ids[1]).await.unwrap(), None);

    let inspector = Inspector::new("js", opts).await.unwrap();
    let dead = dead(&inspector).await;
    let find = |order: &str| {
        dead.iter()
            .find(|(data, _, _)| data["do"] == order)
            .unwrap_or_else(|| panic!("{order} is not dead: {dead:?}"))
            .clone()
    };
    let (_, code, error) = find("fail");
    assert_eq!(
        (code.as_deref(), error.as_str()),
        (Some("fail"), "handler failed: asked to fail")
    );
    let (_, code, error) = find("retry");
    assert_eq!(
        (code.as_deref(), error.as_str()),
        (Some("retry"), "handler asked to retry: asked to retry")
    );
    let (_, code, error) = find("throw");
    assert_eq!(code.as_deref(), Some("retry"), "{error}");
    assert!(
        error.starts_with(&format!(
            "handler asked to retry: TypeError: no address in job {}\n",
            ids[4]
        )),
        "{error}"
    );
    assert!(error.contains("sdk_app.js"), "the stack: {error}");
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("hello from job"), "the log import: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_reuse_a_js_instance_serves_several_jobs_and_none_after_an_error() {
    let redis = RedisServer::start();
    let m = Manager::new("js-reuse", support::producer(&redis))
        .await
        .unwrap();
    let count = json!({"do": "count"});
    let ids = m
        .push_many(vec![
            count.clone(),
            count.clone(),
            json!({"do": "throw"}),
            count.clone(),
            count.clone(),
        ])
        .await
        .unwrap();
    let guest = sdk_guest();
    let host = Host::start(
        &redis,
        "js-reuse",
        &[
            "--handler",
            guest.to_str().unwrap(),
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
        "one instance for the first two, a fresh one after the error"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// Without the SDK, what a handler throws is not the world's error: the runtime reports it
/// on stderr and traps, and the job's error holds the thrown message.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_sdk_a_thrown_error_is_in_the_job_s_error() {
    let redis = RedisServer::start();
    let opts = support::producer(&redis).max_attempts(1);
    let m = Manager::new("js-raw", opts.clone()).await.unwrap();
    m.push_many(vec![json!({"do": "throw"}), json!({"do": "ok"})])
        .await
        .unwrap();
    let guest = js_guest("host/tests/fixtures/js/raw/raw_app.js", "js_raw_fixture");
    let host = Host::start(
        &redis,
        "js-raw",
        &["--handler", guest.to_str().unwrap(), "--max-attempts", "1"],
    );
    eventually("both jobs ended", || async {
        let s = m.stats().await.unwrap();
        (s.completed, s.dead) == (1, 1)
    })
    .await;
    let inspector = Inspector::new("js-raw", opts).await.unwrap();
    let dead = dead(&inspector).await;
    let (_, code, error) = &dead[0];
    assert_eq!(code.as_deref(), Some("trap"), "{error}");
    assert!(
        error.contains("; the guest's stderr ended with:\n")
            && error.contains("the raw guest's own message"),
        "{error}"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// The JavaScript `send-email` example checks the address (a bad one fails for good) and
/// renders a dry run.
#[tokio::test(flavor = "multi_thread")]
async fn the_js_send_email_example_checks_and_renders() {
    let redis = RedisServer::start();
    let opts = support::producer(&redis);
    let m = Manager::new("emails", opts.clone()).await.unwrap();
    let ids = m
        .push_many(vec![
            json!({"email": "test1@mail.org"}),
            json!({"email": "no-at-sign"}),
        ])
        .await
        .unwrap();
    let guest = js_guest("examples/send-email-js/app.js", "send_email_js");
    let host = Host::start(&redis, "emails", &["--handler", guest.to_str().unwrap()]);
    eventually("both jobs ended", || async {
        let s = m.stats().await.unwrap();
        (s.completed, s.dead) == (1, 1)
    })
    .await;
    assert_eq!(
        m.result(&ids[0]).await.unwrap(),
        Some(json!({"to": "test1@mail.org", "status": null}))
    );
    let inspector = Inspector::new("emails", opts).await.unwrap();
    let dead = dead(&inspector).await;
    assert_eq!(dead[0].1.as_deref(), Some("fail"));
    assert_eq!(
        dead[0].2,
        "handler failed: invalid email address \"no-at-sign\": no @"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("dry run: would send"), "{log}");
}
