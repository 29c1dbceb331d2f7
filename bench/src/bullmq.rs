//! The BullMQ side: `bench/peers/bullmq/bench.mjs`, one case per Node process.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::cases::{Case, Kind, Measurement};
use crate::redis_server::RedisServer;

fn dir() -> PathBuf {
    crate::workspace()
        .join("bench")
        .join("peers")
        .join("bullmq")
}

/// Installs the pinned BullMQ (package-lock.json) unless it is there.
pub fn install() -> anyhow::Result<()> {
    if dir().join("node_modules").join("bullmq").exists() {
        return Ok(());
    }
    eprintln!("installing BullMQ with npm ci");
    let ok = Command::new("npm")
        .current_dir(dir())
        .args(["ci", "--no-audit", "--no-fund"])
        .status()
        .context(
            "running npm (Node.js 20 and npm are needed for the BullMQ side; --no-bullmq skips it)",
        )?;
    if !ok.success() {
        bail!("npm ci failed");
    }
    Ok(())
}

pub fn run(case: &Case, redis: &RedisServer) -> anyhow::Result<Measurement> {
    let kind = match case.kind {
        Kind::BulkPushCli | Kind::BulkPush => "bulk-push",
        Kind::SinglePush => "single-push",
        Kind::Process => "process",
        Kind::Latency => "latency",
        Kind::BytesPerJob => "bytes-per-job",
        Kind::DeadRetryAll | Kind::DeadPurgeAll => {
            bail!("{}: a sque-only case", case.name)
        }
    };
    let out = Command::new("node")
        .current_dir(dir())
        .args(["bench.mjs", kind])
        .arg(redis.port.to_string())
        .arg(case.jobs.to_string())
        .arg(case.concurrency.max(1).to_string())
        .output()?;
    if !out.status.success() {
        bail!(
            "bench.mjs {kind} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    Ok(Measurement {
        jobs_per_sec: f("seconds").map(|s| f("jobs").unwrap_or(0.0) / s),
        p50_ms: f("p50_ms"),
        p90_ms: f("p90_ms"),
        p99_ms: f("p99_ms"),
        max_ms: f("max_ms"),
        rss_bytes: f("rss_bytes"),
        bytes_per_job: f("bytes_per_job"),
        ..Default::default()
    })
}
