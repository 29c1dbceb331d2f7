//! The original design's example, end to end: a manager pushes three emails, `client1`,
//! `client2` and `client1` again ask in that order and get test1, test2 and test3.
//!
//! Uses `SQUE_REDIS_URL` when set; otherwise starts a private `redis-server` on a free port
//! and removes it at exit (never the shared one on 6379).
//!
//! ```sh
//! cargo run -p sque --example original
//! ```

use serde_json::json;
use sque_testing::RedisServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, _private) = match std::env::var("SQUE_REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let redis = RedisServer::start_single_with(&[]);
            println!("started a private redis-server on port {}", redis.port);
            (redis.url(), Some(redis))
        }
    };
    println!("Redis: {}", sque::redact_url(&url));
    let opts = sque::Options::default().redis(url);
    let queue = format!("queName-{}", std::process::id());

    let manager = sque::Manager::new(&queue, opts.clone()).await?;
    let client1 = sque::Client::new(&queue, opts.clone()).await?;
    let client2 = sque::Client::new(&queue, opts.clone()).await?;

    for email in ["test1@mail.org", "test2@mail.org", "test3@mail.org"] {
        let id = manager.push(json!({ "email": email })).await?;
        println!("pushed job {id}: {email}");
    }
    let asks = [
        (&client1, "client1", "test1@mail.org"),
        (&client2, "client2", "test2@mail.org"),
        (&client1, "client1", "test3@mail.org"),
    ];
    let mut all_right = true;
    for (client, name, expected) in asks {
        let job = client.i_am_free(None).await?;
        let got = job.data["email"].as_str().unwrap_or_default();
        println!(
            "{name} got job {} (attempt {}): {got} -> {}",
            job.id,
            job.attempt,
            got == expected
        );
        all_right &= got == expected;
        client.complete(&job, None).await?;
    }
    let stats = manager.stats().await?;
    println!(
        "queue {}: {} waiting, {} completed",
        stats.queue, stats.waiting, stats.completed
    );
    client1.shutdown().await?;
    client2.shutdown().await?;
    manager.shutdown().await?;
    anyhow::ensure!(all_right, "jobs were not handed out in the original order");
    Ok(())
}
