//! `sque-host run`: the manager and a pool of worker slots, until SIGINT or SIGTERM.
//! SIGHUP (or, with --watch, a change of the handler file) loads the handler anew for new
//! jobs; running jobs finish on the old one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::cli::common::{parse_duration, parse_size, usage, PartlyDone, QueueArg, RedisArgs};
use crate::cli::native_code::{load, NativeCodeArgs};
use crate::metrics::server::MetricsServer;
use crate::metrics::Metrics;
use crate::pool::{self, CurrentHandler, PoolConfig};
use crate::sandbox::{Grants, Handler, Limits, Sandbox, SandboxConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    queue: QueueArg,

    /// The handler component (.wasm, built for wasm32-wasip2 with a sque guest SDK), or a
    /// .cwasm from `sque-host compile` (with --trust-precompiled).
    #[arg(long, env = "SQUE_HANDLER", required_unless_present = "manager_only")]
    handler: Option<PathBuf>,

    #[command(flatten)]
    redis: RedisArgs,

    /// Jobs run at once.
    #[arg(long, env = "SQUE_SLOTS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    slots: u32,

    /// Jobs asked for ahead of free slots, so that no slot waits for a round trip (they are
    /// leased meanwhile, and given back unstarted on shutdown). Default: adaptive, about 5 ms
    /// of work at the rate jobs finish, at least --slots and at most 1024.
    #[arg(long, env = "SQUE_PREFETCH")]
    prefetch: Option<u32>,

    /// Threads that run guests. Default: one fewer than the cores (at least one, at most
    /// --slots): the remaining thread talks to Redis, and on a machine Redis shares, Redis gets
    /// a core too. Raise it for handlers that compute more than they wait.
    #[arg(long, env = "SQUE_GUEST_THREADS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    guest_threads: Option<u32>,

    /// Wall-time limit of one job.
    #[arg(long, env = "SQUE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,

    /// Jobs one handler instance may serve, one after another. 1 (the default) gives every
    /// job a fresh instance, so no job can see or spoil what another left in memory. Above 1,
    /// a slot keeps the instance of a job that completed for its next job, up to N jobs, and
    /// drops it after any job that did not complete (trap, timeout, returned error, limit)
    /// and on reload. It gives up that isolation (module state carries over between jobs)
    /// for speed where instantiation dominates, as with Python and JavaScript handlers.
    #[arg(long, env = "SQUE_REUSE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    reuse: u32,

    /// Linear-memory limit of one handler instance.
    #[arg(long, env = "SQUE_MAX_MEMORY", default_value = "64MiB", value_parser = parse_size)]
    max_memory: usize,

    /// Queue setting: attempts of a job before the dead list (a job's own limit wins).
    /// Given to a queue this host creates [default: 5]; an existing queue keeps its own, and
    /// the host says so if it differs (change it with `sque-host queue config`).
    #[arg(long, env = "SQUE_MAX_ATTEMPTS", value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,

    /// Queue setting: how long a job stays leased without renewal; a crashed host's jobs come
    /// back after it. For a queue this host creates [default: 5s], as --max-attempts.
    #[arg(long, env = "SQUE_LEASE", value_parser = parse_duration)]
    lease: Option<Duration>,

    /// Queue setting: the largest job, in bytes of JSON. For a queue this host creates
    /// [default: 1MiB], as --max-attempts.
    #[arg(long, env = "SQUE_MAX_JOB_BYTES", value_parser = parse_size)]
    max_job_bytes: Option<usize>,

    /// An environment variable the handler may read, as K=V (repeatable; SQUE_ENV takes a
    /// comma-separated list). None by default.
    #[arg(long = "env", env = "SQUE_ENV", hide_env_values = true, value_delimiter = ',', value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,

    /// A file of environment variables the handler may read, one K=V a line (blank lines and
    /// lines starting with # are skipped): secrets stay out of the process list, which shows
    /// --env. Refused if other users may read it. Given beside --env, --env wins.
    #[arg(long, env = "SQUE_ENV_FILE", value_name = "FILE")]
    env_file: Option<PathBuf>,

    /// A host the handler may send HTTP requests to (repeatable; SQUE_ALLOW_HTTP takes a
    /// comma-separated list): HOST on its scheme's default port only (80 for http, 443 for
    /// https), HOST:PORT for another port, HOST:* for any. None by default.
    #[arg(
        long = "allow-http",
        env = "SQUE_ALLOW_HTTP",
        value_delimiter = ',',
        value_name = "HOST[:PORT|:*]",
        value_parser = parse_grant
    )]
    allow_http: Vec<String>,

    /// A queue the handler may push follow-up jobs to (repeatable; SQUE_ALLOW_PUSH takes a
    /// comma-separated list). A job's follow-ups are pushed only if it completes, each once,
    /// by a manager. None by default: every push is refused (`denied`).
    #[arg(
        long = "allow-push",
        env = "SQUE_ALLOW_PUSH",
        value_delimiter = ',',
        value_name = "QUEUE",
        value_parser = parse_push_grant
    )]
    allow_push: Vec<String>,

    /// Follow-up jobs one job may push; past it a push is refused (`limit`). Each job may also
    /// keep at most 4 MiB of follow-up data, 1 MiB in one.
    #[arg(long, env = "SQUE_MAX_PUSHES_PER_JOB", default_value_t = crate::sandbox::DEFAULT_MAX_PUSHES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=sque::MAX_FOLLOW_UPS as u64))]
    max_pushes_per_job: usize,

    /// Bytes of guest output (stdout, stderr, log) kept per job; the rest is counted, not kept.
    #[arg(long, env = "SQUE_MAX_LOG_BYTES", default_value = "64KiB", value_parser = parse_size)]
    max_log_bytes: usize,

    /// Lines of guest output (stdout, stderr, log) kept per job; the rest is counted, not kept.
    #[arg(long, env = "SQUE_MAX_LOG_LINES", default_value_t = 1000)]
    max_log_lines: usize,

    /// Host resources one handler instance may hold at once (handles of HTTP fields and
    /// requests, pollables, streams): past it the job fails (resource_limit).
    #[arg(long, env = "SQUE_MAX_RESOURCES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    max_resources: u64,

    /// Queue setting: the largest result a job may return, in bytes of JSON; over it the job
    /// fails (result_too_large) and nothing is written. For a queue this host creates
    /// [default: 1MiB], as --max-attempts.
    #[arg(long, env = "SQUE_MAX_RESULT_BYTES", value_parser = parse_size)]
    max_result_bytes: Option<usize>,

    /// Queue setting: the longest error text kept with a failed job (a panic's message, a
    /// returned error); longer ones are cut, and say so. For a queue this host creates
    /// [default: 4KiB], as --max-attempts.
    #[arg(long, env = "SQUE_MAX_ERROR_BYTES", value_parser = parse_size)]
    max_error_bytes: Option<usize>,

    /// Log each job's data at debug level (off: payloads may hold personal data).
    #[arg(long, env = "SQUE_LOG_PAYLOADS")]
    log_payloads: bool,

    /// Run worker slots only; another host's manager dispatches.
    #[arg(long, env = "SQUE_NO_MANAGER", conflicts_with = "manager_only")]
    no_manager: bool,

    /// Run the manager only (dispatch and recovery), no worker slots.
    #[arg(long, env = "SQUE_MANAGER_ONLY")]
    manager_only: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics: this host's jobs (started,
    /// completed, failed by reason, retried, dead-lettered; time waited from push to start,
    /// run, instance-creation and acknowledgement times; busy slots) and the queue's figures
    /// from Redis (waiting, in flight, retrying, dead, workers, the oldest job's age), read at
    /// most once per --metrics-interval however often it is scraped. While a host with it
    /// runs, the queue works out each job's wait as it hands it out (about 1 µs of Redis CPU a
    /// job). Off unless given; docs/METRICS.md lists every series. Example: 127.0.0.1:9464.
    #[arg(long, env = "SQUE_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// The least time between two reads of the queue's figures from Redis for /metrics:
    /// set it to your scrape interval. Scrapes in between get the figures last read.
    #[arg(long, env = "SQUE_METRICS_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    metrics_interval: Duration,

    #[command(flatten)]
    dashboard: crate::dashboard::DashboardArgs,

    /// On SIGINT/SIGTERM, how long running jobs may take to finish.
    #[arg(long, env = "SQUE_GRACE", default_value = "30s", value_parser = parse_duration)]
    grace: Duration,

    /// Load the handler anew when its file changes (as SIGHUP does).
    #[arg(long, env = "SQUE_WATCH")]
    watch: bool,

    #[command(flatten)]
    native: NativeCodeArgs,
}

/// The variables granted: `--env-file`'s, then `--env`'s, a later one of a name winning.
fn granted_env(args: &Args) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = match &args.env_file {
        Some(path) => read_env_file(path)?,
        None => Vec::new(),
    };
    env.extend(args.env.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<(String, String)> = env
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    kept.reverse();
    Ok(kept)
}

/// Reads `--env-file`: K=V lines. A file others may read is refused (it holds secrets).
fn read_env_file(path: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| usage(format!("--env-file {shown}: {e}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(usage(format!(
            "--env-file {shown} may be read by other users; it holds secrets: `chmod 600 {shown}`"
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| usage(format!("--env-file {shown}: {e}")))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(i, line)| {
            parse_env(line.trim_end_matches('\r'))
                .map_err(|e| usage(format!("--env-file {shown}, line {}: {e}", i + 1)))
        })
        .collect()
}

fn parse_push_grant(s: &str) -> Result<String, String> {
    sque::validate_queue_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_grant(s: &str) -> Result<String, String> {
    crate::sandbox::check_http_grant(s).map(|()| s.to_string())
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        // The value may be a secret: name the key only.
        Some(_) => Err("a variable's name is empty (expected K=V)".to_string()),
        None => Err(format!(
            "{:?} is not K=V",
            s.chars().take(40).collect::<String>()
        )),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let opts = args.redis.options().settings(sque::SettingsChange {
        lease: args.lease,
        max_attempts: args.max_attempts,
        max_job_bytes: args.max_job_bytes.map(|n| n as u64),
        max_result_bytes: args.max_result_bytes.map(|n| n as u64),
        max_error_bytes: args.max_error_bytes.map(|n| n as u64),
        ..Default::default()
    });
    let settings = opts.queue_settings();
    let queue = args.queue.queue.clone();
    sque::validate_queue_name(&queue)?;
    let prefetch = args.prefetch.map(|n| n as usize);
    let url = opts.redis_url_redacted();

    // The handler first: a bad file is the commonest mistake, and it needs no Redis.
    let worker = if args.manager_only {
        None
    } else {
        let path = args
            .handler
            .clone()
            .ok_or_else(|| usage("--handler is required"))?;
        let sandbox = Arc::new(Sandbox::new(SandboxConfig {
            // Only the slots run guests; the room a reload needs is in the sizing itself.
            slots: args.slots,
            limits: Limits {
                timeout: args.timeout,
                max_memory: args.max_memory,
                max_log_bytes: args.max_log_bytes,
                max_log_lines: args.max_log_lines,
                max_resources: args.max_resources as usize,
                max_result_bytes: settings.max_result_bytes as usize,
                max_error_bytes: settings.max_error_bytes as usize,
                reuse: args.reuse,
            },
            grants: Grants {
                env: granted_env(&args)?,
                http_hosts: args.allow_http.clone(),
                log_payloads: args.log_payloads,
                push_queues: args.allow_push.clone(),
                max_pushes_per_job: args.max_pushes_per_job,
            },
            cache_dir: args.native.cache_dir(),
            trust_precompiled: args.native.trust_precompiled,
        })?);
        let handler = load(&sandbox, &path).await?;
        Some((sandbox, Arc::new(CurrentHandler::new(handler)), path))
    };

    // Before Redis: a taken address is refused before the host has joined the queue.
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(crate::metrics::server::bind(addr).await?),
        None => None,
    };
    let dashboard_bound = crate::dashboard::bind(&args.dashboard).await?;

    let connect = |what: &'static str| {
        let url = url.clone();
        move |e: sque::Error| anyhow::Error::new(e).context(format!("{what} at Redis {url}"))
    };
    let manager = if args.no_manager {
        None
    } else {
        Some(
            sque::Manager::new(&queue, opts.clone())
                .await
                .map_err(connect("starting the manager"))?,
        )
    };
    let client = match &worker {
        Some(_) => Some(Arc::new(
            // With metrics on, jobs say how long they waited (sque_job_wait_seconds).
            sque::Client::new(
                &queue,
                opts.clone().measure_waits(args.metrics_addr.is_some()),
            )
            .await
            .map_err(connect("starting the worker"))?,
        )),
        None => None,
    };
    if let (Some((sandbox, handler, _)), Some(client)) = (&worker, &client) {
        // The queue's result and error limits are the ones that hold.
        let queue_settings = client.settings();
        sandbox.use_queue_limits(
            queue_settings.max_result_bytes as usize,
            queue_settings.max_error_bytes as usize,
        );
        describe(&handler.get(), sandbox, &args);
        warn_of_grants_to_redis(sandbox, &args.redis.url);
    }
    tracing::info!(
        queue = %queue, redis = %url,
        "sque-host {} started: manager {}, {} slot(s){}",
        env!("CARGO_PKG_VERSION"),
        if manager.is_some() { "on" } else { "off" },
        if worker.is_some() { args.slots } else { 0 },
        match prefetch {
            Some(n) => format!(", prefetch {n}"),
            None => ", prefetch adaptive".to_string(),
        },
    );

    let stop = CancellationToken::new();
    // Metrics are recorded only when they are served.
    let (metrics, metrics_server) = match metrics_listener {
        Some(listener) => {
            let inspector = sque::Inspector::new(&queue, opts.clone())
                .await
                .map_err(connect("reading the queue for /metrics"))?;
            let metrics = Arc::new(Metrics::new(&queue, inspector, args.metrics_interval));
            if let Some((sandbox, _, _)) = &worker {
                sandbox.time_instantiation(metrics.jobs().instantiation.clone());
            }
            let bound = listener.local_addr()?;
            let server = MetricsServer::serve(listener, metrics.clone());
            tracing::info!(queue = %queue, "metrics at http://{bound}/metrics");
            (Some(metrics.jobs()), Some(server))
        }
        None => (None, None),
    };
    let dashboard = match dashboard_bound {
        Some(bound) => Some(crate::dashboard::Dashboard::serve(bound, opts.clone())?),
        None => None,
    };
    let signals = tokio::spawn(watch_signals(
        stop.clone(),
        worker
            .as_ref()
            .map(|(s, h, p)| (s.clone(), h.clone(), p.clone())),
        args.watch,
    ));

    if let (Some((sandbox, handler, _)), Some(client)) = (&worker, &client) {
        let wasm = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("sque-wasm")
            .worker_threads(guest_threads(&args))
            .build()
            .context("starting the wasm runtime")?;
        let report = pool::run(
            client.clone(),
            sandbox.clone(),
            handler.clone(),
            wasm.handle().clone(),
            PoolConfig {
                slots: args.slots as usize,
                prefetch,
                grace: args.grace,
            },
            metrics,
            stop.clone(),
        )
        .await;
        wasm.shutdown_background();
        tracing::info!(
            queue = %queue,
            "worker slots stopped: {} completed, {} failed, {} cancelled while running, {} given back unstarted",
            report.completed, report.failed, report.cancelled, report.released
        );
    } else {
        stop.cancelled().await;
    }
    // The signal watcher cancelled `stop` and ended; nothing else does.
    let _ = signals.await;
    // Before leaving the queue, which may fail and end this function early.
    if let Some(dashboard) = dashboard {
        dashboard.shutdown().await;
    }
    if let Some(client) = client {
        client.shutdown().await.map_err(|e| {
            anyhow::Error::new(e).context(PartlyDone(
                "the host ran and stopped its slots, but could not withdraw its open requests \
                 and leave the queue (they are dropped once its heartbeat runs out, within a lease)"
                    .into(),
            ))
        })?;
    }
    if let Some(manager) = manager {
        manager.shutdown().await?;
    }
    // Last, so that a scrape during shutdown sees what the slots did while stopping.
    if let Some(server) = metrics_server {
        server.shutdown().await;
    }

    tracing::info!(queue = %queue, "stopped");
    Ok(())
}

/// More threads than slots would only add wake-ups between them; with as many as cores, the
/// guests' threads and the Redis thread (and Redis itself, when it runs here) take turns on
/// every job (measured on 2 cores: 55,000 noop jobs/s at 50 slots with one guest thread,
/// 48,000 with two).
fn guest_threads(args: &Args) -> usize {
    let default = cores().saturating_sub(1).max(1);
    let wanted = args.guest_threads.map_or(default, |n| n as usize);
    wanted.min(args.slots as usize)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn describe(handler: &Handler, sandbox: &Sandbox, args: &Args) {
    let caps = handler.capabilities();
    tracing::info!(
        handler = %handler.path().display(),
        "handler loaded; it imports: {}",
        if caps.is_empty() { "no capabilities".to_string() } else { caps.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ") }
    );
    let listed = |what: &[String], none: &str| match what.is_empty() {
        true => none.to_string(),
        false => what.join(", "),
    };
    tracing::info!(
        "granted: {} environment variable(s), HTTP to {}, follow-up jobs to {}; no files, no sockets",
        sandbox.grants.env.len(),
        listed(&args.allow_http, "no host"),
        listed(&args.allow_push, "no queue"),
    );
}

/// An HTTP grant to the host Redis runs on lets handlers talk to what listens there: say so.
fn warn_of_grants_to_redis(sandbox: &Sandbox, url: &str) {
    let hosts = redis_hosts(url);
    for host in hosts {
        for grant in sandbox.grants.http_grants_for(&host) {
            tracing::warn!("--allow-http {grant} grants handlers HTTP to {host}, where this queue's Redis runs; make sure only the port you meant is granted");
        }
    }
}

/// The host names a Redis URL connects to.
fn redis_hosts(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    let hosts = rest.split('/').next().unwrap_or("");
    hosts
        .split(',')
        .map(|h| match h.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host.to_string(),
            _ => h.to_string(),
        })
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

/// SIGINT/SIGTERM ask for shutdown; SIGHUP and (with --watch) file changes reload.
async fn watch_signals(
    stop: CancellationToken,
    worker: Option<(Arc<Sandbox>, Arc<CurrentHandler>, PathBuf)>,
    watch_file: bool,
) {
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let stamp = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen = worker.as_ref().and_then(|(_, _, p)| stamp(p));
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        let reload = tokio::select! {
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); false }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); false }
            _ = hup.recv() => true,
            _ = poll.tick(), if watch_file => {
                let now = worker.as_ref().and_then(|(_, _, p)| stamp(p));
                if now != seen { seen = now; true } else { continue }
            }
        };
        if !reload {
            stop.cancel();
            return;
        }
        if let Some((sandbox, current, path)) = &worker {
            match load(sandbox, path).await {
                Ok(handler) => {
                    current.replace(handler);
                    tracing::info!(handler = %path.display(), "handler reloaded: new jobs run on it, running jobs finish on the old one");
                }
                Err(e) => {
                    tracing::error!(handler = %path.display(), "reload failed, keeping the running handler: {}", crate::cli::common::one_line(&e))
                }
            }
        }
    }
}
