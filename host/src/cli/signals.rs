//! The signals a long-running command (`run`, `dashboard`) answers, installed as the command
//! starts. Until a handler is installed, SIGTERM, SIGINT and SIGHUP end the process on the
//! spot, with no log line and no exit code; a host's start takes seconds when it compiles a
//! large guest, and an orchestrator may well stop (or a terminal hang up on) a host that is
//! still starting. Installed first, a signal that comes early waits in its stream until the
//! command asks for it.

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM, and SIGHUP for commands that reload on it.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Option<Signal>,
}

/// What a signal asks for.
pub enum Received {
    /// SIGINT or SIGTERM, named.
    Stop(&'static str),
    /// SIGHUP.
    Reload,
}

impl Signals {
    /// Installs the handlers; SIGHUP's only with `reload`, so that elsewhere it keeps its
    /// default (the end of the process when its terminal goes).
    pub fn install(reload: bool) -> anyhow::Result<Signals> {
        let install = |kind: SignalKind| signal(kind).context("installing the signal handlers");
        Ok(Signals {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
            hup: match reload {
                true => Some(install(SignalKind::hangup())?),
                false => None,
            },
        })
    }

    /// The next signal. Cancel-safe: a signal that comes while this is not awaited waits for
    /// the next call.
    pub async fn next(&mut self) -> Received {
        let hup = self.hup.as_mut();
        let hup = async move {
            match hup {
                Some(hup) => hup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => Received::Stop("SIGINT"),
            _ = self.term.recv() => Received::Stop("SIGTERM"),
            _ = hup => Received::Reload,
        }
    }

    /// The next SIGINT or SIGTERM, by name; a SIGHUP meanwhile waits for [`Signals::next`].
    pub async fn stop_requested(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
