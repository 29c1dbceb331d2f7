//! `sque-host job show|wait|cancel`: one job by its id. `show` tells where the job is in its
//! life (waiting, scheduled, in flight, retrying, completed, dead, cancelled) with its data,
//! attempts, last error and result; `wait` waits until it has ended and answers with its
//! result, so that a shell script can push a job and use what it returned; `cancel` ends it
//! wherever it is.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sque::{Admin, Cancelled, Inspector, JobId, JobInfo, JobState};

use crate::cli::common::{parse_duration, usage, Outcome, QueueArg, RedisArgs};
use crate::sandbox::escaped;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Show a job: its state (waiting, scheduled, in_flight, retrying, completed, dead,
    /// cancelled, or gone when the queue keeps nothing of it any more), attempts, data, its
    /// handler's latest progress report, last error, result, and the follow-up jobs it pushed
    /// (each one's queue and id). Exit 2 for an id the queue never gave.
    ///
    /// Example: sque-host job show --queue emails 42
    Show(Show),
    /// Wait until a job has ended. Exit 0 with its result (JSON, or null) on stdout when it
    /// completed; 1 when it died (its last error on stderr) or was cancelled; 2 for an id the queue never gave
    /// or bad input; 3 when --wait-timeout passed first. No environment variable: a wait is
    /// always asked for on the command line.
    ///
    /// Example: id=$(sque-host push --queue emails '{"to":"a@b.c"}') && sque-host job wait --queue emails "$id"
    Wait(Wait),
    /// Cancel a job: a waiting, scheduled or retrying job never runs; a running one is
    /// stopped by its host within a third of the queue's lease (its next renewal). It is
    /// recorded as cancelled (job show) and never retried; its unique key is freed. Exit 0
    /// when it is cancelled (or was already); 1 when it has ended (completed, or dead: purge
    /// it with `dead purge`); 2 for an id the queue never gave.
    ///
    /// Example: sque-host job cancel --queue emails 42
    Cancel(Cancel),
}

#[derive(clap::Args, Debug)]
struct Cancel {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
    /// The job's id, as `push` printed it.
    id: String,
}

#[derive(clap::Args, Debug)]
struct Show {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
    /// The job's id, as `push` printed it.
    id: String,
    /// Print the job as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct Wait {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
    /// The job's id, as `push` printed it.
    id: String,
    /// How long to wait for the job to end before giving up (exit 3).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    wait_timeout: Duration,
}

/// How often `wait` reads the job: soon at first (most jobs are quick), then less often.
const FIRST_LOOK: Duration = Duration::from_millis(20);
const LONGEST_LOOK: Duration = Duration::from_millis(500);

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::Show(s) => show(s).await,
        Action::Wait(w) => wait(w).await,
        Action::Cancel(c) => cancel(c).await,
    }
}

async fn inspector(queue: &QueueArg, redis: &RedisArgs, id: &str) -> anyhow::Result<Inspector> {
    sque::validate_queue_name(&queue.queue)?;
    if !sque::wire::is_id(id) {
        return Err(usage(format!(
            "{:?} is not a job id: ids are the decimal numbers `push` prints",
            sque::wire::shown(id)
        )));
    }
    let opts = redis.options();
    Inspector::new(&queue.queue, opts.clone())
        .await
        .with_context(|| {
            format!(
                "queue {:?} at Redis {}",
                queue.queue,
                opts.redis_url_redacted()
            )
        })
}

async fn cancel(args: Cancel) -> anyhow::Result<()> {
    let inspector = inspector(&args.queue, &args.redis, &args.id).await?;
    let opts = args.redis.options();
    let admin = Admin::new(&args.queue.queue, opts).await?;
    let id = JobId::from(args.id.clone());
    let ended = |how: &str| -> anyhow::Error {
        Outcome {
            code: 1,
            message: format!("job {} {how}: nothing to cancel", args.id),
        }
        .into()
    };
    match admin.cancel(&id).await? {
        Cancelled::Queued => println!("job {} cancelled: it will not run", args.id),
        Cancelled::Running => println!(
            "job {} cancelled: it was running, and its host stops it at its next lease renewal",
            args.id
        ),
        Cancelled::Already(_) => println!("job {} was cancelled already", args.id),
        Cancelled::Dead => {
            return Err(ended(
                "is dead; remove it with `sque-host dead purge` if it should never be retried",
            ))
        }
        Cancelled::Ended => {
            return match inspector.job(&id).await? {
                None => Err(unknown(&args.queue.queue, &args.id)),
                Some(job) => Err(ended(&format!("has ended ({})", state_name(job.state)))),
            }
        }
        _ => return Err(ended("is in a state this sque-host does not know")),
    }
    Ok(())
}

fn unknown(queue: &str, id: &str) -> anyhow::Error {
    usage(format!(
        "queue {queue:?} never gave the id {id}: check the id and the queue (and --prefix)"
    ))
}

async fn show(args: Show) -> anyhow::Result<()> {
    let inspector = inspector(&args.queue, &args.redis, &args.id).await?;
    let Some(job) = inspector.job(&JobId::from(args.id.clone())).await? else {
        return Err(unknown(&args.queue.queue, &args.id));
    };
    if args.json {
        println!("{}", serde_json::to_string(&job)?);
    } else {
        print!("{}", describe(&job));
    }
    Ok(())
}

/// The job for a person: one field a line.
fn describe(job: &JobInfo) -> String {
    let mut out = format!("job {}\n  state      {}\n", job.id, state_name(job.state));
    let when = |ms: u64| {
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms))
            .to_string()
    };
    if let Some(at) = job.at {
        let label = match job.state {
            JobState::Scheduled | JobState::Retrying => "due",
            JobState::InFlight => "lease until",
            JobState::Dead => "died",
            JobState::Cancelled => "cancelled",
            _ => "at",
        };
        out += &format!("  {label:<10} {}\n", when(at));
    }
    if let Some(n) = job.attempts {
        out += &format!("  attempts   {n}\n");
    }
    if job.priority != sque::NORMAL_PRIORITY {
        out += &format!("  priority   {}\n", job.priority);
    }
    if let Some(data) = &job.data {
        out += &format!("  data       {data}\n");
    }
    if let Some(problem) = &job.problem {
        out += &format!("  problem    {problem}\n");
    }
    if let Some(p) = &job.progress {
        let note = p["note"]
            .as_str()
            .map(|n| format!(": {}", escaped(n)))
            .unwrap_or_default();
        out += &format!("  progress   {}%{note}\n", p["percent"]);
    }
    if let Some(e) = &job.last_error {
        let code = e.code.as_deref().unwrap_or("error");
        out += &format!("  last error {}: {}\n", escaped(code), escaped(&e.message));
    }
    if let Some(result) = &job.result {
        out += &format!("  result     {result}\n");
    }
    if job.children_waiting > 0 {
        out += &format!(
            "  follow-ups {} committed, not yet pushed\n",
            job.children_waiting
        );
    }
    for (i, child) in job.children.iter().enumerate() {
        let label = if i == 0 { "follow-ups" } else { "" };
        match (&child.id, &child.error) {
            (Some(id), _) => out += &format!("  {label:<10} {} {id}\n", child.queue),
            (None, error) => {
                let why = error.as_deref().unwrap_or("not pushed");
                out += &format!("  {label:<10} {} (not pushed: {why})\n", child.queue)
            }
        }
    }
    out
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Waiting => "waiting",
        JobState::Scheduled => "scheduled",
        JobState::InFlight => "in flight",
        JobState::Retrying => "retrying",
        JobState::Completed => "completed",
        JobState::Dead => "dead",
        JobState::Cancelled => "cancelled",
        JobState::Gone => "gone (completed without a result kept, or purged)",
    }
}

async fn wait(args: Wait) -> anyhow::Result<()> {
    let inspector = inspector(&args.queue, &args.redis, &args.id).await?;
    let id = JobId::from(args.id.clone());
    let until = Instant::now() + args.wait_timeout;
    let mut look = FIRST_LOOK;
    loop {
        let Some(job) = inspector.job(&id).await? else {
            return Err(unknown(&args.queue.queue, &args.id));
        };
        match job.state {
            JobState::Completed | JobState::Gone => {
                let result = job.result.unwrap_or(serde_json::Value::Null);
                println!("{result}");
                return Ok(());
            }
            JobState::Dead => {
                let error = job
                    .last_error
                    .map(|e| format!("{}: {}", e.code.as_deref().unwrap_or("error"), e.message))
                    .unwrap_or_else(|| "no error was recorded".into());
                return Err(Outcome {
                    code: 1,
                    message: format!("job {} is dead: {error}", args.id),
                }
                .into());
            }
            JobState::Cancelled => {
                return Err(Outcome {
                    code: 1,
                    message: format!("job {} was cancelled", args.id),
                }
                .into());
            }
            _ => {}
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Outcome {
                code: 3,
                message: format!(
                    "job {} did not end within {} (it is {}); wait longer with --wait-timeout",
                    args.id,
                    humantime::format_duration(args.wait_timeout),
                    state_name(job.state)
                ),
            }
            .into());
        }
        tokio::select! {
            _ = tokio::time::sleep(look.min(left)) => {}
            _ = tokio::signal::ctrl_c() => return Err(Outcome { code: 3, message: "interrupted".into() }.into()),
        }
        look = (look * 2).min(LONGEST_LOOK);
    }
}
