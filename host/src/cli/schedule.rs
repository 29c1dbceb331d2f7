//! `sque-host schedule add|list|remove`: jobs pushed on a cron pattern. A schedule lives in
//! its queue in Redis; every manager (`sque-host run`, the Rust `Manager`) pushes its job at
//! each tick, exactly once however many run.

use anyhow::Context as _;
use sque::{Admin, Inspector, Producer, Schedule};

use crate::cli::common::{usage, QueueArg, RedisArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Add a schedule, or replace the one of that name: a job with --data is pushed at every
    /// tick of --cron (five fields: minute hour day-of-month month day-of-week), in --tz.
    /// A tick missed while no manager ran is pushed once when one starts again, however many
    /// were missed. Creates the queue if it does not exist.
    ///
    /// Example: sque-host schedule add --queue reports --name nightly --cron "0 3 * * *" --tz Europe/Berlin --data '{"report":"sales"}' [--priority high]
    Add(Add),
    /// List the queue's schedules, the soonest tick first.
    List(List),
    /// Remove a schedule: it pushes nothing more (jobs it pushed stay).
    Remove(Remove),
}

#[derive(clap::Args, Debug)]
struct Add {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
    /// The schedule's name, unique within the queue.
    #[arg(long)]
    name: String,
    /// When to push: five cron fields, e.g. "0 3 * * *" (03:00 every day), "*/15 * * * *",
    /// "0 9 * * MON-FRI".
    #[arg(long)]
    cron: String,
    /// The time zone the pattern is read in (an IANA name such as Europe/Berlin); UTC by
    /// default.
    #[arg(long)]
    tz: Option<String>,
    /// The data of each job pushed, as JSON.
    #[arg(long)]
    data: String,
    /// Attempts of each job pushed (default: the queue's).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,
    /// The priority of each job pushed, as `push --priority` takes it: high, normal (the
    /// default) or low, or a number from 0 (low) to 9 (high). Once a queue has had a
    /// schedule of a priority other than normal, hosts older than this one refuse it (rather
    /// than push its jobs at the normal priority), even after the schedule is removed.
    #[arg(long, value_parser = crate::cli::common::parse_priority)]
    priority: Option<u8>,
}

#[derive(clap::Args, Debug)]
struct List {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
    /// Print one JSON object: {"schedules": [...]}, ticks in ms since the epoch.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct Remove {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
    /// The schedule's name.
    #[arg(long)]
    name: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::Add(a) => add(a).await,
        Action::List(l) => list(l).await,
        Action::Remove(r) => remove(r).await,
    }
}

fn context(queue: &QueueArg, redis: &RedisArgs) -> String {
    format!(
        "queue {:?} at Redis {}",
        queue.queue,
        redis.options().redis_url_redacted()
    )
}

async fn add(a: Add) -> anyhow::Result<()> {
    sque::validate_queue_name(&a.queue.queue)?;
    sque::validate_schedule_name(&a.name)?;
    let data: serde_json::Value = serde_json::from_str(&a.data)
        .map_err(|e| usage(format!("--data is not valid JSON: {e}")))?;
    let schedule = Schedule {
        cron: a.cron.clone(),
        tz: a.tz.clone(),
        data,
        max_attempts: a.max_attempts,
        priority: a.priority,
    };
    // Checked before connecting: bad input changes nothing and needs no Redis. A pattern
    // that never comes again (`0 3 31 2 *`) is found by asking for its next tick.
    schedule.validate()?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    schedule.next_after(now_ms)?;
    let opts = a.redis.options();
    let context = context(&a.queue, &a.redis);
    // Opening as a producer creates the queue if it is new, as `push` does.
    Producer::new(&a.queue.queue, opts.clone())
        .await
        .with_context(|| context.clone())?;
    let admin = Admin::new(&a.queue.queue, opts)
        .await
        .with_context(|| context.clone())?;
    let first = admin
        .set_schedule(&a.name, &schedule)
        .await
        .with_context(|| context)?;
    println!(
        "schedule {:?} on queue {:?}: first job at {}",
        a.name,
        a.queue.queue,
        time(first)
    );
    Ok(())
}

async fn list(l: List) -> anyhow::Result<()> {
    sque::validate_queue_name(&l.queue.queue)?;
    let opts = l.redis.options();
    let inspector = Inspector::new(&l.queue.queue, opts)
        .await
        .with_context(|| context(&l.queue, &l.redis))?;
    let schedules = inspector.schedules().await?;
    if l.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "schedules": schedules }))?
        );
        return Ok(());
    }
    if schedules.is_empty() {
        println!("No schedules on queue {:?}.", l.queue.queue);
        return Ok(());
    }
    for s in schedules {
        let next = s.next_at.map(time).unwrap_or_else(|| "-".into());
        match (&s.schedule, &s.problem) {
            (Some(d), _) => println!(
                "{}  {}{}  next {}{}  data {}",
                s.name,
                d.cron,
                d.tz.as_deref()
                    .map(|tz| format!(" ({tz})"))
                    .unwrap_or_default(),
                next,
                d.priority
                    .map(|level| format!("  priority {level}"))
                    .unwrap_or_default(),
                d.data
            ),
            (None, problem) => println!(
                "{}  cannot be read: {}",
                s.name,
                problem.as_deref().unwrap_or("?")
            ),
        }
    }
    Ok(())
}

async fn remove(r: Remove) -> anyhow::Result<()> {
    sque::validate_queue_name(&r.queue.queue)?;
    sque::validate_schedule_name(&r.name)?;
    let admin = Admin::new(&r.queue.queue, r.redis.options())
        .await
        .with_context(|| context(&r.queue, &r.redis))?;
    if admin.remove_schedule(&r.name).await? {
        println!("schedule {:?} removed", r.name);
        Ok(())
    } else {
        Err(usage(format!(
            "queue {:?} has no schedule {:?}: `sque-host schedule list` shows its schedules",
            r.queue.queue, r.name
        )))
    }
}

/// A time in ms since the epoch, as RFC 3339 in UTC.
fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}
