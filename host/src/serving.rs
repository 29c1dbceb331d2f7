//! The queues a running host serves (`sque-host run`): for each, its sandbox and handler, its
//! manager, and its lane of the pool (a client of the queue, with the handler, report and
//! metrics). Queues are made ready before the host connects to Redis ([`prepare`]: a bad
//! handler is the commonest mistake, and needs no Redis), then joined ([`start`]), changed
//! or removed on reload, and left ([`Served::stop`]) once their jobs are done.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::native_code::load;
use crate::config::QueueSpec;
use crate::metrics::{Metrics, QueueMetrics};
use crate::pool::{CurrentHandler, Lane};
use crate::sandbox::{GuestEngine, Handler, Sandbox};

/// What every queue of the host shares.
pub struct Host {
    /// Redis and the prefix; each queue adds its own settings.
    pub opts: sque::Options,
    /// The engine the slots run guests on; `None` when the host runs no slots.
    pub engine: Option<Arc<GuestEngine>>,
    /// Whether this host dispatches (runs a manager for each queue).
    pub manager: bool,
    /// `/metrics`, when it is served, and how often queue figures are read for it.
    pub metrics: Option<(Arc<Metrics>, Duration)>,
    /// The host's slots, shown in each queue's metrics.
    pub slots: u32,
    /// The Redis URL the queues are on, without its password, for messages.
    pub url: String,
}

/// A queue's handler, loaded and checked, not yet joined.
pub struct Prepared {
    pub spec: QueueSpec,
    loaded: Option<(Arc<Sandbox>, Handler)>,
}

/// Loads `spec`'s handler in a sandbox of its limits and grants on `engine` (none when the
/// host runs no slots). Errors do not name the queue: the caller says it as it needs.
pub async fn prepare(
    engine: Option<&Arc<GuestEngine>>,
    spec: QueueSpec,
) -> anyhow::Result<Prepared> {
    let loaded = match engine {
        None => None,
        Some(engine) => Some(load_for(engine, &spec).await?),
    };
    Ok(Prepared { spec, loaded })
}

async fn load_for(
    engine: &Arc<GuestEngine>,
    spec: &QueueSpec,
) -> anyhow::Result<(Arc<Sandbox>, Handler)> {
    let path: PathBuf = spec.handler.clone().ok_or_else(|| {
        crate::cli::common::usage(format!(
            "no handler; give --handler FILE, or --queue {}=FILE",
            spec.name
        ))
    })?;
    let sandbox = Arc::new(
        Sandbox::on(engine, spec.limits.clone(), spec.grants.clone())
            .map_err(|e| crate::cli::common::usage(e.to_string()))?,
    );
    let handler = load(&sandbox, &path).await?;
    Ok((sandbox, handler))
}

/// A queue being served.
pub struct Served {
    pub spec: QueueSpec,
    /// Its lane of the pool; `None` when the host runs no slots.
    pub lane: Option<Arc<Lane>>,
    manager: Option<sque::Manager>,
    /// What it shows at `/metrics`, when that is served.
    metrics: Option<Arc<QueueMetrics>>,
}

/// Joins the queue `prepared` is for: its manager, its client and its metrics.
pub async fn start(host: &Host, prepared: Prepared) -> anyhow::Result<Served> {
    let Prepared { spec, loaded } = prepared;
    let opts = host.opts.clone().settings(spec.settings.clone());
    let queue = spec.name.clone();
    let connect = |what: &'static str| {
        let (url, queue) = (host.url.clone(), queue.clone());
        move |e: sque::Error| {
            anyhow::Error::new(e).context(format!("{what} of queue {queue} at Redis {url}"))
        }
    };
    let manager = match host.manager {
        true => Some(
            sque::Manager::new(&queue, opts.clone())
                .await
                .map_err(connect("starting the manager"))?,
        ),
        false => None,
    };
    // The queue's figures are shown whether or not this host runs slots.
    let shown = match &host.metrics {
        None => None,
        Some((_, interval)) => {
            let inspector = sque::Inspector::new(&queue, opts.clone())
                .await
                .map_err(connect("reading the queue for /metrics"))?;
            // Shown once the queue has joined (below): a join that fails, in a reload, must
            // leave no series behind.
            Some(Arc::new(QueueMetrics::new(&queue, inspector, *interval)))
        }
    };
    let lane = match loaded {
        None => None,
        Some((sandbox, handler)) => {
            // With metrics on, jobs say how long they waited (sque_job_wait_seconds).
            let client =
                sque::Client::new(&queue, opts.clone().measure_waits(host.metrics.is_some()))
                    .await
                    .map_err(connect("starting the worker"))?;
            let metrics = shown.as_ref().map(|m| {
                let jobs = m.jobs();
                jobs.slots.set(host.slots as i64);
                jobs
            });
            use_queue_limits(&sandbox, &client, metrics.as_deref());
            describe(&queue, &handler, &sandbox);
            warn_of_grants_to_redis(&sandbox, &host.url);
            let handler = Arc::new(CurrentHandler::new(sandbox, handler));
            Some(Lane::new(Arc::new(client), handler, metrics))
        }
    };
    if let (Some((all, _)), Some(metrics)) = (&host.metrics, &shown) {
        all.add(metrics.clone());
    }
    Ok(Served {
        spec,
        lane,
        manager,
        metrics: shown,
    })
}

/// The queue's result and error limits are the ones that hold; the sandbox times instance
/// creation when metrics are on.
fn use_queue_limits(
    sandbox: &Sandbox,
    client: &sque::Client,
    metrics: Option<&crate::metrics::JobMetrics>,
) {
    let settings = client.settings();
    sandbox.use_queue_limits(
        settings.max_result_bytes as usize,
        settings.max_error_bytes as usize,
    );
    if let Some(m) = metrics {
        sandbox.time_instantiation(m.instantiation.clone());
    }
}

impl Served {
    /// Jobs start on `prepared`'s handler (and limits, grants) from now on; running ones
    /// finish on what they started with.
    pub fn reload(&mut self, prepared: Prepared) {
        if prepared.spec.settings != self.spec.settings {
            tracing::warn!(queue = %self.spec.name, "the queue's settings (max-attempts, lease, max-job-bytes, max-result-bytes, max-error-bytes) are given only to a queue this host creates; change them with `sque-host queue config`");
        }
        if let (Some(lane), Some((sandbox, handler))) = (&self.lane, prepared.loaded) {
            use_queue_limits(&sandbox, &lane.client, lane.metrics.as_deref());
            describe(&self.spec.name, &handler, &sandbox);
            tracing::info!(queue = %self.spec.name, handler = %handler.path().display(), "handler reloaded: new jobs run on it, running jobs finish on the old one");
            lane.handler.replace(sandbox, handler);
        }
        self.spec = prepared.spec;
    }

    /// Leaves the queue, after its lane (if any) left the pool and its jobs are done: the
    /// client withdraws what it still has open, then the manager stops.
    pub async fn stop(self, metrics: Option<&Metrics>) -> anyhow::Result<()> {
        let queue = &self.spec.name;
        if let Some(lane) = &self.lane {
            lane.drained().await;
            let report = lane.report().clone();
            tracing::info!(
                queue = %queue,
                "worker slots stopped: {} completed, {} failed, {} cancelled while running, {} given back unstarted",
                report.completed, report.failed, report.cancelled, report.released
            );
            lane.client.shutdown().await.map_err(|e| {
                anyhow::Error::new(e).context(crate::cli::common::PartlyDone(format!(
                    "the host stopped serving queue {queue}, but could not withdraw its open \
                     requests and leave the queue (they are dropped once its heartbeat runs \
                     out, within a lease)"
                )))
            })?;
        }
        if let (Some(all), Some(mine)) = (metrics, &self.metrics) {
            all.remove(mine);
        }
        if let Some(manager) = self.manager {
            manager.shutdown().await?;
        }
        Ok(())
    }
}

fn describe(queue: &str, handler: &Handler, sandbox: &Sandbox) {
    let caps = handler.capabilities();
    let grants = &sandbox.grants;
    let listed = |what: &[String], none: &str| match what.is_empty() {
        true => none.to_string(),
        false => what.join(", "),
    };
    tracing::info!(
        queue = %queue, handler = %handler.path().display(),
        "handler loaded; it imports: {}; granted: {} environment variable(s), HTTP to {}, follow-up jobs to {}; no files, no sockets",
        if caps.is_empty() { "no capabilities".to_string() } else { caps.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ") },
        grants.env.len(),
        listed(&grants.http_hosts, "no host"),
        listed(&grants.push_queues, "no queue"),
    );
}

/// An HTTP grant to the host Redis runs on lets handlers talk to what listens there: say so.
fn warn_of_grants_to_redis(sandbox: &Sandbox, url: &str) {
    for host in redis_hosts(url) {
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
