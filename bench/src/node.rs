//! Node.js programs in the benchmark: BullMQ's side (`bench/peers/bullmq/`) and sque's npm
//! package (`bench/node/`). Each is a `bench.mjs` that runs one case per process and prints
//! one JSON line of results.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::cases::{Case, Measurement};
use crate::redis_server::RedisServer;

/// Installs a Node package's dependencies from its lock file (`npm ci`) unless `marker`, a
/// path under its `node_modules`, is there already.
pub fn install(dir: &Path, marker: &str, what: &str) -> anyhow::Result<()> {
    if dir.join("node_modules").join(marker).exists() {
        return Ok(());
    }
    eprintln!("installing {what} with npm ci in {}", dir.display());
    let ok = Command::new("npm")
        .current_dir(dir)
        .args(["ci", "--no-audit", "--no-fund"])
        .status()
        .context("running npm (Node.js 20 and npm are needed for the Node cases and BullMQ; --no-bullmq skips BullMQ)")?;
    if !ok.success() {
        bail!("npm ci failed in {}", dir.display());
    }
    Ok(())
}

/// Runs `node bench.mjs <kind> <port> <jobs> <concurrency>` in `dir` and reads its figures.
pub fn run(
    dir: &Path,
    kind: &str,
    case: &Case,
    redis: &RedisServer,
) -> anyhow::Result<Measurement> {
    let out = Command::new("node")
        .current_dir(dir)
        .args(["bench.mjs", kind])
        .arg(redis.port.to_string())
        .arg(case.jobs.to_string())
        .arg(case.concurrency.max(1).to_string())
        .output()?;
    if !out.status.success() {
        bail!(
            "{}/bench.mjs {kind} failed: {}",
            dir.display(),
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
