//! The original design's example, end to end: a manager pushes three emails, `client1`,
//! `client2` and `client1` again ask in that order and get test1, test2 and test3.
//!
//! Uses `SQUE_REDIS_URL` when set; otherwise starts a private `redis-server` on a free port
//! and removes it at exit (never the shared one on 6379).
//!
//! ```sh
//! cargo run -p sque-host --example original
//! ```

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (url, _private) = match std::env::var("SQUE_REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let redis = PrivateRedis::start()?;
            (redis.url.clone(), Some(redis))
        }
    };
    println!("Redis: {}", sque::queue::redact_url(&url));
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

/// A `redis-server` of our own on a free port, killed when dropped.
struct PrivateRedis {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start() -> anyhow::Result<PrivateRedis> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start redis-server ({e}): install it (apt-get install redis-server) or set SQUE_REDIS_URL"))?;
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ping = redis::Client::open(url.as_str())?
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ping.is_ok() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("started a private redis-server on port {port}");
        Ok(PrivateRedis {
            url,
            child,
            _dir: dir,
        })
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
