//! `sque-host dashboard`: the real binary against a real Redis, over HTTP (who may come in,
//! the CSRF token, what ten open pages cost Redis) and in a real browser (Debian's Chromium,
//! driven by `tests/browser/dashboard.mjs`): counts that change live, a dead job retried from
//! the page and found completed by id, markup in job data shown as text, read-only refused.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sque::{Inspector, JobState, Manager};
use support::guests::guest;
use support::host::{assert_refused, binary, cli, Host};
use support::{eventually, producer, within, RedisServer};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

/// A `sque-host dashboard` process on a free loopback port.
struct Dashboard {
    _child: tokio::process::Child,
    addr: String,
}

impl Dashboard {
    async fn start(redis: &RedisServer, args: &[&str], envs: &[(&str, &str)]) -> Dashboard {
        let mut child = tokio::process::Command::new(binary())
            .args([
                "dashboard",
                "--redis",
                &redis.url(),
                "--dashboard-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .env_remove("SQUE_REDIS_URL")
            .env_remove("SQUE_DASHBOARD_AUTH")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = within("the dashboard to say where it serves", async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the dashboard exited");
                if let Some(rest) = line.split("dashboard at http://").nth(1) {
                    break rest.split('/').next().unwrap().to_string();
                }
            }
        })
        .await;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Dashboard {
            _child: child,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// An HTTP/1.0 request: the status code, the head and the body.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    within("an HTTP answer", async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.0\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {addr}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    })
    .await
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn flags_that_would_expose_the_dashboard_or_misread_its_users_are_refused() {
    let out = cli(&["dashboard", "--dashboard-addr", "0.0.0.0:0"], b"");
    assert_refused(&out, "--insecure-no-auth");
    let out = cli(&["dashboard"], b"");
    assert_refused(&out, "--dashboard-addr");

    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        format!("admin:{}\n", bcrypt::hash("pw", 4).unwrap()),
    )
    .unwrap();
    set_mode(&users, 0o644);
    let file = users.to_str().unwrap();
    let out = cli(
        &[
            "dashboard",
            "--dashboard-addr",
            "127.0.0.1:0",
            "--auth-file",
            file,
        ],
        b"",
    );
    assert_refused(&out, "chmod 600");

    let out = std::process::Command::new(binary())
        .args(["dashboard", "--dashboard-addr", "127.0.0.1:0"])
        .env("SQUE_DASHBOARD_AUTH", "no-colon")
        .output()
        .unwrap();
    assert_refused(&out, "user:password");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_needs_a_user_and_changes_need_the_csrf_token() {
    let redis = RedisServer::start();
    let manager = Manager::new("guarded", producer(&redis)).await.unwrap();
    manager.push(json!({"n": 1})).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    std::fs::write(
        &users,
        format!(
            "# the operators\nops:{}\n",
            bcrypt::hash("right", 4).unwrap()
        ),
    )
    .unwrap();
    set_mode(&users, 0o600);
    let dash = Dashboard::start(&redis, &["--auth-file", users.to_str().unwrap()], &[]).await;
    let addr = dash.addr.as_str();
    let right = basic("ops", "right");
    let wrong = basic("ops", "wrong");

    for path in [
        "/",
        "/app.js",
        "/api/session",
        "/api/events",
        "/api/queues/guarded/jobs/1",
    ] {
        let (status, head, _) = request(addr, "GET", path, &[], "").await;
        assert_eq!(status, 401, "{path}: {head}");
        assert!(head.contains("Basic realm=\"sque\""), "{head}");
        let (status, _, _) = request(addr, "GET", path, &[("Authorization", &wrong)], "").await;
        assert_eq!(status, 401, "{path} with a wrong password");
    }
    let (status, head, page) = request(addr, "GET", "/", &[("Authorization", &right)], "").await;
    assert_eq!(status, 200, "{head}");
    assert!(page.contains("<script src=\"/app.js\""), "{page}");
    assert!(
        head.contains("script-src 'self'"),
        "no inline script may run: {head}"
    );

    let (status, _, job) = request(
        addr,
        "GET",
        "/api/queues/guarded/jobs/1",
        &[("Authorization", &right)],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let job: Value = serde_json::from_str(&job).unwrap();
    assert_eq!(job["state"], "waiting");
    assert_eq!(job["data"], json!({"n": 1}));
    let signed = [("Authorization", right.as_str())];
    for (path, want) in [
        ("/api/queues/guarded/jobs/99", 404),
        ("/api/queues/nowhere/jobs/1", 404),
        ("/api/queues/guarded/jobs/x%3Cb%3E", 400),
    ] {
        let (status, _, _) = request(addr, "GET", path, &signed, "").await;
        assert_eq!(status, want, "{path}");
    }

    let (_, _, session) = request(
        addr,
        "GET",
        "/api/session",
        &[("Authorization", &right)],
        "",
    )
    .await;
    let csrf = serde_json::from_str::<Value>(&session).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let purge = "/api/queues/guarded/dead/purge";
    let body = r#"{"all": true}"#;
    let json = ("Content-Type", "application/json");
    let auth = ("Authorization", right.as_str());
    let token = ("x-sque-csrf", csrf.as_str());
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let evil = ("Origin", "http://evil.example");
    // Without the token, with another, as a form, unsigned, or from a page of another site:
    // refused. Then the same, right: done; and an action that is none.
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let tried: [(&str, Headers, &str, u16); 7] = [
        (purge, &[auth, json], body, 403),
        (purge, &[auth, json, ("x-sque-csrf", "0000")], body, 403),
        (purge, &[auth, form, token], "all=true", 415),
        (purge, &[json, token], body, 401),
        (purge, &[auth, json, token, evil], body, 403),
        (purge, &[auth, json, token], body, 200),
        (
            "/api/queues/guarded/dead/explode",
            &[auth, json, token],
            body,
            404,
        ),
    ];
    for (path, headers, sent, want) in tried {
        let (status, _, answer) = request(addr, "POST", path, headers, sent).await;
        assert_eq!(status, want, "{path} with {headers:?}: {answer}");
    }

    // Read-only: the same request, token and all, changes nothing.
    let ro = Dashboard::start(&redis, &["--read-only"], &[]).await;
    // Without sign-in, only requests addressed to it are served: a site that rebinds its
    // name to 127.0.0.1 is refused.
    let port = ro.addr.rsplit_once(':').unwrap().1;
    let evil = format!("evil.example:{port}");
    let (status, _, _) = request(&ro.addr, "GET", "/api/session", &[("Host", &evil)], "").await;
    assert_eq!(status, 421);
    let local = format!("localhost:{port}");
    let (status, _, _) = request(&ro.addr, "GET", "/api/session", &[("Host", &local)], "").await;
    assert_eq!(status, 200);
    let (_, _, session) = request(&ro.addr, "GET", "/api/session", &[], "").await;
    let session: Value = serde_json::from_str(&session).unwrap();
    assert_eq!(session["read_only"], true);
    let csrf = session["csrf"].as_str().unwrap();
    let (status, _, body_text) = request(
        &ro.addr,
        "POST",
        purge,
        &[json, ("x-sque-csrf", csrf)],
        body,
    )
    .await;
    assert_eq!(status, 403, "{body_text}");
    assert!(body_text.contains("read-only"), "{body_text}");
}

/// Reads `count` snapshots from the live stream of `addr`; their `seq` numbers.
async fn snapshots(addr: String, count: usize) -> Vec<u64> {
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!("GET /api/events HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut seqs = Vec::new();
    while seqs.len() < count {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the stream went on");
        if let Some(data) = line.strip_prefix("data: ") {
            let snapshot: Value = serde_json::from_str(data).unwrap();
            seqs.push(snapshot["seq"].as_u64().unwrap());
        }
    }
    seqs
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_open_pages_cost_redis_what_one_does() {
    let redis = RedisServer::start();
    let manager = Manager::new("watched", producer(&redis)).await.unwrap();
    manager.push(json!({"n": 1})).await.unwrap();
    let dash = Dashboard::start(&redis, &[], &[]).await;
    // One read of the queues' names at start, then one a snapshot (each reads every queue).
    let listings = || redis.command_calls(0, "smembers");
    let at_start = listings();
    let pages: Vec<_> = (0..10)
        .map(|_| tokio::spawn(snapshots(dash.addr.clone(), 3)))
        .collect();
    let mut newest = 0;
    for page in pages {
        let seqs = within("three snapshots on each page", page).await.unwrap();
        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
        newest = newest.max(*seqs.last().unwrap());
    }
    let reads = listings() - at_start;
    // Ten pages each reading for itself would have read about ten times as often.
    assert!(
        reads <= newest + 1,
        "{reads} reads of Redis for {newest} snapshots shared by ten pages"
    );
}

/// `npm ci` in `dir` unless its packages are there.
fn npm_ready(dir: &Path) {
    if !dir.join("node_modules").exists() {
        let ok = std::process::Command::new("npm")
            .current_dir(dir)
            .args(["ci", "--no-audit", "--no-fund"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm ci in {} failed", dir.display());
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_in_a_browser() {
    let chromium = std::env::var("SQUE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no Chromium at {chromium}: install Debian's (apt-get install chromium), as .ci/run does, or set SQUE_CHROMIUM"
    );
    let browser_dir = workspace().join("host/tests/browser");
    npm_ready(&browser_dir);
    npm_ready(&workspace().join("clients/node"));

    let redis = RedisServer::start();
    let opts = producer(&redis).max_attempts(1);
    let manager = Manager::new("mail", opts.clone()).await.unwrap();
    Manager::new("elsewhere", producer(&redis).dispatch(false))
        .await
        .unwrap();
    // Two jobs die on a host that may push nowhere: one the page retries (a host that may
    // push runs it then), and one whose data is markup.
    let dead = manager
        .push(json!({"do": "push", "arg": "elsewhere"}))
        .await
        .unwrap();
    let hostile = manager
        .push(json!({
            "do": "fail",
            "note": "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">",
        }))
        .await
        .unwrap();
    let fixtures = guest("fixtures");
    let inspector = Inspector::new("mail", producer(&redis)).await.unwrap();
    {
        let strict = Host::start(&redis, "mail", &["--handler", fixtures.to_str().unwrap()]);
        eventually("both jobs dead", || async {
            inspector.stats().await.unwrap().dead == 2
        })
        .await;
        strict.stop().await;
    }
    let _host = Host::start(
        &redis,
        "mail",
        &[
            "--handler",
            fixtures.to_str().unwrap(),
            "--allow-push",
            "elsewhere",
        ],
    );
    let dash = Dashboard::start(
        &redis,
        &[],
        &[("SQUE_DASHBOARD_AUTH", "ops:a-long-password")],
    )
    .await;
    let read_only = Dashboard::start(&redis, &["--read-only"], &[]).await;

    let shots = match std::env::var_os("SQUE_UPDATE_SCREENSHOTS") {
        Some(_) => workspace().join("docs/img"),
        None => workspace().join("target/dashboard-screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let mut node = tokio::process::Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .current_dir(&browser_dir)
        .env("SQUE_DASHBOARD_URL", dash.url())
        .env("SQUE_READ_ONLY_URL", read_only.url())
        .env("SQUE_DASHBOARD_USER", "ops")
        .env("SQUE_DASHBOARD_PASSWORD", "a-long-password")
        .env("SQUE_REDIS_URL", redis.url())
        .env("SQUE_DEAD_ID", dead.to_string())
        .env("SQUE_HOSTILE_ID", hostile.to_string())
        .env("SQUE_SCREENSHOTS", &shots)
        .env("SQUE_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for pipe in [
        Box::new(node.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(node.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("browser: {line}");
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
    }
    let status = within("the browser's checks", node.wait()).await.unwrap();
    let said = log.lock().unwrap().clone();
    assert!(status.success(), "the browser's checks failed:\n{said}");

    // What the page did, as Redis has it.
    let retried = inspector.job(&dead).await.unwrap().unwrap();
    assert_eq!(retried.state, JobState::Completed, "{retried:?}");
    let kept = inspector.job(&hostile).await.unwrap().unwrap();
    assert_eq!(
        kept.state,
        JobState::Dead,
        "the read-only purge changed nothing"
    );
    for page in ["queues", "queue", "dead", "job", "workers"] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot of {page}"
        );
    }
}
