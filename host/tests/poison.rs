//! Nothing a producer writes stalls a queue. Data nobody here wrote, pushed through the
//! documented `push` script from "another language" (a raw `EVALSHA`) or written straight into
//! the queue's keys the way a buggy producer might, among a thousand good jobs, with hosts
//! running several slots: every good job completes, every poison job is dead at once with a
//! reason that says what is wrong, nothing stays in flight, and `stats` and `dead list` agree.

mod support;

use std::time::Instant;

use serde_json::json;
use sque::{Inspector, Manager};
use support::guests::guest;
use support::host::{cli, stderr, Host};
use support::{eventually, RedisServer};

const QUEUE: &str = "poison";

fn key(name: &str) -> String {
    format!("sque:{{{QUEUE}}}:{name}")
}

/// The text of a protocol script, as another implementation loads it.
fn script(name: &str) -> redis::Script {
    let (_, text) = sque::script_bundle()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("the script is in the bundle");
    redis::Script::new(&text)
}

/// Calls the push script as another language's producer would, with one job.
fn raw_push(redis: &RedisServer, data: &[u8]) -> redis::RedisResult<u64> {
    let mut con = redis.con();
    let push = script("push");
    let mut inv = push.prepare_invoke();
    for k in [
        "meta", "waiting", "jobs", "stats", "requests", "leases", "workers",
    ] {
        inv.key(key(k));
    }
    inv.arg("1.0").arg(data).arg("");
    inv.invoke(&mut *con)
}

/// Calls the push_unique script as another language's producer would, with one job of key
/// `unique_key` (no attempt limit, due now, no window).
fn raw_push_unique(
    redis: &RedisServer,
    data: &[u8],
    unique_key: &str,
) -> redis::RedisResult<Vec<u64>> {
    let mut con = redis.con();
    let push = script("push_unique");
    let mut inv = push.prepare_invoke();
    for k in [
        "meta",
        "waiting",
        "jobs",
        "stats",
        "requests",
        "leases",
        "workers",
        "scheduled",
    ] {
        inv.key(key(k));
    }
    inv.arg("1.0")
        .arg(data)
        .arg("")
        .arg("")
        .arg(unique_key)
        .arg("0");
    inv.invoke(&mut *con)
}

/// Writes a job straight into the keys, past the script: data under a fresh id, then the item.
fn write_past_the_script(redis: &RedisServer, data: Option<&[u8]>, item: Option<String>) -> String {
    let mut con = redis.con();
    let id: u64 = redis::cmd("HINCRBY")
        .arg(key("meta"))
        .arg("seq")
        .arg(1)
        .query(&mut *con)
        .unwrap();
    if let Some(data) = data {
        let _: () = redis::cmd("HSET")
            .arg(key("jobs"))
            .arg(id)
            .arg(data)
            .query(&mut *con)
            .unwrap();
    }
    let item = item.unwrap_or_else(|| format!("{id}|0"));
    let _: () = redis::cmd("RPUSH")
        .arg(key("waiting"))
        .arg(&item)
        .query(&mut *con)
        .unwrap();
    item
}

fn deep(levels: usize) -> Vec<u8> {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels)).into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_goes_to_the_dead_list_at_once_and_every_good_job_completes() {
    let redis = RedisServer::start();
    let manager = Manager::new(QUEUE, support::producer(&redis))
        .await
        .unwrap();
    let good = |from: i64| (from..from + 500).map(|n| json!({"do": "ok", "n": n}));

    // Through the script, as another language's producer would: data over the queue's size
    // limit is refused with an error reply that says so, and nothing is written.
    let too_big = format!("\"{}\"", "x".repeat(2 << 20));
    let err = raw_push(&redis, too_big.as_bytes()).expect_err("refused");
    assert!(
        err.to_string()
            .contains("job 1 is 2097154 bytes, over the queue's limit of 1048576 bytes"),
        "{err}"
    );
    assert_eq!(manager.stats().await.unwrap().pushed, 0, "nothing went in");
    // Empty data is no JSON, and in `jobs` the empty string marks a cancelled job: refused by
    // either push script, so that it cannot be dropped at delivery as cancelled, unrecorded
    // (and, with a unique key, holding its key for good).
    for err in [
        raw_push(&redis, b"").expect_err("refused"),
        raw_push_unique(&redis, b"", "empty").expect_err("refused"),
    ] {
        assert!(
            err.to_string().contains("job 1: its data is empty"),
            "{err}"
        );
    }
    assert_eq!(manager.stats().await.unwrap().pushed, 0, "nothing went in");
    let held: Vec<String> = support::query(&redis, &["HKEYS", &key("unique")]);
    assert!(held.is_empty(), "no key held: {held:?}");
    // 127 levels are fine, here as a job the fixture handler can read.
    let deepest = format!(
        "{{\"do\":\"ok\",\"arg\":{}}}",
        String::from_utf8(deep(126)).unwrap()
    );
    raw_push(&redis, deepest.as_bytes()).unwrap();

    manager.push_many(good(0)).await.unwrap();
    // Data the script takes but no worker can read (whether it is JSON is the producer's to
    // check, and the worker's): poison, found at delivery.
    let mut forms: Vec<(String, &str)> = Vec::new();
    for (data, says) in [
        (&b"{\"email\": "[..], "data is not valid JSON"),
        (b"NaN", "data is not valid JSON"),
        (&deep(128), "nested 128 levels deep or more"),
        (b"\"\xff\xfe\"", "data is not valid JSON"),
    ] {
        let id = raw_push(&redis, data).expect("the script takes it");
        forms.push((format!("{id}|0"), says));
    }
    // Past the script: each form a buggy producer could write.
    let two_mib = format!("\"{}\"", "y".repeat(2 << 20));
    forms.extend([
        (
            write_past_the_script(&redis, Some(b"{\"email\": "), None),
            "data is not valid JSON",
        ),
        (
            write_past_the_script(&redis, Some(&deep(100_000)), None),
            "nested 128 levels deep or more",
        ),
        (
            write_past_the_script(&redis, Some(b"\"\xff\xfe\""), None),
            "data is not valid JSON",
        ),
        (
            write_past_the_script(&redis, Some(two_mib.as_bytes()), None),
            "data is 2097154 bytes, over the queue's limit of 1048576",
        ),
        (
            write_past_the_script(&redis, None, None),
            "data is missing from jobs",
        ),
        (
            write_past_the_script(&redis, Some(b"1"), Some("abc|x".into())),
            "is not ID|ATTEMPTS[|MAX]",
        ),
        (
            write_past_the_script(&redis, Some(b"1"), Some("7|4294967295".into())),
            "is not ID|ATTEMPTS[|MAX]",
        ),
        (
            write_past_the_script(&redis, Some(b"1"), Some("x\"y|0".into())),
            "is not ID|ATTEMPTS[|MAX]",
        ),
    ]);
    manager.push_many(good(500)).await.unwrap();

    let started = Instant::now();
    let host = Host::start(
        &redis,
        QUEUE,
        &[
            "--handler",
            guest("fixtures").to_str().unwrap(),
            "--slots",
            "4",
        ],
    );
    eventually(
        "every good job completed and every poison job dead",
        || async {
            let s = manager.stats().await.unwrap();
            s.completed == 1001 && s.dead == forms.len() as u64
        },
    )
    .await;
    let took = started.elapsed();
    let s = manager.stats().await.unwrap();
    assert_eq!(
        (s.waiting, s.in_flight, s.delayed, s.poisoned),
        (0, 0, 0, forms.len() as u64),
        "{s:?}"
    );
    eprintln!(
        "{} poison jobs among 1,001 good ones: all good completed, all poison dead, in {took:.2?} \
         (host start included)",
        forms.len()
    );

    // The dead list shows each with its reason, beside the others; `dead list` works whole.
    let inspector = Inspector::new(QUEUE, sque::Options::default().redis(redis.url()))
        .await
        .unwrap();
    let dead = inspector.dead_jobs(100).await.unwrap();
    assert_eq!(dead.len(), forms.len());
    for (item, says) in &forms {
        let id = item.split('|').next().unwrap();
        let entry = dead
            .iter()
            .find(|d| d.id.as_str() == id || d.id.as_str() == item)
            .unwrap_or_else(|| panic!("{item} is not in the dead list: {dead:?}"));
        assert_eq!(entry.code.as_deref(), Some("poison"), "{entry:?}");
        let error = entry.error.as_deref().unwrap_or_default();
        assert!(
            error.contains(says),
            "{item}: {error:?} does not say {says:?}"
        );
    }
    let big = dead
        .iter()
        .find(|d| d.cut)
        .expect("the 2 MiB job is kept cut");
    assert!(big.data.to_string().len() <= 4100, "kept at most 4 KiB");
    let url = redis.url();
    let out = cli(
        &["dead", "list", "--queue", QUEUE, "--redis", &url, "--json"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        forms.len()
    );

    // Poison stays dead: retrying it is refused with a clear line; retry --all leaves it.
    let poison_id = forms[0].0.split('|').next().unwrap().to_string();
    let out = cli(
        &[
            "dead", "retry", "--queue", QUEUE, "--redis", &url, "--id", &poison_id,
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("it is poison"), "{}", stderr(&out));
    let out = cli(
        &["dead", "retry", "--queue", QUEUE, "--redis", &url, "--all"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("0 job(s) back") && said.contains("stay dead"),
        "{said}"
    );
    assert_eq!(manager.stats().await.unwrap().dead, forms.len() as u64);

    // The host took no harm: it serves the next job, and stops cleanly, giving nothing up.
    manager.push(json!({"do": "ok"})).await.unwrap();
    eventually("the next job", || async {
        manager.stats().await.unwrap().completed == 1002
    })
    .await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("unreadable"), "{log}");
    let s = manager.stats().await.unwrap();
    assert_eq!((s.in_flight, s.expired), (0, 0), "no lease ran out: {s:?}");
}

/// A dead list over its cap keeps the newest, counting what it dropped; every `dead`
/// operation is a chunk at a time.
#[tokio::test(flavor = "multi_thread")]
async fn the_dead_list_is_bounded_and_purging_it_all_takes_chunks() {
    let redis = RedisServer::start();
    let opts = sque::Options::default()
        .redis(redis.url())
        .dispatch(false)
        .dead_max(50);
    let manager = Manager::new(QUEUE, opts).await.unwrap();
    // 120 jobs whose data is missing: each is poison when served, and dies.
    for _ in 0..120 {
        write_past_the_script(&redis, None, None);
    }
    manager.push(json!({"do": "ok"})).await.unwrap();
    let host = Host::start(
        &redis,
        QUEUE,
        &["--handler", guest("fixtures").to_str().unwrap()],
    );
    eventually("the good job", || async {
        manager.stats().await.unwrap().completed == 1
    })
    .await;
    host.stop().await;
    let s = manager.stats().await.unwrap();
    assert_eq!((s.dead, s.dead_dropped, s.poisoned), (50, 70, 120), "{s:?}");
    let errors: u64 = sque_testing::query(&redis, &["HLEN", &key("errors")]);
    assert_eq!(errors, 50, "dropped entries took their errors with them");

    let url = redis.url();
    let out = cli(&["dead", "purge", "--queue", QUEUE, "--redis", &url], b"");
    assert_eq!(
        out.status.code(),
        Some(2),
        "neither --id nor --all: refused"
    );
    assert!(
        stderr(&out).contains("--id ID (repeatable) or --all"),
        "{}",
        stderr(&out)
    );
    assert_eq!(manager.stats().await.unwrap().dead, 50, "nothing purged");
    let out = cli(
        &["dead", "purge", "--queue", QUEUE, "--redis", &url, "--all"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("50 dead job(s) purged"));
    let s = manager.stats().await.unwrap();
    assert_eq!(s.dead, 0, "{s:?}");
    let left: u64 = sque_testing::query(&redis, &["HLEN", &key("errors")]);
    assert_eq!(left, 0);
}
