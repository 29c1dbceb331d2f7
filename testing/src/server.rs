//! A private Redis for a test: one `redis-server` on a free port (never the shared one on
//! 6379), a three-master Redis Cluster, or a TLS-only server, each of which a test can kill
//! and restart.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Redis: one `redis-server`, or, when `SQUE_TEST_REDIS=cluster`, a Redis Cluster of
/// three masters (no replicas) on loopback, so that the same tests run against both.
pub struct RedisServer {
    /// The first node's port.
    pub port: u16,
    nodes: Vec<Node>,
    cluster: bool,
    args: Vec<String>,
    /// With TLS only (`start_tls`): the CA that signed the server's certificate.
    pub tls_ca: Option<std::path::PathBuf>,
}

struct Node {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// True when the suite runs against a Redis Cluster (`SQUE_TEST_REDIS=cluster`).
pub fn on_cluster() -> bool {
    std::env::var("SQUE_TEST_REDIS").is_ok_and(|v| v == "cluster")
}

/// The slots of each of the three masters.
const SLOT_RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts Redis with extra arguments for every node, such as `["--appendonly", "yes"]`.
    pub fn start_with(args: &[&str]) -> RedisServer {
        Self::start_as(on_cluster(), args)
    }

    /// Always one server, whatever `SQUE_TEST_REDIS` says.
    pub fn start_single_with(args: &[&str]) -> RedisServer {
        Self::start_as(false, args)
    }

    /// Always a cluster of three masters, whatever `SQUE_TEST_REDIS` says.
    pub fn start_cluster_with(args: &[&str]) -> RedisServer {
        Self::start_as(true, args)
    }

    fn start_as(cluster: bool, args: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            nodes: Vec::new(),
            cluster,
            args: args.iter().map(|s| s.to_string()).collect(),
            tls_ca: None,
        };
        if cluster {
            server.args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ]
                .map(String::from),
            );
        }
        for _ in 0..if cluster { 3 } else { 1 } {
            let node = server.spawn_node();
            server.nodes.push(node);
        }
        server.port = server.nodes[0].port;
        if cluster {
            server.form_cluster();
        }
        server
    }

    /// A node on a free port. A port found free may be taken again before redis binds it:
    /// try a few.
    fn spawn_node(&self) -> Node {
        let mut node = Node {
            port: 0,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        for _ in 0..5 {
            node.port = free_port();
            if self.spawn(&mut node) {
                return node;
            }
        }
        panic!("could not start redis-server (is it installed? .ci/run installs it)");
    }

    /// Gives each master its slots, introduces them to each other and waits until every
    /// node sees the whole cluster.
    fn form_cluster(&self) {
        for (node, (first, last)) in self.nodes.iter().zip(SLOT_RANGES) {
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(&mut self.node_con(node))
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        for node in &self.nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .query(&mut self.node_con(&self.nodes[0]))
                .expect("CLUSTER MEET");
        }
        self.await_cluster();
    }

    /// Waits until every node reports the cluster healthy with all three masters.
    fn await_cluster(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut self.node_con(node))
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not form: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts `redis-server` speaking TLS only (always a single server), with a certificate
    /// for 127.0.0.1 signed by a CA made for the test (`tls_ca`). Needs `openssl`.
    pub fn start_tls() -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            nodes: Vec::new(),
            cluster: false,
            args: Vec::new(),
            tls_ca: None,
        };
        let node_dir = tempfile::tempdir().expect("temp dir");
        let d = node_dir.path();
        let openssl = |args: &[&str]| {
            let ok = Command::new("openssl")
                .current_dir(d)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(ok.success(), "openssl {args:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=sque test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let file = |name: &str| d.join(name).to_str().unwrap().to_string();
        server.args = vec![
            "--tls-cert-file".to_string(),
            file("server.crt"),
            "--tls-key-file".to_string(),
            file("server.key"),
            "--tls-ca-cert-file".to_string(),
            file("ca.crt"),
            "--tls-auth-clients".to_string(),
            "no".to_string(),
        ];
        server.tls_ca = Some(d.join("ca.crt"));
        let mut node = Node {
            port: 0,
            dir: node_dir,
            child: None,
        };
        for _ in 0..5 {
            node.port = free_port();
            if server.spawn(&mut node) {
                server.port = node.port;
                server.nodes.push(node);
                return server;
            }
        }
        panic!("could not start redis-server with TLS");
    }

    fn spawn(&self, node: &mut Node) -> bool {
        let port = node.port.to_string();
        // A TLS server listens on --tls-port only.
        let (plain, tls) = match self.tls_ca {
            Some(_) => ("0", vec!["--tls-port", &port]),
            None => (port.as_str(), vec![]),
        };
        let child = Command::new("redis-server")
            .args(["--port", plain])
            .args(tls)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--dir"])
            .arg(node.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        node.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                let _ = status;
                node.child = None;
                return false;
            }
            if self.ping(node) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn ping(&self, node: &Node) -> bool {
        if self.tls_ca.is_some() {
            return std::net::TcpStream::connect(("127.0.0.1", node.port)).is_ok();
        }
        redis::Client::open(self.node_url(node))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    fn password(&self) -> Option<&str> {
        let i = self.args.iter().position(|a| a == "--requirepass")?;
        self.args.get(i + 1).map(String::as_str)
    }

    /// One node's own URL, with the password if there is one.
    fn node_url(&self, node: &Node) -> String {
        match self.password() {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", node.port),
            None => format!("redis://127.0.0.1:{}", node.port),
        }
    }

    fn node_con(&self, node: &Node) -> redis::Connection {
        redis::Client::open(self.node_url(node))
            .unwrap()
            .get_connection()
            .expect("node connection")
    }

    /// The URL sque is given (`redis+cluster://…` on a cluster), without credentials.
    pub fn url(&self) -> String {
        self.url_with_auth("")
    }

    /// The URL with `userinfo` (`user:password` or `:password`) in it.
    pub fn url_with_auth(&self, userinfo: &str) -> String {
        let at = if userinfo.is_empty() { "" } else { "@" };
        if self.cluster {
            let hosts: Vec<String> = self
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port))
                .collect();
            return format!("redis+cluster://{userinfo}{at}{}", hosts.join(","));
        }
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{userinfo}{at}127.0.0.1:{}", self.port)
    }

    /// A connection for looking into Redis from the test (cluster-aware on a cluster).
    pub fn con(&self) -> Box<dyn redis::ConnectionLike> {
        if self.cluster {
            let nodes: Vec<String> = self.nodes.iter().map(|n| self.node_url(n)).collect();
            return Box::new(
                redis::cluster::ClusterClient::new(nodes)
                    .unwrap()
                    .get_connection()
                    .expect("cluster test connection"),
            );
        }
        Box::new(
            redis::Client::open(self.url())
                .unwrap()
                .get_connection()
                .expect("test connection"),
        )
    }

    /// Runs a command on every node (commands about connections, such as `CLIENT KILL`).
    pub fn on_every_node(&self, cmd: &[&str]) {
        for node in &self.nodes {
            let c = command(cmd);
            let _: redis::Value = c.query(&mut self.node_con(node)).expect("query");
        }
    }

    /// How many nodes there are (3 on a cluster).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The index of the node that holds `key` (always 0 on one server).
    pub fn node_of(&self, key: &str) -> usize {
        if !self.cluster {
            return 0;
        }
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.node_con(&self.nodes[0]))
            .expect("CLUSTER KEYSLOT");
        SLOT_RANGES
            .iter()
            .position(|(first, last)| (*first..=*last).contains(&slot))
            .unwrap()
    }

    /// Runs a command on node `i` alone.
    pub fn on_node<T: redis::FromRedisValue>(&self, i: usize, cmd: &[&str]) -> T {
        let c = command(cmd);
        c.query(&mut self.node_con(&self.nodes[i])).expect("query")
    }

    /// How many times node `i` has run `command` (lower case) since it started, from
    /// `INFO commandstats`; commands run inside scripts count too.
    pub fn command_calls(&self, i: usize, command: &str) -> u64 {
        let stats: String = self.on_node(i, &["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
    }

    /// `kill -9` node `i` alone, then starts it again on its port and data (a master
    /// restarted without failover: there are no replicas).
    pub fn restart_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut node = self.nodes.remove(i);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.spawn(&mut node) {
            assert!(Instant::now() < deadline, "redis-server did not restart");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.nodes.insert(i, node);
        if self.cluster {
            self.await_cluster();
        }
    }

    /// `kill -9` every node.
    pub fn kill(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Stops every node with SIGSTOP (`thaw` goes on): connections stay open and nothing is
    /// answered, as with a Redis swapped out or stuck.
    pub fn freeze(&self) {
        self.signal_nodes("-STOP");
    }

    /// Lets every node go on after [`RedisServer::freeze`].
    pub fn thaw(&self) {
        self.signal_nodes("-CONT");
    }

    fn signal_nodes(&self, signal: &str) {
        for node in &self.nodes {
            if let Some(child) = &node.child {
                let sent = std::process::Command::new("kill")
                    .args([signal, &child.id().to_string()])
                    .status()
                    .expect("kill runs");
                assert!(sent.success(), "kill {signal} of redis-server");
            }
        }
    }

    /// Starts every node again on the same port, with the same data directory (a cluster
    /// node keeps its slots and peers in `nodes.conf` there).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut nodes = std::mem::take(&mut self.nodes);
        for node in &mut nodes {
            while !self.spawn(node) {
                assert!(Instant::now() < deadline, "redis-server did not restart");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.nodes = nodes;
        if self.cluster {
            self.await_cluster();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command from its words, as `redis-cli` takes them.
pub fn command(words: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(words[0]);
    for word in &words[1..] {
        c.arg(*word);
    }
    c
}

/// Runs `redis-cli`-like commands on the test server.
pub fn query<T: redis::FromRedisValue>(server: &RedisServer, cmd: &[&str]) -> T {
    let c = command(cmd);
    c.query(&mut *server.con()).expect("query")
}
