//! `sque-host run --metrics-addr`: a real host scraped over HTTP while it runs real jobs, its
//! text read by a Prometheus parser, and every figure checked against what the test did.

mod support;

use std::collections::HashMap;

use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::json;
use sque::Manager;
use support::guests::guest;
use support::host::Host;
use support::{eventually, producer, within, RedisServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A GET over plain HTTP/1.0: the status line and the body.
async fn get(addr: &str, path: &str) -> (String, String) {
    within("an HTTP answer", async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), body.to_string())
    })
    .await
}

/// The scrape's samples by name and labels (`name{a="1",b="2"}`, labels sorted).
async fn scrape(addr: &str) -> HashMap<String, f64> {
    let (status, body) = get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = Scrape::parse(lines).expect("the Prometheus text format");
    parsed
        .samples
        .into_iter()
        .flat_map(
            |Sample {
                 metric,
                 labels,
                 value,
                 ..
             }| {
                let mut labels: Vec<_> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                labels.sort();
                let name = format!("{metric}{{{}}}", labels.join(","));
                match value {
                    Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => vec![(name, v)],
                    Metric::Histogram(buckets) => {
                        vec![(name, buckets.last().map_or(0.0, |b| b.count))]
                    }
                    Metric::Summary(_) => vec![],
                }
            },
        )
        .collect()
}

/// The address the host serves `/metrics` on, once its log says it.
async fn metrics_addr(host: &Host) -> String {
    host.wait_for_log("metrics at http://").await;
    let log = host.log();
    log.split("metrics at http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap()
        .to_string()
}

fn figure(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no {name} among {:#?}", samples.keys()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_counts_what_the_host_did_and_reads_the_queue_once_an_interval() {
    let redis = RedisServer::start();
    let manager = Manager::new("metered", producer(&redis).max_attempts(2))
        .await
        .unwrap();
    let host = Host::start(
        &redis,
        "metered",
        &[
            "--handler",
            guest("fixtures").to_str().unwrap(),
            "--slots",
            "2",
            "--metrics-addr",
            "127.0.0.1:0",
            // Long enough that the second scrape below cannot read the queue again.
            "--metrics-interval",
            "1h",
        ],
    );
    let addr = metrics_addr(&host).await;

    // 5 complete; 2 fail for good (dead at once); 2 trap twice (retried once, then dead).
    let mut jobs = vec![json!({"do": "ok"}); 5];
    jobs.extend([json!({"do": "fail"}), json!({"do": "fail"})]);
    jobs.extend([json!({"do": "trap"}), json!({"do": "trap"})]);
    manager.push_many(jobs).await.unwrap();
    eventually("5 completed and 4 dead", || async {
        let s = manager.stats().await.unwrap();
        s.completed == 5 && s.dead == 4
    })
    .await;
    // The counters move once each outcome is recorded, just after Redis has it.
    let q = r#"queue="metered""#;
    let samples = within("the counters to reach what was recorded", async {
        loop {
            let samples = scrape(&addr).await;
            if samples.get(&format!("sque_jobs_dead_lettered_total{{{q}}}")) == Some(&4.0)
                && samples.get(&format!("sque_jobs_held{{{q}}}")) == Some(&0.0)
            {
                break samples;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let s = |name: &str| figure(&samples, &format!("{name}{{{q}}}"));
    let failed = |reason: &str| {
        figure(
            &samples,
            &format!(r#"sque_jobs_failed_total{{{q},reason="{reason}"}}"#),
        )
    };
    assert_eq!(s("sque_jobs_started_total"), 11.0);
    assert_eq!(s("sque_jobs_completed_total"), 5.0);
    assert_eq!(failed("fail"), 2.0);
    assert_eq!(failed("trap"), 4.0);
    assert_eq!(failed("timeout"), 0.0);
    assert_eq!(s("sque_jobs_retried_total"), 2.0);
    assert_eq!(s("sque_jobs_dead_lettered_total"), 4.0);
    assert_eq!(s("sque_jobs_released_total"), 0.0);
    assert_eq!(s("sque_acks_refused_stale_total"), 0.0);
    assert_eq!(s("sque_jobs_cancelled_total"), 0.0);
    assert_eq!(
        s("sque_job_wait_seconds"),
        9.0,
        "observations: the first attempts (a retry's wait is not a push's)"
    );
    assert_eq!(s("sque_job_run_seconds"), 11.0, "observations");
    assert_eq!(s("sque_ack_seconds"), 11.0, "observations");
    assert_eq!(s("sque_instance_creation_seconds"), 11.0, "observations");
    assert_eq!(s("sque_slots"), 2.0);
    assert_eq!(s("sque_slots_busy"), 0.0);
    assert_eq!(s("sque_queue_waiting"), 0.0);
    assert_eq!(s("sque_queue_dead"), 4.0);
    assert_eq!(s("sque_queue_workers"), 1.0);
    assert_eq!(
        s("sque_queue_oldest_waiting_age_seconds"),
        0.0,
        "none waits"
    );
    assert_eq!(s("sque_queue_read_errors_total"), 0.0);

    // Within the interval the queue is not read again: an emptied dead list still shows 4.
    assert_eq!(manager.purge_dead(None).await.unwrap(), 4);
    let again = scrape(&addr).await;
    assert_eq!(figure(&again, &format!("sque_queue_dead{{{q}}}")), 4.0);

    let (status, _) = get(&addr, "/nothing").await;
    assert!(status.contains("404"), "{status}");
    let (code, _) = host.stop().await;
    assert_eq!(code, Some(0));
}

/// A metrics address that is taken is refused before the host joins the queue: one line,
/// a failure exit, and no worker left behind in Redis.
#[tokio::test(flavor = "multi_thread")]
async fn a_taken_metrics_address_is_refused_before_the_host_joins_the_queue() {
    let redis = RedisServer::start();
    let manager = Manager::new("taken", producer(&redis)).await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let fixtures = guest("fixtures");
    let url = redis.url();
    let out = support::host::cli(
        &[
            "run",
            "--queue",
            "taken",
            "--redis",
            &url,
            "--handler",
            fixtures.to_str().unwrap(),
            "--metrics-addr",
            &addr,
        ],
        b"",
    );
    let err = support::host::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("--metrics-addr"), "{err}");
    assert_eq!(manager.stats().await.unwrap().workers, 0);
}

/// A queue added by a reload that fails to join (here, its worker cannot be made: Redis's ACL
/// refuses `HINCRBY`) leaves nothing in `/metrics`: the reload changes nothing, as it says.
/// Its series were registered before the join, and stayed.
#[tokio::test(flavor = "multi_thread")]
async fn a_queue_whose_join_fails_in_a_reload_leaves_no_series() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sque.toml");
    let noop = guest("noop");
    let table = |name: &str| {
        format!(
            "[[queue]]\nname = \"{name}\"\nhandler = \"{}\"\n",
            noop.display()
        )
    };
    std::fs::write(&file, table("kept")).unwrap();
    let host = Host::serve(
        &redis.url(),
        &[
            "--config",
            file.to_str().unwrap(),
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    );
    let addr = metrics_addr(&host).await;
    std::fs::write(&file, format!("{}{}", table("kept"), table("refused"))).unwrap();
    redis.on_every_node(&["ACL", "SETUSER", "default", "-hincrby"]);
    host.signal("-HUP");
    host.wait_for_log("reload failed").await;
    redis.on_every_node(&["ACL", "SETUSER", "default", "+hincrby"]);
    let samples = scrape(&addr).await;
    assert!(
        samples.keys().any(|k| k.contains(r#"queue="kept""#)),
        "{samples:#?}"
    );
    let left: Vec<&String> = samples
        .keys()
        .filter(|k| k.contains(r#"queue="refused""#))
        .collect();
    assert!(left.is_empty(), "{left:#?}");
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
}
