//! One host, many queues (`--queue NAME=HANDLER`, `--config sque.toml`): each queue's jobs run
//! on its own handler, the slots are shared by weighted or strict order, a reload adds and
//! removes queues, and `check` names every problem of a config file.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use sque::{JobId, Manager};
use support::guests::guest;
use support::host::{cli, stderr, Host};
use support::{eventually, RedisServer};

/// A manager (for pushing and counting) of `queue`, dispatching nothing itself.
async fn manager(redis: &RedisServer, queue: &str) -> Manager {
    Manager::new(queue, support::producer(redis)).await.unwrap()
}

async fn wait_completed(m: &Manager, queue: &str, n: u64) {
    eventually(&format!("{n} jobs of {queue} completed"), || async {
        m.stats().await.unwrap().completed == n
    })
    .await;
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn queue_table(name: &str, handler: &str, extra: &str) -> String {
    let path = guest(handler);
    format!(
        "[[queue]]\nname = \"{name}\"\nhandler = \"{}\"\n{extra}\n",
        path.display()
    )
}

#[tokio::test]
async fn two_queues_with_two_handlers_share_one_host_and_a_reload_adds_a_third() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sque.toml");
    write(
        &file,
        &format!(
            "slots = 4\n{}{}",
            queue_table("mail", "fixtures", ""),
            queue_table("sms", "noop", "weight = 2")
        ),
    );
    let (mail, sms) = (manager(&redis, "mail").await, manager(&redis, "sms").await);
    mail.push_many(vec![json!({"do": "ok"}); 50]).await.unwrap();
    sms.push_many(vec![json!({"n": 1}); 50]).await.unwrap();
    let host = Host::serve(&redis.url(), &["--config", file.to_str().unwrap()]);
    wait_completed(&mail, "mail", 50).await;
    wait_completed(&sms, "sms", 50).await;
    // Each queue ran on its own handler: the fixtures answer {"ok": true, ...}.
    let id = mail.push(json!({"do": "ok"})).await.unwrap();
    wait_completed(&mail, "mail", 51).await;
    assert_eq!(mail.result(&id).await.unwrap().unwrap()["ok"], json!(true));
    assert!(host.log().contains("queues mail, sms"), "{}", host.log());
    // Idle, each queue keeps one request open to hear of new work, not a credit's worth.
    for (m, queue) in [(&mail, "mail"), (&sms, "sms")] {
        eventually(&format!("{queue} to keep one request open"), || async {
            m.stats().await.unwrap().requests == 1
        })
        .await;
    }

    // A mail job runs across the reload: it ends on the handler it started with.
    let running = mail
        .push(json!({"do": "sleep", "arg": 4000}))
        .await
        .unwrap();
    eventually("the long mail job to start", || async {
        mail.stats().await.unwrap().in_flight == 1
    })
    .await;

    // The reload adds a queue, removes one and gives mail another handler.
    write(
        &file,
        &format!(
            "slots = 4\n{}{}",
            queue_table("mail", "noop", ""),
            queue_table("audit", "fixtures", "weight = 3")
        ),
    );
    host.signal("-HUP");
    host.wait_for_log("added: the host serves it from now on")
        .await;
    assert_eq!(
        mail.stats().await.unwrap().in_flight,
        1,
        "the long job still runs after the reload (the test needs it to)"
    );
    let audit = manager(&redis, "audit").await;
    audit
        .push_many(vec![json!({"do": "ok"}); 20])
        .await
        .unwrap();
    let after = mail.push(json!({"do": "ok"})).await.unwrap();
    wait_completed(&audit, "audit", 20).await;
    wait_completed(&mail, "mail", 53).await;
    assert_eq!(
        mail.result(&running).await.unwrap(),
        Some(json!({"slept": true})),
        "the job that ran across the reload, on the old handler"
    );
    assert_eq!(
        mail.result(&after).await.unwrap(),
        None,
        "noop answers nothing"
    );
    // The removed queue is left: no worker of this host on it, and its jobs wait.
    eventually("the host to leave sms", || async {
        sms.stats().await.unwrap().workers == 0
    })
    .await;
    sms.push(json!({"n": 2})).await.unwrap();
    assert_eq!(sms.stats().await.unwrap().waiting, 1);

    // A reload that cannot be done changes nothing.
    write(
        &file,
        "slots = 4\n[[queue]]\nname = \"mail\"\nhandler = \"missing.wasm\"\n",
    );
    host.signal("-HUP");
    host.wait_for_log("reload failed, keeping the running handlers and queues as they were")
        .await;
    mail.push(json!({"do": "ok"})).await.unwrap();
    audit.push(json!({"do": "ok"})).await.unwrap();
    wait_completed(&mail, "mail", 54).await;
    wait_completed(&audit, "audit", 21).await;

    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test]
async fn queues_named_on_the_command_line_run_each_on_its_handler() {
    let redis = RedisServer::start();
    let (a, b) = (manager(&redis, "a").await, manager(&redis, "b").await);
    let fixtures = format!("a={}", guest("fixtures").display());
    let noop = format!("b={}", guest("noop").display());
    let host = Host::serve(
        &redis.url(),
        &["--queue", &fixtures, "--queue", &noop, "--order", "strict"],
    );
    let ida = a.push(json!({"do": "ok"})).await.unwrap();
    let idb = b.push(json!({"do": "ok"})).await.unwrap();
    wait_completed(&a, "a", 1).await;
    wait_completed(&b, "b", 1).await;
    assert_eq!(a.result(&ida).await.unwrap().unwrap()["ok"], json!(true));
    assert_ne!(b.result(&idb).await.unwrap(), a.result(&ida).await.unwrap());
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("queues a, b") && log.contains("strict order"),
        "{log}"
    );
}

/// Connections open on the (single) test server.
fn connections(redis: &RedisServer) -> usize {
    let list: String = support::query(redis, &["CLIENT", "LIST"]);
    list.lines().count()
}

#[tokio::test]
async fn the_queues_of_a_host_share_its_connections_and_carry_on_when_redis_kills_them() {
    let redis = RedisServer::start();
    let names = ["c1", "c2", "c3"];
    let mut managers = Vec::new();
    for name in names {
        managers.push(manager(&redis, name).await);
    }
    let before = (!support::on_cluster()).then(|| connections(&redis));
    let noop = guest("noop");
    let queues: Vec<String> = names
        .iter()
        .map(|n| format!("{n}={}", noop.display()))
        .collect();
    let mut args = vec!["--slots", "4"];
    for q in &queues {
        args.extend(["--queue", q.as_str()]);
    }
    let host = Host::serve(&redis.url(), &args);
    // Started: each queue keeps its one request open.
    for (m, name) in managers.iter().zip(names) {
        eventually(&format!("{name} to keep one request open"), || async {
            m.stats().await.unwrap().requests == 1
        })
        .await;
    }
    // One connection for every queue's commands and scripts, one for their wake-ups, and one
    // blocking pop for every queue's inbox (apart: two for commands, one for wake-ups and one
    // for the inbox each, 12; with the clients' requests open, already 9 or more).
    let shared_only = || async {
        let Some(before) = before else { return true };
        let pubsub: String = support::query(&redis, &["CLIENT", "LIST", "TYPE", "pubsub"]);
        connections(&redis) == before + 1 + 1 + 1 && pubsub.lines().count() == 1
    };
    eventually(
        "the host to hold 3 connections, one of them for wake-ups",
        shared_only,
    )
    .await;
    // Redis drops every connection: the shared one is made again, for every queue.
    redis.on_every_node(&["CLIENT", "KILL", "TYPE", "normal"]);
    redis.on_every_node(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    for (m, name) in managers.iter().zip(names) {
        // A manager's own connection was killed too: its first call may meet that.
        eventually(&format!("jobs pushed to {name}"), || async {
            m.push_many(vec![json!({"n": 1}); 20]).await.is_ok()
        })
        .await;
    }
    for (m, name) in managers.iter().zip(names) {
        wait_completed(m, name, 20).await;
    }
    // Both shared connections were made again, and only they.
    eventually("the host to hold 3 connections again", shared_only).await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// Runs `first` and `second` (jobs of the fixtures' "now": each says when it started) to the
/// end under `order`, and gives each queue's start times.
async fn start_times(
    order: &str,
    first: (&str, usize),
    second: (&str, usize),
) -> (Vec<u64>, Vec<u64>) {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sque.toml");
    write(
        &file,
        &format!(
            "order = \"{order}\"\nslots = 8\n{}{}",
            queue_table("first", "fixtures", first.0),
            queue_table("second", "fixtures", second.0)
        ),
    );
    let mut ids = Vec::new();
    let mut managers = Vec::new();
    for (queue, n) in [("first", first.1), ("second", second.1)] {
        let m = manager(&redis, queue).await;
        ids.push(m.push_many(vec![json!({"do": "now"}); n]).await.unwrap());
        managers.push(m);
    }
    let host = Host::serve(&redis.url(), &["--config", file.to_str().unwrap()]);
    wait_completed(&managers[0], "first", first.1 as u64).await;
    wait_completed(&managers[1], "second", second.1 as u64).await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    let mut times = Vec::new();
    for (m, ids) in managers.iter().zip(&ids) {
        times.push(started(m, ids).await);
    }
    let second = times.pop().unwrap();
    (times.pop().unwrap(), second)
}

async fn started(m: &Manager, ids: &[JobId]) -> Vec<u64> {
    let mut times = Vec::with_capacity(ids.len());
    for id in ids {
        let result: Value = m.result(id).await.unwrap().expect("a result");
        times.push(result["started_us"].as_u64().unwrap());
    }
    times
}

#[tokio::test]
async fn weighted_order_gives_each_queue_its_weight_over_ten_thousand_jobs() {
    // 6,000 at weight 3 and 4,000 at weight 1: while the first has work, the second should
    // get a third as many, 2,000.
    let (first, second) = start_times("weighted", ("weight = 3", 6000), ("weight = 1", 4000)).await;
    let end = *first.iter().max().unwrap();
    let meanwhile = second.iter().filter(|t| **t < end).count();
    let off = (meanwhile as f64 - 2000.0).abs() / 2000.0;
    eprintln!("weighted 3:1: {meanwhile} of the second queue's jobs ran while the first ran 6,000");
    assert!(
        off <= 0.05,
        "the second queue ran {meanwhile} jobs while the first ran 6,000: {:.1}% off 2,000",
        off * 100.0
    );
}

#[tokio::test]
async fn strict_order_serves_the_first_queue_while_it_has_work() {
    let (first, second) = start_times("strict", ("", 5000), ("", 5000)).await;
    let end = *first.iter().max().unwrap();
    let meanwhile = second.iter().filter(|t| **t < end).count();
    eprintln!("strict: {meanwhile} of the second queue's jobs ran while the first had work");
    // The second queue gets a credit only once a request of the first was stored, not served
    // (its queue ran dry), or its requests have gone unanswered for share::IDLE_AFTER (50 ms);
    // on a loaded machine the latter can happen for a moment.
    assert!(
        meanwhile <= 50,
        "the second queue ran {meanwhile} jobs while the first still had work"
    );
}

#[tokio::test]
async fn check_names_every_problem_of_a_config_file_and_run_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    write(
        &good,
        &format!(
            "order = \"strict\"\n{}{}",
            queue_table(
                "mail",
                "fixtures",
                "weight = 2\nslots = 4\nallow-http = [\"api.example.com\"]"
            ),
            queue_table("sms", "noop", "timeout = \"5s\"\nenv = { REGION = \"eu\" }")
        ),
    );
    let out = cli(&["check", good.to_str().unwrap(), "--no-cache"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("2 queue(s), strict order"), "{said}");
    assert!(
        said.contains("mail:") && said.contains("weight 2, at most 4 held"),
        "{said}"
    );

    let bad = dir.path().join("bad.toml");
    write(
        &bad,
        &format!(
            "{}{}{}{}",
            queue_table("mail", "fixtures", "weight = 0\ntimeout = \"soon\""),
            queue_table("mail", "noop", ""),
            queue_table("sms", "noop", "allow-http = [\"http://x\"]"),
            "[[queue]]\nname = \"thumbs\"\nhandler = \"nowhere.wasm\"\n"
        ),
    );
    let out = cli(&["check", bad.to_str().unwrap(), "--no-cache"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for problem in [
        "queue \"mail\": weight must be 1 to 1000",
        "queue \"mail\": timeout:",
        "queue \"mail\": given twice",
        "queue \"sms\": allow-http \"http://x\"",
    ] {
        assert!(err.contains(problem), "{problem:?} not in {err}");
    }
    assert!(err.lines().all(|l| l.starts_with("error: ")), "{err}");
    // A file that parses but names a handler that is not there: said by check, refused by run.
    let missing = dir.path().join("missing.toml");
    write(
        &missing,
        "[[queue]]\nname = \"thumbs\"\nhandler = \"nowhere.wasm\"\n",
    );
    let out = cli(&["check", missing.to_str().unwrap(), "--no-cache"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("queue \"thumbs\""),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("nowhere.wasm"), "{}", stderr(&out));
    let unknown = dir.path().join("unknown.toml");
    write(&unknown, "[[queue]]\nname = \"a\"\nhandlr = \"x.wasm\"\n");
    let out = cli(&["check", unknown.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let out = cli(
        &[
            "run",
            "--config",
            bad.to_str().unwrap(),
            "--redis",
            "redis://127.0.0.1:1",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("given twice"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_queue_held_back_by_its_rate_limit_leaves_the_slots_to_the_others() {
    rate_limited_queue_beside_a_busy_one("weighted").await;
}

/// Under strict order too, though the held-back queue comes first and has jobs: its requests
/// were stored, not served, so it is not given the slots it cannot use.
#[tokio::test]
async fn under_strict_order_a_first_queue_held_back_by_its_rate_limit_leaves_the_slots_to_the_next()
{
    rate_limited_queue_beside_a_busy_one("strict").await;
}

/// A queue limited to 50 jobs a second, with 5,000 waiting, first in `order`, beside a queue
/// with 6,000 jobs: the second's jobs are all done within the tests' patience (a minute),
/// where the first's would take 100 s.
async fn rate_limited_queue_beside_a_busy_one(order: &str) {
    let redis = RedisServer::start();
    let (slow, fast) = (manager(&redis, "slow").await, manager(&redis, "fast").await);
    let admin = sque::Admin::new("slow", support::producer(&redis))
        .await
        .unwrap();
    admin
        .configure(&sque::SettingsChange {
            // An answer every 20 ms: never idle for the 50 ms that would withdraw its requests.
            rate_count: Some(50),
            rate_period: Some(std::time::Duration::from_secs(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    slow.push_many(vec![json!({"do": "ok"}); 5000])
        .await
        .unwrap();
    fast.push_many(vec![json!({"do": "ok"}); 6000])
        .await
        .unwrap();
    let fixtures = guest("fixtures");
    let queues = [
        format!("slow={}", fixtures.display()),
        format!("fast={}", fixtures.display()),
    ];
    let host = Host::serve(
        &redis.url(),
        &[
            "--queue", &queues[0], "--queue", &queues[1], "--slots", "4", "--order", order,
        ],
    );
    // The slow queue's requests wait on its limit; were it given every other credit (weighted
    // order) or every credit while answered lately (strict), it would soon hold them all, and
    // the fast queue would be left half of the 50 a second its limit frees, or none of it:
    // minutes for 6,000 jobs, where a few seconds do.
    wait_completed(&fast, "fast", 6000).await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// With `--watch`, a file changed while a reload runs (here, one held up by a Redis that
/// answers nothing) is reloaded too: the change was taken as seen, and the queue it added
/// never joined, with nothing said.
#[tokio::test]
async fn a_file_changed_while_a_reload_runs_is_reloaded_too() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sque.toml");
    let tables = |names: &[&str]| -> String {
        names
            .iter()
            .map(|name| queue_table(name, "noop", ""))
            .collect()
    };
    write(&file, &format!("slots = 2\n{}", tables(&["first"])));
    let host = Host::serve(
        &redis.url(),
        &["--config", file.to_str().unwrap(), "--watch"],
    );
    host.wait_for_log("started").await;
    redis.freeze();
    write(
        &file,
        &format!("slots = 2\n{}", tables(&["first", "second"])),
    );
    host.wait_for_log("reloading (a watched file changed)")
        .await;
    write(
        &file,
        &format!("slots = 2\n{}", tables(&["first", "second", "third"])),
    );
    redis.thaw();
    for queue in ["second", "third"] {
        let m = manager(&redis, queue).await;
        m.push(json!({"n": 1})).await.unwrap();
        wait_completed(&m, queue, 1).await;
    }
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}
