//! Support for end-to-end tests of the `sque-host` binary: the guest components built from
//! `examples/` and the fixtures crate, the binary run as a real process, and a tiny HTTP
//! server to stand in for a mail API.

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{within, RedisServer};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_sque-host")
}

/// Starts `sque-host ARGS` with stdin, stdout and stderr piped to the test.
pub fn spawn_cli(args: &[&str]) -> std::process::Child {
    Command::new(binary())
        .args(args)
        .env_remove("SQUE_REDIS_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `sque-host ARGS` to the end, with `stdin` as its input.
pub fn cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn_cli(args);
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}

/// Text of a process's stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code 2, one line on stderr that starts with "error:" and says `mentions`, no panic.
pub fn assert_refused(out: &Output, mentions: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(mentions), "{err:?} lacks {mentions:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// A `sque-host run` process whose log the test can wait on.
pub struct Host {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

impl Host {
    /// `sque-host run --redis URL --queue QUEUE ARGS` with a short lease for quick recovery.
    pub fn start(redis: &RedisServer, queue: &str, args: &[&str]) -> Host {
        Host::start_with_url(&redis.url(), queue, args)
    }

    /// As [`Host::start`], with the Redis URL given (credentials in it, say).
    pub fn start_with_url(url: &str, queue: &str, args: &[&str]) -> Host {
        let mut all = vec!["--queue", queue];
        all.extend_from_slice(args);
        Host::serve(url, &all)
    }

    /// `sque-host run --redis URL ARGS` with a short lease: ARGS name the queues (--queue or
    /// --config).
    pub fn serve(url: &str, args: &[&str]) -> Host {
        Host::serve_with_env(url, args, &[])
    }

    /// As [`Host::serve`], with `env` added to the host's environment.
    pub fn serve_with_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> Host {
        // Every start compiles, as a first start does, unless the test names a module cache.
        let cache: &[&str] = if args.contains(&"--cache-dir") {
            &[]
        } else {
            &["--no-cache"]
        };
        let mut child = tokio::process::Command::new(binary())
            .args(["run", "--redis", url, "--lease", "1s"])
            .args(cache)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("SQUE_REDIS_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if std::env::var_os("SQUE_TEST_ECHO").is_some() {
                    eprintln!("host: {line}");
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Host { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `text`.
    pub async fn wait_for_log(&self, text: &str) {
        within(&format!("the host to log {text:?}"), async {
            while !self.log().contains(text) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("running").to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// SIGTERM, then the exit code.
    pub async fn stop(mut self) -> (Option<i32>, String) {
        self.signal("-TERM");
        let status = within("the host to exit", self.child.wait()).await.unwrap();
        // Let the log reader drain.
        tokio::time::sleep(Duration::from_millis(50)).await;
        (status.code(), self.log())
    }

    pub async fn kill9(mut self) {
        self.child.kill().await.unwrap();
    }

    /// Resident memory of the host process now, in bytes.
    pub fn rss(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }
}

impl Drop for Host {
    /// A test that fails shows the end of each of its hosts' logs, so that a failure seen
    /// only under load (in CI) says what the hosts were doing.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_ON_FAILURE)..];
            eprintln!(
                "--- the last {} lines of host pid {:?}:\n{}",
                tail.len(),
                self.child.id(),
                tail.join("\n")
            );
        }
    }
}

/// How much of each host's log a failing test shows.
const LOG_TAIL_ON_FAILURE: usize = 30;

/// A local HTTP server answering 200 `{}` to everything, keeping each request's path and
/// body.
pub struct HttpServer {
    pub port: u16,
    pub bodies: Arc<Mutex<Vec<String>>>,
    pub paths: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    pub async fn start() -> HttpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (sink, path_sink) = (bodies.clone(), paths.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (sink, path_sink) = (sink.clone(), path_sink.clone());
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut length = 0usize;
                    let mut first = true;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if std::mem::take(&mut first) {
                            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                            path_sink.lock().unwrap().push(path);
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body).await;
                    sink.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                    let _ = reader
                        .get_mut()
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                });
            }
        });
        HttpServer {
            port,
            bodies,
            paths,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// The paths requested, in arrival order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// A host run by [`run_until`], with what it left.
pub struct Ran {
    pub redis: RedisServer,
    pub manager: sque::Manager,
    pub ids: Vec<sque::JobId>,
    /// The dead jobs: data, code, last error.
    pub dead: Vec<(serde_json::Value, Option<String>, String)>,
    pub host: Host,
}

/// Pushes `jobs` into a new queue on a private Redis, runs `handler` on it with a single
/// attempt per job, and waits until `completed` jobs are done and `dead` dead.
pub async fn run_until(
    handler: &std::path::Path,
    jobs: Vec<serde_json::Value>,
    completed: u64,
    dead: u64,
) -> Ran {
    run_until_with(handler, jobs, &[], completed, dead).await
}

/// [`run_until`], with more arguments for `sque-host run`.
pub async fn run_until_with(
    handler: &std::path::Path,
    jobs: Vec<serde_json::Value>,
    args: &[&str],
    completed: u64,
    dead: u64,
) -> Ran {
    let redis = RedisServer::start();
    let opts = super::producer(&redis).max_attempts(1);
    let manager = sque::Manager::new("jobs", opts.clone()).await.unwrap();
    let ids = manager.push_many(jobs).await.unwrap();
    let mut all = vec![
        "--handler",
        handler.to_str().unwrap(),
        "--max-attempts",
        "1",
    ];
    all.extend_from_slice(args);
    let host = Host::start(&redis, "jobs", &all);
    super::eventually(&format!("{completed} done and {dead} dead"), || async {
        let s = manager.stats().await.unwrap();
        (s.completed, s.dead) == (completed, dead)
    })
    .await;
    let inspector = sque::Inspector::new("jobs", opts).await.unwrap();
    let dead = super::dead_jobs(&inspector).await;
    Ran {
        redis,
        manager,
        ids,
        dead,
        host,
    }
}
