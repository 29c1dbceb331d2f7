//! A master, its replica and one Sentinel on free ports, for failover tests.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::server::{command, free_port, RedisServer};
use crate::wait::await_condition;

/// A master, its replica and one Sentinel watching them as service `sque-test`.
pub struct SentinelSetup {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinel_port: u16,
    sentinel: Child,
    _dir: tempfile::TempDir,
}

impl SentinelSetup {
    pub const SERVICE: &'static str = "sque-test";

    pub fn start() -> SentinelSetup {
        let master = RedisServer::start_single_with(&[]);
        let port = master.port.to_string();
        let replica = RedisServer::start_single_with(&["--replicaof", "127.0.0.1", &port]);
        await_condition("the replica to sync", || {
            let info: String = replica.on_node(0, &["INFO", "replication"]);
            info.contains("master_link_status:up")
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let sentinel_port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {} 127.0.0.1 {port} 1\n\
                 sentinel down-after-milliseconds {} 1000\n\
                 sentinel failover-timeout {} 10000\n",
                dir.path().display(),
                Self::SERVICE,
                Self::SERVICE,
                Self::SERVICE
            ),
        )
        .unwrap();
        let sentinel = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel runs");
        let setup = SentinelSetup {
            master,
            replica,
            sentinel_port,
            sentinel,
            _dir: dir,
        };
        await_condition("the sentinel to see the replica", || {
            setup
                .ask_sentinel::<Vec<redis::Value>>(&["SENTINEL", "REPLICAS", Self::SERVICE])
                .is_some_and(|r| !r.is_empty())
        });
        setup
    }

    /// `redis+sentinel://` for the service.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{}",
            self.sentinel_port,
            Self::SERVICE
        )
    }

    fn ask_sentinel<T: redis::FromRedisValue>(&self, cmd: &[&str]) -> Option<T> {
        let c = command(cmd);
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{}", self.sentinel_port))
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        c.query(&mut con).ok()
    }

    /// The master's port as the sentinel names it now.
    pub fn master_port(&self) -> Option<u16> {
        let (_, port): (String, u16) =
            self.ask_sentinel(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::SERVICE])?;
        Some(port)
    }

    /// `kill -9` of the master once the replica has all it wrote, then waits until the
    /// sentinel has promoted the replica.
    pub fn crash_master(&mut self) {
        let replicas: i64 = self.master.on_node(0, &["WAIT", "1", "5000"]);
        assert_eq!(replicas, 1, "the replica caught up");
        self.master.kill();
        await_condition("the replica to be promoted", || {
            self.master_port() == Some(self.replica.port)
                && self
                    .replica
                    .on_node::<String>(0, &["INFO", "replication"])
                    .contains("role:master")
        });
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
    }
}
