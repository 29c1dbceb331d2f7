//! End to end: the `sque-host` binary, real guest components, a private redis-server.

mod support;

use serde_json::{json, Value};
use sque::{JobId, Manager};
use support::guests::guest;
use support::host::{assert_refused, cli, spawn_cli, stderr, Host, HttpServer};
use support::{eventually, RedisServer};

fn producer_opts(redis: &RedisServer) -> sque::Options {
    support::producer(redis)
}

/// Pushes NDJSON through the CLI and returns the ids it printed.
fn push_lines(redis: &RedisServer, queue: &str, jobs: &[Value], extra: &[&str]) -> Vec<String> {
    let input: String = jobs.iter().map(|j| format!("{j}\n")).collect();
    let url = redis.url();
    let mut args = vec!["push", "--queue", queue, "--redis", &url];
    args.extend_from_slice(extra);
    let out = cli(&args, input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "push failed: {}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `sque-host run` on `queue` with the fixtures handler and `extra` flags.
fn fixtures_host(redis: &RedisServer, queue: &str, extra: &[&str]) -> Host {
    let fixtures = guest("fixtures");
    let mut args = vec!["--handler", fixtures.to_str().unwrap()];
    args.extend_from_slice(extra);
    Host::start(redis, queue, &args)
}

async fn wait_counts(m: &Manager, completed: u64, dead: u64) {
    eventually(
        &format!("{completed} completed and {dead} dead"),
        || async {
            let s = m.stats().await.unwrap();
            s.completed == completed && s.dead == dead
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_pushed_with_the_cli_are_handled_once_and_in_order() {
    let redis = RedisServer::start();
    let jobs: Vec<Value> = (0..40).map(|n| json!({"do": "ok", "n": n})).collect();
    let ids = push_lines(&redis, "order", &jobs, &[]);
    assert_eq!(ids, (1..=40).map(|i| i.to_string()).collect::<Vec<_>>());
    let host = fixtures_host(&redis, "order", &["--slots", "1", "--log", "debug"]);
    let m = Manager::new("order", producer_opts(&redis)).await.unwrap();
    wait_counts(&m, 40, 0).await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    let order: Vec<String> = log
        .lines()
        .filter(|l| l.contains(" started "))
        .filter_map(|l| l.split("job=").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap()
                .trim_matches('"')
                .to_string()
        })
        .collect();
    assert_eq!(order, ids, "one slot handles jobs once each, in push order");
    let result = m.result(&JobId::from("7")).await.unwrap();
    assert_eq!(result, Some(json!({"ok": true, "attempt": 1})));
    let stats = m.stats().await.unwrap();
    assert_eq!((stats.dispatched, stats.expired, stats.waiting), (40, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_guests_fail_with_their_reason_while_good_jobs_go_through() {
    let redis = RedisServer::start();
    let bad = [
        (
            "trap",
            "guest trapped: wasm trap: wasm `unreachable` instruction executed",
        ),
        ("loop", "timed out after 2s"),
        ("grow", "out of memory"),
        ("panic", "guest panicked: the fixture panicked on purpose"),
        ("recurse", "guest trapped"),
        ("fail", "handler failed: asked to fail"),
        ("retry", "handler asked to retry: asked to retry"),
    ];
    let mut jobs = Vec::new();
    for round in 0..3 {
        for (what, _) in &bad {
            jobs.push(json!({"do": what, "round": round}));
            jobs.push(json!({"do": "ok"}));
            jobs.push(json!({"do": "print", "arg": 200_000}));
        }
    }
    push_lines(&redis, "bad", &jobs, &["--max-attempts", "1"]);
    let host = fixtures_host(
        &redis,
        "bad",
        &["--slots", "4", "--timeout", "2s", "--max-memory", "32MiB"],
    );
    let m = Manager::new("bad", producer_opts(&redis)).await.unwrap();
    let good = 2 * 3 * bad.len() as u64;
    let dead = 3 * bad.len() as u64;
    wait_counts(&m, good, dead).await;
    for job in m.dead_jobs(100).await.unwrap() {
        let what = job.data["do"].as_str().unwrap();
        let (_, expected) = bad
            .iter()
            .find(|(w, _)| *w == what)
            .expect("only bad jobs are dead");
        let error = job.error.unwrap();
        assert!(
            error.contains(expected),
            "{what}: {error:?} lacks {expected:?}"
        );
        assert!(!error.contains('\n'), "errors are one line: {error:?}");
    }
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0));
    assert!(
        log.contains("byte(s) dropped"),
        "guest output is capped per job"
    );
}

/// A guest's output is taken as it writes: a guest that prints a thousand lines does not wait
/// for its turn on the runtime once per line behind guests that compute (it used to, and ran
/// out of its time here).
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_prints_is_not_held_up_by_guests_that_compute() {
    let redis = RedisServer::start();
    let mut jobs: Vec<Value> = (0..3).map(|_| json!({"do": "loop"})).collect();
    jobs.push(json!({"do": "print", "arg": 1 << 20}));
    push_lines(&redis, "printer", &jobs, &["--max-attempts", "1"]);
    let host = fixtures_host(
        &redis,
        "printer",
        &["--slots", "4", "--guest-threads", "1", "--timeout", "2s"],
    );
    let m = Manager::new("printer", producer_opts(&redis))
        .await
        .unwrap();
    wait_counts(&m, 1, 3).await;
    let printed = m.result(&JobId::from("4")).await.unwrap();
    assert_eq!(printed, Some(json!({"printed": 1 << 20})));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn capabilities_are_denied_unless_granted() {
    let redis = RedisServer::start();
    let server = HttpServer::start().await;
    let api = format!("http://127.0.0.1:{}/", server.port);
    let elsewhere = format!("http://127.0.0.1:{}/", redis.port);
    let redis_addr = format!("127.0.0.1:{}", redis.port);
    let orders = |queue: &str| -> Vec<String> {
        let jobs = vec![
            json!({"do": "read-file", "arg": "/etc/passwd"}),
            json!({"do": "list-dir", "arg": "/"}),
            json!({"do": "env"}),
            json!({"do": "tcp", "arg": redis_addr}),
            json!({"do": "udp", "arg": "127.0.0.1:9"}),
            json!({"do": "http", "arg": api}),
            json!({"do": "http", "arg": elsewhere}),
        ];
        push_lines(&redis, queue, &jobs, &[])
    };
    let results = |m: Manager, ids: Vec<String>| async move {
        let mut out = Vec::new();
        for id in ids {
            out.push(m.result(&JobId::from(id)).await.unwrap().expect("a result"));
        }
        out
    };

    // Nothing granted.
    let ids = orders("none");
    let host = fixtures_host(&redis, "none", &[]);
    let m = Manager::new("none", producer_opts(&redis)).await.unwrap();
    wait_counts(&m, 7, 0).await;
    let r = results(m, ids).await;
    for (i, what) in [
        "read-file",
        "list-dir",
        "tcp",
        "udp",
        "http",
        "http elsewhere",
    ]
    .iter()
    .enumerate()
    {
        let r = &r[if i < 2 { i } else { i + 1 }];
        assert_eq!(r["allowed"], json!(false), "{what} was allowed: {r}");
    }
    assert_eq!(r[2]["vars"], json!([]), "no environment: {}", r[2]);
    assert!(
        server.requests().is_empty(),
        "no HTTP request left the sandbox"
    );
    let (_, log) = host.stop().await;
    assert!(
        log.contains("denied the guest an HTTP request"),
        "denials are logged"
    );

    // The environment and one HTTP host granted: exactly those.
    let ids = orders("some");
    let allow = format!("127.0.0.1:{}", server.port);
    let host = fixtures_host(
        &redis,
        "some",
        &["--env", "GREETING=hi", "--allow-http", &allow],
    );
    let m = Manager::new("some", producer_opts(&redis)).await.unwrap();
    wait_counts(&m, 7, 0).await;
    let r = results(m, ids).await;
    assert_eq!(r[0]["allowed"], json!(false), "files stay denied: {}", r[0]);
    assert_eq!(
        r[1]["allowed"],
        json!(false),
        "directories stay denied: {}",
        r[1]
    );
    assert_eq!(
        r[2]["vars"],
        json!([["GREETING", "hi"]]),
        "only the granted variable: {}",
        r[2]
    );
    assert_eq!(
        r[3]["allowed"],
        json!(false),
        "sockets stay denied: {}",
        r[3]
    );
    assert_eq!(r[4]["allowed"], json!(false), "udp stays denied: {}", r[4]);
    assert_eq!(r[5]["allowed"], json!(true), "the granted host: {}", r[5]);
    assert_eq!(r[5]["status"], json!(200));
    assert_eq!(
        r[6]["allowed"],
        json!(false),
        "another port of the same host: {}",
        r[6]
    );
    assert_eq!(server.requests().len(), 1);
    host.stop().await;
}

/// The default prefetch adapts to the rate jobs finish: slow jobs leave the rest of the queue
/// to other hosts (here at most the slots plus as many ahead, and the outcomes on their way)
/// instead of a fixed batch being leased to this one.
/// The `count` each job's result holds (null for a job without a result).
async fn counts(m: &Manager, ids: Vec<JobId>) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        let r = m.result(&id).await.unwrap();
        out.push(r.map_or(Value::Null, |r| r["count"].clone()));
    }
    out
}

/// By default every job has a fresh instance; with `--reuse N` a slot's instance serves up
/// to N jobs in turn, and one that ended badly (a trap, a returned error) or made over half
/// of an instance's HTTP header bytes is not kept.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_serves_one_job_or_with_reuse_up_to_n_and_none_after_a_failure() {
    let redis = RedisServer::start();
    // One attempt a job, as the hosts below ask: the queue's setting is the one that holds.
    let m = Manager::new("reuse", producer_opts(&redis).max_attempts(1))
        .await
        .unwrap();
    let count = json!({"do": "count"});

    let ids = m.push_many(vec![count.clone(); 3]).await.unwrap();
    let host = fixtures_host(&redis, "reuse", &["--slots", "1", "--max-attempts", "1"]);
    wait_counts(&m, 3, 0).await;
    assert_eq!(counts(&m, ids).await, vec![json!(1); 3], "fresh each time");
    host.stop().await;

    let jobs = vec![
        count.clone(),
        count.clone(),
        count.clone(),
        count.clone(),
        json!({"do": "trap"}),
        count.clone(),
        json!({"do": "fail"}),
        count.clone(),
        // 3 MiB of HTTP headers: over half an instance's 4 MiB, so it is not kept.
        json!({"do": "headers", "arg": 3 << 10}),
        count.clone(),
    ];
    let ids = m.push_many(jobs).await.unwrap();
    let host = fixtures_host(
        &redis,
        "reuse",
        &[
            "--slots",
            "1",
            "--max-attempts",
            "1",
            "--reuse",
            "3",
            "--prefetch",
            "1",
        ],
    );
    wait_counts(&m, 3 + 8, 2).await;
    assert_eq!(
        counts(&m, ids).await,
        [1, 2, 3, 1, 0, 1, 0, 1, 2, 1]
            .map(|n| if n == 0 { Value::Null } else { json!(n) })
            .to_vec(),
        "three jobs an instance; a new one after the trap, the failure, and 3 MiB of headers"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_slow_jobs_the_adaptive_prefetch_takes_no_more_than_the_slots_ahead() {
    let redis = RedisServer::start();
    let jobs: Vec<Value> = (0..24).map(|_| json!({"do": "sleep", "arg": 40})).collect();
    push_lines(&redis, "slow", &jobs, &[]);
    let host = fixtures_host(&redis, "slow", &["--slots", "2"]);
    let m = Manager::new("slow", producer_opts(&redis)).await.unwrap();
    let most_in_flight = std::sync::atomic::AtomicU64::new(0);
    eventually("24 slow jobs completed", || async {
        let s = m.stats().await.unwrap();
        most_in_flight.fetch_max(s.in_flight, std::sync::atomic::Ordering::Relaxed);
        s.completed == 24
    })
    .await;
    let most = most_in_flight.into_inner();
    // 2 running, 2 ahead, and at most one finished job per slot whose completion is on its way.
    assert!(most <= 6, "{most} jobs leased to one host at once");
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("prefetch adaptive"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_shutdown_finishes_running_jobs_and_gives_back_the_rest() {
    let redis = RedisServer::start();
    let mut jobs = vec![
        json!({"do": "sleep", "arg": 1500}),
        json!({"do": "sleep", "arg": 1500}),
    ];
    jobs.extend((0..6).map(|n| json!({"do": "ok", "n": n})));
    push_lines(&redis, "graceful", &jobs, &[]);
    let host = fixtures_host(
        &redis,
        "graceful",
        &[
            "--slots",
            "2",
            "--prefetch",
            "2",
            "--grace",
            "20s",
            "--log",
            "debug",
        ],
    );
    let m = Manager::new("graceful", producer_opts(&redis))
        .await
        .unwrap();
    eventually("two running and two prefetched", || async {
        m.stats().await.unwrap().in_flight == 4
    })
    .await;
    // Leased is not running yet: a slot may not have started its job when the fourth lease
    // is taken. Both slow jobs must be running before SIGTERM for the test to mean anything.
    host.wait_for_log("started queue=graceful job=1 attempt=1")
        .await;
    host.wait_for_log("started queue=graceful job=2 attempt=1")
        .await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    let s = m.stats().await.unwrap();
    assert_eq!(
        (s.completed, s.in_flight, s.dead, s.delayed),
        (2, 0, 0, 0),
        "{s:?}\n{log}"
    );
    assert_eq!(
        s.waiting, 6,
        "prefetched jobs went back to the queue: {s:?}"
    );
    assert_eq!(
        (s.requests, s.workers),
        (0, 0),
        "the host withdrew its requests and left: {s:?}\n{log}"
    );
    assert!(log.contains("given back to the head of the queue"), "{log}");

    // A second host takes the rest: every job once, the given-back ones still on attempt 1.
    let host = fixtures_host(&redis, "graceful", &[]);
    wait_counts(&m, 8, 0).await;
    for id in 3..=8 {
        let r = m
            .result(&JobId::from(id.to_string()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r["attempt"], json!(1), "job {id}: {r}");
    }
    host.stop().await;

    // A job that outlives the grace period is failed, to be retried: not lost.
    push_lines(
        &redis,
        "graceful",
        &[json!({"do": "sleep", "arg": 30000})],
        &[],
    );
    let host = fixtures_host(&redis, "graceful", &["--grace", "300ms", "--log", "debug"]);
    // Running, not only leased: a leased job whose slot has not started it yet goes back to
    // the queue at the stop, unfailed (seen once under load: retried 0).
    host.wait_for_log("started queue=graceful job=9 attempt=1")
        .await;
    let (code, _) = host.stop().await;
    assert_eq!(code, Some(0));
    let s = m.stats().await.unwrap();
    assert_eq!(
        (s.in_flight, s.delayed + s.waiting, s.retried),
        (0, 1, 1),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_swaps_the_handler_and_drops_nothing() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("handler.wasm");
    std::fs::copy(guest("fixtures"), &path).unwrap();
    let host = Host::start(
        &redis,
        "reload",
        &[
            "--handler",
            path.to_str().unwrap(),
            "--watch",
            "--slots",
            "2",
        ],
    );
    let m = Manager::new("reload", producer_opts(&redis)).await.unwrap();
    let first = push_lines(&redis, "reload", &[json!({"do": "ok"})], &[]);
    wait_counts(&m, 1, 0).await;
    assert!(
        m.result(&JobId::from(first[0].clone()))
            .await
            .unwrap()
            .is_some(),
        "fixtures answer"
    );

    // SIGHUP: the noop handler takes over (it returns no result).
    std::fs::copy(guest("noop"), &path).unwrap();
    host.signal("-HUP");
    host.wait_for_log("handler reloaded").await;
    let second = push_lines(&redis, "reload", &[json!({"do": "ok"})], &[]);
    wait_counts(&m, 2, 0).await;
    assert_eq!(
        m.result(&JobId::from(second[0].clone())).await.unwrap(),
        None,
        "noop answers"
    );

    // A file that does not load keeps the running handler.
    std::fs::write(&path, b"not wasm").unwrap();
    host.signal("-HUP");
    host.wait_for_log("reload failed, keeping the running handler")
        .await;
    push_lines(&redis, "reload", &[json!({"do": "ok"})], &[]);
    wait_counts(&m, 3, 0).await;

    // --watch: a changed file is picked up without a signal.
    let before = host.log().matches("handler reloaded").count();
    std::fs::copy(guest("fixtures"), &path).unwrap();
    eventually("the watched file reloaded", || async {
        host.log().matches("handler reloaded").count() > before
    })
    .await;
    let fourth = push_lines(&redis, "reload", &[json!({"do": "ok"})], &[]);
    wait_counts(&m, 4, 0).await;
    assert!(m
        .result(&JobId::from(fourth[0].clone()))
        .await
        .unwrap()
        .is_some());
    let (code, _) = host.stop().await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_send_email_example_posts_to_the_mail_api() {
    let redis = RedisServer::start();
    let api = HttpServer::start().await;
    let jobs = [
        json!({"email": "test1@mail.org"}),
        json!({"email": "not-an-address"}),
        json!({"email": "test2@mail.org", "name": "Ann"}),
    ];
    push_lines(&redis, "emails", &jobs, &[]);
    let url = format!("MAIL_API_URL=http://127.0.0.1:{}/send", api.port);
    let allow = format!("127.0.0.1:{}", api.port);
    let wasm = guest("send_email");
    let host = Host::start(
        &redis,
        "emails",
        &[
            "--handler",
            wasm.to_str().unwrap(),
            "--env",
            &url,
            "--allow-http",
            &allow,
        ],
    );
    let m = Manager::new("emails", producer_opts(&redis)).await.unwrap();
    wait_counts(&m, 2, 1).await;
    let sent: Vec<Value> = api
        .requests()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let mut to: Vec<&str> = sent.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, ["test1@mail.org", "test2@mail.org"]);
    assert!(sent
        .iter()
        .any(|m| m["text"].as_str().unwrap().contains("Hi Ann")));
    let dead = m.dead_jobs(10).await.unwrap();
    assert!(
        dead[0]
            .error
            .as_deref()
            .unwrap()
            .contains("invalid email address"),
        "{dead:?}"
    );
    assert_eq!(
        m.result(&JobId::from("1")).await.unwrap(),
        Some(json!({"to": "test1@mail.org", "status": 200}))
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_2_with_one_clear_line_and_changes_nothing() {
    let redis = RedisServer::start();
    let url = redis.url();
    let m = Manager::new("guarded", producer_opts(&redis))
        .await
        .unwrap();
    m.push(json!({"do": "ok"})).await.unwrap();

    // Handlers that cannot run: nothing is taken from the queue.
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.wasm");
    std::fs::write(&text, "hello").unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let other = guest("other-world");
    for (file, mentions) in [
        (dir.path().join("missing.wasm"), "cannot read the handler"),
        (text, "not a WebAssembly file"),
        (core, "a core WebAssembly module, not a component"),
        (other, "not a sque handler"),
        // Read without end, were it read.
        ("/dev/zero".into(), "not a regular file"),
    ] {
        let f = file.to_str().unwrap();
        // At warn: a slow machine's "compiling…" progress line is not part of the answer.
        assert_refused(&cli(&["check", f, "--log", "warn"], b""), mentions);
        let out = cli(
            &[
                "--log",
                "warn",
                "run",
                "--queue",
                "guarded",
                "--redis",
                &url,
                "--handler",
                f,
                "--no-cache",
            ],
            b"",
        );
        assert_refused(&out, mentions);
    }
    let s = m.stats().await.unwrap();
    assert_eq!((s.waiting, s.dispatched), (1, 0), "no job was taken");

    // Bad pushes.
    let push = |stdin: &[u8], extra: &[&str]| {
        let mut args = vec!["push", "--queue", "guarded", "--redis", &url];
        args.extend_from_slice(extra);
        cli(&args, stdin)
    };
    assert_refused(&push(b"", &["{\"email\": "]), "not valid JSON");
    // What serde_json skips without reading but no worker can read: refused, not poison later.
    assert_refused(
        &push(b"", &["{\"n\": 1e999}"]),
        "not valid JSON: number out of range",
    );
    let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
    assert_refused(&push(b"", &[&deep]), "nested 128 levels deep or more");
    assert_refused(
        &push(format!("{}\n", "[".repeat(100_000)).as_bytes(), &[]),
        "line 1: nested 128 levels deep or more",
    );
    let out = push(b"{\"n\":1}\n{\"n\":2}\n{\"n\":\n{\"n\":4}\n", &[]);
    assert_refused(&out, "line 3: not valid JSON");
    assert!(stderr(&out).contains("2 job(s) before it were pushed"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "the ids pushed before it"
    );
    assert_refused(&push(b"\xff\xfe\x00junk\n", &[]), "line 1: not UTF-8");
    // Linear memory ends at 4 GiB: a limit above it would be a promise never kept.
    assert_refused(
        &cli(&["check", "x.wasm", "--max-memory", "5GiB"], b""),
        "outside 64KiB to 4GiB",
    );
    // An env file that is no file is named so, not taken for one others may read.
    let out = cli(
        &[
            "run",
            "--queue",
            "guarded",
            "--redis",
            &url,
            "--handler",
            "x.wasm",
            "--env-file",
            dir.path().to_str().unwrap(),
        ],
        b"",
    );
    assert_refused(&out, "is not a file (a directory, a device or a pipe)");
    // Where `compile` writes is checked before it compiles.
    let handler = guest("other-world");
    let handler = handler.to_str().unwrap();
    let into = dir.path().to_str().unwrap();
    assert_refused(
        &cli(&["compile", handler, "-o", into], b""),
        "a directory; name the .cwasm file to write",
    );
    let nowhere = dir.path().join("no/such/dir/h.cwasm");
    assert_refused(
        &cli(&["compile", handler, "-o", nowhere.to_str().unwrap()], b""),
        "there is no directory",
    );
    // A schedule that never ticks, or whose list has an empty item, makes no queue either.
    for (cron, mentions) in [
        ("0 3 31 2 *", "no time after this one"),
        ("1,,2 * * * *", "has an empty item in the list"),
    ] {
        let out = cli(
            &[
                "schedule",
                "add",
                "--queue",
                "never-made",
                "--redis",
                &url,
                "--name",
                "n",
                "--cron",
                cron,
                "--data",
                "{}",
            ],
            b"",
        );
        assert_refused(&out, mentions);
    }
    // A log filter that does not parse is refused, not replaced by a default.
    for filter in ["[[[", "sque=notalevel", "verbose"] {
        assert_refused(
            &push(b"", &["--log", filter, "{}"]),
            "is not a level (error, warn, info, debug, trace) nor a tracing filter",
        );
    }
    // Options a push refuses are refused before it connects: the queue they name is not made.
    for (options, mentions) in [
        (&["--delay", "999999999y"][..], "over the longest allowed"),
        (
            &["--at", "9999-12-31T23:59:59Z"],
            "between 1970 and the year 2170",
        ),
        (&["--unique-key", ""], "a unique key is 1 to 1024 bytes"),
        (
            &["--unique-key", "k", "--unique-for", "999999999y"],
            "unique_for is over the longest allowed",
        ),
    ] {
        let mut args = vec!["push", "--queue", "never-made", "--redis", &url];
        args.extend_from_slice(options);
        args.push("{}");
        assert_refused(&cli(&args, b""), mentions);
    }
    let made: Vec<String> = support::query(&redis, &["KEYS", "*never-made*"]);
    assert!(made.is_empty(), "refused pushes wrote {made:?}");
    let listed: Vec<String> = support::query(&redis, &["SMEMBERS", "sque:queues"]);
    assert!(!listed.iter().any(|q| q == "never-made"), "{listed:?}");
    // The size limit is the queue's: set with `queue config`, then every push holds to it.
    let out = cli(
        &[
            "queue",
            "config",
            "--queue",
            "guarded",
            "--redis",
            &url,
            "--max-job-bytes",
            "1KiB",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("max_job_bytes 1024"));
    let long = format!("{{\"x\":\"{}\"}}\n", "y".repeat(5000));
    assert_refused(
        &push(long.as_bytes(), &[]),
        "line 1: the job is over the limit of 1024 bytes",
    );
    assert_refused(
        &cli(
            &[
                "queue", "config", "--queue", "guarded", "--redis", &url, "--lease", "1ms",
            ],
            b"",
        ),
        "lease must be at least 100 ms",
    );
    // Reads of a queue that does not exist say so, and create nothing.
    for args in [
        vec!["queue", "config", "--queue", "nosuch", "--redis", &url],
        vec!["stats", "--queue", "nosuch", "--redis", &url],
        vec!["dead", "list", "--queue", "nosuch", "--redis", &url],
        vec![
            "dead", "purge", "--queue", "nosuch", "--redis", &url, "--all",
        ],
    ] {
        assert_refused(&cli(&args, b""), "queue \"nosuch\" does not exist");
    }
    let made: Vec<String> = sque_testing::query(&redis, &["KEYS", "sque:{nosuch}*"]);
    assert!(made.is_empty(), "nothing was created: {made:?}");
    assert_refused(
        &cli(&["push", "--queue", "bad name", "--redis", &url, "1"], b""),
        "invalid queue name",
    );
    assert_eq!(
        m.stats().await.unwrap().pushed,
        3,
        "only the two good lines were pushed"
    );

    // Redis that cannot be reached or refuses us.
    let mut gone = RedisServer::start();
    let gone_url = gone.url();
    gone.kill();
    for args in [
        vec!["push", "--queue", "q", "--redis", &gone_url, "1"],
        vec!["stats", "--queue", "q", "--redis", &gone_url],
        vec!["dead", "list", "--queue", "q", "--redis", &gone_url],
    ] {
        assert_refused(&cli(&args, b""), "cannot reach Redis");
    }
    // Neither a cluster seed nor a sentinel answers.
    let gone_cluster = format!("redis+cluster://127.0.0.1:{}", gone.port);
    let gone_sentinel = format!("redis+sentinel://127.0.0.1:{}/mymaster", gone.port);
    for url in [&gone_cluster, &gone_sentinel] {
        assert_refused(
            &cli(&["push", "--queue", "q", "--redis", url, "1"], b""),
            "cannot reach Redis",
        );
    }
    let noop = guest("noop");
    assert_refused(
        &cli(
            &[
                "run",
                "--queue",
                "q",
                "--redis",
                &gone_url,
                "--handler",
                noop.to_str().unwrap(),
                "--no-cache",
            ],
            b"",
        ),
        "cannot reach Redis",
    );
    let locked = RedisServer::start_with(&["--requirepass", "right"]);
    let wrong = locked.url_with_auth(":wrong");
    let out = cli(&["push", "--queue", "q", "--redis", &wrong, "1"], b"");
    assert_refused(&out, "credentials");
    assert!(
        !stderr(&out).contains("wrong@"),
        "the password is not echoed"
    );
    for url in [
        "http://nope",
        "redis+cluster://",
        "redis+sentinel://127.0.0.1:26379",
    ] {
        assert_refused(
            &cli(&["push", "--queue", "q", "--redis", url, "1"], b""),
            "bad Redis URL",
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_and_the_dead_list_from_the_command_line() {
    let redis = RedisServer::start();
    let url = redis.url();
    push_lines(
        &redis,
        "cli",
        &[json!({"do": "fail"}), json!({"do": "ok"})],
        &[],
    );
    push_lines(&redis, "other", &[json!(1)], &[]);
    let host = fixtures_host(&redis, "cli", &[]);
    let m = Manager::new("cli", producer_opts(&redis)).await.unwrap();
    wait_counts(&m, 1, 1).await;
    host.stop().await;

    let out = cli(
        &[
            "stats",
            "--queue",
            "cli",
            "--redis",
            &url,
            "--json",
            "--interval",
            "100ms",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "queue",
        "waiting",
        "in_flight",
        "delayed",
        "dead",
        "workers",
        "pushed",
        "completed",
        "retried",
        "dead_lettered",
        "completed_per_sec",
    ] {
        assert!(stats.get(field).is_some(), "{field} missing from {stats}");
    }
    assert_eq!(
        (
            stats["queue"].clone(),
            stats["dead"].clone(),
            stats["completed"].clone()
        ),
        (json!("cli"), json!(1), json!(1))
    );
    let out = cli(
        &["stats", "--redis", &url, "--json", "--interval", "0s"],
        b"",
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = all["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cli", "other"]);
    let out = cli(
        &[
            "stats",
            "--queue",
            "cli",
            "--redis",
            &url,
            "--interval",
            "0s",
        ],
        b"",
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("in flight") && table.contains("dead-lettered"),
        "{table}"
    );

    let out = cli(
        &["dead", "list", "--queue", "cli", "--redis", &url, "--json"],
        b"",
    );
    let dead: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dead["data"], json!({"do": "fail"}));
    assert_eq!(dead["error"], json!("handler failed: asked to fail"));
    let list = |extra: &[&str]| {
        let mut args = vec!["dead", "list", "--queue", "cli", "--redis", &url];
        args.extend_from_slice(extra);
        cli(&args, b"")
    };
    let id = dead["id"].as_str().unwrap().to_string();
    let out = list(&["--id", &id, "--json"]);
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found["id"], json!(id));
    // An id not in the list is said to be so (exit 1), not shown as an empty list.
    let out = list(&["--id", "999"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("job 999 is not in the dead list of \"cli\""),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    assert_refused(&list(&["--limit", "0"]), "--limit");
    let out = cli(
        &["dead", "retry", "--queue", "cli", "--redis", &url, "--all"],
        b"",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("1 job(s) back"),
        "{}",
        stderr(&out)
    );
    assert_eq!(m.stats().await.unwrap().waiting, 1);
    let out = cli(
        &["dead", "purge", "--queue", "cli", "--redis", &url, "--all"],
        b"",
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 dead job(s) purged"));
}

#[tokio::test(flavor = "multi_thread")]
async fn push_run_and_stats_over_tls() {
    let redis = RedisServer::start_tls();
    let ca = redis.tls_ca.clone().unwrap();
    let ca = ca.to_str().unwrap();
    let url = redis.url();
    let out = cli(
        &["push", "--queue", "tls", "--redis", &url, "--tls-ca", ca],
        b"{\"do\":\"ok\"}\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let host = fixtures_host(&redis, "tls", &["--tls-ca", ca]);
    let m = Manager::new("tls", producer_opts(&redis).tls_ca(ca))
        .await
        .unwrap();
    wait_counts(&m, 1, 0).await;
    let (code, _) = host.stop().await;
    assert_eq!(code, Some(0));
    let out = cli(
        &[
            "stats",
            "--queue",
            "tls",
            "--redis",
            &url,
            "--tls-ca",
            ca,
            "--json",
            "--interval",
            "0s",
        ],
        b"",
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["completed"], json!(1));
    // Without the CA: refused at start with one line, exit 2.
    let out = cli(
        &[
            "stats",
            "--queue",
            "tls",
            "--redis",
            &url,
            "--interval",
            "0s",
        ],
        b"",
    );
    assert_refused(&out, "Redis");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_goes_away_ends_the_command_quietly() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut child = spawn_cli(&["stats", "--queue", "q", "--redis", &url, "--interval", "0s"]);
    drop(child.stdout.take()); // `| head -0`
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_two_gib_line_on_push_stdin_is_refused_without_being_read_whole() {
    use std::io::Write;
    let redis = RedisServer::start();
    let url = redis.url();
    let mut child = spawn_cli(&["push", "--queue", "huge", "--redis", &url]);
    let mut stdin = child.stdin.take().unwrap();
    // One line of 2 GiB, streamed: the writer stops when push hangs up.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 16];
        let mut written: u64 = 0;
        stdin.write_all(b"\"").unwrap();
        while written < 2 << 30 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            written += chunk.len() as u64;
        }
        written
    });
    let out = child.wait_with_output().unwrap();
    let written = writer.join().unwrap();
    assert_refused(&out, "line 1: the job is over the limit of 1048576 bytes");
    assert!(
        written < 64 << 20,
        "push read {written} bytes of a line it had already refused"
    );
    let m = Manager::new("huge", producer_opts(&redis)).await.unwrap();
    assert_eq!(m.stats().await.unwrap().pushed, 0);
}

/// The Rust SDK's `progress` and `push`, imports of the world since 0.2.0: fifty reports in a
/// moment make two log lines (the first, and the last when the job ends); a push is refused, as
/// no queue is granted to handlers, and fails the job for good.
#[tokio::test(flavor = "multi_thread")]
async fn progress_is_recorded_within_its_rate_and_pushes_are_refused() {
    let ran = support::host::run_until(
        &guest("fixtures"),
        vec![json!({"do": "progress"}), json!({"do": "push"})],
        1,
        1,
    )
    .await;
    assert_eq!(
        ran.manager.result(&ran.ids[0]).await.unwrap(),
        Some(json!({"progressed": true}))
    );
    // The last report (50%), recorded as the job ended: the completion waited for it (the
    // first, 1%, was recorded at once and written before it).
    let out = cli(
        &[
            "job",
            "show",
            "--json",
            "--queue",
            ran.manager.queue(),
            "--redis",
            &ran.redis.url(),
            ran.ids[0].as_str(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    let progress = &shown["progress"];
    assert_eq!(progress["percent"], json!(50), "{shown}");
    assert_eq!(progress["note"], json!("step 50"), "{shown}");
    let (_, code, error) = &ran.dead[0];
    assert_eq!(code.as_deref(), Some("fail"), "{error}");
    assert!(
        error.contains("pushing to \"elsewhere\" was denied"),
        "{error}"
    );
    let (code, log) = ran.host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    for line in ["progress 1%: step 1", "progress 50%: step 50"] {
        assert!(log.contains(line), "{line} in {log}");
    }
    assert!(!log.contains("progress 2%"), "{log}");
    assert!(
        log.contains("denied the guest a follow-up job to elsewhere"),
        "{log}"
    );
}

/// `stats --watch --json` writes a line an interval, picks up queues made while it watches,
/// shows counts as they change, and ends with 0 on Ctrl-C; without an interval it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn stats_watch_redraws_every_interval_until_ctrl_c() {
    use std::io::BufRead as _;
    let redis = RedisServer::start();
    let url = redis.url();
    let first = Manager::new("watched", producer_opts(&redis))
        .await
        .unwrap();
    let mut watch = spawn_cli(&[
        "stats",
        "--watch",
        "--json",
        "--interval",
        "100ms",
        "--redis",
        &url,
    ]);
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Each line is one JSON object: the queues, by name.
    let next = |lines: &std::sync::mpsc::Receiver<String>| -> Value {
        let line = lines
            .recv_timeout(support::PATIENCE)
            .expect("a line within the patience");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let queue = |shown: &Value, name: &str| -> Option<Value> {
        shown["queues"]
            .as_array()?
            .iter()
            .find(|q| q["queue"] == name)
            .cloned()
    };
    let shown = next(&lines);
    assert_eq!(queue(&shown, "watched").unwrap()["waiting"], 0, "{shown}");

    first
        .push_many([json!(1), json!(2), json!(3)])
        .await
        .unwrap();
    let later = Manager::new("later", producer_opts(&redis)).await.unwrap();
    later.push(json!(4)).await.unwrap();
    let mut seen = 0;
    loop {
        let shown = next(&lines);
        seen += 1;
        let counts =
            |name: &str| queue(&shown, name).map(|q| (q["waiting"].clone(), q["pushed"].clone()));
        if counts("watched") == Some((json!(3), json!(3)))
            && counts("later") == Some((json!(1), json!(1)))
        {
            break;
        }
        assert!(seen < 1000, "never showed the pushes: {shown}");
    }

    let pid = watch.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = support::within("stats --watch to end on Ctrl-C", async {
        loop {
            if let Some(status) = watch.try_wait().unwrap() {
                break status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(status.code(), Some(0));

    let out = cli(
        &["stats", "--watch", "--interval", "0s", "--redis", &url],
        b"",
    );
    assert_refused(&out, "--interval");
}

/// `--log-format json`: every line the host logs is one JSON object with its level and
/// message, the fields beside them.
#[tokio::test(flavor = "multi_thread")]
async fn the_json_log_format_writes_one_object_a_line() {
    let redis = RedisServer::start();
    let host = fixtures_host(&redis, "json-log", &["--log-format", "json"]);
    let m = Manager::new("json-log", producer_opts(&redis))
        .await
        .unwrap();
    m.push(json!({"do": "fail"})).await.unwrap();
    wait_counts(&m, 0, 1).await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    let failed = lines
        .iter()
        .find(|l| l["fields"]["code"] == "fail")
        .unwrap_or_else(|| panic!("no line with the failure's code: {log}"));
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["fields"]["queue"], "json-log");
    assert!(
        failed["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("asked to fail"),
        "{failed}"
    );
}

/// `push --delay` and `--at`: the job waits aside (counted as scheduled) and the host's
/// manager runs it when due, on Redis's clock; a bad time or both flags exit 2 and push
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_pushed_with_a_delay_or_a_time_run_when_due() {
    let redis = RedisServer::start();
    let url = redis.url();
    let push = |extra: &[&str]| {
        let mut args = vec!["push", "--queue", "delayed", "--redis", &url];
        args.extend_from_slice(extra);
        args.push(r#"{"do":"ok"}"#);
        cli(&args, b"")
    };
    // Refused by the argument parser (its usage error, exit 2) before anything is read.
    for (args, says) in [
        (&["--at", "tomorrow"][..], "not a time in RFC 3339"),
        (
            &["--delay", "1s", "--at", "2030-01-01T00:00:00Z"],
            "cannot be used with",
        ),
        (&["--delay", "soon"], "--delay"),
    ] {
        let out = push(args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }

    let time: Vec<String> = sque_testing::query(&redis, &["TIME"]);
    let pushed_at = time[0].parse::<u64>().unwrap() * 1000 + time[1].parse::<u64>().unwrap() / 1000;
    let out = push(&["--delay", "2s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let delayed = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = push(&["--at", "2001-02-03T04:05:06+01:00"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let past = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let m = Manager::new("delayed", producer_opts(&redis))
        .await
        .unwrap();
    let s = m.stats().await.unwrap();
    assert_eq!(
        (s.pushed, s.scheduled),
        (2, 2),
        "nothing is pushed by a refused call"
    );

    let host = fixtures_host(&redis, "delayed", &[]);
    wait_counts(&m, 2, 0).await;
    let completed_at = |id: &str| -> u64 {
        let score: String =
            sque_testing::query(&redis, &["ZSCORE", "sque:{delayed}:results_at", id]);
        score.parse().unwrap()
    };
    assert!(
        completed_at(&delayed) >= pushed_at + 2000,
        "the delayed job ran {} ms after its push, before its delay of 2 s",
        completed_at(&delayed) - pushed_at
    );
    assert!(
        completed_at(&past) <= completed_at(&delayed),
        "a time past is due at once"
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// `job show` and `job wait` by id, and `queue pause|resume`: a paused queue hands nothing to
/// the host's slots (a push made while they ask leaves its job waiting), and `job wait`
/// answers with the result once the queue is resumed; a dead job exits 1, a wait that runs
/// out 3, an id never given 2.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_shown_and_waited_for_by_id_and_a_paused_queue_holds_them() {
    let redis = RedisServer::start();
    let url = redis.url();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--queue", "shown", "--redis", &url]);
        cli(&all, b"")
    };
    let id_of = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let ok = id_of(run(&["push", r#"{"do":"ok"}"#]));
    let dies = id_of(run(&["push", "--max-attempts", "1", r#"{"do":"fail"}"#]));
    let later = id_of(run(&["push", "--delay", "1h", r#"{"do":"ok"}"#]));

    let shown = |id: &str| -> Value {
        let out = run(&["job", "show", "--json", id]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let job = shown(&ok);
    assert_eq!(
        (&job["state"], &job["attempts"], &job["data"]),
        (&json!("waiting"), &json!(0), &json!({"do": "ok"}))
    );
    assert_eq!(shown(&later)["state"], json!("scheduled"));
    assert!(shown(&later)["at"].as_u64().is_some(), "when it is due");
    let out = run(&["job", "show", &later]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("state      scheduled"));
    assert_refused(&run(&["job", "show", "abc"]), "is not a job id");
    assert_refused(&run(&["job", "show", "999"]), "never gave the id 999");
    assert_refused(&run(&["job", "wait", "999"]), "never gave the id 999");
    // Ids are given from 1, without leading zeros: 0 is no job that was, 01 is not 1.
    for id in ["0", "01"] {
        for verb in ["show", "wait", "cancel"] {
            assert_refused(&run(&["job", verb, id]), &format!("never gave the id {id}"));
        }
    }
    // A priority: given by `push --priority`, said by `job show`; one out of range is refused.
    let ranked = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--queue", "ranked", "--redis", &url]);
        cli(&all, b"")
    };
    let high = id_of(ranked(&["push", "--priority", "high", r#"{"do":"ok"}"#]));
    let out = ranked(&["job", "show", &high]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("priority   9"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // `job show` names a priority other than the normal one; `--json` always has it.
    for (given, level) in [("low", 0), ("normal", 5), ("7", 7)] {
        let id = id_of(ranked(&["push", "--priority", given, "{}"]));
        let out = ranked(&["job", "show", &id]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.contains(&format!("priority   {level}")),
            level != 5,
            "--priority {given}: {text}"
        );
        let out = ranked(&["job", "show", "--json", &id]);
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            shown["priority"],
            json!(level),
            "--priority {given}: {shown}"
        );
    }
    assert_refused(
        &ranked(&["push", "--priority", "10", "{}"]),
        "is not a priority",
    );

    let out = run(&["queue", "pause"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("paused"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["stats", "--redis", &url], b"");
    assert!(String::from_utf8_lossy(&out.stdout).contains("shown (paused)"));
    let host = fixtures_host(&redis, "shown", &["--slots", "2"]);
    let m = Manager::new("shown", producer_opts(&redis)).await.unwrap();
    eventually("the host's slots asking", || async {
        m.stats().await.unwrap().requests > 0
    })
    .await;
    // A push serves the stored requests in its own call, unless the queue is paused.
    id_of(run(&["push", r#"{"do":"ok"}"#]));
    let s = m.stats().await.unwrap();
    assert_eq!(
        (s.waiting, s.dispatched),
        (3, 0),
        "nothing handed out while paused"
    );
    let out = run(&["job", "wait", "--wait-timeout", "100ms", &ok]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not end within 100ms (it is waiting)"),
        "{}",
        stderr(&out)
    );

    let out = run(&["queue", "resume"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("resumed"),
        "{}",
        stderr(&out)
    );
    let out = run(&["job", "wait", &ok]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result, json!({"ok": true, "attempt": 1}));
    assert_eq!(shown(&ok)["state"], json!("completed"));
    let out = run(&["job", "wait", &dies]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("asked to fail"), "{}", stderr(&out));
    let job = shown(&dies);
    assert_eq!(
        (&job["state"], &job["attempts"]),
        (&json!("dead"), &json!(1))
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// `schedule add|list|remove` and `push --unique-key|--unique-key-field`: bad input exits 2
/// and writes nothing; a host's manager pushes a schedule's tick; a key held answers its
/// holder's id.
#[tokio::test(flavor = "multi_thread")]
async fn schedules_and_unique_keys_from_the_command_line() {
    let redis = RedisServer::start();
    let url = redis.url();
    let run = |args: &[&str], stdin: &[u8]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--queue", "cron", "--redis", &url]);
        cli(&all, stdin)
    };
    let add = |extra: &[&str]| {
        let mut args = vec!["schedule", "add", "--name", "nightly"];
        args.extend_from_slice(extra);
        run(&args, b"")
    };
    assert_refused(&add(&["--cron", "0 3 * *", "--data", "{}"]), "has 4 fields");
    assert_refused(
        &add(&["--cron", "0 3 * * *", "--tz", "Mars/Base", "--data", "{}"]),
        "not a time zone",
    );
    assert_refused(
        &add(&["--cron", "0 3 * * *", "--data", "{nope"]),
        "--data is not valid JSON",
    );
    assert_refused(
        &add(&[
            "--cron",
            "0 3 * * *",
            "--data",
            "{}",
            "--priority",
            "urgent",
        ]),
        "is not a priority",
    );
    let out = add(&[
        "--cron",
        "0 3 * * *",
        "--tz",
        "Europe/Berlin",
        "--data",
        r#"{"do":"ok"}"#,
        "--priority",
        "high",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("first job at"));
    let out = run(&["schedule", "list", "--json"], b"");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["schedules"][0]["name"], json!("nightly"));
    assert_eq!(listed["schedules"][0]["tz"], json!("Europe/Berlin"));
    assert_eq!(listed["schedules"][0]["priority"], json!(9));
    let out = run(&["schedule", "list"], b"");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("priority 9"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let host = fixtures_host(&redis, "cron", &[]);
    let m = Manager::new("cron", producer_opts(&redis)).await.unwrap();
    // Its tick has come, as time passing would make it.
    let _: () = sque_testing::query(
        &redis,
        &["ZADD", "sque:{cron}:schedule_due", "1000", "nightly"],
    );
    wait_counts(&m, 1, 0).await;
    let out = run(&["schedule", "remove", "--name", "nightly"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_refused(
        &run(&["schedule", "remove", "--name", "nightly"], b""),
        "has no schedule \"nightly\"",
    );

    let ids = |out: std::process::Output| -> Vec<String> {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let job = r#"{"do":"sleep","arg":500}"#;
    let first = ids(run(&["push", "--unique-key", "k", job], b""));
    let second = ids(run(&["push", "--unique-key", "k", job], b""));
    assert_eq!(first, second, "a key held answers its holder's id");
    let lines =
        b"{\"id\":7,\"do\":\"ok\"}\n{\"id\":7,\"do\":\"ok\"}\n{\"id\":\"8\",\"do\":\"ok\"}\n";
    let got = ids(run(&["push", "--unique-key-field", "id"], lines));
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], got[1]);
    assert_ne!(got[0], got[2]);
    let out = run(
        &["push", "--unique-key-field", "id"],
        b"{\"id\":9}\n{\"do\":\"ok\"}\n",
    );
    assert_refused(&out, "line 2: no top-level field \"id\"");
    assert_refused(
        &run(&["push", "--unique-for", "1h", job], b""),
        "--unique-for needs --unique-key",
    );
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// `stats` shows a running job's progress; `job cancel` of that job, whose guest loops for
/// ever, makes its host stop the instance at its next lease renewal (the slot is free again:
/// the next job completes), records nothing more, and the job shows as cancelled; cancels of
/// what has ended say so.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_job_is_stopped_by_a_cancel() {
    let redis = RedisServer::start();
    let url = redis.url();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--queue", "stopped", "--redis", &url]);
        cli(&all, b"")
    };
    let id_of = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let m = Manager::new("stopped", producer_opts(&redis))
        .await
        .unwrap();
    let host = fixtures_host(&redis, "stopped", &["--slots", "1", "--timeout", "10m"]);
    let looping = id_of(run(&["push", r#"{"do":"report-and-loop"}"#]));
    let state = |id: &str| -> Value {
        let out = run(&["job", "show", "--json", id]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["state"].clone()
    };
    eventually("the looping job running", || async {
        state(&looping) == json!("in_flight")
    })
    .await;
    let stats = |json: bool| {
        let mut args = vec!["stats", "--interval", "0s"];
        if json {
            args.push("--json");
        }
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    eventually("its progress in stats", || async {
        let shown: Value = serde_json::from_str(&stats(true)).unwrap();
        shown["running"][0]["progress"]["percent"] == json!(40)
            && shown["running"][0]["id"] == json!(looping)
            && shown["running"][0]["holder"].is_string()
    })
    .await;
    let shown: Value = serde_json::from_str(&stats(true)).unwrap();
    // The count and the list, apart (one key each).
    assert_eq!(shown["workers"], json!(1), "{shown}");
    let holder = &shown["live_workers"][0];
    assert_eq!(holder["id"], shown["running"][0]["holder"], "{shown}");
    assert_eq!(holder["holds"], json!([looping]), "{shown}");
    assert!(
        holder["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{shown}"
    );
    let table = stats(false);
    assert!(table.contains("40% rendered"), "{table}");
    assert!(table.contains("Workers"), "{table}");

    let out = run(&["job", "cancel", &looping]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("it was running"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    host.wait_for_log("cancelled while it ran").await;
    // The one slot is free again.
    let ok = id_of(run(&["push", r#"{"do":"ok"}"#]));
    let out = run(&["job", "wait", "--wait-timeout", "60s", &ok]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(state(&looping), json!("cancelled"));
    let out = run(&["job", "wait", &looping]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("was cancelled"), "{}", stderr(&out));

    let out = run(&["job", "cancel", &looping]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("was cancelled already"));
    let out = run(&["job", "cancel", &ok]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has ended (completed)"),
        "{}",
        stderr(&out)
    );
    assert_refused(&run(&["job", "cancel", "999"]), "never gave the id 999");
    assert_refused(&run(&["job", "cancel", "x1"]), "is not a job id");

    let s = m.stats().await.unwrap();
    assert_eq!((s.completed, s.dead, s.delayed), (1, 0, 0));
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("1 completed, 0 failed, 1 cancelled while running"),
        "{log}"
    );
}

/// Follow-up jobs, an import of the world since 0.2.0: pushed to a granted queue, they land
/// once per completed parent, from the attempt that completed; a parent that fails after
/// pushing, one denied its queue and one past --max-pushes-per-job push nothing; `job show`
/// lists the children.
#[tokio::test(flavor = "multi_thread")]
async fn granted_follow_ups_land_once_per_completed_parent() {
    let redis = RedisServer::start();
    let url = redis.url();
    let parents = Manager::new("parents", producer_opts(&redis))
        .await
        .unwrap();
    let kids = Manager::new("kids", producer_opts(&redis)).await.unwrap();
    let host = fixtures_host(
        &redis,
        "parents",
        &["--allow-push", "kids", "--max-pushes-per-job", "5"],
    );
    let order = |to: &str, n: u64, then: &str| json!({"do": "push-many", "arg": {"to": to, "n": n, "then": then}});
    let mut ids = Vec::new();
    for o in [
        order("kids", 3, "ok"),
        order("kids", 2, "fail"),
        order("kids", 3, "retry"),
        order("elsewhere", 1, "ok"),
        order("kids", 6, "ok"),
    ] {
        ids.push(parents.push(o).await.unwrap());
    }
    wait_counts(&parents, 2, 3).await;
    eventually("the follow-ups of the two completed parents", || async {
        kids.stats().await.unwrap().pushed == 6
    })
    .await;

    let shown = |id: &sque::JobId| -> Value {
        let out = cli(
            &[
                "job",
                "show",
                "--json",
                "--queue",
                "parents",
                "--redis",
                &url,
                id.as_str(),
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let inspector = sque::Inspector::new("kids", producer_opts(&redis))
        .await
        .unwrap();
    for (parent, attempt) in [(&ids[0], 1), (&ids[2], 2)] {
        eventually("the parent's children reported", || async {
            shown(parent)["children"]
                .as_array()
                .is_some_and(|c| c.len() == 3)
        })
        .await;
        let job = shown(parent);
        let children = job["children"].as_array().unwrap();
        assert_eq!(children.len(), 3, "{job}");
        for (i, child) in children.iter().enumerate() {
            assert_eq!(child["queue"], json!("kids"));
            let id = sque::JobId::from(child["id"].as_str().unwrap());
            let data = inspector.job(&id).await.unwrap().unwrap().data;
            assert_eq!(data, Some(json!({"i": i, "attempt": attempt})), "{job}");
        }
    }
    for failed in [&ids[1], &ids[3], &ids[4]] {
        assert_eq!(shown(failed)["children"], json!([]));
    }
    let dead = support::dead_jobs(
        &sque::Inspector::new("parents", producer_opts(&redis))
            .await
            .unwrap(),
    )
    .await;
    let errors: Vec<&str> = dead.iter().map(|(_, _, e)| e.as_str()).collect();
    assert!(
        errors.iter().any(|e| e.contains("failed after pushing")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("pushing to \"elsewhere\" was denied")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("as many jobs as it may")),
        "{errors:?}"
    );
    let out = cli(
        &[
            "job",
            "show",
            "--queue",
            "parents",
            "--redis",
            &url,
            ids[0].as_str(),
        ],
        b"",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("follow-ups kids "));
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("follow-up jobs to kids"), "{log}");
    assert_refused(
        &cli(
            &[
                "run",
                "--queue",
                "q",
                "--handler",
                "x.wasm",
                "--allow-push",
                "a b",
            ],
            b"",
        ),
        "--allow-push",
    );
}

/// The batch-splitting example (`examples/split-batch`): a batch of three becomes three jobs
/// of the emails queue, in order, once the batch completes.
#[tokio::test(flavor = "multi_thread")]
async fn the_split_batch_example_pushes_each_item_once() {
    let redis = RedisServer::start();
    let batches = Manager::new("batches", producer_opts(&redis))
        .await
        .unwrap();
    let emails = Manager::new("emails", producer_opts(&redis)).await.unwrap();
    let splitter = guest("split_batch");
    let host = Host::start(
        &redis,
        "batches",
        &[
            "--handler",
            splitter.to_str().unwrap(),
            "--allow-push",
            "emails",
        ],
    );
    let items = [
        json!({"email": "a@example.org"}),
        json!({"email": "b@example.org"}),
        json!({"email": "c@example.org"}),
    ];
    let batch = batches
        .push(json!({"queue": "emails", "items": items}))
        .await
        .unwrap();
    eventually("the batch split into three emails", || async {
        emails.stats().await.unwrap().pushed == 3
    })
    .await;
    assert_eq!(
        batches.result(&batch).await.unwrap(),
        Some(json!({"split": 3, "to": "emails"}))
    );
    let client = sque::Client::new("emails", producer_opts(&redis))
        .await
        .unwrap();
    for item in &items {
        let job = support::within("the next email", client.i_am_free(None))
            .await
            .unwrap();
        assert_eq!(&job.data, item);
        client.complete(&job, None).await.unwrap();
    }
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

/// A cap on the jobs in flight (`queue config --max-in-flight`) holds across hosts: three
/// hosts of 8 slots on a queue capped at 5 never hold more than 5 leases between them (read
/// from Redis while they run), reach the cap, and complete every job; none fails for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cap_on_jobs_in_flight_holds_across_three_hosts() {
    let redis = RedisServer::start();
    let manager = Manager::new("capped", producer_opts(&redis)).await.unwrap();
    let out = cli(
        &[
            "queue",
            "config",
            "--redis",
            &redis.url(),
            "--queue",
            "capped",
            "--max-in-flight",
            "5",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let hosts: Vec<Host> = (0..3)
        .map(|_| fixtures_host(&redis, "capped", &["--slots", "8"]))
        .collect();
    // All three in play: a host still compiling would leave the cap to the others.
    for host in &hosts {
        host.wait_for_log("started: queue capped").await;
    }
    let jobs = 60;
    manager
        .push_many((0..jobs).map(|_| json!({"do": "sleep", "arg": 30})))
        .await
        .unwrap();
    // Sampled as fast as Redis answers, on one connection, until the last job completes.
    let mut con = redis.con();
    let most = support::within("every job completed", async {
        let mut most = 0u64;
        loop {
            let leased: u64 = redis::cmd("ZCARD")
                .arg("sque:{capped}:leases")
                .query(&mut *con)
                .unwrap();
            let completed: Option<u64> = redis::cmd("HGET")
                .arg("sque:{capped}:stats")
                .arg("completed")
                .query(&mut *con)
                .unwrap();
            most = most.max(leased);
            if completed == Some(jobs) {
                break most;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(most, 5, "the most leases held at once");
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.completed, stats.dead, stats.retried), (jobs, 0, 0));
    for host in hosts {
        let (code, log) = host.stop().await;
        assert_eq!(code, Some(0), "{log}");
    }
}

/// A rate limit (`queue config --rate 200/s --rate-burst 5`) holds across hosts: three hosts of
/// 8 slots, each with its manager, hand out 200 jobs a second between them over 10 s (within
/// 5%, read from Redis's counters on Redis's clock), and none fails for it. The burst of 5
/// needs the managers to serve each job as the limit lets it go (the script says when), not
/// on their 250 ms sweep (which would give 20 a second).
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_holds_across_three_hosts() {
    let redis = RedisServer::start();
    let manager = Manager::new("limited", producer_opts(&redis))
        .await
        .unwrap();
    let config = |rate: &str| {
        let url = redis.url();
        let args = [
            "queue", "config", "--redis", &url, "--queue", "limited", "--rate", rate,
        ];
        let out = cli(&[&args[..], &["--rate-burst", "5"]].concat(), b"");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    config("200/s");
    let jobs = 3000;
    manager
        .push_many((0..jobs).map(|_| json!({"do": "ok"})))
        .await
        .unwrap();
    let hosts: Vec<Host> = (0..3)
        .map(|_| fixtures_host(&redis, "limited", &["--slots", "8"]))
        .collect();
    // All three in play: a host still compiling would leave the limit to the others.
    for host in &hosts {
        host.wait_for_log("started: queue limited").await;
    }
    let mut con = redis.con();
    let mut read = || -> (u64, u64) {
        let time: Vec<u64> = redis::cmd("TIME").query(&mut *con).unwrap();
        let dispatched: Option<u64> = redis::cmd("HGET")
            .arg("sque:{limited}:stats")
            .arg("dispatched")
            .query(&mut *con)
            .unwrap();
        (time[0] * 1000 + time[1] / 1000, dispatched.unwrap_or(0))
    };
    // Past the hosts' start (each compiles the handler), then 10 s on Redis's clock.
    let (t0, d0) = support::within("200 jobs handed out", async {
        loop {
            let (t, d) = read();
            if d >= 200 {
                break (t, d);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let (t1, d1) = support::within("10 s", async {
        loop {
            let (t, d) = read();
            if t >= t0 + 10_000 {
                break (t, d);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let rate = (d1 - d0) as f64 / ((t1 - t0) as f64 / 1000.0);
    assert!((190.0..=210.0).contains(&rate), "{rate:.1} jobs/s");
    assert_eq!(
        manager.stats().await.unwrap().workers,
        3,
        "three hosts in play"
    );
    // Lifted, the rest go at once.
    config("none");
    wait_counts(&manager, jobs, 0).await;
    assert_eq!(manager.stats().await.unwrap().retried, 0);
    for host in hosts {
        let (code, log) = host.stop().await;
        assert_eq!(code, Some(0), "{log}");
    }
}
