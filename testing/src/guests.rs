//! The guest components built from `examples/` and the fixtures crate, for tests and
//! benchmarks (benches include this file by path).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The path of a guest component, built (once per process) for wasm32-wasip2 in release
/// mode: `noop`, `send_email`, `split_batch`, `fixtures`, `raw_fixture`, `v0_2_0_fixture`,
/// `other-world` (the list `scripts/build-guests` builds too). Adds the target if it is
/// missing.
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
                "split-batch",
                "-p",
                "fixtures",
                "-p",
                "raw-fixture",
                "-p",
                "v0-2-0-fixture",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the guest components failed");
        target_dir().join("wasm32-wasip2").join("release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A Python guest component: the module `module` in `dir` (relative to the workspace), built
/// with the Python SDK (`guest-sdk/python`) by componentize-py into
/// `target/lang-guests/NAME.wasm` (again only when the module's directory, the SDK or the
/// pin changed since the last build). componentize-py is the version
/// `guest-sdk/python/pyproject.toml` pins, from `SQUE_COMPONENTIZE_PY` or a virtualenv in
/// `target/python-tools` (made here, from PyPI, if missing).
pub fn python_guest(dir: &str, module: &str, name: &str) -> PathBuf {
    let inputs = [dir, "guest-sdk/python"];
    built_once(name, &inputs, |target, out| {
        let status = Command::new(componentize_py(target))
            .current_dir(workspace())
            .args([
                "-d",
                "guest-sdk/python/wit",
                "-w",
                "handler",
                "componentize",
            ])
            .args(["-p", "guest-sdk/python", "-p", dir, module, "-o"])
            .arg(out)
            .status()
            .expect("componentize-py runs");
        assert!(
            status.success(),
            "componentize-py failed to build {dir}/{module}.py"
        );
    })
}

/// A JavaScript guest component: `entry` (relative to the workspace) built with the
/// JavaScript SDK's `build.mjs` (componentize-js, pinned in `guest-sdk/js/package.json`) into
/// `target/lang-guests/NAME.wasm` (again only when the entry's directory, the SDK or its lock
/// file changed since the last build). Runs `npm ci` in `guest-sdk/js` first if its modules
/// are missing.
pub fn js_guest(entry: &str, name: &str) -> PathBuf {
    let entry_dir = Path::new(entry)
        .parent()
        .and_then(Path::to_str)
        .unwrap_or(".");
    let inputs = [entry_dir, "guest-sdk/js"];
    built_once(name, &inputs, |_, out| {
        js_sdk_ready();
        let status = Command::new("node")
            .current_dir(workspace())
            .args(["guest-sdk/js/build.mjs", entry, "-o"])
            .arg(out)
            .status()
            .expect("node runs");
        assert!(
            status.success(),
            "guest-sdk/js/build.mjs failed to build {entry}"
        );
    })
}

/// Makes sure the JavaScript SDK's modules (componentize-js) are installed: `npm ci` in
/// `guest-sdk/js` if they are missing.
pub fn js_sdk_ready() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let sdk = workspace().join("guest-sdk/js");
        if !sdk.join("node_modules").exists() {
            let ok = Command::new("npm")
                .current_dir(&sdk)
                .args(["ci", "--no-audit", "--no-fund"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "npm ci in guest-sdk/js failed");
        }
    });
}

/// The pinned componentize-py (see [`python_guest`]), installed if missing.
pub fn componentize_py_tool() -> PathBuf {
    componentize_py(&target_dir())
}

/// The workspace's guest-sdk directory (rust/, python/, js/).
pub fn sdk_dir() -> PathBuf {
    workspace().join("guest-sdk")
}

/// `target/lang-guests/NAME.wasm`, made by `build(target, out)` the first time this process
/// asks for it, unless it is newer than every file under `inputs` (directories relative to
/// the workspace): a language guest takes 10 to 30 seconds to build, and most test and bench
/// processes find it as the last one left it.
fn built_once(name: &str, inputs: &[&str], build: impl FnOnce(&Path, &Path)) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let target = target_dir();
    let out_dir = target.join("lang-guests");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{name}.wasm"));
    let built_at = std::fs::metadata(&out).and_then(|m| m.modified()).ok();
    let changed_at = inputs
        .iter()
        .filter_map(|dir| newest_change(&workspace().join(dir)))
        .max();
    if built_at.is_none() || changed_at.is_none() || changed_at > built_at {
        build(&target, &out);
    }
    built.insert(name.to_string(), out.clone());
    out
}

/// When a file under `path` last changed (installed modules and caches left out).
fn newest_change(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| !matches!(e.file_name().to_str(), Some("node_modules" | "__pycache__")))
        .filter_map(|e| newest_change(&e.path()))
        .max()
}

/// The pinned componentize-py: `SQUE_COMPONENTIZE_PY`, else a virtualenv of its own.
fn componentize_py(target: &Path) -> PathBuf {
    if let Some(tool) = std::env::var_os("SQUE_COMPONENTIZE_PY") {
        return PathBuf::from(tool);
    }
    let pyproject =
        std::fs::read_to_string(workspace().join("guest-sdk/python/pyproject.toml")).unwrap();
    let pin = pyproject
        .lines()
        .find_map(|l| {
            l.split('"')
                .find(|part| part.starts_with("componentize-py=="))
        })
        .expect("guest-sdk/python/pyproject.toml pins componentize-py");
    let venv = target.join("python-tools");
    let tool = venv.join("bin").join("componentize-py");
    let installed = venv.join(format!("{pin}.installed"));
    if !installed.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin").join("pip"))
                .args(["install", "-q", "--disable-pip-version-check", pin])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "could not install {pin} into {}", venv.display());
        std::fs::write(&installed, b"").unwrap();
    }
    tool
}
