//! `sque-host stats`: a queue's counts, or every queue's; a table for a person, one JSON
//! object for scripts. Rates come from two readings `--interval` apart. `--watch` redraws
//! them every interval until Ctrl-C (with `--json`, a line an interval).

use std::time::{Duration, Instant};

use sque::WorkerInfo;

use crate::cli::common::{parse_duration, usage, RedisArgs};
use crate::readings::{rates, Queues, Row, RUNNING_SHOWN, WORKERS_SHOWN};
use crate::sandbox::escaped;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The queue; every queue when left out.
    #[arg(long, short = 'q', env = "SQUE_QUEUE")]
    queue: Option<String>,

    #[command(flatten)]
    redis: RedisArgs,

    /// One JSON object instead of tables.
    #[arg(long, env = "SQUE_STATS_JSON")]
    json: bool,

    /// Time between the two readings that rates are computed from (0s: no rates); with
    /// --watch, between two refreshes.
    #[arg(long, env = "SQUE_STATS_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    interval: Duration,

    /// Refresh in place every --interval, like `top`, until Ctrl-C: counts and rates. With
    /// --json, one object a line per refresh, for scripts.
    #[arg(long)]
    watch: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.watch && args.interval.is_zero() {
        return Err(usage(
            "--watch refreshes every --interval, which is 0s: give it one above 0s, e.g. --interval 2s",
        ));
    }
    let opts = args.redis.options();
    let mut queues = Queues::default();
    queues.update(args.queue.as_deref(), &opts).await?;
    let mut before = (queues.read().await?, Instant::now());
    if !args.watch {
        let mut rows = if args.interval.is_zero() {
            rates(before.0, None)
        } else {
            tokio::time::sleep(args.interval).await;
            let now = queues.read().await?;
            rates(now, Some(&before))
        };
        queues.read_running(&mut rows).await?;
        return show(&args, &rows, Shown::Once);
    }
    // Like `top`: a screen redrawn every interval, until Ctrl-C (heard while reading too).
    // Redis going away is said on the screen and tried again at the next tick, not the end of
    // watching; rates are over the time between the two readings, failed ones between them.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ticks = tokio::time::interval(args.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = ticks.tick() => {}
        }
        let read = async {
            if args.queue.is_none() {
                queues.update(args.queue.as_deref(), &opts).await?;
            }
            // The rates are over the time between the two readings of the counts.
            let now = (queues.read().await?, Instant::now());
            let mut rows = rates(now.0.clone(), Some(&before));
            queues.read_running(&mut rows).await?;
            anyhow::Ok((now, rows))
        };
        let read = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            read = read => read,
        };
        match read {
            Ok((now, rows)) => {
                before = now;
                show(&args, &rows, Shown::Refresh { error: None })?;
            }
            Err(e) => {
                let error = format!("{e:#}; trying again");
                show(
                    &args,
                    &[],
                    Shown::Refresh {
                        error: Some(&error),
                    },
                )?
            }
        }
    }
}

/// How the rows are shown: once, or as one refresh of `--watch`.
enum Shown<'a> {
    Once,
    /// With the reason Redis could not be read, shown instead of the rows.
    Refresh {
        error: Option<&'a str>,
    },
}

/// Prints the rows: JSON (one object a line), or tables.
fn show(args: &Args, rows: &[Row], shown: Shown<'_>) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if args.json {
        let text = match shown {
            // One shape for every line: when it was read, the queues, and the error if any.
            Shown::Refresh { error } => serde_json::to_string(&serde_json::json!({
                "at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                "queues": rows,
                "error": error,
            }))?,
            Shown::Once => match (&args.queue, rows.len()) {
                (Some(_), 1) => serde_json::to_string(&rows[0])?,
                _ => serde_json::to_string(&serde_json::json!({ "queues": rows }))?,
            },
        };
        println!("{text}");
        return Ok(());
    }
    if let Shown::Refresh { error } = shown {
        if std::io::stdout().is_terminal() {
            // Home and clear, so that the screen is redrawn in place.
            print!("\x1b[H\x1b[2J");
        }
        println!(
            "sque-host stats, every {} (Ctrl-C to stop), at {}\n",
            humantime::format_duration(args.interval),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        );
        if let Some(error) = error {
            println!("{error}");
            return Ok(());
        }
    }
    print_tables(rows);
    Ok(())
}

fn print_tables(rows: &[Row]) {
    if rows.is_empty() {
        println!("No queues yet.");
        return;
    }
    println!("Queues\n");
    table(
        &[
            "queue",
            "waiting",
            "oldest",
            "in flight",
            "retrying",
            "scheduled",
            "dead",
            "workers",
            "requests",
        ],
        rows.iter().map(|r| {
            let s = &r.stats;
            vec![
                match s.paused {
                    true => format!("{} (paused)", s.queue),
                    false => s.queue.clone(),
                },
                s.waiting.to_string(),
                match (s.oldest_waiting_age_ms, s.waiting) {
                    (Some(ms), _) => age_text(ms),
                    (None, 0) => "-".to_string(),
                    // Jobs wait, but when the head was pushed is not known.
                    (None, _) => "?".to_string(),
                },
                s.in_flight.to_string(),
                s.delayed.to_string(),
                s.scheduled.to_string(),
                s.dead.to_string(),
                s.workers.to_string(),
                s.requests.to_string(),
            ]
        }),
    );
    println!("\nSince the queue was created\n");
    table(
        &[
            "queue",
            "pushed",
            "dispatched",
            "completed",
            "retried",
            "dead-lettered",
            "poisoned",
            "expired leases",
            "dead dropped",
            "cancelled",
        ],
        rows.iter().map(|r| {
            let s = &r.stats;
            vec![
                s.queue.clone(),
                s.pushed.to_string(),
                s.dispatched.to_string(),
                s.completed.to_string(),
                s.retried.to_string(),
                s.dead_lettered.to_string(),
                s.poisoned.to_string(),
                s.expired.to_string(),
                s.dead_dropped.to_string(),
                s.cancelled.to_string(),
            ]
        }),
    );
    if rows.iter().any(|r| !r.running.is_empty()) {
        println!("\nIn flight (the {RUNNING_SHOWN} renewed longest ago, a queue)\n");
        table(
            &[
                "queue",
                "job",
                "attempt",
                "held by",
                "since",
                "lease until",
                "progress",
            ],
            rows.iter().flat_map(|r| {
                r.running.iter().map(|job| {
                    vec![
                        r.stats.queue.clone(),
                        job.id.to_string(),
                        job.attempt.to_string(),
                        holder_text(job.holder.as_deref(), &r.workers),
                        job.started.map_or("-".to_string(), time_text),
                        time_text(job.lease_until),
                        progress_text(job.progress.as_ref()),
                    ]
                })
            }),
        );
    }
    if rows.iter().any(|r| !r.workers.is_empty()) {
        println!("\nWorkers (the {WORKERS_SHOWN} renewed longest ago, a queue)\n");
        table(
            &[
                "queue",
                "worker",
                "host",
                "pid",
                "heartbeat until",
                "jobs held",
            ],
            rows.iter().flat_map(|r| {
                r.workers.iter().map(|w| {
                    vec![
                        r.stats.queue.clone(),
                        w.id.clone(),
                        w.host
                            .as_deref()
                            .map_or("-".into(), |h| escaped(h).into_owned()),
                        w.pid.map_or("-".into(), |p| p.to_string()),
                        time_text(w.heartbeat_until),
                        w.holds.len().to_string(),
                    ]
                })
            }),
        );
    }
    println!("\nRates (jobs/s)\n");
    table(
        &["queue", "pushed", "completed", "failed"],
        rows.iter().map(|r| {
            vec![
                r.stats.queue.clone(),
                format!("{:.1}", r.pushed_per_sec),
                format!("{:.1}", r.completed_per_sec),
                format!("{:.1}", r.failed_per_sec),
            ]
        }),
    );
}

/// A time on Redis's clock (ms since the epoch), to the second.
fn time_text(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A job's holder as `worker (host)`, or `-` when no worker said it held it.
fn holder_text(holder: Option<&str>, workers: &[WorkerInfo]) -> String {
    let Some(id) = holder else {
        return "-".into();
    };
    match workers
        .iter()
        .find(|w| w.id == id)
        .and_then(|w| w.host.as_deref())
    {
        Some(host) => format!("{id} ({})", escaped(host)),
        None => id.to_string(),
    }
}

/// A progress report as `40% rendered`, or `-` for none.
fn progress_text(progress: Option<&serde_json::Value>) -> String {
    let Some(p) = progress else {
        return "-".into();
    };
    let note = p["note"]
        .as_str()
        .map(|n| format!(" {}", escaped(n)))
        .unwrap_or_default();
    format!("{}%{note}", p["percent"])
}

/// Prints an aligned table: the first column left-aligned, numbers right-aligned.
/// An age for a person: `850ms`, `12s`, `4m 05s`, `3h 02m`.
fn age_text(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        println!("  {}", parts.join("  "));
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        line(r);
    }
}
