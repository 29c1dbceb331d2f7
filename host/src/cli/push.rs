//! `sque-host push`: one job from the argument, or NDJSON on stdin, one job a line.
//!
//! Stdin is streamed, never read whole: a reader thread checks each line (valid JSON, within
//! the size limit) and hands batches to the pusher, which pipelines them into Redis. At the
//! first bad line it stops with `line N: reason` and how many jobs went in before it.

use std::io::{IsTerminal, Write};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use sque::ndjson::{check_job_json, read_line_bounded, LineRead};
use sque::{EncodedJob, JobOptions, Producer};

use crate::cli::common::{
    parse_duration, parse_size, usage, PartlyDone, QueueArg, RedisArgs, UsageError,
};

/// Jobs per batch handed from the reader to the pusher.
const BATCH: usize = 2000;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    queue: QueueArg,

    /// The job as JSON. Without it, jobs are read from stdin as NDJSON (one JSON value a line;
    /// blank lines are skipped).
    json: Option<String>,

    #[command(flatten)]
    redis: RedisArgs,

    /// Ready this long after the push (30s, 10m, 2h, 1d), on Redis's clock; until then the
    /// jobs wait aside and `stats` counts them as scheduled, and a manager (any `sque-host
    /// run` of protocol 1.1) moves them to the tail of the queue when they are due.
    #[arg(long, env = "SQUE_PUSH_DELAY", value_parser = parse_duration, conflicts_with = "at")]
    delay: Option<std::time::Duration>,

    /// Ready at this time, in RFC 3339 (2026-12-24T18:00:00Z, or with an offset); read on
    /// Redis's clock, so a time already past is ready at once.
    #[arg(long, value_parser = parse_time)]
    at: Option<std::time::SystemTime>,

    /// A key unique within the queue for the job given as the argument: while a job with
    /// this key waits, is scheduled or runs (and for --unique-for after it completes), the
    /// push writes nothing and prints that job's id. For NDJSON, see --unique-key-field.
    #[arg(long, requires = "json", conflicts_with = "unique_key_field")]
    unique_key: Option<String>,

    /// For NDJSON on stdin: each line's unique key is its top-level field of this name (a
    /// string or a number); a line without it is refused.
    #[arg(long, value_name = "NAME")]
    unique_key_field: Option<String>,

    /// How long a unique key stays held after its job completed (e.g. 1h); none by default.
    #[arg(long, value_parser = parse_duration)]
    unique_for: Option<std::time::Duration>,

    /// The jobs' priority: high, normal (the default) or low, or a number from 0 (low) to 9
    /// (high), normal being 5. Jobs of a higher priority are handed out before any of a
    /// lower one; within one priority, in the order they were pushed. Once a queue has had a
    /// job of a priority other than normal, hosts older than this one refuse it.
    #[arg(long, env = "SQUE_PUSH_PRIORITY", value_parser = crate::cli::common::parse_priority)]
    priority: Option<u8>,

    /// Attempts of these jobs before the dead list (default: the queue's).
    #[arg(long, env = "SQUE_PUSH_MAX_ATTEMPTS", value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,

    /// Queue setting: the largest job, in bytes of JSON, for a queue this push creates
    /// [default: 1MiB]. An existing queue's own limit is the one that holds.
    #[arg(long, env = "SQUE_MAX_JOB_BYTES", value_parser = parse_size)]
    max_job_bytes: Option<usize>,

    /// Never show a progress bar, even on a terminal.
    #[arg(long, env = "SQUE_QUIET")]
    quiet: bool,
}

/// An RFC 3339 time, with a zone (`Z` or an offset such as `+01:00`).
fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    let t = time_from_rfc3339(s).ok_or_else(|| {
        format!("{s:?} is not a time in RFC 3339 with a zone (use e.g. 2026-12-24T18:00:00Z or 2026-12-24T19:00:00+01:00)")
    })?;
    Ok(t)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; humantime reads the UTC form only, so an
/// offset is applied here.
fn time_from_rfc3339(s: &str) -> Option<std::time::SystemTime> {
    let s = s.trim();
    if let Some(utc) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return humantime::parse_rfc3339_weak(utc).ok();
    }
    // The offset is the last 6 bytes: "+HH:MM" or "-HH:MM".
    let split = s.len().checked_sub(6)?;
    let (local, offset) = (s.get(..split)?, s.get(split..)?);
    let sign = match offset.as_bytes()[0] {
        b'+' => 1i64,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 || !local.contains('T') {
        return None;
    }
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    let shift = std::time::Duration::from_secs(h * 3600 + m * 60);
    // 19:00+01:00 is 18:00Z: subtract a positive offset.
    match sign {
        1 => local.checked_sub(shift),
        _ => local.checked_add(shift),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    sque::validate_queue_name(&args.queue.queue)?;
    let mut opts = args.redis.options();
    if let Some(n) = args.max_job_bytes {
        opts = opts.max_job_bytes(n);
    }
    if args.unique_for.is_some() && args.unique_key.is_none() && args.unique_key_field.is_none() {
        return Err(usage(
            "--unique-for needs --unique-key or --unique-key-field: it is how long that key stays held",
        ));
    }
    let job_options = JobOptions {
        max_attempts: args.max_attempts,
        delay: args.delay,
        at: args.at,
        unique_key: args.unique_key.clone(),
        unique_for: args.unique_for,
        priority: args.priority,
    };
    // Checked before connecting, which opens (so creates) the queue: bad input changes nothing.
    job_options.validate()?;
    if let Some(json) = &args.json {
        // Check before connecting: bad input changes nothing and needs no Redis.
        check_job_json(
            json.as_bytes(),
            opts.queue_settings().max_job_bytes as usize,
        )
        .map_err(|e| usage(format!("the job argument: {e}")))?;
        let producer = connect(&args, opts).await?;
        let job = producer.encode_json(json.trim().to_string(), &job_options)?;
        let ids = producer.push_encoded(&[job]).await.map_err(|e| {
            anyhow::Error::new(e).context(PartlyDone(
                "pushing failed after it began: the job may or may not have gone in".into(),
            ))
        })?;
        println!("{}", ids[0]);
        return Ok(());
    }
    let producer = connect(&args, opts).await?;

    let (tx, mut rx) = mpsc::channel::<Result<Vec<Line>, UsageError>>(4);
    let limit = producer.max_job_bytes();
    let key_field = args.unique_key_field.clone();
    let reader = tokio::task::spawn_blocking(move || read_stdin(limit, key_field.as_deref(), tx));
    let progress = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {human_pos} jobs pushed ({per_sec}) {elapsed}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    });
    let mut pushed: u64 = 0;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failure = None;
    while let Some(batch) = rx.recv().await {
        let lines = match batch {
            Ok(lines) => lines,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let jobs = lines
            .into_iter()
            .map(|line| match line.unique_key {
                None => producer.encode_json(line.json, &job_options),
                key => producer.encode_json(
                    line.json,
                    &JobOptions {
                        unique_key: key,
                        ..job_options.clone()
                    },
                ),
            })
            .collect::<Result<Vec<EncodedJob>, _>>()?;
        let ids = match producer.push_encoded(&jobs).await {
            Ok(ids) => ids,
            // Once pushing has begun, a failure may come after Redis took the batch and
            // before it answered: only the batches answered are known to be in.
            Err(e) => {
                out.flush()?;
                return Err(anyhow::Error::new(e).context(PartlyDone(format!(
                    "{pushed} job(s) were pushed (their ids are on stdout), then pushing failed; \
                     the batch on its way may or may not have gone in, the rest did not"
                ))));
            }
        };
        for id in &ids {
            writeln!(out, "{id}")?;
        }
        pushed += ids.len() as u64;
        if let Some(bar) = &progress {
            bar.set_position(pushed);
        }
    }
    out.flush()?;
    drop(out);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    reader.await?;
    if let Some(e) = failure {
        return Err(usage(format!(
            "{e}; {pushed} job(s) before it were pushed, nothing after it"
        )));
    }
    tracing::info!(queue = %args.queue.queue, "{pushed} job(s) pushed");
    Ok(())
}

async fn connect(args: &Args, opts: sque::Options) -> anyhow::Result<Producer> {
    let url = opts.redis_url_redacted();
    Producer::new(&args.queue.queue, opts)
        .await
        .with_context(|| format!("connecting to Redis at {url}"))
}

/// A job read from stdin: its JSON, and its unique key when `--unique-key-field` names one.
struct Line {
    json: String,
    unique_key: Option<String>,
}

/// The top-level field `name` of a job's JSON, as a unique key (a string, or a number's text).
fn key_of(json: &str, name: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    match value.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(format!(
            "no top-level field {name:?} holding a string or a number (--unique-key-field)"
        )),
    }
}

/// Reads NDJSON from stdin in batches; the first bad line ends the stream with its reason.
fn read_stdin(
    limit: usize,
    key_field: Option<&str>,
    tx: mpsc::Sender<Result<Vec<Line>, UsageError>>,
) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut batch = Vec::with_capacity(BATCH);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        number += 1;
        line.clear();
        let read = match read_line_bounded(&mut input, &mut line, limit) {
            Ok(r) => r,
            Err(e) => {
                fail(&tx, batch, format!("line {number}: {e}"));
                return;
            }
        };
        if read == LineRead::End {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Err(e) = check_job_json(&line, limit) {
            fail(&tx, batch, format!("line {number}: {e}"));
            return;
        }
        // check_job_json proved it is UTF-8.
        let json = String::from_utf8(std::mem::take(&mut line))
            .expect("checked")
            .trim()
            .to_string();
        let unique_key = match key_field.map(|name| key_of(&json, name)).transpose() {
            Ok(key) => key,
            Err(e) => {
                fail(&tx, batch, format!("line {number}: {e}"));
                return;
            }
        };
        batch.push(Line { json, unique_key });
        if batch.len() == BATCH && tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}

/// Hands over the good lines read so far, then the reason reading stopped.
fn fail(tx: &mpsc::Sender<Result<Vec<Line>, UsageError>>, batch: Vec<Line>, reason: String) {
    if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
        return;
    }
    let _ = tx.blocking_send(Err(UsageError(reason)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_times_read_with_z_or_an_offset() {
        let at = |s| time_from_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(at("2026-12-24T18:00:00Z"), Some(1_798_135_200));
        assert_eq!(at("2026-12-24T19:00:00+01:00"), Some(1_798_135_200));
        assert_eq!(at("2026-12-24T13:30:00-04:30"), Some(1_798_135_200));
        assert_eq!(
            time_from_rfc3339("2026-12-24T18:00:00.250Z"),
            Some(UNIX_EPOCH + Duration::from_millis(1_798_135_200_250))
        );
        for bad in [
            "2026-12-24 18:00",
            "tomorrow",
            "2026-12-24T18:00:00",
            "2026-12-24T18:00:00+25:00",
            "",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }
}
