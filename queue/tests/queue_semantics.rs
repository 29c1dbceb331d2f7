//! The queue's semantics, each against a real redis-server started for the test.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sque::{Client, Error, FailOutcome, Inspector, JobId, JobOptions, Manager};
use support::{eventually, opts, query, within, RedisServer};

#[tokio::test(flavor = "multi_thread")]
async fn the_original_example() {
    let redis = RedisServer::start();
    let manager = Manager::new("queName", opts(&redis)).await.unwrap();
    let client1 = Client::new("queName", opts(&redis)).await.unwrap();
    let client2 = Client::new("queName", opts(&redis)).await.unwrap();
    for email in ["test1@mail.org", "test2@mail.org", "test3@mail.org"] {
        manager.push(json!({ "email": email })).await.unwrap();
    }
    let first = within("client1", client1.i_am_free(None)).await.unwrap();
    let second = within("client2", client2.i_am_free(None)).await.unwrap();
    let third = within("client1 again", client1.i_am_free(None))
        .await
        .unwrap();
    assert_eq!(first.data["email"], "test1@mail.org");
    assert_eq!(second.data["email"], "test2@mail.org");
    assert_eq!(third.data["email"], "test3@mail.org");
    assert_eq!(first.attempt, 1);
    for (client, job) in [(&client1, &first), (&client2, &second), (&client1, &third)] {
        client.complete(job, None).await.unwrap();
    }
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight, stats.completed), (0, 0, 3));
    manager.shutdown().await.unwrap();
}

/// A push serves a request that was waiting for work itself, in the same script call (as a
/// dispatcher would, next), with the queue's own lease from its meta: no dispatcher needs to
/// have run.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_serves_a_waiting_worker_itself() {
    let redis = RedisServer::start();
    let producer = Manager::new("direct", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let client = Client::new("direct", opts(&redis)).await.unwrap();
    let (job, ()) = within("the job, from the push itself", async {
        tokio::join!(client.i_am_free(None), async {
            eventually("a request stored", || async {
                producer.stats().await.unwrap().requests == 1
            })
            .await;
            producer.push(json!("first")).await.unwrap();
        })
    })
    .await;
    let job = job.unwrap();
    assert_eq!((&job.data, job.attempt), (&json!("first"), 1));
    client.complete(&job, None).await.unwrap();
    let stats = producer.stats().await.unwrap();
    assert_eq!((stats.dispatched, stats.completed), (1, 1));
}

/// The lease a job is handed out with is the queue's, whoever hands it out: a client started
/// with another lease uses the queue's (it says so once), and `Admin::configure` changes it
/// for every later job.
#[tokio::test(flavor = "multi_thread")]
async fn every_role_uses_the_queues_own_lease() {
    let redis = RedisServer::start();
    let manager = Manager::new("lease", opts(&redis).lease(Duration::from_secs(2)))
        .await
        .unwrap();
    let client = Client::new("lease", opts(&redis).lease(Duration::from_secs(60)))
        .await
        .unwrap();
    let lease_left_ms = |token: String| {
        let deadline: f64 = query(&redis, &["ZSCORE", "sque:{lease}:leases", &token]);
        let (secs, micros): (String, String) = query(&redis, &["TIME"]);
        let now = secs.parse::<f64>().unwrap() * 1000.0 + micros.parse::<f64>().unwrap() / 1000.0;
        deadline - now
    };
    manager.push(json!(1)).await.unwrap();
    let job = within("job", client.i_am_free(None)).await.unwrap();
    let left = lease_left_ms(job.lease_token().to_string());
    assert!(
        left > 0.0 && left <= 2000.0,
        "the queue's 2 s lease, not the client's 60 s: {left} ms"
    );
    client.complete(&job, None).await.unwrap();

    let settings = manager
        .admin()
        .configure(&sque::SettingsChange {
            lease: Some(Duration::from_secs(30)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(settings.lease, Duration::from_secs(30));
    manager.push(json!(2)).await.unwrap();
    let job = within("job", client.i_am_free(None)).await.unwrap();
    let left = lease_left_ms(job.lease_token().to_string());
    assert!(
        left > 20_000.0 && left <= 30_000.0,
        "the new 30 s lease: {left} ms"
    );

    let err = manager
        .admin()
        .configure(&sque::SettingsChange {
            lease: Some(Duration::from_millis(5)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.is_bad_input() && err.to_string().contains("lease"),
        "{err}"
    );
    assert_eq!(
        manager.admin().settings().await.unwrap().lease,
        Duration::from_secs(30),
        "a refused change changes nothing"
    );
}

/// A first attempt comes with how long it waited since its push (the histogram
/// `sque_job_wait_seconds` of a host): in an exchange's reply, and through the inbox to a
/// worker that recorded protocol 1.2 at its renew; a worker that recorded none (a 1.1 worker)
/// is served the delivery it reads, without the wait. Waits are worked out only while a
/// client that measures them runs (`Options::measure_waits`).
#[tokio::test(flavor = "multi_thread")]
async fn a_first_attempt_carries_its_wait_to_workers_that_read_it() {
    let redis = RedisServer::start();
    // A manager: it brings the retry back when its backoff ends.
    let producer = Manager::new("waits", opts(&redis)).await.unwrap();
    // While no client measures waits, none is worked out (it costs Redis).
    let plain = Client::new("waits", opts(&redis)).await.unwrap();
    producer.push(json!("unmeasured")).await.unwrap();
    let job = within("the unmeasured job", plain.i_am_free(None))
        .await
        .unwrap();
    assert_eq!(job.waited(), None);
    plain.complete(&job, None).await.unwrap();
    plain.shutdown().await.unwrap();
    let client = Client::new("waits", opts(&redis).measure_waits(true))
        .await
        .unwrap();
    let redis_ms = || {
        let t: Vec<u64> = query(&redis, &["TIME"]);
        t[0] * 1000 + t[1] / 1000
    };
    producer.push(json!("waited")).await.unwrap();
    let pushed = redis_ms();
    eventually("50 ms on Redis's clock", || async {
        redis_ms() >= pushed + 50
    })
    .await;
    let job = within("the job", client.i_am_free(None)).await.unwrap();
    let waited = job.waited().expect("a first attempt's wait");
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_secs(60),
        "{waited:?}"
    );
    client.fail(&job, "again").await.unwrap();
    let retry = within("the retry", async {
        loop {
            let job = client.i_am_free(None).await.unwrap();
            if job.attempt == 2 {
                break job;
            }
        }
    })
    .await;
    assert_eq!(retry.waited(), None, "a retry's wait is not a push's");
    client.complete(&retry, None).await.unwrap();

    // Two workers' stored requests, served by a push through their inboxes: 101 speaks 1.1
    // (no entry in `protocols`), 102 recorded 1.2.
    let far = (redis_ms() + 600_000).to_string();
    let _: () = query(
        &redis,
        &["ZADD", "sque:{waits}:workers", &far, "101", &far, "102"],
    );
    let _: () = query(&redis, &["HSET", "sque:{waits}:protocols", "102", "1.2"]);
    let _: () = query(
        &redis,
        &["RPUSH", "sque:{waits}:requests", "101:7", "102:7"],
    );
    let ids = producer.push_many([json!("a"), json!("b")]).await.unwrap();
    let old: Vec<String> = query(&redis, &["LRANGE", "sque:{waits}:inbox:101", "0", "-1"]);
    let new: Vec<String> = query(&redis, &["LRANGE", "sque:{waits}:inbox:102", "0", "-1"]);
    let max: String = query(&redis, &["HGET", "sque:{waits}:meta", "max_attempts"]);
    assert_eq!(
        old,
        [format!(r#"{{"r":"7","t":"{}|1|{max}","d":"a"}}"#, ids[0])]
    );
    assert_eq!(new.len(), 1);
    let prefix = format!(r#"{{"r":"7","t":"{}|1|{max}","w":"#, ids[1]);
    assert!(
        new[0].starts_with(&prefix) && new[0].ends_with(r#","d":"b"}"#),
        "{new:?}"
    );
    // The client recorded its own version at its renew, and takes it away when it leaves.
    let speaks: std::collections::HashMap<String, String> =
        query(&redis, &["HGETALL", "sque:{waits}:protocols"]);
    assert_eq!(speaks.len(), 2, "{speaks:?}");
    assert!(
        speaks.values().all(|v| v == sque::PROTOCOL_VERSION),
        "{speaks:?}"
    );
    client.shutdown().await.unwrap();
    let left: Vec<String> = query(&redis, &["HKEYS", "sque:{waits}:protocols"]);
    assert_eq!(left, ["102"]);
}

/// A wait counts from when its job could first go: a delayed job's from its due time (a
/// unique push here). A job retried from the dead list, or pushed by a producer that records
/// no push (written here as protocol 1.0 wrote it), carries none rather than a false one.
#[tokio::test(flavor = "multi_thread")]
async fn a_wait_counts_from_when_the_job_could_first_go_or_is_not_given() {
    let redis = RedisServer::start();
    // A manager: it promotes the delayed job when it falls due.
    let producer = Manager::new("since", opts(&redis)).await.unwrap();
    let client = Client::new("since", opts(&redis).measure_waits(true))
        .await
        .unwrap();
    let delay = Duration::from_secs(2);
    let later = sque::JobOptions {
        delay: Some(delay),
        unique_key: Some("later".into()),
        ..Default::default()
    };
    producer.push_with(json!("later"), later).await.unwrap();
    let job = within("the delayed job", client.i_am_free(None))
        .await
        .unwrap();
    let waited = job.waited().expect("a first attempt's wait");
    assert!(waited < delay, "counted from its push: {waited:?}");
    client.complete(&job, None).await.unwrap();

    let once = sque::JobOptions {
        max_attempts: Some(1),
        ..Default::default()
    };
    let id = producer.push_with(json!("dies"), once).await.unwrap();
    let job = within("the job", client.i_am_free(None)).await.unwrap();
    assert!(job.waited().is_some());
    client.fail(&job, "no").await.unwrap();
    assert_eq!(producer.retry_dead(Some(&id)).await.unwrap(), 1);
    let job = within("the retried job", client.i_am_free(None))
        .await
        .unwrap();
    assert_eq!((&job.id, job.attempt), (&id, 1));
    assert_eq!(job.waited(), None, "retried from the dead list");
    client.complete(&job, None).await.unwrap();

    let seq: u64 = query(&redis, &["HINCRBY", "sque:{since}:meta", "seq", "1"]);
    let old = seq.to_string();
    let _: () = query(&redis, &["HSET", "sque:{since}:jobs", &old, "\"old\""]);
    let _: () = query(
        &redis,
        &["RPUSH", "sque:{since}:waiting", &format!("{old}|0")],
    );
    let job = within("the 1.0 producer's job", client.i_am_free(None))
        .await
        .unwrap();
    assert_eq!((job.id.as_str(), &job.data), (old.as_str(), &json!("old")));
    assert_eq!(job.waited(), None, "the push before it is not its push");
    client.complete(&job, None).await.unwrap();
}

/// A request made while jobs wait is served by the call that makes it, and the job comes back
/// in that call's reply: nothing goes through the worker's inbox (no manager runs here).
#[tokio::test(flavor = "multi_thread")]
async fn a_request_made_while_jobs_wait_is_answered_in_the_reply_not_through_the_inbox() {
    let redis = RedisServer::start();
    let producer = Manager::new("reply", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let client = Client::new("reply", opts(&redis)).await.unwrap();
    producer.push_many((0..3).map(|i| json!(i))).await.unwrap();
    let node = redis.node_of("sque:{reply}:waiting");
    // Every job that goes through an inbox sets the inbox's lifetime (PEXPIRE).
    let inbox_writes = || redis.command_calls(node, "pexpire");
    let before = inbox_writes();
    for i in 0..3 {
        let job = within("a job", client.i_am_free(None)).await.unwrap();
        assert_eq!((job.data.clone(), job.attempt), (json!(i), 1));
        client.complete(&job, None).await.unwrap();
    }
    assert_eq!(inbox_writes(), before, "a job went through the inbox");
    let stats = producer.stats().await.unwrap();
    assert_eq!(
        (
            stats.dispatched,
            stats.completed,
            stats.in_flight,
            stats.waiting
        ),
        (3, 3, 0, 0)
    );
}

/// Woken: a `Notify` that keeps one wake-up for the next wait.
struct Woken(tokio::sync::Notify);

impl futures_util::task::ArcWake for Woken {
    fn wake_by_ref(woken: &Arc<Self>) {
        woken.0.notify_one();
    }
}

/// A client knows from Redis's replies whether its queue had a job for its latest request: a
/// request stored, not served, starts a dry spell (its watcher is woken), and a job handed over
/// later ends it. A host serving several queues hands a dry queue's slots on at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_is_told_when_its_queue_runs_dry_and_when_work_comes() {
    let redis = RedisServer::start();
    let producer = Manager::new("dry", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let client = Client::new("dry", opts(&redis)).await.unwrap();
    let woken = Arc::new(Woken(tokio::sync::Notify::new()));
    client.watch_dry(futures_util::task::waker(woken.clone()));
    producer.push(json!("waiting")).await.unwrap();
    let job = within("the waiting job", client.i_am_free(None))
        .await
        .unwrap();
    client.complete(&job, None).await.unwrap();
    assert_eq!((client.is_dry(), client.dry_spells()), (false, 0));
    let (job, ()) = within("a job pushed once the queue ran dry", async {
        tokio::join!(client.i_am_free(None), async {
            // Nothing waits: the request is stored, and the reply says so.
            woken.0.notified().await;
            assert_eq!((client.is_dry(), client.dry_spells()), (true, 1));
            assert_eq!(producer.stats().await.unwrap().requests, 1);
            producer.push(json!("later")).await.unwrap();
        })
    })
    .await;
    assert_eq!(job.unwrap().data, json!("later"));
    assert_eq!((client.is_dry(), client.dry_spells()), (false, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_clients_requests_are_served_in_the_order_they_were_made() {
    let redis = RedisServer::start();
    let client = Client::new("q", opts(&redis)).await.unwrap();
    let manager = Manager::new("q", opts(&redis)).await.unwrap();
    let pusher = async {
        // Push only once both requests are stored, so neither could have been served early.
        eventually("two requests stored", || async {
            manager.stats().await.unwrap().requests == 2
        })
        .await;
        manager.push(json!("first")).await.unwrap();
        manager.push(json!("second")).await.unwrap();
    };
    let (a, b, ()) = within("both requests served", async {
        tokio::join!(client.i_am_free(None), client.i_am_free(None), pusher)
    })
    .await;
    assert_eq!(a.unwrap().data, json!("first"));
    assert_eq!(b.unwrap().data, json!("second"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_jobs_leave_in_fifo_order() {
    let redis = RedisServer::start();
    let manager = Manager::new("fifo", opts(&redis)).await.unwrap();
    let ids = manager
        .push_many((0..10_000).map(|i| json!({ "n": i })))
        .await
        .unwrap();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        10_000,
        "ids are unique"
    );
    let client = Client::new("fifo", opts(&redis)).await.unwrap();
    for i in 0..10_000 {
        let job = within("next job", client.i_am_free(None)).await.unwrap();
        assert_eq!(job.data["n"], i);
        assert_eq!(job.id, ids[i as usize]);
        client.complete(&job, None).await.unwrap();
    }
    assert_eq!(manager.stats().await.unwrap().waiting, 0);
}

/// Ids are decimal text of up to 20 digits. Lua writes a number of 15 digits or more in
/// exponent form when it is joined to text, so push.lua formats each id itself: a job whose
/// id passed 10^14 was once queued as "1e+14|0", and buried as poison.
#[tokio::test(flavor = "multi_thread")]
async fn ids_past_ten_to_the_fourteen_stay_exact() {
    let redis = RedisServer::start();
    let manager = Manager::new("long-ids", opts(&redis)).await.unwrap();
    let _: () = query(
        &redis,
        &["HSET", "sque:{long-ids}:meta", "seq", "99999999999999"],
    );
    let ids = manager
        .push_many([json!("first"), json!("second")])
        .await
        .unwrap();
    let shown: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
    assert_eq!(shown, ["100000000000000", "100000000000001"]);
    let client = Client::new("long-ids", opts(&redis)).await.unwrap();
    for (id, data) in ids.iter().zip(["first", "second"]) {
        let job = within("the job", client.i_am_free(None)).await.unwrap();
        assert_eq!((&job.id, &job.data), (id, &json!(data)));
        client.complete(&job, None).await.unwrap();
    }
    assert_eq!(manager.stats().await.unwrap().poisoned, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_clients_get_twenty_thousand_jobs_exactly_once() {
    const JOBS: usize = 20_000;
    let redis = RedisServer::start();
    let manager = Manager::new("many", opts(&redis)).await.unwrap();
    manager
        .push_many((0..JOBS).map(|i| json!(i)))
        .await
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    // The workers stop once every job was seen, not on a timer: a request dropped while the
    // queue still holds jobs may be served on its way out, and the job it gets goes back to
    // the queue to be dispatched again (counted twice in `dispatched`, rightly).
    let (all_seen, done) = tokio::sync::watch::channel(false);
    let all_seen = Arc::new(all_seen);
    let mut workers = Vec::new();
    for _ in 0..16 {
        let client = Client::new("many", opts(&redis)).await.unwrap();
        let (seen, all_seen, mut done) = (seen.clone(), all_seen.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let job = tokio::select! {
                    job = client.i_am_free(None) => job.unwrap(),
                    _ = done.wait_for(|done| *done) => break,
                };
                let count = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(job.data.as_i64().unwrap());
                    seen.len()
                };
                client.complete(&job, None).await.unwrap();
                if count >= JOBS {
                    all_seen.send_replace(true);
                }
            }
            client.shutdown().await.unwrap();
        }));
    }
    within("all workers done", async {
        for w in workers {
            w.await.unwrap();
        }
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), JOBS, "no job delivered twice");
    assert_eq!(unique.len(), JOBS, "every job delivered");
    let stats = manager.stats().await.unwrap();
    assert_eq!(
        (stats.completed, stats.dispatched, stats.expired),
        (JOBS as u64, JOBS as u64, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn queues_are_isolated_and_carry_any_json() {
    let redis = RedisServer::start();
    let emails = Manager::new("emails", opts(&redis)).await.unwrap();
    let sms = Manager::new("sms", opts(&redis)).await.unwrap();
    let values = [
        json!({"email": "a@b.c", "nested": {"list": [1, 2.5, null, true]}}),
        json!([1, "two", {"three": 3}]),
        json!("a string with \"quotes\", \\ and ünïcødé"),
        json!(42),
        json!(null),
        json!(false),
    ];
    for v in &values {
        emails.push(v.clone()).await.unwrap();
    }
    sms.push(json!("sms only")).await.unwrap();
    let sms_client = Client::new("sms", opts(&redis)).await.unwrap();
    let job = within("sms job", sms_client.i_am_free(None)).await.unwrap();
    assert_eq!((job.data, job.queue.as_str()), (json!("sms only"), "sms"));
    let client = Client::new("emails", opts(&redis)).await.unwrap();
    for v in &values {
        let job = within("emails job", client.i_am_free(None)).await.unwrap();
        assert_eq!(&job.data, v);
        client.complete(&job, None).await.unwrap();
    }
    assert_eq!(sms.stats().await.unwrap().waiting, 0);
    assert_eq!(emails.stats().await.unwrap().completed, values.len() as u64);
    assert_eq!(sms.stats().await.unwrap().completed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_manager_listens_all_the_time() {
    let redis = RedisServer::start();
    let manager = Manager::new("later", opts(&redis)).await.unwrap();
    let client = Client::new("later", opts(&redis)).await.unwrap();
    // A worker asks on an empty queue: it gets the job pushed later.
    let (job, ()) = within("job pushed after the request", async {
        tokio::join!(client.i_am_free(None), async {
            eventually("request stored", || async {
                manager.stats().await.unwrap().requests == 1
            })
            .await;
            manager.push(json!("late")).await.unwrap();
        })
    })
    .await;
    let job = job.unwrap();
    assert_eq!(job.data, json!("late"));
    // A job pushed with no free worker waits for the next request; dispatched, it leaves.
    manager.push(json!("waits")).await.unwrap();
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight), (1, 1));
    let next = within("waiting job", client.i_am_free(None)).await.unwrap();
    assert_eq!(next.data, json!("waits"));
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.in_flight), (0, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_request_id_gets_the_same_job() {
    let redis = RedisServer::start();
    let manager = Manager::new("rid", opts(&redis)).await.unwrap();
    let client = Client::new("rid", opts(&redis)).await.unwrap();
    manager.push(json!(1)).await.unwrap();
    manager.push(json!(2)).await.unwrap();
    let (a, b) = within("both", async {
        tokio::join!(client.i_am_free(Some("r1")), client.i_am_free(Some("r1")))
    })
    .await;
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.id.clone(), a.request_id.as_deref()),
        (b.id.clone(), Some("r1"))
    );
    // Still held: asking again with the id gives the same job.
    let again = within("again", client.i_am_free(Some("r1"))).await.unwrap();
    assert_eq!(again.id, a.id);
    assert_eq!(
        manager.stats().await.unwrap().waiting,
        1,
        "the second job was not taken"
    );
    client.complete(&a, None).await.unwrap();
    // Once acknowledged, the id is free again and asks for a new job.
    let next = within("next", client.i_am_free(Some("r1"))).await.unwrap();
    assert_eq!(next.data, json!(2));
}

/// A request id whose job was let go (every clone dropped unacknowledged, and a renewal
/// noticed) asks anew. It used to recurse without an await point until the stack overflowed.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_id_whose_job_was_let_go_asks_anew() {
    let redis = RedisServer::start();
    let manager = Manager::new("letgo", opts(&redis)).await.unwrap();
    let client = Client::new("letgo", opts(&redis)).await.unwrap();
    manager.push(json!(1)).await.unwrap();
    manager.push(json!(2)).await.unwrap();
    let first = within("first", client.i_am_free(Some("r"))).await.unwrap();
    assert_eq!(first.data, json!(1));
    drop(first);
    eventually("the renewer to let the job go", || async {
        client.held() == 0
    })
    .await;
    let next = within("a job for the same request id", client.i_am_free(Some("r")))
        .await
        .unwrap();
    assert_eq!(next.request_id.as_deref(), Some("r"));
    client.complete(&next, None).await.unwrap();
}

/// A completion that fails (Redis away) leaves the job held and renewed, not half
/// acknowledged: when its lease is then lost, the client forgets it. The token used to stay
/// marked as "being acknowledged" forever, so the lost job stayed held.
#[tokio::test(flavor = "multi_thread")]
async fn a_completion_that_failed_leaves_the_job_held_until_its_lease_is_lost() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let manager = Manager::new("ackfail", opts(&redis)).await.unwrap();
    let client = Client::new("ackfail", opts(&redis)).await.unwrap();
    manager.push(json!(1)).await.unwrap();
    let job = within("job", client.i_am_free(None)).await.unwrap();
    redis.kill();
    let err = within("the completion to fail", client.complete(&job, None))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(
        client.held(),
        1,
        "still held: the completion can be tried again"
    );
    redis.restart();
    // The lease goes (as if it had run out and the job gone to another worker): the next
    // renewal finds it stale.
    let _: i64 = query(
        &redis,
        &["ZREM", "sque:{ackfail}:leases", job.lease_token()],
    );
    eventually("the client to forget the lost job", || async {
        client.held() == 0
    })
    .await;
    let err = client.complete(&job, None).await.unwrap_err();
    assert!(matches!(err, Error::StaleLease { .. }), "{err}");
}

/// A client shared between tasks (as a host's slots share one) shuts down from any of them:
/// its open requests are withdrawn, its heartbeat dropped, and calls after it fail with
/// `Error::Closed`. (`shutdown` used to take the client by value, and `sque-host run` skipped
/// it, silently, whenever the client was still shared.)
#[tokio::test(flavor = "multi_thread")]
async fn a_shared_client_shuts_down_and_withdraws_its_requests() {
    let redis = RedisServer::start();
    let manager = Manager::new("shared", opts(&redis)).await.unwrap();
    let client = Arc::new(Client::new("shared", opts(&redis)).await.unwrap());
    let asking = {
        let client = client.clone();
        tokio::spawn(async move { client.i_am_free(None).await })
    };
    eventually("the request stored", || async {
        manager.stats().await.unwrap().requests == 1
    })
    .await;
    within("shutdown", client.shutdown()).await.unwrap();
    let asked = within("the pending request to end", asking).await.unwrap();
    assert!(matches!(asked, Err(Error::Closed)), "{asked:?}");
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.requests, stats.workers), (0, 0), "{stats:?}");
    assert!(matches!(client.i_am_free(None).await, Err(Error::Closed)));
    within("a second shutdown", client.shutdown())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_request_is_withdrawn() {
    let redis = RedisServer::start();
    let manager = Manager::new("drop", opts(&redis)).await.unwrap();
    let quitter = Client::new("drop", opts(&redis)).await.unwrap();
    {
        let ask = quitter.i_am_free(None);
        tokio::pin!(ask);
        // Poll once so the request is stored, then drop it.
        let stored = tokio::time::timeout(Duration::from_millis(300), &mut ask).await;
        assert!(stored.is_err(), "nothing to deliver yet");
        assert_eq!(manager.stats().await.unwrap().requests, 1);
    }
    eventually("request withdrawn", || async {
        manager.stats().await.unwrap().requests == 0
    })
    .await;
    manager.push(json!("for the next worker")).await.unwrap();
    let worker = Client::new("drop", opts(&redis)).await.unwrap();
    let job = within("job", worker.i_am_free(None)).await.unwrap();
    assert_eq!(
        (job.data.clone(), job.attempt),
        (json!("for the next worker"), 1)
    );
    // A job given back goes to the head of the queue, its attempt not counted.
    manager.push(json!("behind")).await.unwrap();
    worker.release(&job).await.unwrap();
    let again = within("released job", worker.i_am_free(None))
        .await
        .unwrap();
    assert_eq!((again.id, again.attempt), (job.id, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_retry_with_backoff_then_go_to_the_dead_list() {
    let redis = RedisServer::start();
    let manager = Manager::new("retry", opts(&redis).max_attempts(3))
        .await
        .unwrap();
    let client = Client::new("retry", opts(&redis)).await.unwrap();
    let id = manager.push(json!({"to": "x"})).await.unwrap();
    for attempt in 1..=3 {
        let job = within("attempt", client.i_am_free(None)).await.unwrap();
        assert_eq!((job.id.clone(), job.attempt), (id.clone(), attempt));
        let outcome = client
            .fail(&job, &format!("smtp timed out #{attempt}"))
            .await
            .unwrap();
        if attempt < 3 {
            assert!(
                matches!(outcome, FailOutcome::Retry { after } if after <= Duration::from_millis(100))
            );
        } else {
            assert_eq!(outcome, FailOutcome::Dead);
        }
    }
    let dead = manager.dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id.clone(), dead[0].attempts), (id.clone(), 3));
    assert_eq!(dead[0].error.as_deref(), Some("smtp timed out #3"));
    assert_eq!(dead[0].data, json!({"to": "x"}));
    let stats = manager.stats().await.unwrap();
    assert_eq!(
        (
            stats.retried,
            stats.dead_lettered,
            stats.dead,
            stats.waiting
        ),
        (2, 1, 1, 0)
    );

    // Retried from the dead list: attempts start again at 1.
    assert_eq!(manager.retry_dead(Some(&id)).await.unwrap(), 1);
    let job = within("retried", client.i_am_free(None)).await.unwrap();
    assert_eq!((job.id.clone(), job.attempt), (id.clone(), 1));
    client
        .fail_permanently(&job, "no such mailbox")
        .await
        .unwrap();
    assert_eq!(
        manager.last_error(&id).await.unwrap().as_deref(),
        Some("no such mailbox")
    );
    assert_eq!(manager.purge_dead(None).await.unwrap(), 1);
    assert!(manager.dead_jobs(10).await.unwrap().is_empty());
    let jobs: u64 = query(&redis, &["HLEN", "sque:{retry}:jobs"]);
    assert_eq!(jobs, 0, "purged jobs leave no data behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jobs_own_max_attempts_wins() {
    let redis = RedisServer::start();
    let manager = Manager::new("own", opts(&redis).max_attempts(5))
        .await
        .unwrap();
    let client = Client::new("own", opts(&redis)).await.unwrap();
    let options = JobOptions {
        max_attempts: Some(1),
        ..Default::default()
    };
    manager.push_with(json!("once"), options).await.unwrap();
    let job = within("job", client.i_am_free(None)).await.unwrap();
    assert_eq!(client.fail(&job, "boom").await.unwrap(), FailOutcome::Dead);
}

/// Redis's clock, in ms.
fn redis_now_ms(redis: &RedisServer) -> u64 {
    let (secs, micros): (u64, u64) = query(redis, &["TIME"]);
    secs * 1000 + micros / 1000
}

#[tokio::test(flavor = "multi_thread")]
async fn the_age_of_the_oldest_waiting_job_is_read_from_its_push() {
    let redis = RedisServer::start();
    let manager = Manager::new("aged", opts(&redis)).await.unwrap();
    let inspector = manager.inspector();
    let oldest = || async { inspector.stats().await.unwrap().oldest_waiting_age_ms };
    assert_eq!(oldest().await, None, "nothing waits");
    manager.push(json!("a")).await.unwrap();
    eventually("a waited a second", || async {
        oldest().await.is_some_and(|age| age >= 1000)
    })
    .await;
    let before_b = redis_now_ms(&redis);
    manager.push_many([json!("b"), json!("c")]).await.unwrap();
    assert!(oldest().await.unwrap() >= 1000, "a is still the oldest");
    // a goes: b, pushed since `before_b`, is the oldest now.
    let client = Client::new("aged", opts(&redis)).await.unwrap();
    let a = within("a", client.i_am_free(None)).await.unwrap();
    assert_eq!(a.data, json!("a"));
    let age_of_b = oldest().await.unwrap();
    let since_before_b = redis_now_ms(&redis) - before_b;
    assert!(
        age_of_b <= since_before_b,
        "b's age {age_of_b} ms, yet it was pushed within the last {since_before_b} ms"
    );
    // The reaper drops the record of a's push: b's call is the oldest one kept.
    let records = || query::<u64>(&redis, &["ZCARD", "sque:{aged}:pushed"]);
    eventually("the record of a's push dropped", || async {
        records() == 1
    })
    .await;
    assert!(oldest().await.unwrap() <= redis_now_ms(&redis) - before_b);
    client.complete(&a, None).await.unwrap();
    for want in ["b", "c"] {
        let job = within(want, client.i_am_free(None)).await.unwrap();
        assert_eq!(job.data, json!(want));
        client.complete(&job, None).await.unwrap();
    }
    assert_eq!(oldest().await, None, "nothing waits again");

    // A job back at the head after the record of its push was dropped: its age is unknown,
    // not guessed.
    let x = manager.push(json!("x")).await.unwrap();
    manager.push(json!("y")).await.unwrap();
    {
        let doomed = Client::new("aged", opts(&redis)).await.unwrap();
        let job = within("x", doomed.i_am_free(None)).await.unwrap();
        assert_eq!(job.id, x);
        // y is the head now; the reaper drops x's record, then x's lease runs out.
        eventually("x's record dropped", || async { records() == 1 }).await;
    }
    eventually("x back at the head", || async {
        inspector.stats().await.unwrap().expired == 1
    })
    .await;
    let stats = inspector.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.oldest_waiting_age_ms), (2, None));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dead_list_is_read_a_page_at_a_time() {
    let redis = RedisServer::start();
    let manager = Manager::new("paged", opts(&redis).max_attempts(1))
        .await
        .unwrap();
    let client = Client::new("paged", opts(&redis)).await.unwrap();
    for n in 0..5 {
        manager.push(json!({ "n": n })).await.unwrap();
        let job = within("a job", client.i_am_free(None)).await.unwrap();
        client.fail(&job, "no").await.unwrap();
    }
    let inspector = manager.inspector();
    let mut seen = Vec::new();
    for (offset, size) in [(0, 2), (2, 2), (4, 1), (5, 0)] {
        let page = inspector.dead_page(offset, 2).await.unwrap();
        assert_eq!((page.total, page.jobs.len()), (5, size), "page at {offset}");
        seen.extend(page.jobs.into_iter().map(|j| j.id.to_string()));
    }
    seen.sort();
    assert_eq!(seen, ["1", "2", "3", "4", "5"], "each dead job on one page");
    // Asked for by hand: no page, or one far past the end.
    for (offset, limit) in [(0, 0), (usize::MAX, 2), (3, usize::MAX)] {
        let page = inspector.dead_page(offset, limit).await.unwrap();
        assert_eq!(page.total, 5);
        assert_eq!(page.jobs.len(), if offset == 3 { 2 } else { 0 });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_follows_the_size_limit_as_it_changes() {
    let redis = RedisServer::start();
    let manager = Manager::new("sized", opts(&redis).max_job_bytes(100))
        .await
        .unwrap();
    let admin = sque::Admin::new("sized", opts(&redis)).await.unwrap();
    let middling = json!("x".repeat(150));
    // Raised after the producer read it: the producer reads it again rather than refuse.
    let raise = sque::SettingsChange {
        max_job_bytes: Some(1000),
        ..Default::default()
    };
    admin.configure(&raise).await.unwrap();
    manager.push(middling.clone()).await.unwrap();
    manager
        .push_many(vec![json!(1), middling.clone()])
        .await
        .unwrap();
    assert_eq!(manager.producer().max_job_bytes(), 1000);
    // Lowered: the script refuses with the queue's limit now, which the producer keeps.
    let lower = sque::SettingsChange {
        max_job_bytes: Some(100),
        ..Default::default()
    };
    admin.configure(&lower).await.unwrap();
    let err = manager.push(middling.clone()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::JobTooLarge {
                size: 152,
                limit: 100
            }
        ),
        "{err}"
    );
    assert_eq!(manager.producer().max_job_bytes(), 100);
    assert_eq!(manager.stats().await.unwrap().pushed, 3);
}

/// Two pushes at once, both refused by the limit the producer last read, both read it again
/// and both go through (on this test's one thread, each is polled to its read before either
/// reading comes back). Before, only the first to read it saw a change; the second was
/// refused by a limit that no longer held.
#[tokio::test]
async fn pushes_at_once_all_follow_a_raised_size_limit() {
    let redis = RedisServer::start();
    let manager = Manager::new("sized", opts(&redis).max_job_bytes(100))
        .await
        .unwrap();
    let admin = sque::Admin::new("sized", opts(&redis)).await.unwrap();
    let raise = sque::SettingsChange {
        max_job_bytes: Some(1000),
        ..Default::default()
    };
    admin.configure(&raise).await.unwrap();
    let middling = json!("x".repeat(150));
    let (a, b) = tokio::join!(manager.push(middling.clone()), manager.push(middling));
    a.unwrap();
    b.unwrap();
    assert_eq!(manager.stats().await.unwrap().pushed, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_job_is_found_by_its_id_wherever_it_is_in_the_list() {
    let redis = RedisServer::start();
    let manager = Manager::new("found", opts(&redis).max_attempts(1))
        .await
        .unwrap();
    let client = Client::new("found", opts(&redis)).await.unwrap();
    for n in 1..=5 {
        manager.push(json!({ "n": n })).await.unwrap();
        let job = within("a job", client.i_am_free(None)).await.unwrap();
        client.fail(&job, &format!("no {n}")).await.unwrap();
    }
    let inspector = manager.inspector();
    for n in 1..=5 {
        let job = inspector.dead_job(&n.to_string()).await.unwrap().unwrap();
        assert_eq!(
            (job.id.to_string(), &job.data),
            (n.to_string(), &json!({ "n": n }))
        );
        assert_eq!(job.error.as_deref(), Some(format!("no {n}").as_str()));
    }
    for absent in ["6", "0", "", "junk", "1|1|1"] {
        assert!(
            inspector.dead_job(absent).await.unwrap().is_none(),
            "{absent:?}"
        );
    }
    // A record that does not name its entry (as an older version wrote it) is searched for.
    let _: () = query(
        &redis,
        &["HSET", "sque:{found}:errors", "3", "an old message"],
    );
    let job = inspector.dead_job("3").await.unwrap().unwrap();
    assert_eq!(
        (job.id.to_string(), job.error.as_deref()),
        ("3".into(), Some("an old message"))
    );
    // An entry that is not a token is found under itself.
    let _: () = query(&redis, &["ZADD", "sque:{found}:dead_at", "1", "junk"]);
    let job = inspector.dead_job("junk").await.unwrap().unwrap();
    assert_eq!(job.id.to_string(), "junk");
    assert!(job.problem.is_some());
    // A job that is not dead is not found, even with an error record.
    let twice = JobOptions {
        max_attempts: Some(2),
        ..Default::default()
    };
    manager.push_with(json!("alive"), twice).await.unwrap();
    let job = within("a job", client.i_am_free(None)).await.unwrap();
    // "All" asked for as usize::MAX, which Redis would refuse as an index.
    assert_eq!(inspector.running(usize::MAX).await.unwrap().len(), 1);
    assert_eq!(inspector.workers(usize::MAX).await.unwrap().len(), 1);
    assert!(matches!(
        client.fail(&job, "later").await.unwrap(),
        FailOutcome::Retry { .. }
    ));
    let _: String = query(&redis, &["HGET", "sque:{found}:errors", job.id.as_str()]);
    // ... and without a search of the whole list (ZSCAN: a round trip for each thousand dead
    // jobs), since its record names a token that is not there. (Counted on one server: a
    // Cluster's nodes count their own.)
    let zscans = || -> String {
        if sque_testing::on_cluster() {
            return String::new();
        }
        let info: String = query(&redis, &["INFO", "commandstats"]);
        info.lines()
            .find(|l| l.starts_with("cmdstat_zscan:"))
            .unwrap_or("none")
            .split(',')
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let scanned = zscans();
    assert!(inspector
        .dead_job(&job.id.to_string())
        .await
        .unwrap()
        .is_none());
    assert_eq!(zscans(), scanned);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_holder_lets_go_comes_back_and_expiry_counts_as_an_attempt() {
    let redis = RedisServer::start();
    let manager = Manager::new("expiry", opts(&redis).max_attempts(2))
        .await
        .unwrap();
    let id = manager.push(json!("x")).await.unwrap();
    manager.push(json!("y")).await.unwrap();
    {
        // The worker "dies": its client is dropped with the job in hand.
        let doomed = Client::new("expiry", opts(&redis)).await.unwrap();
        let job = within("job", doomed.i_am_free(None)).await.unwrap();
        assert_eq!(job.attempt, 1);
    }
    eventually("the lease ran out", || async {
        manager.stats().await.unwrap().expired == 1
    })
    .await;
    let client = Client::new("expiry", opts(&redis)).await.unwrap();
    // The expired job returns to the head of the queue, before "y".
    let job = within("job back", client.i_am_free(None)).await.unwrap();
    assert_eq!((job.id.clone(), job.attempt), (id.clone(), 2));
    drop(job); // let go of every clone without acknowledging: the lease runs out again
    eventually("dead after two expiries", || async {
        manager.stats().await.unwrap().dead == 1
    })
    .await;
    let dead = manager.dead_jobs(1).await.unwrap();
    assert!(
        dead[0].error.as_deref().unwrap().contains("lease expired"),
        "{dead:?}"
    );
    let next = within("y", client.i_am_free(None)).await.unwrap();
    assert_eq!(next.data, json!("y"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_holder_is_refused_and_cannot_touch_the_new_lease() {
    let redis = RedisServer::start();
    let manager = Manager::new("fence", opts(&redis)).await.unwrap();
    manager.push(json!("x")).await.unwrap();
    let old = {
        let frozen = Client::new("fence", opts(&redis)).await.unwrap();
        within("job", frozen.i_am_free(None)).await.unwrap()
        // The client is gone (no renewals), but the job value survives, as in a frozen worker.
    };
    let fresh = Client::new("fence", opts(&redis)).await.unwrap();
    let new = within("job again", fresh.i_am_free(None)).await.unwrap();
    assert_eq!((new.id.clone(), new.attempt), (old.id.clone(), 2));
    let late = Client::new("fence", opts(&redis)).await.unwrap();
    for result in [
        late.complete(&old, Some(json!("late"))).await.map(|_| ()),
        late.fail(&old, "late").await.map(|_| ()),
        late.fail_permanently(&old, "late").await.map(|_| ()),
        late.release(&old).await,
    ] {
        assert!(
            matches!(result, Err(Error::StaleLease { attempt: 1, .. })),
            "{result:?}"
        );
    }
    let stats = manager.stats().await.unwrap();
    assert_eq!(
        (stats.in_flight, stats.dead, stats.delayed, stats.waiting),
        (1, 0, 0, 0)
    );
    assert_eq!(manager.result(&old.id).await.unwrap(), None);
    fresh.complete(&new, Some(json!("done"))).await.unwrap();
    assert_eq!(manager.result(&new.id).await.unwrap(), Some(json!("done")));
}

/// Completions travel in batches; a job completed twice at once (both in one batch) is
/// completed once, and the second call is told its lease is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_completed_twice_at_once_counts_once_and_the_second_is_refused() {
    let redis = RedisServer::start();
    let manager = Manager::new("twice", opts(&redis)).await.unwrap();
    manager.push(json!("x")).await.unwrap();
    let client = Client::new("twice", opts(&redis)).await.unwrap();
    let job = within("job", client.i_am_free(None)).await.unwrap();
    let (a, b) = within("both completions", async {
        tokio::join!(client.complete(&job, None), client.complete(&job, None))
    })
    .await;
    let refused = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(Error::StaleLease { attempt: 1, .. })))
        .count();
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    assert_eq!(refused, 1, "{a:?} {b:?}");
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.completed, stats.in_flight), (1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_are_renewed_while_a_slow_job_runs() {
    let redis = RedisServer::start();
    let manager = Manager::new("slow", opts(&redis)).await.unwrap();
    manager.push(json!("slow")).await.unwrap();
    let client = Client::new("slow", opts(&redis)).await.unwrap();
    let job = within("job", client.i_am_free(None)).await.unwrap();
    let other = Client::new("slow", opts(&redis)).await.unwrap();
    // Five leases long: without renewal the job would have gone to `other`.
    let stolen = tokio::time::timeout(Duration::from_secs(3), other.i_am_free(None)).await;
    assert!(stolen.is_err(), "the job was dispatched twice: {stolen:?}");
    client.complete(&job, None).await.unwrap();
    assert_eq!(manager.stats().await.unwrap().expired, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn results_are_kept_for_a_bounded_count_and_time() {
    let redis = RedisServer::start();
    let manager = Manager::new("results", opts(&redis).result_max(3))
        .await
        .unwrap();
    let client = Client::new("results", opts(&redis)).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(manager.push(json!(i)).await.unwrap());
        let job = within("job", client.i_am_free(None)).await.unwrap();
        client
            .complete(&job, Some(json!({ "sent": i })))
            .await
            .unwrap();
    }
    eventually("only 3 results kept", || async {
        manager.stats().await.unwrap().results == 3
    })
    .await;
    assert_eq!(manager.result(&ids[0]).await.unwrap(), None);
    assert_eq!(manager.result(&ids[1]).await.unwrap(), None);
    assert_eq!(
        manager.result(&ids[4]).await.unwrap(),
        Some(json!({"sent": 4}))
    );
    // The retention is the queue's: changed for the queue, not by opening it again.
    manager
        .admin()
        .configure(&sque::SettingsChange {
            result_ttl: Some(Duration::from_millis(200)),
            ..Default::default()
        })
        .await
        .unwrap();
    eventually("results dropped after their time", || async {
        manager.stats().await.unwrap().results == 0
    })
    .await;
    assert_eq!(manager.result(&ids[4]).await.unwrap(), None);
}

/// What a worker sends back is bounded by the queue's settings, whoever the worker is: a
/// result over `max_result_bytes` is not kept (the job is dead, `result_too_large`), and an
/// error text over `max_error_bytes` is cut, and says so.
#[tokio::test(flavor = "multi_thread")]
async fn outcomes_are_bounded_by_the_queues_limits() {
    let redis = RedisServer::start();
    let opts = opts(&redis).settings(sque::SettingsChange {
        max_result_bytes: Some(1000),
        max_error_bytes: Some(100),
        ..Default::default()
    });
    let manager = Manager::new("bounded", opts.clone()).await.unwrap();
    let client = Client::new("bounded", opts).await.unwrap();
    manager.push(json!(1)).await.unwrap();
    manager.push(json!(2)).await.unwrap();
    let job = within("job", client.i_am_free(None)).await.unwrap();
    let err = client
        .complete(&job, Some(json!("x".repeat(2000))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_result_bytes"), "{err}");
    let job = within("job", client.i_am_free(None)).await.unwrap();
    client
        .fail_permanently(&job, &"e".repeat(10_000))
        .await
        .unwrap();
    let dead = manager.inspector().dead_jobs(10).await.unwrap();
    assert_eq!(dead.len(), 2);
    let too_large = dead.iter().find(|d| d.data == json!(1)).unwrap();
    assert_eq!(too_large.code.as_deref(), Some("result_too_large"));
    let cut = dead.iter().find(|d| d.data == json!(2)).unwrap();
    let error = cut.error.as_deref().unwrap();
    assert!(
        error.len() <= 100 && error.ends_with("(cut: 10000 bytes in all)"),
        "{error}"
    );
    assert_eq!(
        manager.stats().await.unwrap().results,
        0,
        "no result was kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_managers_never_dispatch_a_job_twice() {
    let redis = RedisServer::start();
    let m1 = Manager::new("two", opts(&redis)).await.unwrap();
    let m2 = Manager::new("two", opts(&redis)).await.unwrap();
    let clients: Vec<Arc<Client>> = futures_join(8, || Client::new("two", opts(&redis))).await;
    let total = 4000;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in &clients {
        let (c, seen) = (c.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let job = c.i_am_free(None).await.unwrap();
                seen.lock().unwrap().push(job.data.as_i64().unwrap());
                c.complete(&job, None).await.unwrap();
            }
        }));
    }
    for chunk in (0..total).collect::<Vec<i64>>().chunks(100) {
        let m = if chunk[0] % 200 == 0 { &m1 } else { &m2 };
        m.push_many(chunk.iter().map(|i| json!(i))).await.unwrap();
    }
    eventually("all completed", || async {
        m1.stats().await.unwrap().completed == total as u64
    })
    .await;
    for t in tasks {
        t.abort();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), total as usize, "no duplicates");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), total as usize);
}

async fn futures_join<F, Fut>(n: usize, make: F) -> Vec<Arc<Client>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Client, Error>>,
{
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(make().await.unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_writes_nothing() {
    let redis = RedisServer::start();
    for name in [
        "",
        "has space",
        "a{b}",
        "star*",
        "q?",
        "[x]",
        "tab\tq",
        "nl\nq",
        &"x".repeat(201),
    ] {
        let err = Manager::new(name, opts(&redis))
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(err, Error::InvalidQueueName { .. }),
            "{name:?}: {err}"
        );
        assert!(err.is_bad_input());
        let err = Client::new(name, opts(&redis))
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(err, Error::InvalidQueueName { .. }),
            "{name:?}: {err}"
        );
    }
    let keys: u64 = query(&redis, &["DBSIZE"]);
    assert_eq!(keys, 0, "a bad queue name wrote nothing");

    let manager = Manager::new("limits", opts(&redis).max_job_bytes(100))
        .await
        .unwrap();
    let big = json!("x".repeat(200));
    let err = manager.push(big.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::JobTooLarge { limit: 100, .. }),
        "{err}"
    );
    let err = manager
        .push_many(vec![json!(1), big, json!(2)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::JobTooLarge { .. }), "{err}");
    let err = manager
        .push_with(
            json!(1),
            JobOptions {
                max_attempts: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    let stats = manager.stats().await.unwrap();
    assert_eq!((stats.waiting, stats.pushed), (0, 0), "nothing was pushed");

    let err = Manager::new("q", opts(&redis).lease(Duration::from_millis(1)))
        .await
        .err()
        .unwrap();
    assert!(err.is_bad_input(), "{err}");
    let err = Manager::new("q", opts(&redis).redis("nonsense://x"))
        .await
        .err()
        .unwrap();
    assert!(err.is_bad_input(), "{err}");
    let client = Client::new("limits", opts(&redis)).await.unwrap();
    let err = client.i_am_free(Some("")).await.unwrap_err();
    assert!(err.is_bad_input(), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_protocol_version_is_refused() {
    let redis = RedisServer::start();
    let _: () = query(&redis, &["HSET", "sque:{future}:meta", "protocol", "2.0"]);
    let err = Manager::new("future", opts(&redis)).await.err().unwrap();
    // The queue's name alone: not where in the script the refusal was raised.
    assert!(
        matches!(&err, Error::Protocol { found, queue, .. } if found == "2.0" && queue == "future"),
        "{err}"
    );
    let err = Client::new("future", opts(&redis)).await.err().unwrap();
    assert!(
        matches!(&err, Error::Protocol { found, queue, .. } if found == "2.0" && queue == "future"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_redis_or_a_wrong_password_fails_promptly() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.kill();
    let err = within(
        "unreachable",
        Manager::new("q", sque::Options::default().redis(url)),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");

    let locked = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let wrong = locked.url_with_auth(":nope");
    let err = Manager::new("q", sque::Options::default().redis(wrong))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Auth(_)), "{err}");
    assert!(
        !err.to_string().contains("nope"),
        "the password is not echoed: {err}"
    );
    let right = locked.url_with_auth(":s3cret");
    let manager = Manager::new("q", sque::Options::default().redis(right))
        .await
        .unwrap();
    manager.push(json!(1)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn job_ids_display_as_strings() {
    let id = JobId::from("17");
    assert_eq!(id.to_string(), "17");
    assert_eq!(
        serde_json::to_value(&id).unwrap(),
        Value::String("17".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_least_privilege_acl_user_works_and_one_without_rights_is_refused() {
    let redis = RedisServer::start();
    // The ACL of docs/PROTOCOL.md, word for word.
    let doc = include_str!("../../docs/PROTOCOL.md");
    let acl = doc
        .split("```")
        .find(|block| block.contains("ACL SETUSER sque-host"))
        .expect("the ACL in docs/PROTOCOL.md")
        .replace("\\\n", " ")
        .replace(">PASSWORD", ">s3cret");
    let words: Vec<&str> = acl.split_whitespace().collect();
    let _: () = query(&redis, &words);
    let opts = |user: &str| opts(&redis).redis(redis.url_with_auth(&format!("{user}:s3cret")));
    let manager = Manager::new("acl", opts("sque-host")).await.unwrap();
    let client = Client::new("acl", opts("sque-host")).await.unwrap();
    manager
        .push(json!({"email": "test1@mail.org"}))
        .await
        .unwrap();
    let job = within("job", client.i_am_free(None)).await.unwrap();
    client.fail(&job, "once more").await.unwrap();
    let job = within("retried job", client.i_am_free(None)).await.unwrap();
    assert!(client.progress(&job, 40, Some("halfway")).await.unwrap());
    client.complete(&job, Some(json!("sent"))).await.unwrap();
    assert!(
        !client.progress(&job, 50, None).await.unwrap(),
        "not after its lease"
    );
    assert_eq!(manager.stats().await.unwrap().completed, 1);
    assert!(manager.dead_jobs(10).await.unwrap().is_empty());

    // A cancel, and a completion with a follow-up moved to another queue, with the same rights.
    let cancelled = manager.push(json!("cancel me")).await.unwrap();
    let admin = sque::Admin::new("acl", opts("sque-host")).await.unwrap();
    assert_eq!(
        admin.cancel(&cancelled).await.unwrap(),
        sque::Cancelled::Queued
    );
    let parent = manager.push(json!("parent")).await.unwrap();
    let job = within("the parent", client.i_am_free(None)).await.unwrap();
    assert_eq!(job.id, parent, "the cancelled job is skipped");
    let follow_up = sque::FollowUp::new("acl-kids", &json!("kid")).unwrap();
    client
        .complete_with_follow_ups(&job, None, &[follow_up])
        .await
        .unwrap();
    let kids = Manager::new("acl-kids", opts("sque-host").dispatch(false))
        .await
        .unwrap();
    eventually("the follow-up moved", || async {
        kids.stats().await.unwrap().pushed == 1
    })
    .await;

    // A user who may not touch the sque keys.
    let _: () = query(
        &redis,
        &[
            "ACL", "SETUSER", "nosy", "on", ">s3cret", "~other:*", "+@all",
        ],
    );
    let err = Manager::new("acl", opts("nosy"))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Permission(_)), "{err}");
}

/// The inspector only reads: it works for a user with the read-only ACL of
/// docs/PROTOCOL.md (read-only keys, read commands only), which can change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_inspector_works_with_a_read_only_acl_user() {
    let redis = RedisServer::start();
    let doc = include_str!("../../docs/PROTOCOL.md");
    let acl = doc
        .split("```")
        .find(|block| block.contains("ACL SETUSER sque-reader"))
        .expect("the read-only ACL in docs/PROTOCOL.md")
        .replace("\\\n", " ")
        .replace(">PASSWORD", ">s3cret");
    let words: Vec<&str> = acl.split_whitespace().collect();
    let _: () = query(&redis, &words);
    let manager = Manager::new("ro", opts(&redis)).await.unwrap();
    let id = manager.push(json!({"n": 1})).await.unwrap();
    let reader = opts(&redis).redis(redis.url_with_auth("sque-reader:s3cret"));
    let inspector = Inspector::new("ro", reader.clone()).await.unwrap();
    let stats = inspector.stats().await.unwrap();
    assert_eq!(stats.waiting, 1);
    assert!(stats.oldest_waiting_age_ms.is_some(), "{stats:?}");
    // A reader made by the ACL of an earlier release, without +time: its counts still read.
    let older = acl
        .replace("sque-reader", "sque-older")
        .replace("+time", "");
    let words: Vec<&str> = older.split_whitespace().collect();
    let _: () = query(&redis, &words);
    let older = opts(&redis).redis(redis.url_with_auth("sque-older:s3cret"));
    let stats = Inspector::new("ro", older)
        .await
        .unwrap()
        .stats()
        .await
        .unwrap();
    assert_eq!(stats.waiting, 1);
    assert!(
        stats.oldest_waiting_age_ms.is_some(),
        "this machine's clock then"
    );
    let job = inspector.job(&id).await.unwrap().expect("the job");
    assert_eq!(job.data, Some(json!({"n": 1})));
    assert_eq!(job.state, sque::JobState::Waiting);
    assert!(inspector.dead_jobs(10).await.unwrap().is_empty());
    assert!(inspector.schedules().await.unwrap().is_empty());
    // A worker holding the job: who it is, and that it holds the job, once it has renewed.
    let client = Client::new("ro", opts(&redis)).await.unwrap();
    let before = redis_now_ms(&redis);
    let held = within("the job", client.i_am_free(None)).await.unwrap();
    let taken = redis_now_ms(&redis);
    eventually("the holder named at its renewal", || async {
        let running = inspector.running(10).await.unwrap();
        running.len() == 1 && running[0].holder.as_deref() == Some(client.worker_id())
    })
    .await;
    // Since when it holds it: when its lease began, kept through later renewals.
    let started = inspector.running(10).await.unwrap()[0].started;
    assert!(
        started.is_some_and(|at| (before..=taken).contains(&at)),
        "{started:?} not within {before}..={taken}"
    );
    let renewals = || {
        query::<i64>(
            &redis,
            &["PTTL", &format!("sque:{{ro}}:held:{}", client.worker_id())],
        )
    };
    let first = renewals();
    eventually("a later renewal", || async { renewals() > first }).await;
    assert_eq!(inspector.running(10).await.unwrap()[0].started, started);
    let workers = inspector.workers(10).await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].holds, vec![held.id.clone()]);
    assert_eq!(workers[0].pid, Some(u64::from(std::process::id())));
    assert!(workers[0].host.as_deref().is_some_and(|h| !h.is_empty()));
    assert_eq!(
        sque::queue_names(&reader).await.unwrap(),
        vec!["ro".to_string()]
    );
    let err = Manager::new("ro", reader.clone())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Permission(_)), "{err}");
    let err = Inspector::new("nope", reader).await.err().expect("refused");
    assert!(matches!(err, Error::NoSuchQueue(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_with_a_private_ca_works_and_plain_text_to_it_fails() {
    let redis = RedisServer::start_tls();
    let ca = redis.tls_ca.clone().unwrap();
    let tls = opts(&redis).tls_ca(&ca);
    let manager = Manager::new("tls", tls.clone()).await.unwrap();
    let client = Client::new("tls", tls.clone()).await.unwrap();
    manager
        .push(json!({"email": "test1@mail.org"}))
        .await
        .unwrap();
    let job = within("job over TLS", client.i_am_free(None))
        .await
        .unwrap();
    client.complete(&job, Some(json!("sent"))).await.unwrap();
    assert_eq!(manager.result(&job.id).await.unwrap(), Some(json!("sent")));

    // Without the CA the server's certificate is not trusted; plain text is not TLS.
    let untrusted = Manager::new("tls", opts(&redis))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(untrusted, Error::Unavailable(_) | Error::Redis(_)),
        "{untrusted}"
    );
    let plain = opts(&redis).redis(format!("redis://127.0.0.1:{}", redis.port));
    let err = within("plain text to a TLS port", Manager::new("tls", plain))
        .await
        .err()
        .unwrap();
    assert!(!err.is_bad_input(), "{err}");
    let missing = Manager::new("tls", tls.tls_ca("/nonexistent/ca.pem"))
        .await
        .err()
        .unwrap();
    assert!(missing.is_bad_input(), "{missing}");
}

/// A cap on the jobs in flight (`max_in_flight`): five requests stored, five jobs pushed, and
/// the push hands out two, the cap; a sixth request at the cap wakes no manager; each
/// completion then lets one more out (a manager serves the requests stored meanwhile), in
/// FIFO order, and the queue requires the feature `cap` (a 1.1 host refuses it instead of
/// ignoring the cap).
#[tokio::test(flavor = "multi_thread")]
async fn a_capped_queue_hands_out_no_more_than_its_cap() {
    let redis = RedisServer::start();
    let producer = Manager::new("capped", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let admin = sque::Admin::new("capped", opts(&redis)).await.unwrap();
    let settings = admin
        .configure(&sque::SettingsChange {
            max_in_flight: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(settings.max_in_flight, 2);
    let requires: Option<String> = query(&redis, &["HGET", "sque:{capped}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("cap"));

    let (client, mut asked, mut ids) = five_asked_then_pushed(&redis, &producer, "capped").await;
    let s = producer.stats().await.unwrap();
    assert_eq!(
        (s.in_flight, s.requests, s.waiting),
        (2, 3, 3),
        "the push served two"
    );
    // At the cap, a further request joins those stored without waking a manager: it could
    // hand out nothing.
    let node = redis.node_of("sque:{capped}:meta");
    let wakes = redis.command_calls(node, "spublish");
    let sixth = client.clone();
    asked.spawn(async move { sixth.i_am_free(None).await.unwrap() });
    eventually("a sixth request stored", || async {
        producer.stats().await.unwrap().requests == 4
    })
    .await;
    assert_eq!(
        redis.command_calls(node, "spublish"),
        wakes,
        "a wake at the cap"
    );
    ids.push(producer.push(json!(5)).await.unwrap());

    let _manager = Manager::new("capped", opts(&redis)).await.unwrap();
    let mut seen = Vec::new();
    while let Some(job) = within("the next job", asked.join_next()).await {
        let job = job.unwrap();
        let leased: u64 = query(&redis, &["ZCARD", "sque:{capped}:leases"]);
        assert!(leased <= 2, "{leased} leased");
        seen.push(job.id.clone());
        client.complete(&job, None).await.unwrap();
    }
    seen.sort_by_key(|id| id.as_str().parse::<u64>().unwrap());
    assert_eq!(seen, ids);
    let s = producer.stats().await.unwrap();
    assert_eq!((s.completed, s.in_flight, s.requests), (6, 0, 0));
}

/// A rate limit (`rate_count` per `rate_period`, bursts of `rate_burst`): five requests stored,
/// five jobs pushed, and the push hands out three, the burst of a limit of 3 an hour; the
/// others wait, in order, none failed, until the limit is made faster. The queue requires the
/// feature `rate` (a 1.1 host refuses it instead of ignoring the limit).
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_queue_hands_out_no_more_than_its_rate_allows() {
    let redis = RedisServer::start();
    let producer = Manager::new("limited", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let admin = sque::Admin::new("limited", opts(&redis)).await.unwrap();
    let limit = |count: u64| sque::SettingsChange {
        rate_count: Some(count),
        rate_period: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let settings = admin.configure(&limit(3)).await.unwrap();
    assert_eq!((settings.rate_count, settings.rate_burst), (3, 0));
    let requires: Option<String> = query(&redis, &["HGET", "sque:{limited}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("rate"));

    let (client, mut asked, ids) = five_asked_then_pushed(&redis, &producer, "limited").await;
    let s = producer.stats().await.unwrap();
    assert_eq!(
        (s.in_flight, s.requests, s.waiting),
        (3, 2, 2),
        "the push served three"
    );
    let mut first = Vec::new();
    for _ in 0..3 {
        let job = within("a job", asked.join_next()).await.unwrap().unwrap();
        first.push(job.id.clone());
        client.complete(&job, None).await.unwrap();
    }
    first.sort_by_key(|id| id.as_str().parse::<u64>().unwrap());
    assert_eq!(first, ids[..3], "the oldest three went first");
    let s = producer.stats().await.unwrap();
    assert_eq!((s.in_flight, s.requests, s.waiting), (0, 2, 2), "held back");
    // Made faster, 100 a second: the slower limit's schedule (the next job an hour on) gives
    // way, and a manager serves the two.
    admin
        .configure(&sque::SettingsChange {
            rate_count: Some(100),
            rate_period: Some(Duration::from_secs(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    let _manager = Manager::new("limited", opts(&redis)).await.unwrap();
    let mut rest = Vec::new();
    while let Some(job) = within("the jobs held back", asked.join_next()).await {
        let job = job.unwrap();
        rest.push(job.id.clone());
        client.complete(&job, None).await.unwrap();
    }
    rest.sort_by_key(|id| id.as_str().parse::<u64>().unwrap());
    assert_eq!(rest, ids[3..]);
    let s = producer.stats().await.unwrap();
    assert_eq!((s.completed, s.dead, s.retried), (5, 0, 0));
}

/// A 1.2 program that opens a queue made before limits existed (its meta has neither
/// `max_in_flight` nor `rate_count`) with limits in its options sets them, and the queue
/// requires their features, as `queue config` would make it: no host that ignores them serves it.
#[tokio::test(flavor = "multi_thread")]
async fn a_queue_opened_with_limits_requires_their_features() {
    let redis = RedisServer::start();
    let old = Manager::new("older", opts(&redis).dispatch(false))
        .await
        .unwrap();
    old.shutdown().await.unwrap();
    let _: () = query(
        &redis,
        &[
            "HDEL",
            "sque:{older}:meta",
            "max_in_flight",
            "rate_count",
            "requires",
        ],
    );
    let limits = sque::SettingsChange {
        max_in_flight: Some(4),
        rate_count: Some(50),
        ..Default::default()
    };
    let _opened = Manager::new("older", opts(&redis).dispatch(false).settings(limits))
        .await
        .unwrap();
    let meta: Vec<Option<String>> = query(
        &redis,
        &[
            "HMGET",
            "sque:{older}:meta",
            "max_in_flight",
            "rate_count",
            "requires",
        ],
    );
    assert_eq!(
        meta,
        [Some("4".into()), Some("50".into()), Some("cap,rate".into())]
    );
}

/// A client of `queue` asks for five jobs at once; once the five requests are stored,
/// `producer` pushes five jobs (0 to 4) in one call. Returns the client, its five requests
/// (each resolves to a job), and the jobs' ids.
async fn five_asked_then_pushed(
    redis: &RedisServer,
    producer: &Manager,
    queue: &str,
) -> (Arc<Client>, tokio::task::JoinSet<sque::Job>, Vec<JobId>) {
    let client = Arc::new(Client::new(queue, opts(redis)).await.unwrap());
    let mut asked = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let client = client.clone();
        asked.spawn(async move { client.i_am_free(None).await.unwrap() });
    }
    eventually("five requests stored", || async {
        producer.stats().await.unwrap().requests == 5
    })
    .await;
    let ids = producer.push_many((0..5).map(|i| json!(i))).await.unwrap();
    (client, asked, ids)
}

/// The data of the next job a client is handed, which it completes.
async fn next_data(client: &Client) -> Value {
    let job = within("the next job", client.i_am_free(None))
        .await
        .unwrap();
    client.complete(&job, None).await.unwrap();
    job.data
}

/// Priorities (`JobOptions::priority`, 0 to 9): jobs of a higher priority are handed out
/// first, and within one priority in the order they were pushed, whatever the order of the
/// pushes; `stats` counts every level. The queue requires the feature `priority` (a host
/// that would hand the jobs out in another order refuses it).
#[tokio::test(flavor = "multi_thread")]
async fn higher_priorities_go_first_and_each_priority_keeps_its_order() {
    let redis = RedisServer::start();
    let producer = Manager::new("ranked", opts(&redis).dispatch(false))
        .await
        .unwrap();
    let at = |level: u8| JobOptions {
        priority: Some(level),
        ..Default::default()
    };
    // Interleaved: (level, number within the level), one by one and in bulk.
    let levels = [0u8, 5, 9, 7, 5, 0, 9, 9, 7, 0, 5, 3];
    let mut pushed = Vec::new();
    let mut ids = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        ids.push(
            producer
                .push_with(json!([level, i]), at(*level))
                .await
                .unwrap(),
        );
        pushed.push((*level, i));
    }
    // `job show` says each job's priority.
    let inspector = Inspector::new("ranked", opts(&redis)).await.unwrap();
    for (id, level) in ids.iter().zip(levels) {
        let job = inspector.job(id).await.unwrap().unwrap();
        assert_eq!(job.priority, level, "{job:?}");
    }
    let bulk: Vec<_> = (0..6u8)
        .map(|i| {
            let level = [9u8, 0, 5][i as usize % 3];
            let i = levels.len() + i as usize;
            pushed.push((level, i));
            producer.encode(&json!([level, i]), &at(level)).unwrap()
        })
        .collect();
    producer.push_encoded(&bulk).await.unwrap();
    assert!(producer
        .encode(&json!(0), &at(10))
        .unwrap_err()
        .to_string()
        .contains("0 (low) to 9 (high)"));
    let requires: Option<String> = query(&redis, &["HGET", "sque:{ranked}:meta", "requires"]);
    assert_eq!(requires.as_deref(), Some("priority"));
    assert_eq!(producer.stats().await.unwrap().waiting, pushed.len() as u64);

    let client = Client::new("ranked", opts(&redis)).await.unwrap();
    let mut served = Vec::new();
    for _ in 0..pushed.len() {
        let data = next_data(&client).await;
        served.push((
            data[0].as_u64().unwrap() as u8,
            data[1].as_u64().unwrap() as usize,
        ));
    }
    pushed.sort_by_key(|(level, i)| (std::cmp::Reverse(*level), *i));
    assert_eq!(served, pushed);
    let s = producer.stats().await.unwrap();
    assert_eq!((s.waiting, s.completed), (0, pushed.len() as u64));
    let levels: u64 = query(&redis, &["HLEN", "sque:{ranked}:priority"]);
    assert_eq!(levels, 0, "a completed job's level is forgotten");
}

/// A job that comes back to the queue comes back at its own priority: given back unstarted
/// (to the head of its level), retried after its backoff and promoted when due (to the tail
/// of its level), retried from the dead list.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_comes_back_keeps_its_priority() {
    let redis = RedisServer::start();
    // A manager: it promotes and brings retries back.
    let producer = Manager::new("back", opts(&redis).backoff(Duration::from_millis(1)))
        .await
        .unwrap();
    let client = Client::new("back", opts(&redis)).await.unwrap();
    let at = |level: u8| JobOptions {
        priority: Some(level),
        ..Default::default()
    };
    let push = |data: &'static str, options: JobOptions| {
        let producer = &producer;
        async move { producer.push_with(json!(data), options).await.unwrap() }
    };

    // Given back: to the head of the high list, not of the normal one.
    push("h1", at(9)).await;
    push("h2", at(9)).await;
    push("n1", at(5)).await;
    let job = within("h1", client.i_am_free(None)).await.unwrap();
    assert_eq!(job.data, json!("h1"));
    client.release(&job).await.unwrap();
    for want in ["h1", "h2", "n1"] {
        assert_eq!(next_data(&client).await, json!(want));
    }

    // Retried after its backoff: to the tail of the low list (after l2), not of the normal
    // one (after n2, before l2).
    push("l1", at(0)).await;
    let job = within("l1", client.i_am_free(None)).await.unwrap();
    push("n2", at(5)).await;
    push("l2", at(0)).await;
    client.fail(&job, "again").await.unwrap();
    eventually("the retry back in the queue", || async {
        let s = producer.stats().await.unwrap();
        s.delayed == 0 && s.waiting == 3
    })
    .await;
    for want in ["n2", "l2", "l1"] {
        assert_eq!(next_data(&client).await, json!(want));
    }

    // Promoted when due: to the high list, ahead of a normal job pushed before it.
    push("n3", at(5)).await;
    push(
        "h3",
        JobOptions {
            delay: Some(Duration::from_millis(1)),
            ..at(9)
        },
    )
    .await;
    eventually("the delayed job promoted", || async {
        producer.stats().await.unwrap().scheduled == 0
    })
    .await;
    for want in ["h3", "n3"] {
        assert_eq!(next_data(&client).await, json!(want));
    }

    // Retried from the dead list: to the high list, ahead of a normal job.
    let id = push(
        "h4",
        JobOptions {
            max_attempts: Some(1),
            ..at(9)
        },
    )
    .await;
    let job = within("h4", client.i_am_free(None)).await.unwrap();
    client.fail(&job, "dies").await.unwrap();
    push("n4", at(5)).await;
    assert_eq!(producer.retry_dead(Some(&id)).await.unwrap(), 1);
    for want in ["h4", "n4"] {
        assert_eq!(next_data(&client).await, json!(want));
    }
}

/// Each priority keeps its own push records: a low job that waits while high ones come and go
/// keeps only its own record, not those of every push since (the reaper drops each level's
/// records before its own head's); the oldest waiting job's age is still known, and every
/// job's wait is read from its own level's records.
#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_low_job_does_not_keep_the_records_of_every_push_since() {
    let redis = RedisServer::start();
    // A manager: its reaper drops the records no waiting job needs.
    let producer = Manager::new("starved", opts(&redis)).await.unwrap();
    let at = |level: u8| JobOptions {
        priority: Some(level),
        ..Default::default()
    };
    producer.push_with(json!("low"), at(0)).await.unwrap();
    let client = Client::new("starved", opts(&redis).measure_waits(true))
        .await
        .unwrap();
    // Each job's wait is read from its own level's records.
    let next = || async {
        let job = within("the next job", client.i_am_free(None))
            .await
            .unwrap();
        assert!(job.waited().is_some(), "{job:?}");
        client.complete(&job, None).await.unwrap();
        job.data
    };
    for i in 0..5 {
        producer.push_with(json!(i), at(9)).await.unwrap();
        assert_eq!(next().await, json!(i));
    }
    let records = || {
        ["pushed", "pushed:0", "pushed:9"]
            .iter()
            .map(|key| query::<u64>(&redis, &["ZCARD", &format!("sque:{{starved}}:{key}")]))
            .sum::<u64>()
    };
    // The low job's, and the newest of the high level's (kept while its list is empty).
    eventually("the records no waiting job needs dropped", || async {
        records() == 2
    })
    .await;
    let s = producer.stats().await.unwrap();
    assert_eq!(s.waiting, 1);
    assert!(s.oldest_waiting_age_ms.is_some(), "{s:?}");
    assert_eq!(next().await, json!("low"));
}

/// `fail.lua` refuses a code that is not a word, or is `poison`, from any client (the Rust and
/// Node clients check it first; a client of another language may not): nothing is written and
/// the lease is still held. A dead job of code `poison` is never retried.
#[tokio::test]
async fn the_fail_script_refuses_a_code_that_is_not_a_word() {
    let redis = RedisServer::start();
    let manager = Manager::new("coded", opts(&redis)).await.unwrap();
    let client = Client::new("coded", opts(&redis)).await.unwrap();
    manager.push(json!(1)).await.unwrap();
    let job = within("a job", client.i_am_free(None)).await.unwrap();
    let fail = sque::script_bundle()
        .into_iter()
        .find(|(name, _)| *name == "fail")
        .unwrap()
        .1;
    let keys = [
        "meta", "leases", "delayed", "dead_at", "errors", "stats", "jobs",
    ]
    .map(|k| format!("sque:{{coded}}:{k}"));
    let mut con = redis.con();
    for code in ["poison", "Some Code", "", &"x".repeat(33)] {
        let refused: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(&fail)
            .arg(keys.len())
            .arg(&keys)
            .arg(sque::PROTOCOL_VERSION)
            .arg(job.lease_token())
            .arg(code)
            .arg("no")
            .arg("1")
            .query(&mut *con);
        let e = refused.unwrap_err();
        assert!(
            e.to_string().contains("a failure's code is a word"),
            "{code:?}: {e}"
        );
    }
    // Still held: the job's own failure goes through.
    drop(con);
    client
        .fail_permanently(&job, "no such address")
        .await
        .unwrap();
    assert_eq!(manager.stats().await.unwrap().dead, 1);
}
