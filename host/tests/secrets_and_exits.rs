//! Secrets stay secret (passwords in URLs, `--env` values, `--env-file`), and exit codes say
//! what happened: 2 when nothing was done, 1 when something was and then it failed.

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::json;
use sque::Manager;
use support::guests::guest;
use support::host::{cli, stderr, Host};
use support::{eventually, RedisServer};

/// A password with `@` in it, which used to leave its tail in the logs.
const PASSWORD: &str = "pa@ss@w0rd-tail";

#[tokio::test(flavor = "multi_thread")]
async fn passwords_and_granted_values_never_show() {
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let right = redis.url_with_auth(&format!(":{PASSWORD}"));
    let wrong = redis.url_with_auth(":wr@ng@secret-tail");
    let leaks = |text: &str| {
        ["w0rd-tail", "secret-tail", "pa@ss", "wr@ng"]
            .iter()
            .any(|s| text.contains(s))
    };

    let out = cli(&["push", "--queue", "s", "--redis", &wrong, "{}"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!leaks(&stderr(&out)), "{}", stderr(&out));
    let out = cli(&["stats", "--queue", "s", "--redis", &wrong], b"");
    assert!(!leaks(&stderr(&out)), "{}", stderr(&out));

    // --help shows neither the URL's password nor --env values from the environment.
    let help = std::process::Command::new(support::host::binary())
        .args(["run", "--help"])
        .env("SQUE_REDIS_URL", &right)
        .env("SQUE_ENV", "API_KEY=secret-tail")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("SQUE_REDIS_URL") && !leaks(&text), "{text}");

    // A host's whole log, at debug level, with the password in the URL and a secret granted.
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("handler.env");
    std::fs::write(
        &env_file,
        "# the mail API's key\nAPI_KEY=secret-tail\n\nREGION=eu\n",
    )
    .unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fixtures = guest("fixtures");
    let run = |env_file: &str| {
        cli(
            &[
                "run",
                "--queue",
                "s",
                "--redis",
                &right,
                "--handler",
                fixtures.to_str().unwrap(),
                "--env-file",
                env_file,
                "--no-cache",
            ],
            b"",
        )
    };
    let out = run(env_file.to_str().unwrap());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("may be read by other users"),
        "{}",
        stderr(&out)
    );
    assert!(!leaks(&stderr(&out)));
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let manager = Manager::new("s", sque::Options::default().redis(&right).dispatch(false))
        .await
        .unwrap();
    let id = manager.push(json!({"do": "env"})).await.unwrap();
    let host = Host::start_with_url(
        &right,
        "s",
        &[
            "--handler",
            fixtures.to_str().unwrap(),
            "--env-file",
            env_file.to_str().unwrap(),
            "--env",
            "REGION=us",
            "--log",
            "debug",
        ],
    );
    eventually("the job", || async {
        manager.stats().await.unwrap().completed == 1
    })
    .await;
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("://:***@127.0.0.1"),
        "the URL, its password hidden: {log}"
    );
    assert!(!leaks(&log), "the log shows a secret:\n{log}");
    let vars = manager.result(&id).await.unwrap().unwrap()["vars"].clone();
    assert_eq!(
        vars,
        json!([["API_KEY", "secret-tail"], ["REGION", "us"]]),
        "the file's variables, --env winning"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_cut_short_by_redis_says_how_far_it_got_and_exits_1() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    // Nothing pushed yet: the same as a Redis that cannot be reached, exit 2.
    let mut gone = RedisServer::start();
    let gone_url = gone.url();
    gone.kill();
    let out = cli(&["push", "--queue", "cut", "--redis", &gone_url], b"{}\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Redis dies while a long NDJSON stream is being pushed.
    let mut child =
        support::host::spawn_cli(&["push", "--queue", "cut", "--redis", &url, "--quiet"]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let line = b"{\"n\":1}\n".repeat(10_000);
        for _ in 0..2_000 {
            if stdin.write_all(&line).is_err() {
                return;
            }
        }
    });
    // Once the first ids are out (a batch answered), Redis goes away.
    let stdout = child.stdout.take().unwrap();
    let (first, ids) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut n = 0;
        for _ in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            n += 1;
            if n == 1 {
                let _ = first.send(());
            }
        }
        n
    });
    ids.recv_timeout(support::PATIENCE).expect("the first ids");
    redis.kill();
    let out = child.wait_with_output().unwrap();
    let printed = reader.join().unwrap();
    let _ = writer.join();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("job(s) were pushed (their ids are on stdout)"),
        "{err}"
    );
    assert!(printed > 0, "the ids of what went in");
    assert!(
        err.contains(&format!("{printed} job(s) were pushed")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_that_cannot_leave_cleanly_says_so_and_exits_1() {
    let mut redis = RedisServer::start();
    let host = Host::start(
        &redis,
        "leave",
        &["--handler", guest("noop").to_str().unwrap(), "--slots", "2"],
    );
    host.wait_for_log("started").await;
    redis.kill();
    let (code, log) = host.stop().await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("could not withdraw its open requests"),
        "{log}"
    );
}
