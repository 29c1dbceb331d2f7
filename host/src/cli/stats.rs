//! `sque-host stats`: a queue's counts, or every queue's; a table for a person, one JSON
//! object for scripts. Rates come from two readings `--interval` apart.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use sque::{Inspector, QueueStats};

use crate::cli::common::{parse_duration, RedisArgs};

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

    /// Time between the two readings that rates are computed from (0s: no rates).
    #[arg(long, env = "SQUE_STATS_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    stats: QueueStats,
    /// Jobs per second over the interval.
    pushed_per_sec: f64,
    completed_per_sec: f64,
    failed_per_sec: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let opts = args.redis.options();
    let url = opts.redis_url_redacted();
    let names = match &args.queue {
        Some(q) => {
            sque::validate_queue_name(q)?;
            vec![q.clone()]
        }
        None => sque::queue_names(&opts)
            .await
            .with_context(|| format!("listing queues at Redis {url}"))?,
    };
    let mut inspectors = Vec::new();
    for name in &names {
        inspectors.push(
            Inspector::new(name, opts.clone())
                .await
                .with_context(|| format!("reading queue {name:?} at Redis {url}"))?,
        );
    }
    let mut first = Vec::new();
    for m in &inspectors {
        first.push(m.stats().await?);
    }
    let mut rows = Vec::new();
    if args.interval.is_zero() {
        rows = first
            .into_iter()
            .map(|stats| Row {
                stats,
                pushed_per_sec: 0.0,
                completed_per_sec: 0.0,
                failed_per_sec: 0.0,
            })
            .collect();
    } else {
        tokio::time::sleep(args.interval).await;
        let secs = args.interval.as_secs_f64();
        for (m, before) in inspectors.iter().zip(first) {
            let now = m.stats().await?;
            let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / secs;
            rows.push(Row {
                pushed_per_sec: rate(now.pushed, before.pushed),
                completed_per_sec: rate(now.completed, before.completed),
                failed_per_sec: rate(
                    now.retried + now.dead_lettered,
                    before.retried + before.dead_lettered,
                ),
                stats: now,
            });
        }
    }
    if args.json {
        let text = match (&args.queue, rows.len()) {
            (Some(_), 1) => serde_json::to_string(&rows[0])?,
            _ => serde_json::to_string(&serde_json::json!({ "queues": rows }))?,
        };
        println!("{text}");
    } else {
        print_tables(&rows);
    }
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
            "in flight",
            "delayed",
            "dead",
            "workers",
            "requests",
        ],
        rows.iter().map(|r| {
            let s = &r.stats;
            vec![
                s.queue.clone(),
                s.waiting.to_string(),
                s.in_flight.to_string(),
                s.delayed.to_string(),
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
            ]
        }),
    );
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

/// Prints an aligned table: the first column left-aligned, numbers right-aligned.
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
