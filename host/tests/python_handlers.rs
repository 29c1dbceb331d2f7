//! Python handlers end to end: components built by componentize-py from the Python SDK
//! (`guest-sdk/python`) and from the bare bindings, run by `sque-host`: results, `Fail` and
//! `Retry`, an uncaught exception's type, message and traceback in the job's error (with the
//! SDK) or its stderr (without), `--env` read, `--reuse` honoured and dropped after an error.

mod support;

use serde_json::{json, Value};
use sque::{Inspector, JobId, Manager};
use support::guests::python_guest;
use support::host::Host;
use support::{eventually, RedisServer};

fn sdk_guest() -> std::path::PathBuf {
    python_guest("host/tests/fixtures/python", "sdk_app", "py_sdk_fixture")
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
async fn a_python_handler_completes_fails_retries_and_reads_its_env() {
    let redis = RedisServer::start();
    let opts = support::producer(&redis).max_attempts(1);
    let m = Manager::new("py", opts.clone()).await.unwrap();
    let ids = m
        .push_many(vec![
            json!({"do": "ok"}),
            json!({"do": "none"}),
            json!({"do": "env", "name": "GREETING"}),
            json!({"do": "env", "name": "NOT_GRANTED"}),
            json!({"do": "fail"}),
            json!({"do": "retry"}),
            json!({"do": "raise"}),
        ])
        .await
        .unwrap();
    let guest = sdk_guest();
    let host = Host::start(
        &redis,
        "py",
        &[
            "--handler",
            guest.to_str().unwrap(),
            "--max-attempts",
            "1",
            "--env",
            "GREETING=hello",
        ],
    );
    eventually("every job ended", || async {
        let s = m.stats().await.unwrap();
        s.completed + s.dead == 7
    })
    .await;
    let result = |i: usize| {
        let id: JobId = ids[i].clone();
        let m = &m;
        async move { m.result(&id).await.unwrap() }
    };
    assert_eq!(result(0).await, Some(json!({"ok": true, "attempt": 1})));
    assert_eq!(result(1).await, None);
    assert_eq!(result(2).await, Some(json!({"value": "hello"})));
    assert_eq!(
        result(3).await,
        Some(json!({"value": null})),
        "only what is granted"
    );

    let inspector = Inspector::new("py", opts).await.unwrap();
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
    let (_, code, error) = find("raise");
    assert_eq!(code.as_deref(), Some("retry"), "{error}");
    assert!(
        error.starts_with(&format!(
            "handler asked to retry: ValueError: no address in job {}\nTraceback (most recent call last):",
            ids[6]
        )),
        "{error}"
    );
    assert!(error.contains("in misbehave"), "{error}");
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("hello from job"), "the log import: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_reuse_a_python_instance_serves_several_jobs_and_none_after_an_error() {
    let redis = RedisServer::start();
    let m = Manager::new("py-reuse", support::producer(&redis))
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
    let guest = sdk_guest();
    let host = Host::start(
        &redis,
        "py-reuse",
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
        "one instance for the first two, a fresh one after the exception"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// Without the SDK an uncaught exception traps the runtime; the job's error still ends with
/// the exception, from the guest's stderr.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_sdk_an_uncaught_exception_is_in_the_job_s_error() {
    let redis = RedisServer::start();
    let opts = support::producer(&redis).max_attempts(1);
    let m = Manager::new("py-raw", opts.clone()).await.unwrap();
    m.push_many(vec![json!({"do": "raise"}), json!({"do": "ok"})])
        .await
        .unwrap();
    let guest = python_guest("host/tests/fixtures/python", "raw_app", "py_raw_fixture");
    let host = Host::start(
        &redis,
        "py-raw",
        &["--handler", guest.to_str().unwrap(), "--max-attempts", "1"],
    );
    eventually("both jobs ended", || async {
        let s = m.stats().await.unwrap();
        (s.completed, s.dead) == (1, 1)
    })
    .await;
    let inspector = Inspector::new("py-raw", opts).await.unwrap();
    let dead = dead(&inspector).await;
    let (_, code, error) = &dead[0];
    assert_eq!(code.as_deref(), Some("trap"), "{error}");
    assert!(error.starts_with("guest trapped: "), "{error}");
    // componentize-py's runtime prints the traceback, then a panic of its own, then traps.
    assert!(
        error.contains("; the guest's stderr ended with:\n")
            && error.contains("ValueError: the raw guest's own message"),
        "{error}"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// The Python `send-email` example does what the Rust one does without `MAIL_API_URL`:
/// checks the address (a bad one fails for good) and renders a dry run.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_send_email_example_checks_and_renders() {
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
    let guest = python_guest("examples/send-email-python", "app", "send_email_py");
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
        "handler failed: invalid email address 'no-at-sign': no @"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("dry run (no MAIL_API_URL)"), "{log}");
}
