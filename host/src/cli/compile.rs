//! `sque-host compile FILE [-o OUT]`: compiles a handler to native code ahead of time, so
//! that hosts start it without compiling (seconds and hundreds of MiB for a Python or
//! JavaScript guest). The `.cwasm` is native code for this sque-host's wasmtime and this
//! machine's CPU: a host loads it only with `--trust-precompiled`, and refuses one another
//! version made.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::common::usage;
use crate::sandbox::{is_native, Grants, Handler, LoadError, Sandbox, SandboxConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The handler component to compile (.wasm).
    file: PathBuf,

    /// Where to write the native code. Default: FILE with the extension .cwasm.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.file.with_extension("cwasm"));
    if output == args.file {
        return Err(usage(format!(
            "-o {}: that is the handler itself; name another file",
            output.display()
        )));
    }
    // Where it goes is checked before the seconds of compiling, not after.
    if output.is_dir() {
        return Err(usage(format!(
            "-o {}: a directory; name the .cwasm file to write",
            output.display()
        )));
    }
    let into = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !into.is_dir() {
        return Err(usage(format!(
            "-o {}: there is no directory {}; make it first, or name another place",
            output.display(),
            into.display()
        )));
    }
    // Loaded as `run` would load it (its world, its shape, the same errors), then written out.
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        slots: 1,
        limits: Default::default(),
        grants: Grants::default(),
        cache_dir: None,
        trust_precompiled: false,
    })?);
    let file = args.file.clone();
    let native = is_native(&file).map_err(|source| LoadError::Read {
        path: file.display().to_string(),
        source,
    })?;
    if native {
        return Err(usage(format!(
            "{}: already compiled; pass the .wasm it was compiled from",
            file.display()
        )));
    }
    let started = std::time::Instant::now();
    let native = tokio::task::spawn_blocking({
        let sandbox = sandbox.clone();
        move || Handler::load(&sandbox, &file)?.native_code()
    })
    .await??;
    write_private(&output, &native)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!(
        "{}: {:.1} MiB of native code for sque-host {} (compiled in {:.1}s); run it with `sque-host run --handler {} --trust-precompiled`",
        output.display(),
        native.len() as f64 / (1 << 20) as f64,
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_secs_f64(),
        output.display(),
    );
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file beside it, made writable by this user
/// only (hosts refuse a .cwasm others may write), renamed into place.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map_or("handler".into(), |n| n.to_string_lossy());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&temp)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(())
}
