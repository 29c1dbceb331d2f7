//! `sque-host run`: for each queue it serves, a manager and a lane of one shared pool of
//! worker slots, until SIGINT or SIGTERM. SIGHUP (or, with --watch, a change of a handler file
//! or of the config file) loads the handlers anew for new jobs, running jobs finishing on the
//! old ones; with --config it reads the file again, adding, changing and removing queues.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::cli::common::{parse_duration, parse_memory_limit, parse_size, usage, RedisArgs};
use crate::cli::native_code::NativeCodeArgs;
use crate::cli::signals::{Received, Signals};
use crate::config::{self, QueueSpec};
use crate::metrics::server::MetricsServer;
use crate::metrics::Metrics;
use crate::pool::{self, Change, Lane, LaneShare, Order, PoolConfig};
use crate::sandbox::{EngineConfig, Grants, GuestEngine, Limits};
use crate::serving::{self, Host, Served};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A queue to serve, as NAME (its handler is --handler) or NAME=HANDLER; repeat it to
    /// serve several queues from one host, sharing its slots (SQUE_QUEUE takes a
    /// comma-separated list). Example: --queue emails=send_email.wasm --queue sms=sms.wasm.
    #[arg(
        long = "queue",
        short = 'q',
        env = "SQUE_QUEUE",
        value_delimiter = ',',
        value_name = "NAME[=HANDLER]",
        required_unless_present = "config"
    )]
    queues: Vec<String>,

    /// The handler component (.wasm, built for wasm32-wasip2 with a sque guest SDK), or a
    /// .cwasm from `sque-host compile` (with --trust-precompiled), of each --queue given
    /// without one.
    #[arg(long, env = "SQUE_HANDLER", conflicts_with = "config")]
    handler: Option<PathBuf>,

    /// A file naming the queues to serve, each with its handler, limits, grants and share of
    /// the slots (README.md, "Many queues in one host", shows one; `sque-host check FILE`
    /// checks it). SIGHUP reads it again. The flags below are the defaults of a queue that
    /// leaves a key out.
    #[arg(
        long,
        env = "SQUE_CONFIG",
        value_name = "FILE",
        conflicts_with = "queues"
    )]
    config: Option<PathBuf>,

    /// How the queues share the slots: weighted (in proportion to each queue's weight, 1
    /// unless the config file sets it) or strict (the first queue, in the order given, while
    /// it has work; then the next). A queue with no work holds no slots either way.
    /// [default: weighted, or the config file's order]
    #[arg(long, env = "SQUE_ORDER", value_enum)]
    order: Option<Order>,

    #[command(flatten)]
    redis: RedisArgs,

    /// Jobs run at once, by all the queues together. [default: 16, or the config file's
    /// slots]
    #[arg(long, env = "SQUE_SLOTS", value_parser = clap::value_parser!(u32).range(1..=4096))]
    slots: Option<u32>,

    /// Jobs asked for ahead of free slots, so that no slot waits for a round trip (they are
    /// leased meanwhile, and given back unstarted on shutdown). Default: adaptive, about 5 ms
    /// of work at the rate jobs finish, times the queues busy with that work, at least
    /// --slots and at most 1024.
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
    #[arg(long, env = "SQUE_MAX_MEMORY", default_value = "64MiB", value_parser = parse_memory_limit)]
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
    #[arg(long = "env", env = "SQUE_ENV", hide_env_values = true, value_delimiter = ',', value_name = "K=V", value_parser = config::parse_env)]
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
        Some(path) => config::read_env_file(path).map_err(|e| usage(format!("--env-file {e}")))?,
        None => Vec::new(),
    };
    env.extend(args.env.iter().cloned());
    Ok(config::last_of_each(env))
}

fn parse_push_grant(s: &str) -> Result<String, String> {
    sque::validate_queue_name(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_grant(s: &str) -> Result<String, String> {
    crate::sandbox::check_http_grant(s).map(|()| s.to_string())
}

/// What the command line gives a queue that does not say otherwise.
fn defaults(args: &Args) -> anyhow::Result<QueueSpec> {
    let settings = sque::SettingsChange {
        lease: args.lease,
        max_attempts: args.max_attempts,
        max_job_bytes: args.max_job_bytes.map(|n| n as u64),
        max_result_bytes: args.max_result_bytes.map(|n| n as u64),
        max_error_bytes: args.max_error_bytes.map(|n| n as u64),
        ..Default::default()
    };
    let known = sque::Options::default()
        .settings(settings.clone())
        .queue_settings();
    Ok(QueueSpec {
        name: String::new(),
        handler: args.handler.clone(),
        limits: Limits {
            timeout: args.timeout,
            max_memory: args.max_memory,
            max_log_bytes: args.max_log_bytes,
            max_log_lines: args.max_log_lines,
            max_resources: args.max_resources as usize,
            max_result_bytes: known.max_result_bytes as usize,
            max_error_bytes: known.max_error_bytes as usize,
            reuse: args.reuse,
        },
        grants: Grants {
            env: granted_env(args)?,
            http_hosts: args.allow_http.clone(),
            log_payloads: args.log_payloads,
            push_queues: args.allow_push.clone(),
            max_pushes_per_job: args.max_pushes_per_job,
        },
        settings,
        share: LaneShare::default(),
    })
}

/// The queues to serve, and the file's order and slots: from --config, or from --queue.
fn plan(args: &Args, defaults: &QueueSpec) -> anyhow::Result<config::Plan> {
    if let Some(path) = &args.config {
        return config::load(path, defaults).map_err(|problems| usage(problems.join("\nerror: ")));
    }
    let mut queues: Vec<QueueSpec> = Vec::new();
    for given in &args.queues {
        let (name, handler) = match given.split_once('=') {
            Some((name, handler)) => (name, Some(PathBuf::from(handler))),
            None => (given.as_str(), args.handler.clone()),
        };
        sque::validate_queue_name(name).map_err(|e| usage(format!("--queue {given}: {e}")))?;
        if queues.iter().any(|q| q.name == name) {
            return Err(usage(format!("--queue {name} is given twice")));
        }
        if handler.is_none() && !args.manager_only {
            return Err(usage(format!(
                "--queue {name} has no handler: give --handler FILE, or --queue {name}=FILE"
            )));
        }
        queues.push(QueueSpec {
            name: name.to_string(),
            handler,
            ..defaults.clone()
        });
    }
    Ok(config::Plan {
        order: None,
        slots: None,
        queues,
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // First: a signal during the start (a compile takes seconds) is answered, not fatal.
    let mut signals = Signals::install(true)?;
    let opts = args.redis.options();
    let url = opts.redis_url_redacted();
    let defaults = defaults(&args)?;
    let plan = plan(&args, &defaults)?;
    let slots = args.slots.or(plan.slots).unwrap_or(DEFAULT_SLOTS);
    let order = args.order.or(plan.order).unwrap_or(Order::Weighted);
    let prefetch = args.prefetch.map(|n| n as usize);

    // The handlers first: a bad file is the commonest mistake, and it needs no Redis.
    let engine = match args.manager_only {
        true => None,
        false => Some(Arc::new(GuestEngine::new(EngineConfig {
            // Only the slots run guests; the room a reload needs is in the sizing itself.
            slots,
            // The pool's instances are made as large as the largest queue's limit.
            max_memory: plan.max_memory(args.max_memory),
            cache_dir: args.native.cache_dir(),
            trust_precompiled: args.native.trust_precompiled,
        })?)),
    };
    let several = plan.queues.len() > 1 || args.config.is_some();
    // Nothing is joined yet, so a stop asked for meanwhile needs no draining.
    let prepared = tokio::select! {
        prepared = prepare_all(engine.as_ref(), plan.queues) => prepared?,
        name = signals.stop_requested() => {
            tracing::info!("{name} while loading the handlers: stopped before joining any queue");
            return Ok(());
        }
    };

    // Before Redis: a taken address is refused before the host has joined the queues.
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(crate::metrics::server::bind(addr).await?),
        None => None,
    };
    let dashboard_bound = crate::dashboard::bind(&args.dashboard).await?;
    let metrics = metrics_listener
        .as_ref()
        .map(|_| (Arc::new(Metrics::default()), args.metrics_interval));
    // Several queues (or a file that a reload may add queues to): every queue's manager and
    // client send their commands on one connection, so that calls made together travel
    // together (bench/README.md: ten queues 4-8% faster, the host's CPU a job 5% less). One
    // queue keeps its roles' connections apart, as it always had.
    let host = Host {
        opts: match several {
            true => opts.clone().share_connection(),
            false => opts.clone(),
        },
        engine,
        manager: !args.no_manager,
        metrics,
        slots,
        url: url.clone(),
    };
    // Joining connects to Redis, which takes up to the connect timeout when Redis does not
    // answer: a stop asked for meanwhile is answered at once. Nothing is leased yet (the
    // slots start below), so what was joined is dropped with nothing to give back.
    let joining = async {
        let mut served = Vec::with_capacity(prepared.len());
        for p in prepared {
            served.push(serving::start(&host, p).await?);
        }
        anyhow::Ok(served)
    };
    let served = tokio::select! {
        served = joining => served?,
        name = signals.stop_requested() => {
            tracing::info!("{name} while joining the queues: stopped before serving any job");
            return Ok(());
        }
    };
    let names: Vec<&str> = served.iter().map(|s| s.spec.name.as_str()).collect();
    tracing::info!(
        redis = %url,
        "sque-host {} started: {} {}, manager {}, {} slot(s){}{}",
        env!("CARGO_PKG_VERSION"),
        if names.len() == 1 { "queue" } else { "queues" },
        names.join(", "),
        if host.manager { "on" } else { "off" },
        if host.engine.is_some() { slots } else { 0 },
        match prefetch {
            Some(n) => format!(", prefetch {n}"),
            None => ", prefetch adaptive".to_string(),
        },
        if names.len() > 1 { format!(", {order:?} order").to_lowercase() } else { String::new() },
    );

    let stop = CancellationToken::new();
    let metrics_server = match (metrics_listener, &host.metrics) {
        (Some(listener), Some((metrics, _))) => {
            let bound = listener.local_addr()?;
            tracing::info!("metrics at http://{bound}/metrics");
            Some(MetricsServer::serve(listener, metrics.clone()))
        }
        _ => None,
    };
    let dashboard = match dashboard_bound {
        Some(bound) => Some(crate::dashboard::Dashboard::serve(bound, opts.clone())?),
        None => None,
    };

    let lanes: Vec<(Arc<Lane>, LaneShare)> = served
        .iter()
        .filter_map(|s| s.lane.clone().map(|lane| (lane, s.spec.share)))
        .collect();
    let (changes, changed) = mpsc::unbounded_channel();
    let reloader = Reloader {
        args: Arc::new(args),
        defaults,
        host: Arc::new(host),
        served: Arc::new(tokio::sync::Mutex::new(served)),
        changes,
        leaving: TaskTracker::new(),
    };
    let watcher = tokio::spawn(watch_signals(signals, stop.clone(), reloader.clone()));

    if reloader.host.engine.is_some() {
        let wasm = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("sque-wasm")
            .worker_threads(guest_threads(&reloader.args, slots))
            .build()
            .context("starting the wasm runtime")?;
        pool::run(
            lanes,
            changed,
            wasm.handle().clone(),
            PoolConfig {
                slots: slots as usize,
                prefetch,
                grace: reloader.args.grace,
                order,
            },
            stop.clone(),
        )
        .await;
        wasm.shutdown_background();
    } else {
        stop.cancelled().await;
    }
    // The signal watcher cancelled `stop` and ended; nothing else does.
    let _ = watcher.await;
    // Before leaving the queues, which may fail and end this function early.
    if let Some(dashboard) = dashboard {
        dashboard.shutdown().await;
    }
    // Queues a reload removed finish leaving first.
    reloader.leaving.close();
    reloader.leaving.wait().await;
    // All at once (each waits for its inbox reader's pop to end), and each even when
    // another could not leave.
    let served = std::mem::take(&mut *reloader.served.lock().await);
    let stopped = futures_util::future::join_all(served.into_iter().map(|s| s.stop(None))).await;
    let failed = stopped.into_iter().find_map(Result::err);
    // Last, so that a scrape during shutdown sees what the slots did while stopping.
    if let Some(server) = metrics_server {
        server.shutdown().await;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    tracing::info!("stopped");
    Ok(())
}

/// The default of --slots.
const DEFAULT_SLOTS: u32 = 16;

/// What a reload needs: the command line, the queues served, and the pool to tell.
#[derive(Clone)]
struct Reloader {
    args: Arc<Args>,
    defaults: QueueSpec,
    host: Arc<Host>,
    served: Arc<tokio::sync::Mutex<Vec<Served>>>,
    changes: mpsc::UnboundedSender<Change>,
    /// Queues a reload removed, leaving once their jobs are done.
    leaving: TaskTracker,
}

impl Reloader {
    /// The files to watch for changes (--watch): the config file and every handler.
    async fn watched(&self) -> Vec<PathBuf> {
        let served = self.served.lock().await;
        self.args
            .config
            .iter()
            .cloned()
            .chain(served.iter().filter_map(|s| s.spec.handler.clone()))
            .collect()
    }

    /// A reload's first half: reads the plan again (the config file, when there is one) and
    /// loads every handler anew. It changes nothing, so a stop may drop it midway: a large
    /// handler compiles for seconds (the compile itself runs on to its end in the background,
    /// unused).
    async fn load(&self) -> anyhow::Result<(config::Plan, Vec<serving::Prepared>)> {
        let mut plan = plan(&self.args, &self.defaults)?;
        let queues = std::mem::take(&mut plan.queues);
        let prepared = prepare_all(self.host.engine.as_ref(), queues).await?;
        Ok((plan, prepared))
    }

    /// A reload's second half, on what [`Reloader::load`] loaded: joins the queues the plan
    /// adds; only if all of that worked, removes the queues it drops and changes the others,
    /// none of which can fail or waits (a stop may drop this future only before them).
    /// Running jobs finish on what they started with.
    async fn apply(
        &self,
        plan: config::Plan,
        prepared: Vec<serving::Prepared>,
    ) -> anyhow::Result<()> {
        let mut served = self.served.lock().await;
        let (mut added, mut kept) = (Vec::new(), Vec::new());
        for p in prepared {
            match served.iter().any(|s| s.spec.name == p.spec.name) {
                true => kept.push(p),
                false => added.push(p),
            }
        }
        let mut joined = Vec::with_capacity(added.len());
        for p in added {
            let name = p.spec.name.clone();
            match serving::start(&self.host, p).await {
                Ok(new) => joined.push(new),
                Err(e) => {
                    // Leave the ones joined so far: the reload changes nothing.
                    for new in joined {
                        let _ = new.stop(self.metrics().map(|m| &**m)).await;
                    }
                    return Err(e.context(format!("adding queue {name}")));
                }
            }
        }
        let wanted: Vec<String> = kept
            .iter()
            .map(|p| p.spec.name.clone())
            .chain(joined.iter().map(|s| s.spec.name.clone()))
            .collect();
        // Removed: the pool stops asking for their jobs; they leave once those are done.
        let (stay, removed): (Vec<Served>, Vec<Served>) = std::mem::take(&mut *served)
            .into_iter()
            .partition(|s| wanted.contains(&s.spec.name));
        *served = stay;
        for gone in removed {
            tracing::info!(queue = %gone.spec.name, "no longer in the config: its jobs finish, then the host leaves the queue");
            let _ = self.changes.send(Change::Remove(gone.spec.name.clone()));
            let metrics = self.metrics().cloned();
            self.leaving.spawn(async move {
                let queue = gone.spec.name.clone();
                if let Err(e) = gone.stop(metrics.as_deref()).await {
                    tracing::warn!(queue = %queue, "{}", crate::cli::common::one_line(&e));
                }
            });
        }
        for p in kept {
            if let Some(s) = served.iter_mut().find(|s| s.spec.name == p.spec.name) {
                if p.spec.share != s.spec.share {
                    let _ = self
                        .changes
                        .send(Change::Reshare(p.spec.name.clone(), p.spec.share));
                }
                s.reload(p);
            }
        }
        for new in joined {
            if let Some(lane) = &new.lane {
                let _ = self.changes.send(Change::Add(lane.clone(), new.spec.share));
            }
            tracing::info!(queue = %new.spec.name, "added: the host serves it from now on");
            served.push(new);
        }
        // The file's order of the queues, and its order of sharing (the command line's wins).
        served.sort_by_key(|s| plan_position(&wanted, &s.spec.name));
        let order = self.args.order.or(plan.order).unwrap_or(Order::Weighted);
        let _ = self.changes.send(Change::Arrange(order, wanted));
        if plan.slots.is_some_and(|n| n != self.host.slots) && self.args.slots.is_none() {
            tracing::warn!(
                "the config file's slots changed: the host keeps its {} until it is restarted",
                self.host.slots
            );
        }
        Ok(())
    }

    fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.host.metrics.as_ref().map(|(m, _)| m)
    }
}

fn plan_position(wanted: &[String], name: &str) -> usize {
    wanted.iter().position(|w| w == name).unwrap_or(usize::MAX)
}

/// Loads every queue's handler (none when the host runs no slots), naming the queue of any
/// that fails.
async fn prepare_all(
    engine: Option<&Arc<GuestEngine>>,
    queues: Vec<QueueSpec>,
) -> anyhow::Result<Vec<serving::Prepared>> {
    let loading = async {
        let mut prepared = Vec::with_capacity(queues.len());
        for spec in queues {
            let name = spec.name.clone();
            let p = serving::prepare(engine, spec).await;
            prepared.push(p.map_err(|e| e.context(format!("queue {name}")))?);
        }
        anyhow::Ok(prepared)
    };
    let prepared = loading.await;
    // Queues of this start or reload that name one handler share its component; the next
    // reload compiles (or takes from the module cache) anew.
    if let Some(engine) = engine {
        engine.forget_loaded();
    }
    prepared
}

/// More threads than slots would only add wake-ups between them; with as many as cores, the
/// guests' threads and the Redis thread (and Redis itself, when it runs here) take turns on
/// every job (measured on 2 cores: 55,000 noop jobs/s at 50 slots with one guest thread,
/// 48,000 with two).
fn guest_threads(args: &Args, slots: u32) -> usize {
    let default = cores().saturating_sub(1).max(1);
    let wanted = args.guest_threads.map_or(default, |n| n as usize);
    wanted.min(slots as usize)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// SIGINT/SIGTERM ask for shutdown; SIGHUP and (with --watch) file changes reload.
async fn watch_signals(mut signals: Signals, stop: CancellationToken, reloader: Reloader) {
    let watch_files = reloader.args.watch;
    let stamp = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stamps = |paths: Vec<PathBuf>| -> Vec<Option<std::time::SystemTime>> {
        paths.iter().map(stamp).collect()
    };
    let mut seen = stamps(reloader.watched().await);
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        let why = tokio::select! {
            received = signals.next() => match received {
                Received::Stop(name) => { tracing::info!("{name}: stopping"); break }
                Received::Reload => "SIGHUP",
            },
            _ = poll.tick(), if watch_files => {
                let now = stamps(reloader.watched().await);
                if now == seen { continue }
                "a watched file changed"
            }
        };
        tracing::info!("reloading ({why})");
        // The files as they are before the reload reads them: one changed while the reload
        // runs (a config saved twice, a handler caught half-copied) is seen as changed at the
        // next poll, and reloaded then. Files the reload newly watches are taken as they are
        // after it.
        let before: Vec<(PathBuf, Option<std::time::SystemTime>)> = reloader
            .watched()
            .await
            .into_iter()
            .map(|p| {
                let s = stamp(&p);
                (p, s)
            })
            .collect();
        // A stop while the reload runs is heard at once: while it loads its handlers (a
        // compile of seconds), or joins the queues it adds (a Redis that answers nothing holds
        // each call for seconds). It drops the reload, which has changed nothing until its
        // joins are done (queues joined so far are dropped with nothing leased, as at start).
        let reload = async {
            let (plan, prepared) = reloader.load().await?;
            reloader.apply(plan, prepared).await
        };
        let reloaded = tokio::select! {
            reloaded = reload => reloaded,
            name = signals.stop_requested() => {
                tracing::info!("{name} while reloading: stopping with the handlers and queues as they were");
                break;
            }
        };
        if let Err(e) = reloaded {
            tracing::error!(
                "reload failed, keeping the running handlers and queues as they were: {}",
                crate::cli::common::one_line(&e)
            );
        }
        seen = reloader
            .watched()
            .await
            .iter()
            .map(|p| match before.iter().find(|(q, _)| q == p) {
                Some((_, s)) => *s,
                None => stamp(p),
            })
            .collect();
    }
    stop.cancel();
    // The stop is bounded, whatever Redis does: a second stop while the first is under way
    // (a grace period to cut short) ends the process at once, and so does a stop still under
    // way SHUTDOWN_SLACK after the grace period (a Redis that answers nothing: on a Cluster,
    // the client tries each call again, and its timeouts add up). What the host holds comes
    // back when its leases run out, as after `kill -9`.
    let deadline = reloader.args.grace + SHUTDOWN_SLACK;
    tokio::spawn(async move {
        tokio::select! {
            name = signals.stop_requested() => {
                tracing::warn!("{name} again while stopping: exiting now; the jobs this host held come back when their leases run out");
            }
            _ = tokio::time::sleep(deadline) => {
                tracing::error!("still stopping {deadline:?} after the stop (--grace and {SHUTDOWN_SLACK:?} more): Redis does not answer; exiting now; the jobs this host held come back when their leases run out");
            }
        }
        std::process::exit(1);
    });
}

/// How long a stop may take past the grace period (recording outcomes, giving jobs back,
/// leaving the queues) before the host exits without finishing it.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(15);
