//! `sque-host new`: for each language, a project made in a temporary directory outside the
//! workspace builds with the one command it prints and runs with the demo's `emails` queue:
//! a good address is handled, a bad one fails for good.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::json;
use support::guests::{componentize_py_tool, js_sdk_ready, sdk_dir};
use support::host::{cli, run_until, stderr};

/// Makes a project with `sque-host new`, builds it as it says, runs it; returns nothing but
/// fails the test if any step does.
async fn made_built_and_run(lang: &str, build: &[&str], wasm: &str) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join(format!("hello-{lang}"));
    let sdk = sdk_dir();
    let out = cli(
        &[
            "new",
            "--lang",
            lang,
            project.to_str().unwrap(),
            "--sdk",
            sdk.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.contains(&build.join(" ")),
        "it prints the build: {said}"
    );

    let tool_dir = componentize_py_tool().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        tool_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // A Rust project builds into a target directory the test runs share, to stay warm.
    let shared_target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("new-projects");
    let status = Command::new(build[0])
        .args(&build[1..])
        .current_dir(&project)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &shared_target)
        .status()
        .unwrap();
    assert!(status.success(), "{lang}: `{}` failed", build.join(" "));
    let wasm = if lang == "rust" {
        shared_target.join("wasm32-wasip2/release").join(wasm)
    } else {
        project.join(wasm)
    };

    let ran = run_until(
        &wasm,
        vec![json!({"email": "test1@mail.org"}), json!({"email": "nope"})],
        1,
        1,
    )
    .await;
    assert_eq!(
        ran.manager.result(&ran.ids[0]).await.unwrap(),
        Some(json!({"handled": "test1@mail.org"})),
        "{lang}"
    );
    let (_, code, error) = &ran.dead[0];
    assert_eq!(code.as_deref(), Some("fail"), "{lang}: {error}");
    assert!(error.contains("not an address"), "{lang}: {error}");
    let (code, log) = ran.host.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("handling test1@mail.org (attempt 1)"),
        "{lang}: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_rust_project_builds_and_runs() {
    made_built_and_run(
        "rust",
        &["cargo", "build", "--release", "--target", "wasm32-wasip2"],
        "hello_rust.wasm",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_python_project_builds_and_runs() {
    made_built_and_run("python", &["./build.sh"], "hello-python.wasm").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_js_project_builds_and_runs() {
    js_sdk_ready();
    made_built_and_run("js", &["npm", "run", "build"], "hello-js.wasm").await;
}

#[test]
fn a_project_is_not_made_over_a_directory_or_with_a_bad_name() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = sdk_dir();
    let new = |lang: &str, path: &Path| {
        cli(
            &[
                "new",
                "--lang",
                lang,
                path.to_str().unwrap(),
                "--sdk",
                sdk.to_str().unwrap(),
            ],
            b"",
        )
    };
    let taken = dir.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    let out = new("rust", &taken);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(&taken).unwrap().count(),
        0,
        "left as it was"
    );
    let out = new("python", &dir.path().join("9lives"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("starting with a letter"));
    let out = new("cobol", &dir.path().join("x"));
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("9lives").exists() && !dir.path().join("x").exists());
}
