//! The web dashboard: `sque-host dashboard`, or `run --dashboard-addr` beside a host. One
//! page served from the binary itself (no CDN, nothing for a user to build), live over
//! Server-Sent Events: every queue's counts and rates, one queue's chart and jobs in flight,
//! the dead list (retry or purge), a job by id, and the workers.
//!
//! Its parts: `auth` (who may see it and change things), `snapshot` (the one reader of Redis
//! that every open page shares), `routes` (the HTTP side) and `assets/` (the page).
//!
//! Its life, as the metrics endpoint's: [`bind`] before anything is written to Redis (a bad
//! flag or a taken address changes nothing), [`Dashboard::serve`], then
//! [`Dashboard::shutdown`], which ends the pages' streams and lets requests finish within a
//! bound.

mod auth;
mod routes;
mod snapshot;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use snapshot::EVERY as REFRESH;

/// How long requests still open at shutdown may take to finish.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// The dashboard's flags, shared by `dashboard` and `run`.
#[derive(clap::Args, Clone, Debug)]
pub struct DashboardArgs {
    /// Serve the web dashboard at http://ADDR/: every queue's counts and rates, a live chart,
    /// jobs in flight, the dead list (retry, purge), a job by id, the workers. Without users
    /// (--auth-file, SQUE_DASHBOARD_AUTH) only a loopback address is allowed. Example:
    /// 127.0.0.1:8080.
    #[arg(long, env = "SQUE_DASHBOARD_ADDR", value_name = "ADDR")]
    pub dashboard_addr: Option<SocketAddr>,

    /// Users who may sign in (HTTP Basic): `user:bcrypt-hash` lines, as `htpasswd -nB user`
    /// prints them. Refused if other users of the machine can read it. Or set one user as
    /// SQUE_DASHBOARD_AUTH=user:password (the password never goes in argv).
    #[arg(long, env = "SQUE_DASHBOARD_AUTH_FILE", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,

    /// Show, change nothing: no retry or purge buttons, and the server refuses those
    /// requests.
    #[arg(long, env = "SQUE_DASHBOARD_READ_ONLY")]
    pub read_only: bool,

    /// Serve a non-loopback address without users: only behind something that checks who
    /// comes in (a proxy with its own login). Said at start.
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// A dashboard's address, bound, and its rules of access: checked before Redis is touched.
pub struct Bound {
    listener: TcpListener,
    access: auth::Access,
}

/// Checks the flags and binds the address; `None` without `--dashboard-addr`.
pub async fn bind(args: &DashboardArgs) -> anyhow::Result<Option<Bound>> {
    let Some(addr) = args.dashboard_addr else {
        return Ok(None);
    };
    let env_user = std::env::var("SQUE_DASHBOARD_AUTH").ok();
    let access = auth::Access::new(
        addr,
        args.auth_file.as_deref(),
        env_user.as_deref().filter(|v| !v.is_empty()),
        args.read_only,
        args.insecure_no_auth,
    )?;
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot serve the dashboard on {addr}; pass a free address to --dashboard-addr (SQUE_DASHBOARD_ADDR)")
    })?;
    Ok(Some(Bound { listener, access }))
}

/// The dashboard, serving.
pub struct Dashboard {
    stop: CancellationToken,
    server: JoinHandle<()>,
    reader: snapshot::Reader,
    /// Where it serves (port 0 resolved).
    pub addr: SocketAddr,
}

impl Dashboard {
    /// Serves the dashboard of every queue under the prefix of `opts`.
    pub fn serve(bound: Bound, opts: sque::Options) -> anyhow::Result<Dashboard> {
        let addr = bound.listener.local_addr()?;
        let stop = CancellationToken::new();
        let reader = snapshot::Reader::start(opts.clone(), stop.clone());
        let access = bound.access;
        if !access.authenticates() && !addr.ip().is_loopback() {
            tracing::warn!("the dashboard at http://{addr}/ has no authentication (--insecure-no-auth): anyone who reaches it can retry and purge dead jobs unless --read-only");
        }
        tracing::info!(
            "dashboard at http://{addr}/ ({}, {})",
            if access.authenticates() {
                "users sign in"
            } else {
                "no sign-in"
            },
            if access.read_only {
                "read-only"
            } else {
                "retry and purge allowed"
            },
        );
        let app = Arc::new(routes::App::new(
            access,
            addr,
            reader.snapshots.clone(),
            opts,
        ));
        let router = routes::router(app);
        let stopping = stop.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(bound.listener, router)
                .with_graceful_shutdown(stopping.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!("the dashboard stopped: {e}");
            }
        });
        Ok(Dashboard {
            stop,
            server,
            reader,
            addr,
        })
    }

    /// Stops accepting and reading, ends the pages' streams, lets open requests finish within
    /// [`CLOSE_WITHIN`], then drops the rest.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.reader.shutdown().await;
        let mut server = self.server;
        if tokio::time::timeout(CLOSE_WITHIN, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}
