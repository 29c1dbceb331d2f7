//! `sque-host queue config|pause|resume`: a queue's settings, shown or changed, and whether it
//! hands jobs out. Both live in the queue's meta in Redis, the one source every host, client
//! and script reads; this is how to change them after the queue exists.

use std::time::Duration;

use anyhow::Context as _;
use sque::{Admin, Producer, SettingsChange};

use crate::cli::common::{parse_duration, parse_size, QueueArg, RedisArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Show the queue's settings, or change those given (the others stay). Every host and
    /// client uses a new value at its next call. These flags have no environment variables:
    /// a setting changes only when it is named here.
    ///
    /// Example: sque-host queue config --queue emails --lease 10s --max-attempts 8
    /// Example: sque-host queue config --queue emails --max-in-flight 20
    Config(Box<Config>),
    /// Stop handing out the queue's jobs, on every host: jobs running finish, pushes are kept
    /// and wait; `stats` shows the queue as paused. Hosts of protocol 1.0 do not know pausing
    /// (docs/PROTOCOL.md): upgrade every host first.
    ///
    /// Example: sque-host queue pause --queue emails
    Pause(Target),
    /// Hand out a paused queue's jobs again; the waiting workers are served at once.
    ///
    /// Example: sque-host queue resume --queue emails
    Resume(Target),
}

/// The queue a command acts on.
#[derive(clap::Args, Debug)]
struct Target {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
}

#[derive(clap::Args, Debug)]
struct Config {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,

    /// How long a dispatched job stays leased without a renewal (at least 100ms); a worker's
    /// heartbeat lasts as long, and a crashed host's jobs come back after it.
    #[arg(long, value_parser = parse_duration)]
    lease: Option<Duration>,
    /// How long a worker's inbox outlives its last delivery (at least the lease).
    #[arg(long, value_parser = parse_duration)]
    inbox_ttl: Option<Duration>,
    /// Attempts of a job pushed without its own limit.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,
    /// The largest job, in bytes of JSON (the push script refuses larger ones).
    #[arg(long, value_parser = parse_size)]
    max_job_bytes: Option<usize>,
    /// The first retry's delay; each further attempt doubles it, up to --backoff-max.
    #[arg(long, value_parser = parse_duration)]
    backoff: Option<Duration>,
    /// The longest delay between two attempts.
    #[arg(long, value_parser = parse_duration)]
    backoff_max: Option<Duration>,
    /// How long a completed job's result stays readable.
    #[arg(long, value_parser = parse_duration)]
    result_ttl: Option<Duration>,
    /// How many completed jobs' results are kept at most.
    #[arg(long)]
    result_max: Option<u64>,
    /// How many dead jobs are kept at most; the oldest go first, counted as dead dropped.
    #[arg(long)]
    dead_max: Option<u64>,
    /// How long a dead job is kept.
    #[arg(long, value_parser = parse_duration)]
    dead_ttl: Option<Duration>,
    /// The largest result a completion may keep, in bytes of JSON.
    #[arg(long, value_parser = parse_size)]
    max_result_bytes: Option<usize>,
    /// The longest error text kept with a failed job (longer ones are cut, and say so).
    #[arg(long, value_parser = parse_size)]
    max_error_bytes: Option<usize>,
    /// The most jobs of the queue in flight at once, across every host and worker (0: no
    /// cap). Workers over the cap wait, in order; no job fails for it. Hosts older than
    /// protocol 1.2 refuse a queue once it has had a cap.
    #[arg(long, value_name = "N")]
    max_in_flight: Option<u64>,
    /// A rate limit across every host: at most N jobs handed out per period, as N/PERIOD
    /// (100/s, 6000/m, 5/500ms, 1/2s; `none` lifts it). Jobs over it wait in order; none
    /// fails for it. Hosts older than protocol 1.2 refuse a queue once it has had a limit.
    #[arg(long, value_name = "N/PERIOD", value_parser = parse_rate)]
    rate: Option<(u64, Duration)>,
    /// How many jobs may go at once after a quiet spell (default: N of --rate).
    #[arg(long, value_name = "N")]
    rate_burst: Option<u64>,

    /// Create the queue with these settings if it does not exist (otherwise that is an
    /// error: a typo should not make a queue).
    #[arg(long)]
    create: bool,

    /// Print the settings as one JSON object (durations in milliseconds).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::Config(c) => config(*c).await,
        Action::Pause(t) => pause_or_resume(t, true).await,
        Action::Resume(t) => pause_or_resume(t, false).await,
    }
}

async fn pause_or_resume(t: Target, pause: bool) -> anyhow::Result<()> {
    sque::validate_queue_name(&t.queue.queue)?;
    let opts = t.redis.options();
    let context = format!(
        "queue {:?} at Redis {}",
        t.queue.queue,
        opts.redis_url_redacted()
    );
    let admin = Admin::new(&t.queue.queue, opts)
        .await
        .with_context(|| context.clone())?;
    let changed = match pause {
        true => admin.pause().await,
        false => admin.resume().await,
    }
    .with_context(|| context)?;
    let queue = &t.queue.queue;
    println!(
        "{}",
        match (pause, changed) {
            (true, true) => format!("queue {queue:?} paused: no job is handed out until `sque-host queue resume --queue {queue}`"),
            (true, false) => format!("queue {queue:?} was paused already"),
            (false, true) => format!("queue {queue:?} resumed"),
            (false, false) => format!("queue {queue:?} was not paused"),
        }
    );
    Ok(())
}

/// Parses a rate limit: `N/PERIOD` (`100/s`, `5/500ms`, `1/2s`), or `none` (no limit).
fn parse_rate(s: &str) -> Result<(u64, Duration), String> {
    if s == "none" || s == "0" {
        return Ok((0, Duration::from_secs(1)));
    }
    let usage =
        || format!("{s:?} is not a rate (use N/PERIOD, e.g. 100/s, 6000/m, 5/500ms, or none)");
    let (count, period) = s.split_once('/').ok_or_else(usage)?;
    let count: u64 = count.trim().parse().map_err(|_| usage())?;
    let period = period.trim();
    let period = match period.starts_with(|c: char| c.is_ascii_digit()) {
        true => parse_duration(period)?,
        false => parse_duration(&format!("1{period}")).map_err(|_| usage())?,
    };
    if count == 0 || period.as_millis() < 1 {
        return Err(format!(
            "{s:?}: the rate needs at least 1 job per at least 1ms (or none)"
        ));
    }
    Ok((count, period))
}

async fn config(c: Config) -> anyhow::Result<()> {
    sque::validate_queue_name(&c.queue.queue)?;
    let change = SettingsChange {
        lease: c.lease,
        inbox_ttl: c.inbox_ttl,
        max_attempts: c.max_attempts,
        max_job_bytes: c.max_job_bytes.map(|n| n as u64),
        backoff: c.backoff,
        backoff_max: c.backoff_max,
        result_ttl: c.result_ttl,
        result_max: c.result_max,
        dead_max: c.dead_max,
        dead_ttl: c.dead_ttl,
        max_result_bytes: c.max_result_bytes.map(|n| n as u64),
        max_error_bytes: c.max_error_bytes.map(|n| n as u64),
        max_in_flight: c.max_in_flight,
        rate_count: c.rate.map(|(count, _)| count),
        rate_period: c.rate.map(|(_, period)| period),
        rate_burst: c.rate_burst,
    };
    let opts = c.redis.options();
    let context = format!(
        "queue {:?} at Redis {}",
        c.queue.queue,
        opts.redis_url_redacted()
    );
    let admin = match Admin::new(&c.queue.queue, opts.clone()).await {
        Err(sque::Error::NoSuchQueue(_)) if c.create => {
            // The first opener's settings are the queue's.
            Producer::new(&c.queue.queue, opts.clone().settings(change.clone()))
                .await
                .with_context(|| context.clone())?;
            Admin::new(&c.queue.queue, opts).await
        }
        other => other,
    }
    .with_context(|| context.clone())?;
    let settings = admin.configure(&change).await.with_context(|| context)?;
    if c.json {
        println!("{}", serde_json::to_string(&settings)?);
    } else {
        println!("queue {:?}: {settings}", c.queue.queue);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_jobs_per_period() {
        assert_eq!(parse_rate("100/s"), Ok((100, Duration::from_secs(1))));
        assert_eq!(parse_rate("6000/m"), Ok((6000, Duration::from_secs(60))));
        assert_eq!(parse_rate("5/500ms"), Ok((5, Duration::from_millis(500))));
        assert_eq!(parse_rate("1/2s"), Ok((1, Duration::from_secs(2))));
        assert_eq!(parse_rate("none"), Ok((0, Duration::from_secs(1))));
        for bad in ["100", "x/s", "0/s", "10/fortnight", "10/0s", "-1/s", "/s"] {
            let e = parse_rate(bad).unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
