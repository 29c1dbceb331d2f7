//! The BullMQ side: `bench/peers/bullmq/bench.mjs`, one case per Node process.

use std::path::PathBuf;

use anyhow::bail;

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
    crate::node::install(&dir(), "bullmq", "BullMQ")
}

pub fn run(case: &Case, redis: &RedisServer) -> anyhow::Result<Measurement> {
    let kind = match case.kind {
        Kind::BulkPushCli | Kind::BulkPush | Kind::NodePushMany => "bulk-push",
        Kind::SinglePush | Kind::NodeSinglePush => "single-push",
        Kind::Process | Kind::NodeProcess => "process",
        Kind::Latency => "latency",
        Kind::BytesPerJob => "bytes-per-job",
        Kind::DeadRetryAll
        | Kind::DeadPurgeAll
        | Kind::Handler
        | Kind::MetricsScrape
        | Kind::DashboardPages
        | Kind::DelayedProcess
        | Kind::LimitedProcess
        | Kind::PrioritizedProcess
        | Kind::ManyQueuesProcess
        | Kind::BulkPushUnique
        | Kind::SinglePushUnique => {
            bail!("{}: a sque-only case", case.name)
        }
    };
    crate::node::run(&dir(), kind, case, redis)
}
