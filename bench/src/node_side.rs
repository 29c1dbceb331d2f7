//! sque's npm package (`clients/node/`) in the cases BullMQ runs too: `bench/node/bench.mjs`,
//! one case per Node process, the package used as an application would use it.

use std::path::PathBuf;

use anyhow::bail;

use crate::cases::{Case, Kind, Measurement};
use crate::redis_server::RedisServer;

fn dir() -> PathBuf {
    crate::workspace().join("bench").join("node")
}

/// Installs the package's own dependencies (node-redis, from `clients/node`'s lock file).
pub fn install() -> anyhow::Result<()> {
    crate::node::install(
        &crate::workspace().join("clients").join("node"),
        "redis",
        "sque's Node package",
    )
}

pub fn run(case: &Case, redis: &RedisServer) -> anyhow::Result<Measurement> {
    let kind = match case.kind {
        Kind::NodePushMany => "push-many",
        Kind::NodeSinglePush => "single-push",
        Kind::NodeProcess => "process",
        _ => bail!("{}: not a case of the Node package", case.name),
    };
    crate::node::run(&dir(), kind, case, redis)
}
