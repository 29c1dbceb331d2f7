//! The sque side: the library for pushes, `sque-host` for `push` from a file and for
//! processing, with the `noop` handler (a fresh instance per job, at-least-once on).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sque::{Manager, Options};

use crate::cases::{email, Case, Kind, Measurement};
use crate::host_binary;
use crate::redis_server::RedisServer;

fn guest(name: &str) -> std::path::PathBuf {
    crate::target_dir()
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{name}.wasm"))
}

pub async fn run(case: &Case, redis: &RedisServer) -> anyhow::Result<Measurement> {
    let opts = Options::default().redis(redis.url()).dispatch(false);
    let queue = format!("bench-{}", std::process::id());
    let manager = Manager::new(&queue, opts).await?;
    let jobs: Vec<serde_json::Value> = (0..case.jobs).map(email).collect();
    let n = case.jobs as f64;
    let m = match case.kind {
        Kind::BulkPushCli => {
            let mut file = tempfile::NamedTempFile::new()?;
            for j in &jobs {
                writeln!(file, "{j}")?;
            }
            file.flush()?;
            let t0 = Instant::now();
            let status = Command::new(host_binary())
                .args([
                    "push",
                    "--quiet",
                    "--log",
                    "warn",
                    "--queue",
                    &queue,
                    "--redis",
                    &redis.url(),
                ])
                .stdin(std::fs::File::open(file.path())?)
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("sque-host push failed");
            }
            rate(n, t0.elapsed())
        }
        Kind::BulkPush => {
            let t0 = Instant::now();
            manager.push_many(jobs).await?;
            rate(n, t0.elapsed())
        }
        Kind::BulkPushUnique => {
            let encoded = jobs
                .iter()
                .enumerate()
                .map(|(i, j)| {
                    let options = sque::JobOptions {
                        unique_key: Some(format!("order-{i}")),
                        ..Default::default()
                    };
                    manager.encode(j, &options)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let t0 = Instant::now();
            manager.push_encoded(&encoded).await?;
            rate(n, t0.elapsed())
        }
        Kind::SinglePush => {
            let t0 = Instant::now();
            for j in jobs {
                manager.push(j).await?;
            }
            rate(n, t0.elapsed())
        }
        Kind::SinglePushUnique => {
            let t0 = Instant::now();
            for (i, j) in jobs.into_iter().enumerate() {
                let options = sque::JobOptions {
                    unique_key: Some(format!("order-{i}")),
                    ..Default::default()
                };
                manager.push_with(j, options).await?;
            }
            rate(n, t0.elapsed())
        }
        Kind::BytesPerJob => {
            let before = redis.used_memory()?;
            manager.push_many(jobs).await?;
            let after = redis.used_memory()?;
            Measurement {
                bytes_per_job: Some((after - before) / n),
                ..Default::default()
            }
        }
        Kind::Process => {
            manager.push_many(jobs).await?;
            process(case, redis, &queue, &manager).await?
        }
        Kind::LimitedProcess => {
            // Limits no run here reaches: a billion jobs a second, a million in flight.
            let admin = sque::Admin::new(&queue, Options::default().redis(redis.url())).await?;
            admin
                .configure(&sque::SettingsChange {
                    rate_count: Some(1_000_000_000),
                    rate_period: Some(Duration::from_secs(1)),
                    max_in_flight: Some(1_000_000),
                    ..Default::default()
                })
                .await?;
            manager.push_many(jobs).await?;
            process(case, redis, &queue, &manager).await?
        }
        Kind::PrioritizedProcess => {
            // High, normal and low in turn, in calls of 1,000 jobs of one priority.
            let encoded = jobs
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    let priority =
                        [sque::HIGHEST_PRIORITY, sque::NORMAL_PRIORITY, 0][(i / 1000) % 3];
                    let options = sque::JobOptions {
                        priority: Some(priority),
                        ..Default::default()
                    };
                    manager.encode(job, &options)
                })
                .collect::<Result<Vec<_>, sque::Error>>()?;
            manager.push_encoded(&encoded).await?;
            process(case, redis, &queue, &manager).await?
        }
        Kind::ManyQueuesProcess => many_queues(case, redis, &queue, jobs).await?,
        Kind::DelayedProcess => delayed_process(case, redis, &queue, &manager, jobs).await?,
        Kind::Latency => latency(case, redis, &queue, &manager).await?,
        Kind::MetricsScrape => {
            manager.push_many(jobs).await?;
            scrape_cost(case, redis, &queue, &manager).await?
        }
        Kind::DashboardPages => {
            manager.push_many(jobs).await?;
            dashboard_pages(case, redis).await?
        }
        Kind::DeadRetryAll => dead_all(case, redis, &queue, "retry")?,
        Kind::DeadPurgeAll => dead_all(case, redis, &queue, "purge")?,
        Kind::Handler => {
            manager.push_many(jobs).await?;
            language(case, redis, &queue, &manager).await?
        }
        Kind::NodePushMany | Kind::NodeSinglePush | Kind::NodeProcess => {
            bail!("{}: a case of the Node package (node_side.rs)", case.name)
        }
    };
    Ok(m)
}

fn rate(jobs: f64, took: Duration) -> Measurement {
    Measurement {
        jobs_per_sec: Some(jobs / took.as_secs_f64()),
        ..Default::default()
    }
}

fn start_host(
    redis: &RedisServer,
    queue: &str,
    handler: &str,
    slots: usize,
) -> anyhow::Result<std::process::Child> {
    let cache = crate::target_dir().join("bench-module-cache");
    start_host_with(redis, queue, &guest(handler), slots, &cache, &[])
}

fn start_host_with(
    redis: &RedisServer,
    queue: &str,
    handler: &std::path::Path,
    slots: usize,
    cache: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<std::process::Child> {
    Command::new(host_binary())
        .args([
            "run",
            "--log",
            "warn",
            "--queue",
            queue,
            "--redis",
            &redis.url(),
        ])
        .arg("--handler")
        .arg(handler)
        // The prefetch is left to its default, the adaptive window (host/src/prefetch.rs).
        .args(["--slots", &slots.to_string()])
        .arg("--cache-dir")
        .arg(cache)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .context("starting sque-host run")
}

async fn process(
    case: &Case,
    redis: &RedisServer,
    queue: &str,
    manager: &Manager,
) -> anyhow::Result<Measurement> {
    let host = start_host(redis, queue, "noop", case.concurrency)?;
    throughput(case.jobs as u64, 0, host, redis, manager).await
}

/// The queues of `many_queues`.
const MANY_QUEUES: usize = 10;

/// As `process`, the jobs spread over [`MANY_QUEUES`] queues (job i in queue i mod 10) that
/// one host serves, each with the noop handler, sharing its slots by weight (all 1).
async fn many_queues(
    case: &Case,
    redis: &RedisServer,
    queue: &str,
    jobs: Vec<serde_json::Value>,
) -> anyhow::Result<Measurement> {
    let opts = Options::default().redis(redis.url()).dispatch(false);
    let names: Vec<String> = (0..MANY_QUEUES).map(|i| format!("{queue}-{i}")).collect();
    let mut managers = Vec::with_capacity(MANY_QUEUES);
    for name in &names {
        managers.push(Manager::new(name, opts.clone()).await?);
    }
    let mut spread = vec![Vec::new(); MANY_QUEUES];
    for (i, job) in jobs.into_iter().enumerate() {
        spread[i % MANY_QUEUES].push(job);
    }
    for (manager, jobs) in managers.iter().zip(spread) {
        manager.push_many(jobs).await?;
    }
    let noop = guest("noop");
    let queues: Vec<String> = names
        .iter()
        .map(|name| format!("{name}={}", noop.display()))
        .collect();
    let mut args = vec!["run", "--log", "warn", "--redis"];
    let url = redis.url();
    args.push(&url);
    for q in &queues {
        args.extend(["--queue", q.as_str()]);
    }
    let slots = case.concurrency.to_string();
    let cache = crate::target_dir().join("bench-module-cache");
    let host = Command::new(host_binary())
        .args(&args)
        .args(["--slots", &slots])
        .arg("--cache-dir")
        .arg(&cache)
        .stdout(Stdio::null())
        .spawn()
        .context("starting sque-host run")?;
    throughput_over(case.jobs as u64, 0, host, redis, &managers).await
}

/// How far ahead of the push the jobs of `delayed_process` are due: enough for the push of
/// every job to end before the first falls due.
const DELAYED_AHEAD: Duration = Duration::from_secs(4);

/// Jobs all due at one time, pushed while the host's slots already ask: from the first job
/// done to the last, the host's manager promotes them in batches while its slots run them.
/// Measured as `process` is, so the two rates compare.
async fn delayed_process(
    case: &Case,
    redis: &RedisServer,
    queue: &str,
    manager: &Manager,
    jobs: Vec<serde_json::Value>,
) -> anyhow::Result<Measurement> {
    let mut host = start_host(redis, queue, "noop", case.concurrency)?;
    let asking = async {
        while manager.stats().await?.requests < case.concurrency as u64 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(())
    };
    if let Err(e) = asking.await {
        let _ = host.kill();
        return Err(e);
    }
    let options = sque::JobOptions {
        at: Some(std::time::SystemTime::now() + DELAYED_AHEAD),
        ..Default::default()
    };
    let encoded = jobs
        .iter()
        .map(|j| manager.encode(j, &options))
        .collect::<Result<Vec<_>, _>>()?;
    let t0 = Instant::now();
    manager.push_encoded(&encoded).await?;
    anyhow::ensure!(
        t0.elapsed() < DELAYED_AHEAD,
        "the push took longer than the {DELAYED_AHEAD:?} ahead the jobs are due"
    );
    throughput(case.jobs as u64, 0, host, redis, manager).await
}

/// Scrapes of `/metrics` made one after another once processing is done.
const SCRAPES: u32 = 1_000;

/// Processing at the case's concurrency with the metrics endpoint on, as `process` does; then,
/// the host idle, `SCRAPES` scrapes with the queue read at every one (`--metrics-interval 0s`,
/// the worst case): their CPU, host and Redis, less what the idle pair used in as long,
/// against the CPU of one second of the processing.
async fn scrape_cost(
    case: &Case,
    redis: &RedisServer,
    queue: &str,
    manager: &Manager,
) -> anyhow::Result<Measurement> {
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    let cache = crate::target_dir().join("bench-module-cache");
    let addr_arg = addr.to_string();
    let mut host = start_host_with(
        redis,
        queue,
        &guest("noop"),
        case.concurrency,
        &cache,
        &["--metrics-addr", &addr_arg, "--metrics-interval", "0s"],
    )?;
    let pid = host.id();
    let processing = throughput_of(
        case.jobs as u64,
        0,
        pid,
        redis,
        std::slice::from_ref(manager),
    )
    .await;
    let processing = match processing {
        Ok(m) => m,
        Err(e) => {
            let _ = host.kill();
            return Err(e);
        }
    };
    let cpu_per_second = processing.jobs_per_sec.unwrap_or(0.0)
        * (processing.host_cpu_us_per_job.unwrap_or(0.0)
            + processing.redis_cpu_us_per_job.unwrap_or(0.0));
    // The idle pair's own CPU (heartbeats, the reaper) over as long as the scrapes take.
    let cpu =
        || -> anyhow::Result<f64> { Ok(redis.cpu_seconds()? + cpu_seconds(pid).unwrap_or(0.0)) };
    let scrape_once = || async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        anyhow::ensure!(
            answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"),
            "a scrape failed"
        );
        anyhow::Ok(())
    };
    let measured = async {
        let (c0, t0) = (cpu()?, Instant::now());
        for _ in 0..SCRAPES {
            scrape_once().await?;
        }
        let (scraping, took) = (cpu()? - c0, t0.elapsed());
        let (c1, t1) = (cpu()?, Instant::now());
        tokio::time::sleep(took).await;
        let idle = (cpu()? - c1) * took.as_secs_f64() / t1.elapsed().as_secs_f64();
        anyhow::Ok((scraping, idle))
    }
    .await;
    if measured.is_err() {
        let _ = host.kill();
    }
    let (scraping, idle) = measured?;
    stop(&mut host)?;
    let per_scrape_us = ((scraping - idle).max(0.0) * 1e6) / SCRAPES as f64;
    Ok(Measurement {
        scrape_cpu_us: Some(per_scrape_us),
        scrape_share: (cpu_per_second > 0.0).then(|| per_scrape_us / cpu_per_second),
        ..processing
    })
}

/// How long each reading of Redis's cost of the dashboard lasts.
const DASHBOARD_WINDOW: Duration = Duration::from_secs(10);

/// `sque-host dashboard` with `case.concurrency` live pages open on a queue of `case.jobs`:
/// Redis's commands and CPU a second, less the same with no page open.
async fn dashboard_pages(case: &Case, redis: &RedisServer) -> anyhow::Result<Measurement> {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut dashboard = Command::new(host_binary())
        .args(["dashboard", "--log", "warn", "--redis", &redis.url()])
        .args(["--dashboard-addr", &addr.to_string()])
        .env_remove("SQUE_DASHBOARD_AUTH")
        .stdout(Stdio::null())
        .spawn()?;
    let measured = async {
        // Up when it answers.
        let t0 = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(30),
                "the dashboard did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let window = || async {
            let (cpu0, cmd0) = (redis.cpu_seconds()?, redis.commands_processed()?);
            tokio::time::sleep(DASHBOARD_WINDOW).await;
            let (cpu1, cmd1) = (redis.cpu_seconds()?, redis.commands_processed()?);
            let secs = DASHBOARD_WINDOW.as_secs_f64();
            anyhow::Ok(((cmd1 - cmd0) / secs, (cpu1 - cpu0) * 1000.0 / secs))
        };
        let idle = window().await?;
        let snapshots = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut pages = Vec::new();
        for _ in 0..case.concurrency {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            let request = format!("GET /api/events HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let snapshots = snapshots.clone();
            pages.push(tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with("data: ") {
                        snapshots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }));
        }
        // The first reading comes at once; then one a second.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let open = window().await?;
        for page in pages {
            page.abort();
        }
        let got = snapshots.load(std::sync::atomic::Ordering::Relaxed);
        anyhow::ensure!(
            got >= case.concurrency * DASHBOARD_WINDOW.as_secs() as usize / 2,
            "the pages got {got} snapshots in all: the dashboard did not serve them"
        );
        anyhow::Ok((open.0 - idle.0, (open.1 - idle.1).max(0.0)))
    }
    .await;
    let _ = dashboard.kill();
    let _ = dashboard.wait();
    let (commands, cpu) = measured?;
    Ok(Measurement {
        redis_commands_per_sec: Some(commands),
        redis_cpu_ms_per_sec: Some(cpu),
        ..Default::default()
    })
}

/// A language's send-email handler: a host with an empty module cache until its first job is
/// done (the compile), then one with the cache warm until its first, then that one's rate.
async fn language(
    case: &Case,
    redis: &RedisServer,
    queue: &str,
    manager: &Manager,
) -> anyhow::Result<Measurement> {
    let lang = case.handler.as_ref().context("a handler case")?;
    let handler = match lang.lang {
        "rust" => guest("send_email"),
        "python" => {
            sque_testing::guests::python_guest("examples/send-email-python", "app", "send_email_py")
        }
        "js" => sque_testing::guests::js_guest("examples/send-email-js/app.js", "send_email_js"),
        other => bail!("no send-email handler in {other}"),
    };
    let cache = tempfile::tempdir()?;
    let reuse = lang.reuse.to_string();
    let extra = ["--reuse", reuse.as_str()];
    let start = || {
        start_host_with(
            redis,
            queue,
            &handler,
            case.concurrency,
            cache.path(),
            &extra,
        )
    };
    // Cold: the cache is empty, so the first job waits for the compile.
    let (mut cold, cold_start) = first_job_done(&case.name, start, manager).await?;
    let cold_rss = read_hwm(cold.id()).unwrap_or(0.0);
    stop(&mut cold)?;
    // Cached: the compile is on disk; then this host's rate.
    let (host, cached_start) = first_job_done(&case.name, start, manager).await?;
    let done = manager.stats().await?.completed;
    let mut m = throughput(case.jobs as u64, done, host, redis, manager).await?;
    m.cold_start_s = Some(cold_start);
    m.cold_rss_bytes = Some(cold_rss);
    m.cached_start_s = Some(cached_start);
    Ok(m)
}

/// Starts a host and waits until it has done its first job; returns it and the seconds from
/// its start to that job.
async fn first_job_done(
    case: &str,
    start: impl Fn() -> anyhow::Result<std::process::Child>,
    manager: &Manager,
) -> anyhow::Result<(std::process::Child, f64)> {
    let before = manager.stats().await?.completed;
    let t0 = Instant::now();
    let mut host = start()?;
    while manager.stats().await?.completed == before {
        if t0.elapsed() > Duration::from_secs(300) {
            let _ = host.kill();
            bail!("{case}: no job done in 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((host, t0.elapsed().as_secs_f64()))
}

/// Waits for `total` jobs done, measuring from 1% past `from` (start-up left out): jobs/s,
/// CPU per job, the host's peak RSS; then stops the host.
async fn throughput(
    total: u64,
    from: u64,
    host: std::process::Child,
    redis: &RedisServer,
    manager: &Manager,
) -> anyhow::Result<Measurement> {
    throughput_over(total, from, host, redis, std::slice::from_ref(manager)).await
}

/// [`throughput`] of a host serving the queues of `managers`, their jobs counted together.
async fn throughput_over(
    total: u64,
    from: u64,
    mut host: std::process::Child,
    redis: &RedisServer,
    managers: &[Manager],
) -> anyhow::Result<Measurement> {
    let measured = throughput_of(total, from, host.id(), redis, managers).await;
    if measured.is_err() {
        let _ = host.kill();
    }
    stop(&mut host)?;
    measured
}

/// [`throughput`]'s measurement of the host `pid`, which it leaves running.
async fn throughput_of(
    total: u64,
    from: u64,
    pid: u32,
    redis: &RedisServer,
    managers: &[Manager],
) -> anyhow::Result<Measurement> {
    let warm_at = from + ((total - from) / 100).max(1);
    let mut warm: Option<(Instant, u64, f64, f64)> = None;
    let mut rss_peak = 0.0;
    let deadline = Instant::now() + Duration::from_secs(600);
    // Completions are counted with one HGET a queue, all in one round trip every 5 ms: the
    // measuring costs Redis and this process next to nothing, and the same for one queue as
    // for ten (a `stats` a queue is fourteen commands: ten queues' cost 28,000 commands a
    // second, on the two cores the host and Redis share).
    let mut con = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let mut count = redis::pipe();
    for manager in managers {
        count
            .cmd("HGET")
            .arg(format!("sque:{{{}}}:stats", manager.queue()))
            .arg("completed");
    }
    loop {
        let completed: Vec<Option<u64>> = count.query_async(&mut con).await?;
        let done: u64 = completed.into_iter().flatten().sum();
        if warm.is_none() && done >= warm_at {
            let (redis_cpu, host_cpu) = (redis.cpu_seconds()?, cpu_seconds(pid).unwrap_or(0.0));
            warm = Some((Instant::now(), done, redis_cpu, host_cpu));
        }
        if done >= total {
            break;
        }
        if Instant::now() > deadline {
            bail!("processing did not finish in 10 minutes");
        }
        // A host that exited (refused its arguments, say: its error is above) finishes no
        // jobs: the run ends now rather than at the deadline.
        if has_exited(pid) {
            bail!("sque-host (pid {pid}) exited before its jobs were done: its error is above");
        }
        rss_peak = read_hwm(pid).unwrap_or(rss_peak);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (t0, c0, redis0, host0) = warm.expect("warm");
    let took = t0.elapsed();
    let jobs = (total - c0) as f64;
    let redis_cpu = redis.cpu_seconds()? - redis0;
    let host_cpu = cpu_seconds(pid).unwrap_or(0.0) - host0;
    rss_peak = read_hwm(pid).unwrap_or(rss_peak);
    Ok(Measurement {
        jobs_per_sec: Some(jobs / took.as_secs_f64()),
        rss_bytes: Some(rss_peak),
        redis_cpu_us_per_job: Some(redis_cpu * 1e6 / jobs),
        host_cpu_us_per_job: Some(host_cpu * 1e6 / jobs),
        ..Default::default()
    })
}

async fn latency(
    case: &Case,
    redis: &RedisServer,
    queue: &str,
    manager: &Manager,
) -> anyhow::Result<Measurement> {
    let mut host = start_host(redis, queue, "fixtures", case.concurrency)?;
    // Wait until the host's slots are asking, so start-up is not counted.
    while manager.stats().await?.requests < case.concurrency as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut pushed = Vec::with_capacity(case.jobs);
    for i in 0..case.jobs {
        let at = now_us();
        let id = manager
            .push(serde_json::json!({"do": "now", "i": i}))
            .await?;
        pushed.push((id, at));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while manager.stats().await?.completed < case.jobs as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop(&mut host)?;
    let mut ms = Vec::with_capacity(pushed.len());
    for (id, at) in pushed {
        let r = manager.result(&id).await?.context("a result")?;
        let started = r["started_us"].as_f64().context("started_us")?;
        ms.push((started - at as f64) / 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((p * ms.len() as f64) as usize).min(ms.len() - 1)];
    Ok(Measurement {
        p50_ms: Some(q(0.5)),
        p90_ms: Some(q(0.9)),
        p99_ms: Some(q(0.99)),
        max_ms: ms.last().copied(),
        ..Default::default()
    })
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The fields of `/proc/PID/stat` after the command name (which is in parentheses and may
/// hold spaces): the state first, then the parent's pid, and so on (`man 5 proc`).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether the process `pid`, a child of this one, has exited (a zombie until it is waited
/// for) or is gone.
fn has_exited(pid: u32) -> bool {
    stat_fields(pid).is_none_or(|f| f.first().is_some_and(|state| state == "Z" || state == "X"))
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let fields = stat_fields(pid)?;
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident memory (VmHWM) of a process, in bytes.
fn read_hwm(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

fn stop(host: &mut std::process::Child) -> anyhow::Result<()> {
    let _ = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    host.wait()?;
    Ok(())
}

/// `sque-host dead retry|purge --all` of `case.jobs` dead jobs, timed, with the longest single
/// command Redis ran meanwhile (every command logged in SLOWLOG for the run).
fn dead_all(
    case: &Case,
    redis: &RedisServer,
    queue: &str,
    action: &str,
) -> anyhow::Result<Measurement> {
    bury(redis, queue, case.jobs)?;
    let _: () = redis.on_node(0, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let _: () = redis.on_node(0, &["CONFIG", "SET", "slowlog-max-len", "100000"]);
    let _: () = redis.on_node(0, &["SLOWLOG", "RESET"]);
    let t0 = Instant::now();
    let status = Command::new(host_binary())
        .args([
            "dead",
            action,
            "--all",
            "--queue",
            queue,
            "--redis",
            &redis.url(),
        ])
        .args(["--log", "warn"])
        .stdout(Stdio::null())
        .status()?;
    let took = t0.elapsed();
    if !status.success() {
        bail!("sque-host dead {action} --all failed");
    }
    // Each entry: id, time, duration in µs, the command's words, client address and name.
    let log: Vec<Vec<redis::Value>> = redis.on_node(0, &["SLOWLOG", "GET", "100000"]);
    let _: () = redis.on_node(0, &["CONFIG", "SET", "slowlog-log-slower-than", "10000"]);
    let longest_us = log
        .iter()
        .filter_map(|entry| redis::from_redis_value_ref::<i64>(entry.get(2)?).ok())
        .max()
        .context("SLOWLOG logged nothing")?;
    Ok(Measurement {
        jobs_per_sec: Some(case.jobs as f64 / took.as_secs_f64()),
        longest_call_ms: Some(longest_us as f64 / 1000.0),
        ..Default::default()
    })
}

/// Puts `n` dead jobs in the queue's dead list, in the protocol's shape, as fast as Redis
/// takes them (pipelined), with room for all of them.
fn bury(redis: &RedisServer, queue: &str, n: usize) -> anyhow::Result<()> {
    let key = |name: &str| format!("sque:{{{queue}}}:{name}");
    let _: () = redis.on_node(0, &["HSET", &key("meta"), "dead_max", &(n * 2).to_string()]);
    let mut con = redis.con();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(5000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            let token = format!("{id}|5|5");
            pipe.cmd("ZADD")
                .arg(key("dead_at"))
                .arg(*id)
                .arg(&token)
                .ignore();
            pipe.cmd("HSET")
                .arg(key("jobs"))
                .arg(*id)
                .arg(email(*id).to_string())
                .ignore();
            pipe.cmd("HSET")
                .arg(key("errors"))
                .arg(*id)
                .arg(
                    serde_json::json!({"code": "fail", "message": "handler failed: no", "at": id, "token": token})
                        .to_string(),
                )
                .ignore();
        }
        pipe.query::<()>(&mut *con)
            .context("burying the bench's dead jobs")?;
    }
    Ok(())
}
