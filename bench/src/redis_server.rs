//! The run's private redis-server (sque-testing's, on a free port: never the shared one on
//! 6379), and what the bench reads of it.

use anyhow::Context as _;

pub struct RedisServer(sque_testing::RedisServer);

impl std::ops::Deref for RedisServer {
    type Target = sque_testing::RedisServer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl RedisServer {
    pub fn start() -> anyhow::Result<RedisServer> {
        Ok(RedisServer(sque_testing::RedisServer::start_single_with(
            &["--appendonly", "no"],
        )))
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        let _: () = self.0.on_node(0, &["FLUSHALL"]);
        Ok(())
    }

    fn info(&self, section: &str) -> String {
        self.0.on_node(0, &["INFO", section])
    }

    /// CPU seconds Redis has used (user + system), from INFO cpu.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let info = self.info("cpu");
        let field = |name: &str| -> f64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        Ok(field("used_cpu_user:") + field("used_cpu_sys:"))
    }

    /// Commands Redis has run since it started (`total_commands_processed`, INFO stats).
    pub fn commands_processed(&self) -> anyhow::Result<f64> {
        self.info("stats")
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .context("INFO stats without total_commands_processed")
    }

    /// `used_memory` from INFO memory.
    pub fn used_memory(&self) -> anyhow::Result<f64> {
        self.info("memory")
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .context("INFO memory without used_memory")
    }
}
