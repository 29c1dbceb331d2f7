//! A job's life beyond push and run, against a real redis-server (or the Cluster): delayed
//! and scheduled jobs (`JobOptions::delay` and `at`: kept aside until due on Redis's clock,
//! then at the tail of the queue, each promoted exactly once however many managers run),
//! cron schedules (each tick pushed once by however many managers, a missed tick once),
//! pausing a queue, and the features a queue requires.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::json;
use sque::{
    Admin, Cancelled, Client, Error, FollowUp, Inspector, JobId, JobOptions, JobState, Manager,
    Producer, Schedule,
};
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

/// A cron schedule's tick is pushed exactly once by three managers, and ticks missed while
/// no manager ran are pushed once, not once each. (A five-field pattern ticks each minute at
/// most: the test moves the schedule's tick into the past, as time passing would.)
#[tokio::test(flavor = "multi_thread")]
async fn three_managers_push_each_tick_once_and_missed_ticks_once() {
    let redis = RedisServer::start();
    let admin = {
        // Created by a producer (no manager yet), as `schedule add` does.
        Manager::new("ticks", opts(&redis).dispatch(false))
            .await
            .unwrap();
        Admin::new("ticks", opts(&redis)).await.unwrap()
    };
    let schedule = Schedule {
        tz: Some("Europe/Berlin".into()),
        max_attempts: Some(2),
        ..Schedule::new("*/5 * * * *", json!({"report": "sales"}))
    };
    let first = admin.set_schedule("every-five", &schedule).await.unwrap();
    let now = redis_now_ms(&redis);
    assert!(
        first > now && first <= now + 5 * 60_000,
        "the next multiple of five minutes"
    );
    assert_eq!(first % (5 * 60_000), 0);
    let inspector = Inspector::new("ticks", opts(&redis)).await.unwrap();
    let listed = inspector.schedules().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].name.as_str(),
            listed[0].next_at,
            listed[0].schedule.as_ref()
        ),
        ("every-five", Some(first), Some(&schedule))
    );
    let requires: Option<String> = query(&redis, &["HGET", "sque:{ticks}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("cron"));

    let mut managers = Vec::new();
    for _ in 0..3 {
        managers.push(Manager::new("ticks", opts(&redis)).await.unwrap());
    }
    for (round, missed) in [(1, 1u64), (2, 12)] {
        // The tick (or twelve of them, an hour of ticks) has passed.
        let past = redis_now_ms(&redis) - missed * 5 * 60_000;
        let _: () = query(
            &redis,
            &[
                "ZADD",
                "sque:{ticks}:schedule_due",
                &past.to_string(),
                "every-five",
            ],
        );
        eventually("the tick taken and the next one set", || async {
            let due: f64 = query(
                &redis,
                &["ZSCORE", "sque:{ticks}:schedule_due", "every-five"],
            );
            due as u64 > redis_now_ms(&redis)
        })
        .await;
        let stats = managers[0].stats().await.unwrap();
        assert_eq!(
            stats.waiting, round,
            "one job a round, however many ticks were missed"
        );
    }
    let client = Client::new("ticks", opts(&redis)).await.unwrap();
    let job = within("a scheduled job", client.i_am_free(None))
        .await
        .unwrap();
    assert_eq!(job.data, json!({"report": "sales"}));
    assert!(
        job.lease_token().ends_with("|1|2"),
        "its own attempt limit: {}",
        job.lease_token()
    );
    client.complete(&job, None).await.unwrap();

    assert!(admin.remove_schedule("every-five").await.unwrap());
    assert!(!admin.remove_schedule("every-five").await.unwrap());
    assert!(inspector.schedules().await.unwrap().is_empty());
    let bad = Schedule::new("0 25 * * *", json!(1));
    let e = admin.set_schedule("bad", &bad).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    // Data of 127 levels: a job could hold it, but the definition that wraps it could not be
    // read back, and the schedule would push nothing.
    let deep: serde_json::Value =
        serde_json::from_str(&format!("{}{}", "[".repeat(127), "]".repeat(127))).unwrap();
    let e = admin
        .set_schedule("deep", &Schedule::new("* * * * *", deep))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nested"), "{e}");
    assert!(inspector.schedules().await.unwrap().is_empty());
    for m in &managers {
        m.shutdown().await.unwrap();
    }
}

/// A schedule of high priority pushes each tick's job ahead of the normal jobs already
/// waiting (`waiting:9`), and the queue requires `cron_priority` from the moment it is set,
/// so that a host that would push its jobs at the normal priority refuses the queue. A
/// priority outside 0 to 9 is refused with nothing written.
#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_of_high_priority_pushes_its_jobs_ahead_of_normal_ones() {
    let redis = RedisServer::start();
    let producer = Manager::new("urgent", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let normal = producer
        .push_many(vec![json!("a"), json!("b")])
        .await
        .unwrap();
    let admin = Admin::new("urgent", opts(&redis)).await.unwrap();
    let bad = Schedule {
        priority: Some(10),
        ..Schedule::new("* * * * *", json!("tick"))
    };
    let e = admin.set_schedule("urgent", &bad).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    let requires: Option<String> = query(&redis, &["HGET", "sque:{urgent}:meta", "requires"]);
    assert_eq!(requires, None, "a refused schedule writes nothing");

    let schedule = Schedule {
        priority: Some(9),
        ..Schedule::new("* * * * *", json!("tick"))
    };
    admin.set_schedule("urgent", &schedule).await.unwrap();
    let requires: Option<String> = query(&redis, &["HGET", "sque:{urgent}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("cron,cron_priority"));
    let inspector = Inspector::new("urgent", opts(&redis)).await.unwrap();
    let listed = inspector.schedules().await.unwrap();
    assert_eq!(listed[0].schedule.as_ref(), Some(&schedule));

    let manager = Manager::new("urgent", opts(&redis)).await.unwrap();
    // Its tick has come, as time passing would make it.
    let _: () = query(
        &redis,
        &["ZADD", "sque:{urgent}:schedule_due", "1000", "urgent"],
    );
    eventually("the tick's job pushed", || async {
        manager.stats().await.unwrap().waiting == 3
    })
    .await;
    let high: u64 = query(&redis, &["LLEN", "sque:{urgent}:waiting:9"]);
    assert_eq!(high, 1, "the tick's job waits at priority 9");
    let client = Client::new("urgent", opts(&redis)).await.unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        let job = within("a job", client.i_am_free(None)).await.unwrap();
        order.push((job.data.clone(), job.id.clone()));
        client.complete(&job, None).await.unwrap();
    }
    assert_eq!(
        order[0].0,
        json!("tick"),
        "the scheduled job first: {order:?}"
    );
    assert_eq!(
        (&order[1], &order[2]),
        (
            &(json!("a"), normal[0].clone()),
            &(json!("b"), normal[1].clone())
        ),
        "then the normal ones, in push order"
    );
    manager.shutdown().await.unwrap();
}

fn unique(key: &str) -> JobOptions {
    JobOptions {
        unique_key: Some(key.to_string()),
        ..Default::default()
    }
}

/// Sixteen producers push the same fifty keys at once: one job a key, and every push of a
/// key answers the id of the job that holds it. A key is held while its job is scheduled,
/// waits or runs, and for its window after completing; freed when its job completes, or is
/// dead-lettered (a dead job retried while another holds its key is refused).
#[tokio::test(flavor = "multi_thread")]
async fn a_unique_key_is_held_by_one_job_until_it_ends() {
    let redis = RedisServer::start();
    let manager = Manager::new("unique", opts(&redis)).await.unwrap();
    let mut producers = Vec::new();
    for _ in 0..16 {
        let producer = Manager::new("unique", opts(&redis).dispatch(false))
            .await
            .unwrap();
        producers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for k in 0..50 {
                let key = format!("k{k}");
                ids.push((
                    key.clone(),
                    producer.push_with(json!(k), unique(&key)).await.unwrap(),
                ));
            }
            ids
        }));
    }
    let mut holder = std::collections::HashMap::new();
    for p in producers {
        for (key, id) in p.await.unwrap() {
            assert_eq!(
                holder.entry(key.clone()).or_insert(id.clone()),
                &id,
                "{key}"
            );
        }
    }
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.pushed, stats.waiting), (50, 50), "one job a key");
    // A key named twice in one call: one job, both answered with its id.
    let twice: Vec<_> = ["dup", "dup", "other", "k3"]
        .iter()
        .map(|k| manager.encode(&json!(k), &unique(k)).unwrap())
        .collect();
    let ids = manager.push_encoded(&twice).await.unwrap();
    assert_eq!(ids[0], ids[1]);
    let number = |id: &sque::JobId| id.as_str().parse::<u64>().unwrap();
    assert_eq!(
        number(&ids[2]),
        number(&ids[0]) + 1,
        "new ids follow in order"
    );
    assert_eq!(ids[3], holder["k3"], "held from before");
    assert_eq!(manager.stats().await.unwrap().pushed, 52);
    let inspector = Inspector::new("unique", opts(&redis)).await.unwrap();
    let shown = inspector.job(&holder["k0"]).await.unwrap().unwrap();
    assert_eq!(shown.unique_key.as_deref(), Some("k0"));

    // Completed: the key is free at once without a window, held for it with one.
    let client = Client::new("unique", opts(&redis)).await.unwrap();
    let job = within("k0's job", client.i_am_free(None)).await.unwrap();
    assert_eq!(job.id, holder["k0"]);
    client.complete(&job, None).await.unwrap();
    let again = manager.push_with(json!(0), unique("k0")).await.unwrap();
    assert_ne!(again, holder["k0"], "free once its job completed");

    let windowed = JobOptions {
        unique_for: Some(Duration::from_millis(500)),
        delay: Some(Duration::from_secs(3600)),
        ..unique("w")
    };
    let w = manager
        .push_with(json!("w"), windowed.clone())
        .await
        .unwrap();
    assert_eq!(
        manager
            .push_with(json!("w"), windowed.clone())
            .await
            .unwrap(),
        w,
        "held while scheduled"
    );
    assert_eq!(manager.stats().await.unwrap().scheduled, 1);

    // Dead-lettered: the key is freed; a retry while another job holds it is refused.
    let admin = Admin::new("unique", opts(&redis)).await.unwrap();
    let once = JobOptions {
        max_attempts: Some(1),
        ..unique("d")
    };
    let first = manager.push_with(json!("d"), once.clone()).await.unwrap();
    let mut dead = None;
    while dead.is_none() {
        let job = within("the next job", client.i_am_free(None))
            .await
            .unwrap();
        if job.id == first {
            client.fail(&job, "no").await.unwrap();
            dead = Some(job.id);
        } else {
            client.complete(&job, None).await.unwrap();
        }
    }
    let second = manager.push_with(json!("d"), once).await.unwrap();
    assert_ne!(second, first, "a dead job's key is free");
    let report = admin
        .retry_dead_jobs(sque::DeadJobs::Ids(std::slice::from_ref(&first)))
        .await
        .unwrap();
    assert_eq!(report.done, 0);
    assert!(
        report.refused[0]
            .1
            .contains(&format!("held by job {second}")),
        "{:?}",
        report.refused
    );
    assert!(inspector.job(&first).await.unwrap().unwrap().state == sque::JobState::Dead);
}

/// A key held for a window after its job completed is freed by the reaper when it ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_unique_key_is_freed_when_its_window_after_completion_ends() {
    let redis = RedisServer::start();
    let manager = Manager::new("window", opts(&redis)).await.unwrap();
    let client = Client::new("window", opts(&redis)).await.unwrap();
    let options = JobOptions {
        unique_for: Some(Duration::from_millis(300)),
        ..unique("report-2026-12-04")
    };
    let first = manager.push_with(json!(1), options.clone()).await.unwrap();
    let job = within("the job", client.i_am_free(None)).await.unwrap();
    // The window starts when the completion runs, between these two readings of Redis's
    // clock: it ends no sooner than 300 ms after the first (the key is free from the moment
    // it ends, reaper or not).
    let completing_at = redis_now_ms(&redis);
    client.complete(&job, None).await.unwrap();
    assert_eq!(
        manager.push_with(json!(1), options.clone()).await.unwrap(),
        first,
        "held within its window"
    );
    // Each push within the window writes nothing; the first after it pushes a job.
    within("the key free after its window", async {
        while manager.push_with(json!(2), options.clone()).await.unwrap() == first {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        redis_now_ms(&redis) >= completing_at + 300,
        "not before its window ended"
    );
    assert_eq!(
        manager.stats().await.unwrap().pushed,
        2,
        "the pushes within the window wrote nothing"
    );
}

/// A key's window after completion ends on Redis's clock, not at a reaper's next pass: with
/// no manager running (so no reaper), the first push after the window pushes a new job, which
/// then holds the key; and a dead job retried after another's window ended takes its key.
#[tokio::test(flavor = "multi_thread")]
async fn a_unique_key_is_free_when_its_window_ends_with_no_reaper_running() {
    let redis = RedisServer::start();
    let manager = Manager::new("window-exact", opts(&redis)).await.unwrap();
    let client = Client::new("window-exact", opts(&redis)).await.unwrap();
    let window = Duration::from_millis(300);
    let windowed = |key: &str| JobOptions {
        unique_for: Some(window),
        max_attempts: Some(1),
        ..unique(key)
    };
    // "k" completes; "d" dies, which frees its key at once, and "d" is then taken by a job
    // that completes: both keys are held for their window only.
    let first = manager.push_with(json!(1), windowed("k")).await.unwrap();
    let doomed = manager.push_with(json!(2), windowed("d")).await.unwrap();
    let job = within("the first job", client.i_am_free(None))
        .await
        .unwrap();
    client.complete(&job, None).await.unwrap();
    let job = within("the second job", client.i_am_free(None))
        .await
        .unwrap();
    assert_eq!(job.id, doomed);
    client.fail(&job, "no").await.unwrap();
    let taker = manager.push_with(json!(3), windowed("d")).await.unwrap();
    assert_ne!(taker, doomed, "a dead job's key is free");
    let job = within("the third job", client.i_am_free(None))
        .await
        .unwrap();
    assert_eq!(job.id, taker);
    client.complete(&job, None).await.unwrap();
    let completed_at = redis_now_ms(&redis);
    manager.shutdown().await.unwrap();

    let producer = Producer::new("window-exact", opts(&redis)).await.unwrap();
    let admin = Admin::new("window-exact", opts(&redis)).await.unwrap();
    assert_eq!(
        producer.push_with(json!(4), windowed("k")).await.unwrap(),
        first,
        "held within its window"
    );
    within("the windows to end on Redis's clock", async {
        while redis_now_ms(&redis) < completed_at + window.as_millis() as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let second = producer.push_with(json!(5), windowed("k")).await.unwrap();
    assert_ne!(
        second, first,
        "free once its window ended, with no reaper since"
    );
    assert_eq!(
        producer.push_with(json!(6), windowed("k")).await.unwrap(),
        second,
        "the new job holds the key"
    );
    let report = admin
        .retry_dead_jobs(sque::DeadJobs::Ids(std::slice::from_ref(&doomed)))
        .await
        .unwrap();
    assert_eq!(
        (report.done, report.refused.len()),
        (1, 0),
        "a dead job retried takes a key whose window ended: {:?}",
        report.refused
    );
    assert_eq!(
        producer.push_with(json!(7), windowed("d")).await.unwrap(),
        doomed,
        "the retried job holds its key again"
    );
}

/// A job is cancelled in each state it can be in: waiting, scheduled and retrying jobs never
/// run, a running one is refused to its holder (told at its next renewal: `Job::cancelled`),
/// and jobs that ended, or were never pushed, have nothing to cancel.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_cancelled_in_each_state() {
    let redis = RedisServer::start();
    let manager = Manager::new("cancel", opts(&redis)).await.unwrap();
    let admin = Admin::new("cancel", opts(&redis)).await.unwrap();
    let inspector = Inspector::new("cancel", opts(&redis)).await.unwrap();
    let client = Client::new("cancel", opts(&redis)).await.unwrap();
    let state = |id: JobId| {
        let inspector = inspector.clone();
        async move { inspector.job(&id).await.unwrap().unwrap().state }
    };

    // Waiting: skipped when its turn comes, the next job served in its place.
    let a = manager.push(json!("a")).await.unwrap();
    let b = manager
        .push_with(json!("b"), unique("the-b-key"))
        .await
        .unwrap();
    let c = manager.push(json!("c")).await.unwrap();
    assert_eq!(admin.cancel(&b).await.unwrap(), Cancelled::Queued);
    assert!(matches!(
        admin.cancel(&b).await.unwrap(),
        Cancelled::Already(Some(_))
    ));
    assert_eq!(state(b.clone()).await, JobState::Cancelled);
    let requires: Option<String> = query(&redis, &["HGET", "sque:{cancel}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("unique,cancel"));
    // Its unique key was freed with it.
    let again = manager
        .push_with(json!("b again"), unique("the-b-key"))
        .await
        .unwrap();
    assert_ne!(again, b);
    for (id, data) in [(&a, "a"), (&c, "c"), (&again, "b again")] {
        let job = within("the next job", client.i_am_free(None))
            .await
            .unwrap();
        assert_eq!((&job.id, &job.data), (id, &json!(data)));
        client.complete(&job, None).await.unwrap();
    }
    assert_eq!(state(b.clone()).await, JobState::Cancelled);
    let b_data: Option<String> = query(&redis, &["HGET", "sque:{cancel}:jobs", b.as_str()]);
    assert_eq!(
        b_data, None,
        "the cancelled job's data was dropped with its item"
    );

    // Scheduled: dropped when due; a job due after it is the next one out.
    let soon = redis_now_ms(&redis) + 300;
    let at = |ms: u64| JobOptions {
        at: Some(UNIX_EPOCH + Duration::from_millis(ms)),
        ..Default::default()
    };
    let scheduled = manager
        .push_with(json!("scheduled"), at(soon))
        .await
        .unwrap();
    let later = manager
        .push_with(json!("later"), at(soon + 200))
        .await
        .unwrap();
    assert_eq!(admin.cancel(&scheduled).await.unwrap(), Cancelled::Queued);
    assert_eq!(state(scheduled.clone()).await, JobState::Cancelled);
    let job = within(
        "the job due after the cancelled one",
        client.i_am_free(None),
    )
    .await
    .unwrap();
    assert_eq!(job.id, later);
    client.complete(&job, None).await.unwrap();

    // Retrying: its next attempt never comes.
    let retried = manager.push(json!("retried")).await.unwrap();
    let job = within("the job to fail", client.i_am_free(None))
        .await
        .unwrap();
    client.fail(&job, "try again").await.unwrap();
    assert_eq!(state(retried.clone()).await, JobState::Retrying);
    assert_eq!(admin.cancel(&retried).await.unwrap(), Cancelled::Queued);
    eventually("the retry due, back in the queue", || async {
        query::<u64>(&redis, &["ZCARD", "sque:{cancel}:delayed"]) == 0
    })
    .await;
    let last = manager.push(json!("last")).await.unwrap();
    let job = within("the job after the cancelled retry", client.i_am_free(None))
        .await
        .unwrap();
    assert_eq!(job.id, last);
    client.complete(&job, None).await.unwrap();
    let waiting: u64 = query(&redis, &["LLEN", "sque:{cancel}:waiting"]);
    assert_eq!(
        waiting, 0,
        "the cancelled retry was dropped when its turn came"
    );

    // Running: the holder hears of it at its next renewal, and its completion is refused.
    let running = manager.push(json!("running")).await.unwrap();
    let job = within("the job to run", client.i_am_free(None))
        .await
        .unwrap();
    assert!(!job.is_cancelled());
    assert_eq!(admin.cancel(&running).await.unwrap(), Cancelled::Running);
    within("the holder told of the cancel", job.cancelled()).await;
    assert!(matches!(
        client.complete(&job, None).await,
        Err(Error::Cancelled { .. })
    ));
    assert_eq!(state(running.clone()).await, JobState::Cancelled);
    // Refused before any renewal could tell: the completion's own answer says so.
    let quick = manager.push(json!("quick")).await.unwrap();
    let job = within("the next job to run", client.i_am_free(None))
        .await
        .unwrap();
    assert_eq!(admin.cancel(&quick).await.unwrap(), Cancelled::Running);
    assert!(matches!(
        client.complete(&job, None).await,
        Err(Error::Cancelled { .. })
    ));

    // Ended: completed, dead, never pushed.
    assert_eq!(admin.cancel(&a).await.unwrap(), Cancelled::Ended);
    let dead = manager
        .push_with(
            json!("dead"),
            JobOptions {
                max_attempts: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let job = within("the job to die", client.i_am_free(None))
        .await
        .unwrap();
    client.fail(&job, "no").await.unwrap();
    assert_eq!(admin.cancel(&dead).await.unwrap(), Cancelled::Dead);
    assert_eq!(
        admin.cancel(&JobId::from("999999")).await.unwrap(),
        Cancelled::Ended
    );
    assert!(matches!(
        admin.cancel(&JobId::from("x")).await,
        Err(Error::InvalidInput(_))
    ));
    let stats: Vec<String> = query(
        &redis,
        &["HMGET", "sque:{cancel}:stats", "cancelled", "completed"],
    );
    assert_eq!(stats, ["5", "5"]);
}

/// Follow-up jobs are pushed once per completed parent, whatever the number of managers, to
/// another queue (on a Cluster, another node) as to the parent's own; a parent whose
/// completion is refused pushes nothing; and a parent taken again (as when a mover died before
/// reporting it) pushes nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn follow_ups_are_pushed_once_when_their_parent_completes() {
    const PARENTS: usize = 50;
    const EACH: usize = 20;
    let redis = RedisServer::start();
    let mut managers = Vec::new();
    for _ in 0..3 {
        managers.push(Manager::new("parents", opts(&redis)).await.unwrap());
    }
    let kids = Manager::new("kids", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let inspector = Inspector::new("parents", opts(&redis)).await.unwrap();
    let client = Client::new("parents", opts(&redis)).await.unwrap();
    let mut parent_ids = Vec::new();
    for p in 0..PARENTS {
        parent_ids.push(managers[0].push(json!({ "p": p })).await.unwrap());
    }
    for p in 0..PARENTS {
        let job = within("a parent", client.i_am_free(None)).await.unwrap();
        let follow_ups: Vec<FollowUp> = (0..EACH)
            .map(|c| FollowUp::new("kids", &json!({ "p": p, "c": c })).unwrap())
            .collect();
        client
            .complete_with_follow_ups(&job, Some("\"done\"".into()), &follow_ups)
            .await
            .unwrap();
    }
    eventually("every follow-up pushed", || async {
        kids.stats().await.unwrap().pushed == (PARENTS * EACH) as u64
    })
    .await;
    let requires: Option<String> = query(&redis, &["HGET", "sque:{parents}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("children"));

    // Each parent shows its children, in order, and they hold what it pushed.
    let kids_inspector = Inspector::new("kids", opts(&redis)).await.unwrap();
    let mut seen = HashSet::new();
    for (p, id) in parent_ids.iter().enumerate() {
        let info = eventually_value(&inspector, id).await;
        assert_eq!(info.children.len(), EACH, "{info:?}");
        assert_eq!(info.children_waiting, 0);
        for (c, child) in info.children.iter().enumerate() {
            assert_eq!(child.queue, "kids");
            let child_id = child.id.clone().expect("pushed");
            assert!(seen.insert(child_id.clone()), "{child_id} twice");
            let data = kids_inspector.job(&child_id).await.unwrap().unwrap().data;
            assert_eq!(data, Some(json!({ "p": p, "c": c })));
        }
    }

    // Taken again, as when a mover died after pushing and before recording: the pushes write
    // nothing, and answer the first pushes' ids.
    let first = parent_ids[0].as_str();
    let of = format!("sque:{{parents}}:children_of:{first}");
    let again: Vec<String> = query(&redis, &["LRANGE", &of, "0", "-1"]);
    let _: () = query(&redis, &["DEL", &of]);
    let _: () = query(
        &redis,
        &[
            "RPUSH",
            &format!("sque:{{parents}}:children:{first}"),
            "kids",
            "",
            "",
            r#"{"p":0,"c":0}"#,
        ],
    );
    let _: () = query(&redis, &["ZADD", "sque:{parents}:parents", "0", first]);
    eventually("the parent taken again, and reported", || async {
        query::<u64>(&redis, &["ZCARD", "sque:{parents}:parents"]) == 0
    })
    .await;
    assert_eq!(kids.stats().await.unwrap().pushed, (PARENTS * EACH) as u64);
    let after: Vec<String> = query(
        &redis,
        &[
            "LRANGE",
            &format!("sque:{{parents}}:children_of:{first}"),
            "0",
            "-1",
        ],
    );
    assert_eq!(after[0], again[0], "the holder's id, the same job");

    // An attempt that staged follow-ups and died (its result too large) commits nothing, not
    // even through the job's retry from the dead list, whose attempts are given the tokens of
    // its first life again, one by one: its first attempt's, and (a job of two attempts) its
    // second's.
    let admin = Admin::new("parents", opts(&redis)).await.unwrap();
    for attempts in [1, 2] {
        let options = JobOptions {
            max_attempts: Some(attempts),
            ..Default::default()
        };
        let doomed = managers[0]
            .push_with(json!({ "doomed": attempts }), options)
            .await
            .unwrap();
        // Up to its last attempt, failing the ones before.
        let last_attempt = || async {
            for _ in 1..attempts {
                let early = within("an early attempt", client.i_am_free(None))
                    .await
                    .unwrap();
                client.fail(&early, "not yet").await.unwrap();
            }
            within("the last attempt", client.i_am_free(None))
                .await
                .unwrap()
        };
        let job = last_attempt().await;
        assert_eq!(job.id, doomed);
        let follow_up = FollowUp::new("kids", &json!("from a dead attempt")).unwrap();
        let huge = format!("\"{}\"", "r".repeat(2 << 20));
        assert!(client
            .complete_with_follow_ups(&job, Some(huge), &[follow_up])
            .await
            .is_err());
        assert_eq!(admin.retry_dead(Some(&doomed)).await.unwrap(), 1);
        let retried = last_attempt().await;
        assert_eq!(
            retried.lease_token(),
            job.lease_token(),
            "the same token again ({attempts} attempts)"
        );
        client.complete(&retried, None).await.unwrap();
        // Committed, it would be waiting for a mover or, moved, listed.
        let info = inspector.job(&doomed).await.unwrap().unwrap();
        assert_eq!(
            (info.children_waiting, info.children.len()),
            (0, 0),
            "{attempts} attempts: {info:?}"
        );
    }

    // A completion refused (the job was cancelled) stages nothing and commits nothing.
    let refused = managers[0].push(json!("refused")).await.unwrap();
    let job = within("the refused parent", client.i_am_free(None))
        .await
        .unwrap();
    Admin::new("parents", opts(&redis))
        .await
        .unwrap()
        .cancel(&refused)
        .await
        .unwrap();
    let follow_up = FollowUp::new("kids", &json!("never")).unwrap();
    assert!(client
        .complete_with_follow_ups(&job, None, &[follow_up])
        .await
        .is_err());
    let staged: Vec<String> = query(&redis, &["KEYS", "sque:{parents}:staged:*"]);
    assert!(staged.is_empty(), "{staged:?}");
    assert_eq!(kids.stats().await.unwrap().pushed, (PARENTS * EACH) as u64);
}

/// A job's info once its mover has reported it.
async fn eventually_value(inspector: &Inspector, id: &JobId) -> sque::JobInfo {
    eventually("the parent's follow-ups reported", || async {
        !inspector
            .job(id)
            .await
            .unwrap()
            .unwrap()
            .children
            .is_empty()
    })
    .await;
    inspector.job(id).await.unwrap().unwrap()
}

/// A parent with as many follow-ups as one job may push is moved whole (each run recorded as
/// it goes); a parent whose follow-ups are not in the protocol's shape (written past sque) is
/// recorded as such and holds nothing up.
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_follow_ups_are_moved_and_bad_ones_do_not_stop_the_mover() {
    let redis = RedisServer::start();
    let manager = Manager::new("big", opts(&redis)).await.unwrap();
    let many = Manager::new("many", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let client = Client::new("big", opts(&redis)).await.unwrap();
    let inspector = Inspector::new("big", opts(&redis)).await.unwrap();

    let parent = manager.push(json!("parent")).await.unwrap();
    // A parent nobody here wrote: three values, not four, committed by hand.
    let odd = manager.push(json!("odd")).await.unwrap();
    let odd_list = format!("sque:{{big}}:children:{odd}");
    let _: () = query(&redis, &["RPUSH", &odd_list, "many", "", ""]);
    let _: () = query(&redis, &["ZADD", "sque:{big}:parents", "0", odd.as_str()]);

    let job = within("the parent", client.i_am_free(None)).await.unwrap();
    let follow_ups: Vec<FollowUp> = (0..sque::MAX_FOLLOW_UPS)
        .map(|i| FollowUp::new("many", &json!(i)).unwrap())
        .collect();
    client
        .complete_with_follow_ups(&job, None, &follow_ups)
        .await
        .unwrap();
    eventually("ten thousand follow-ups pushed", || async {
        many.stats().await.unwrap().pushed == sque::MAX_FOLLOW_UPS as u64
    })
    .await;
    let info = eventually_value(&inspector, &parent).await;
    assert_eq!(info.children.len(), sque::MAX_FOLLOW_UPS);
    let ids: HashSet<_> = info
        .children
        .iter()
        .map(|c| c.id.clone().unwrap())
        .collect();
    assert_eq!(ids.len(), sque::MAX_FOLLOW_UPS);

    let bad = eventually_value(&inspector, &odd).await;
    assert_eq!(bad.children.len(), 1);
    assert!(
        bad.children[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not in the protocol's shape")),
        "{bad:?}"
    );
    assert_eq!(query::<u64>(&redis, &["ZCARD", "sque:{big}:parents"]), 0);
}
