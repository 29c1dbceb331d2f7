//! A job's life beyond push and run, against a real redis-server (or the Cluster): delayed
//! and scheduled jobs (`JobOptions::delay` and `at`: kept aside until due on Redis's clock,
//! then at the tail of the queue, each promoted exactly once however many managers run),
//! pausing a queue, and the features a queue requires.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::json;
use sque::{Admin, Client, Error, JobOptions, Manager};
use support::{eventually, opts, query, within, RedisServer};

/// Redis's clock, in ms since the epoch.
fn redis_now_ms(redis: &RedisServer) -> u64 {
    let time: Vec<String> = query(redis, &["TIME"]);
    time[0].parse::<u64>().unwrap() * 1000 + time[1].parse::<u64>().unwrap() / 1000
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_job_waits_aside_until_due_then_joins_the_tail() {
    let redis = RedisServer::start();
    let manager = Manager::new("later", opts(&redis)).await.unwrap();
    let client = Client::new("later", opts(&redis)).await.unwrap();
    let pushed_at = redis_now_ms(&redis);
    let delay = Duration::from_secs(2);
    let later = manager
        .push_with(
            json!("later"),
            JobOptions {
                delay: Some(delay),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let now = manager.push(json!("now")).await.unwrap();
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.scheduled, stats.pushed), (1, 2));
    let requires: Option<String> = query(&redis, &["HGET", "sque:{later}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("delay"));

    let first = within(
        "the job pushed second, ready at once",
        client.i_am_free(None),
    )
    .await
    .unwrap();
    assert_eq!((&first.id, &first.data), (&now, &json!("now")));
    client.complete(&first, None).await.unwrap();
    let second = within("the delayed job", client.i_am_free(None))
        .await
        .unwrap();
    let given_at = redis_now_ms(&redis);
    assert_eq!((&second.id, &second.data), (&later, &json!("later")));
    assert!(
        given_at >= pushed_at + delay.as_millis() as u64,
        "handed out {} ms after the push, before its delay of {delay:?}",
        given_at - pushed_at
    );
    client.complete(&second, None).await.unwrap();
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.scheduled, stats.waiting, stats.completed), (0, 0, 2));
}

/// Jobs due at the same time leave in the order they were pushed, ids 9 and 10 included
/// (Redis sorts equal scores by member text, and "10" sorts before "9").
#[tokio::test(flavor = "multi_thread")]
async fn jobs_due_together_leave_in_the_order_they_were_pushed() {
    let redis = RedisServer::start();
    let manager = Manager::new("together", opts(&redis)).await.unwrap();
    let past = JobOptions {
        at: Some(UNIX_EPOCH + Duration::from_secs(1)),
        ..Default::default()
    };
    let jobs: Vec<_> = (0..20)
        .map(|i| manager.encode(&json!(i), &past).unwrap())
        .collect();
    let ids = manager.push_encoded(&jobs).await.unwrap();
    let client = Client::new("together", opts(&redis)).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let job = within("the next job", client.i_am_free(None))
            .await
            .unwrap();
        assert_eq!((&job.id, &job.data), (id, &json!(i)));
        client.complete(&job, None).await.unwrap();
    }
}

/// A hundred thousand jobs due at the same moment, three managers: each job is promoted once,
/// none is lost, and they stand in the queue in the order they were pushed.
#[tokio::test(flavor = "multi_thread")]
async fn three_managers_promote_each_job_exactly_once() {
    const JOBS: usize = 100_000;
    let redis = RedisServer::start();
    let mut managers = Vec::new();
    for _ in 0..3 {
        managers.push(Manager::new("crowd", opts(&redis)).await.unwrap());
    }
    // Far enough ahead that every job is in before the first falls due.
    let due_ms = redis_now_ms(&redis) + 5_000;
    let at = JobOptions {
        at: Some(UNIX_EPOCH + Duration::from_millis(due_ms)),
        ..Default::default()
    };
    let jobs: Vec<_> = (0..JOBS)
        .map(|i| managers[0].encode(&json!(i), &at).unwrap())
        .collect();
    let ids = managers[0].push_encoded(&jobs).await.unwrap();
    assert!(
        redis_now_ms(&redis) < due_ms,
        "pushing took longer than the 5 s the test allows for it"
    );
    assert_eq!(managers[0].stats().await.unwrap().scheduled, JOBS as u64);
    let started = Instant::now();
    eventually("every job promoted", || async {
        let s = managers[1].stats().await.unwrap();
        s.scheduled == 0 && s.waiting == JOBS as u64
    })
    .await;
    let done = redis_now_ms(&redis);
    println!(
        "{JOBS} jobs due at once, three managers: all in the queue {} ms after they fell due (polled every 10 ms; waited {:?})",
        done.saturating_sub(due_ms),
        started.elapsed()
    );
    let waiting: Vec<String> = query(&redis, &["LRANGE", "sque:{crowd}:waiting", "0", "-1"]);
    let expected: Vec<String> = ids.iter().map(|id| format!("{id}|0")).collect();
    assert_eq!(waiting.len(), JOBS, "none lost, none twice");
    assert_eq!(
        waiting.iter().collect::<HashSet<_>>().len(),
        JOBS,
        "none twice"
    );
    assert!(waiting == expected, "in the order they were pushed");
    for m in &managers {
        m.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delay_and_a_time_together_are_refused_before_anything_is_written() {
    let redis = RedisServer::start();
    let manager = Manager::new("both", opts(&redis)).await.unwrap();
    let both = JobOptions {
        delay: Some(Duration::from_secs(1)),
        at: Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)),
        ..Default::default()
    };
    let e = manager.push_with(json!(1), both).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.pushed, stats.scheduled), (0, 0));
}

/// A queue that requires a feature this version does not know is refused (it would ignore
/// what the feature holds), and one made by protocol 1.0 keeps working.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_features_are_refused_and_a_1_0_queue_keeps_working() {
    let redis = RedisServer::start();
    let manager = Manager::new("old", opts(&redis)).await.unwrap();
    let _: () = query(&redis, &["HSET", "sque:{old}:meta", "protocol", "1.0"]);
    manager.push(json!("from before")).await.unwrap();
    let client = Client::new("old", opts(&redis)).await.unwrap();
    let job = within("the job", client.i_am_free(None)).await.unwrap();
    assert_eq!(job.data, json!("from before"));
    client.complete(&job, None).await.unwrap();
    client.shutdown().await.unwrap();

    let _: () = query(
        &redis,
        &["HSET", "sque:{old}:meta", "requires", "delay,teleport"],
    );
    let e = Manager::new("old", opts(&redis))
        .await
        .err()
        .expect("the queue is refused");
    assert!(
        matches!(&e, Error::UnknownFeature { feature, queue } if feature == "teleport" && queue == "old"),
        "{e}"
    );
    let e = manager.push(json!(2)).await.unwrap_err();
    assert!(matches!(e, Error::UnknownFeature { .. }), "{e}");
    manager.shutdown().await.unwrap();
}

/// While paused, nothing is handed out by any script (a push, a worker's own request, the
/// dispatcher), a job running finishes, and pushes are kept; on resume the waiting worker is
/// served at once, in FIFO order.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_queue_hands_out_nothing_until_resumed() {
    let redis = RedisServer::start();
    let manager = Manager::new("held", opts(&redis)).await.unwrap();
    let admin = Admin::new("held", opts(&redis)).await.unwrap();
    let client = Client::new("held", opts(&redis)).await.unwrap();
    manager.push(json!("running")).await.unwrap();
    let running = within("the first job", client.i_am_free(None))
        .await
        .unwrap();
    assert!(admin.pause().await.unwrap(), "paused");
    assert!(!admin.pause().await.unwrap(), "paused already");
    let b = manager.push(json!("b")).await.unwrap();
    manager.push(json!("c")).await.unwrap();
    client.complete(&running, None).await.unwrap();
    let stats = manager.stats().await.unwrap();
    assert!(stats.paused);
    assert_eq!((stats.waiting, stats.completed), (2, 1));

    let (next, ()) = tokio::join!(
        within("the job after resume", client.i_am_free(None)),
        async {
            eventually("the worker's request stored, not served", || async {
                manager.stats().await.unwrap().requests == 1
            })
            .await;
            // A push serves stored requests in its own call, unless the queue is paused.
            manager.push(json!("d")).await.unwrap();
            let s = manager.stats().await.unwrap();
            assert_eq!((s.waiting, s.requests, s.dispatched), (3, 1, 1));
            assert!(admin.resume().await.unwrap(), "resumed");
        }
    );
    let next = next.unwrap();
    assert_eq!((&next.id, &next.data), (&b, &json!("b")));
    assert!(!admin.resume().await.unwrap(), "not paused any more");
    assert!(!manager.stats().await.unwrap().paused);
    let requires: Option<String> = query(&redis, &["HGET", "sque:{held}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("pause"));
}
