//! The cases, the same jobs (`{"email":"test<i>@mail.org"}`) for both systems.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Case {
    pub name: String,
    pub kind: Kind,
    pub jobs: usize,
    /// Handler concurrency, for processing and latency.
    pub concurrency: usize,
    /// Whether BullMQ runs it too.
    pub bullmq: bool,
    /// For `Kind::Handler`: which send-email handler, and `--reuse`.
    pub handler: Option<HandlerCase>,
}

/// A language's `send-email` handler, run by `sque-host` (sque only: BullMQ runs Node).
#[derive(Clone, Debug, Serialize)]
pub struct HandlerCase {
    /// `rust`, `python` or `js`.
    pub lang: &'static str,
    /// Jobs one instance serves (`--reuse`; 1: a fresh instance per job).
    pub reuse: u32,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub enum Kind {
    /// `sque-host push` from an NDJSON file.
    BulkPushCli,
    /// `Manager::push_many`; BullMQ `addBulk` in chunks of 1,000.
    BulkPush,
    /// One push at a time, each awaited.
    SinglePush,
    /// Processing waiting jobs with a no-op handler.
    Process,
    /// As `Process`, on a queue with a rate limit and a cap on the jobs in flight, both far
    /// above what the run reaches: what checking them costs (sque only).
    LimitedProcess,
    /// As `Process`, the jobs pushed at three priorities in turn (high, normal, low): what
    /// taking them level by level costs (sque only).
    PrioritizedProcess,
    /// As `Process`, the jobs spread over 10 queues that one host serves (sque only).
    ManyQueuesProcess,
    /// Push to handler start at light load (one job every 2 ms).
    Latency,
    /// Redis bytes per waiting job.
    BytesPerJob,
    /// sque's Node package: `manager.pushMany` in chunks of 1,000; BullMQ `addBulk` likewise.
    NodePushMany,
    /// sque's Node package: `await manager.push` in a loop; BullMQ `await queue.add`.
    NodeSinglePush,
    /// sque's Node package: `client.process` with a no-op handler at a concurrency (and a
    /// Node manager dispatching); BullMQ's `Worker` at the same concurrency.
    NodeProcess,
    /// `sque-host dead retry --all` of a dead list this long (sque only).
    DeadRetryAll,
    /// `sque-host dead purge --all` of a dead list this long (sque only).
    DeadPurgeAll,
    /// A language's send-email handler: start-up with no cache (compiling) and with the
    /// module cache, then jobs/s (sque only).
    Handler,
    /// `push_many` as `BulkPush`, each job with a unique key of its own (sque only).
    BulkPushUnique,
    /// As `SinglePush`, each job with a unique key of its own (sque only).
    SinglePushUnique,
    /// Processing as `Process`, of jobs pushed with one time to run at (a few seconds ahead,
    /// while the host's slots already ask): promotion and processing together (sque only).
    DelayedProcess,
    /// Processing as `Process` with `--metrics-addr`, then what one scrape of `/metrics`
    /// costs the host and Redis, reading the queue every time (sque only).
    MetricsScrape,
    /// `sque-host dashboard` with `concurrency` pages open (live streams): what it costs
    /// Redis a second, above idle (sque only).
    DashboardPages,
}

/// One run's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measurement {
    pub jobs_per_sec: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub bytes_per_job: Option<f64>,
    /// CPU time Redis spent per job (processing cases).
    pub redis_cpu_us_per_job: Option<f64>,
    /// CPU time the host process spent per job (sque's processing cases).
    pub host_cpu_us_per_job: Option<f64>,
    /// The longest single command Redis ran meanwhile (`SLOWLOG`), in ms.
    pub longest_call_ms: Option<f64>,
    /// Handler cases: seconds from the host's start to its first job done, compiling the
    /// handler (no cache), and the host's peak RSS meanwhile.
    pub cold_start_s: Option<f64>,
    pub cold_rss_bytes: Option<f64>,
    /// Handler cases: the same with the module cache warm.
    pub cached_start_s: Option<f64>,
    /// `MetricsScrape`: CPU (host and Redis) one scrape costs, and that as a share of the
    /// CPU one second of processing took.
    pub scrape_cpu_us: Option<f64>,
    pub scrape_share: Option<f64>,
    /// `DashboardPages`: Redis's commands and CPU (ms) a second while the pages are open,
    /// less what it spends with the dashboard running and no page open.
    pub redis_commands_per_sec: Option<f64>,
    pub redis_cpu_ms_per_sec: Option<f64>,
}

pub fn all(quick: bool) -> Vec<Case> {
    let scale = |full: usize, small: usize| if quick { small } else { full };
    let case = |name: &str, kind, jobs, concurrency, bullmq| Case {
        name: name.to_string(),
        kind,
        jobs,
        concurrency,
        bullmq,
        handler: None,
    };
    let handler = |lang: &'static str, reuse: u32, jobs: usize| Case {
        name: match reuse {
            1 => format!("handler {lang} send-email, fresh"),
            n => format!("handler {lang} send-email, --reuse {n}"),
        },
        kind: Kind::Handler,
        jobs,
        concurrency: 4,
        bullmq: false,
        handler: Some(HandlerCase { lang, reuse }),
    };
    let mut cases = vec![
        case(
            "bulk push (sque-host push / addBulk)",
            Kind::BulkPushCli,
            scale(200_000, 50_000),
            0,
            true,
        ),
        case(
            "bulk push (push_many / addBulk)",
            Kind::BulkPush,
            scale(200_000, 50_000),
            0,
            true,
        ),
        case(
            "bulk push, each with a unique key (push_encoded)",
            Kind::BulkPushUnique,
            scale(200_000, 50_000),
            0,
            false,
        ),
        case(
            "single push, awaited",
            Kind::SinglePush,
            scale(10_000, 2_000),
            0,
            true,
        ),
        case(
            "single push awaited, each with a unique key",
            Kind::SinglePushUnique,
            scale(10_000, 2_000),
            0,
            false,
        ),
        case(
            "process c=1",
            Kind::Process,
            scale(100_000, 10_000),
            1,
            true,
        ),
        case(
            "process c=10",
            Kind::Process,
            scale(100_000, 20_000),
            10,
            true,
        ),
        case(
            "process c=50",
            Kind::Process,
            scale(100_000, 20_000),
            50,
            true,
        ),
        case(
            "process c=50, rate limit and cap not reached",
            Kind::LimitedProcess,
            scale(100_000, 20_000),
            50,
            false,
        ),
        case(
            "process c=50, jobs at three priorities",
            Kind::PrioritizedProcess,
            scale(100_000, 20_000),
            50,
            false,
        ),
        case(
            "process c=50, 10 queues in one host",
            Kind::ManyQueuesProcess,
            scale(100_000, 20_000),
            50,
            false,
        ),
        case(
            "delayed: all due at once, process c=50",
            Kind::DelayedProcess,
            scale(100_000, 20_000),
            50,
            false,
        ),
        case("latency c=10", Kind::Latency, scale(2_000, 500), 10, true),
        case(
            "metrics scrape at c=50 (CPU per scrape)",
            Kind::MetricsScrape,
            scale(100_000, 20_000),
            50,
            false,
        ),
        case(
            "dashboard: 1 page open (Redis a second)",
            Kind::DashboardPages,
            1_000,
            1,
            false,
        ),
        case(
            "dashboard: 10 pages open (Redis a second)",
            Kind::DashboardPages,
            1_000,
            10,
            false,
        ),
        case(
            "node: pushMany / addBulk",
            Kind::NodePushMany,
            scale(200_000, 50_000),
            0,
            true,
        ),
        case(
            "node: push, awaited / queue.add",
            Kind::NodeSinglePush,
            scale(10_000, 2_000),
            0,
            true,
        ),
        case(
            "node: workers c=10 / Worker c=10",
            Kind::NodeProcess,
            scale(100_000, 20_000),
            10,
            true,
        ),
        case(
            "redis bytes per waiting job",
            Kind::BytesPerJob,
            scale(100_000, 20_000),
            0,
            true,
        ),
        case(
            "dead retry --all (dead jobs/s, longest call)",
            Kind::DeadRetryAll,
            scale(100_000, 20_000),
            0,
            false,
        ),
        case(
            "dead purge --all (dead jobs/s, longest call)",
            Kind::DeadPurgeAll,
            scale(100_000, 20_000),
            0,
            false,
        ),
    ];
    cases.extend([
        handler("rust", 1, scale(100_000, 20_000)),
        handler("python", 1, scale(10_000, 2_000)),
        handler("python", 1000, scale(100_000, 20_000)),
        handler("js", 1, scale(20_000, 4_000)),
        handler("js", 1000, scale(100_000, 20_000)),
    ]);
    if !quick {
        cases.push(case(
            "growth: bulk push 1M (push_many)",
            Kind::BulkPush,
            1_000_000,
            0,
            false,
        ));
        cases.push(case(
            "growth: process 1M c=50",
            Kind::Process,
            1_000_000,
            50,
            false,
        ));
    }
    cases
}

impl Kind {
    /// Whether sque's Node package runs the case (bench/node/), not the Rust side.
    pub fn is_node(self) -> bool {
        matches!(
            self,
            Kind::NodePushMany | Kind::NodeSinglePush | Kind::NodeProcess
        )
    }
}

pub fn email(i: usize) -> serde_json::Value {
    serde_json::json!({ "email": format!("test{i}@mail.org") })
}
