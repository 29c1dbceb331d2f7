//! Where a handler's native code comes from, for the commands that load one (`run`,
//! `check`): the module cache they share, or a precompiled `.cwasm` (`sque-host compile`),
//! which is trusted like the binary itself and so only by flag; and loading it off the async
//! threads with a progress line, since a large guest's first compile takes seconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::sandbox::{Handler, Sandbox};

/// How long a load may take before the host says it is compiling.
const QUIET_LOAD: Duration = Duration::from_secs(2);
/// How often it says so again.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(clap::Args, Clone, Debug)]
pub struct NativeCodeArgs {
    /// Where compiled handlers are cached, for `run` and `check` alike (it holds native code:
    /// only this user may write it). Default: $XDG_CACHE_HOME/sque/modules or
    /// ~/.cache/sque/modules.
    #[arg(long, env = "SQUE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile the handler at every start instead of caching it.
    #[arg(long, env = "SQUE_NO_CACHE", conflicts_with = "cache_dir")]
    pub no_cache: bool,

    /// Load a precompiled handler (.cwasm, from `sque-host compile`). It is native code run
    /// as it is, trusted like this binary: it loads only with this flag, only if this user
    /// owns it and no one else may write it, and only if this sque-host's wasmtime made it.
    #[arg(long, env = "SQUE_TRUST_PRECOMPILED")]
    pub trust_precompiled: bool,
}

impl NativeCodeArgs {
    /// The module cache's directory, `None` with `--no-cache`.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(base.join("sque").join("modules"))
        })
    }
}

/// Loads a handler off the async threads; if that takes over two seconds (a compile, not a
/// cache hit), says what is happening, then every ten seconds until done.
pub async fn load(sandbox: &Arc<Sandbox>, path: &Path) -> anyhow::Result<Handler> {
    let task = {
        let (sandbox, path) = (sandbox.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || Handler::load(&sandbox, &path))
    };
    let cache = match sandbox.cache_dir() {
        Some(dir) => format!(
            "later starts take it from the module cache in {}",
            dir.display()
        ),
        None => "the module cache is off (--no-cache), so every start compiles".to_string(),
    };
    Ok(reporting_progress(path, &cache, task).await??)
}

/// Waits for a load, logging a line once it has taken `QUIET_LOAD`, then every
/// `PROGRESS_EVERY`, and how long it took if it said anything.
async fn reporting_progress<T>(
    path: &Path,
    cache: &str,
    task: tokio::task::JoinHandle<T>,
) -> Result<T, tokio::task::JoinError> {
    tokio::pin!(task);
    let started = Instant::now();
    let mut wait = QUIET_LOAD;
    let mut said = false;
    loop {
        tokio::select! {
            loaded = &mut task => {
                if said {
                    tracing::info!(handler = %path.display(), "compiled in {:.1}s", started.elapsed().as_secs_f64());
                }
                return loaded;
            }
            _ = tokio::time::sleep(wait) => {
                if said {
                    tracing::info!(handler = %path.display(), "still compiling ({}s)", started.elapsed().as_secs());
                } else {
                    tracing::info!(handler = %path.display(), "compiling the handler to native code: a large guest (Python, JavaScript) takes seconds; {cache}; `sque-host compile` makes a .cwasm that needs none");
                    said = true;
                }
                wait = PROGRESS_EVERY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The log lines written on this thread while the test's subscriber is its default.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// On the runtime's paused clock, which moves on whenever the runtime waits: a load that
    /// ends at once says nothing; one that lasts says it is compiling, then again every ten
    /// seconds, then how long it took.
    #[tokio::test(start_paused = true)]
    async fn a_long_load_says_so_and_a_short_one_does_not() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let path = Path::new("h.wasm");

        // Tasks on the runtime, not blocking ones: those would keep the clock from moving.
        let quick = tokio::spawn(async { 1 });
        assert_eq!(reporting_progress(path, "cached", quick).await.unwrap(), 1);
        assert_eq!(log.text(), "", "a quick load is quiet");

        // A load that lasts until the second "still compiling" line is written.
        let seen = log.clone();
        let slow = tokio::spawn(async move {
            while seen.text().matches("still compiling").count() < 2 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            2
        });
        assert_eq!(reporting_progress(path, "cached", slow).await.unwrap(), 2);
        let text = log.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("compiling the handler to native code")
                && lines[0].contains("; cached; "),
            "{text}"
        );
        assert!(lines[1].contains("still compiling (12s)"), "{text}");
        assert!(lines[2].contains("still compiling (22s)"), "{text}");
        assert!(lines.last().unwrap().contains("compiled in"), "{text}");
    }
}
