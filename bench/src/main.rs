//! The benchmark harness: every case for sque and for BullMQ, alternating, three runs each,
//! medians and the ratio sque/BullMQ, written to `bench/results/` as JSON and an SVG chart.
//!
//! ```sh
//! cargo run --release -p sque-bench            # the full comparison (about 10 minutes)
//! cargo run --release -p sque-bench -- --quick # a smaller one (about 3 minutes)
//! ```

mod bullmq;
mod cases;
mod node;
mod node_side;
mod redis_server;
mod report;
mod sque_side;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use clap::Parser;

use crate::cases::{Case, Measurement};

#[derive(Parser)]
#[command(about = "sque against BullMQ, side by side, on a private redis-server")]
struct Args {
    /// Smaller job counts: a check that everything runs, in about 3 minutes.
    #[arg(long)]
    quick: bool,
    /// Runs of each case per system (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only the cases whose name contains this; `=NAME`: only the case of that exact name
    /// (`--only "=process c=50"` leaves out "process c=50, 10 queues in one host").
    #[arg(long)]
    only: Option<String>,
    /// Skip BullMQ (sque's figures alone).
    #[arg(long)]
    no_bullmq: bool,
    /// Measure this sque-host binary instead of building one: for a before-and-after
    /// comparison, build the earlier commit's, copy it aside, and run both in turn.
    #[arg(long, value_name = "PATH")]
    host: Option<PathBuf>,
}

/// The sque-host binary the cases run: `--host`, or the one `build` makes.
static HOST_BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

pub fn host_binary() -> &'static Path {
    HOST_BINARY.get_or_init(|| target_dir().join("release").join("sque-host"))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.host {
        Some(host) => {
            HOST_BINARY.get_or_init(|| host.clone());
            build_guests();
        }
        None => build()?,
    }
    node_side::install()?;
    if !args.no_bullmq {
        bullmq::install()?;
    }
    let redis = redis_server::RedisServer::start()?;
    // One thread: a producer awaiting one push at a time gains nothing from more, and pays
    // for the wake-ups between them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cases: Vec<Case> = cases::all(args.quick)
        .into_iter()
        .filter(|c| {
            args.only
                .as_deref()
                .is_none_or(|o| match o.strip_prefix('=') {
                    Some(exact) => c.name == exact,
                    None => c.name.contains(o),
                })
        })
        .collect();
    let mut results: Vec<(Case, Vec<Measurement>, Vec<Measurement>)> = cases
        .iter()
        .map(|c| (c.clone(), Vec::new(), Vec::new()))
        .collect();
    for run in 1..=args.runs {
        for (case, sque_runs, bull_runs) in results.iter_mut() {
            redis.flush()?;
            eprintln!("run {run}/{}: {} (sque)", args.runs, case.name);
            sque_runs.push(if case.kind.is_node() {
                node_side::run(case, &redis)?
            } else {
                runtime.block_on(sque_side::run(case, &redis))?
            });
            if !args.no_bullmq && case.bullmq {
                redis.flush()?;
                eprintln!("run {run}/{}: {} (BullMQ)", args.runs, case.name);
                bull_runs.push(bullmq::run(case, &redis)?);
            }
        }
    }
    let summary = report::summarize(&results, args.quick);
    report::print(&summary);
    let dir = workspace().join("bench").join("results");
    std::fs::create_dir_all(&dir)?;
    // Only a run of every case, BullMQ beside, with this workspace's host, is the latest
    // result the README cites; a part of one (`--only`, `--no-bullmq`, `--host`) must not
    // take its place, and goes to `partial.*`, which git ignores.
    let whole = args.only.is_none() && !args.no_bullmq && args.host.is_none();
    let stem = match (whole, args.quick) {
        (false, _) => "partial",
        (true, true) => "latest-quick",
        (true, false) => "latest",
    };
    std::fs::write(
        dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&summary)?,
    )?;
    std::fs::write(dir.join(format!("{stem}.svg")), report::svg(&summary))?;
    eprintln!("wrote bench/results/{stem}.json and bench/results/{stem}.svg");
    Ok(())
}

/// Builds sque-host (release) and the guests the cases run. The guests are built by the
/// tests' own helper, which also adds the wasm32-wasip2 target when it is missing.
fn build() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building sque-host (release) and the guests");
    let host = Command::new(&cargo)
        .current_dir(workspace())
        .args(["build", "--release", "-p", "sque-host"])
        .status()?;
    if !host.success() {
        bail!("building sque-host failed");
    }
    build_guests();
    Ok(())
}

fn build_guests() {
    sque_testing::guests::guest("noop");
    sque_testing::guests::guest("fixtures");
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}
