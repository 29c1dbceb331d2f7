//! The guest components built from `examples/` and the fixtures crate, for tests and
//! benchmarks (benches include this file by path).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The path of a guest component, built (once per process) for wasm32-wasip2 in release
/// mode: `noop`, `send_email`, `fixtures`, `raw_fixture`, `other-world`. Adds the target if
/// it is missing.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
            .unwrap_or(false);
        if !installed {
            let ok = Command::new("rustup")
                .args(["target", "add", "wasm32-wasip2"])
                .status()
                .expect("rustup runs");
            assert!(ok.success(), "rustup target add wasm32-wasip2 failed");
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .args([
                "-p",
                "noop",
                "-p",
                "send-email",
                "-p",
                "fixtures",
                "-p",
                "raw-fixture",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the guest components failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target"));
        target.join("wasm32-wasip2").join("release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}
