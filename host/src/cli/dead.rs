//! `sque-host dead list|retry|purge`: the jobs that used up their attempts, failed for good,
//! or are poison (data no worker can be given).

use anyhow::Context as _;
use sque::{Admin, DeadJobs, DeadReport, Inspector, JobId};

use crate::cli::common::{usage, Outcome, QueueArg, RedisArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Show dead jobs, newest first (one JSON object a line with --json). Entries that are
    /// not in the protocol's shape are shown with what is wrong, beside the others.
    List {
        #[command(flatten)]
        queue: QueueArg,
        #[command(flatten)]
        redis: RedisArgs,
        /// How many at most.
        #[arg(long, env = "SQUE_DEAD_LIMIT", default_value_t = 100,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        limit: usize,
        /// Only the job with this id, wherever it is in the list (exit 1 if it is not dead).
        #[arg(long)]
        id: Option<String>,
        /// One JSON object a line instead of text.
        #[arg(long, env = "SQUE_DEAD_JSON")]
        json: bool,
    },
    /// Put dead jobs back at the tail of the queue, their attempts started again. Poison (data
    /// that cannot be delivered) is never retried: purge it.
    ///
    /// Example: sque-host dead retry --queue emails --id 17 --id 18
    Retry(Select),
    /// Delete dead jobs for good, with their data and last error.
    ///
    /// Example: sque-host dead purge --queue emails --all
    Purge(Select),
}

/// Which dead jobs: some by id, or all, said explicitly.
#[derive(clap::Args, Debug)]
struct Select {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
    /// A dead job's id (repeatable). An entry that is not a job is named as `dead list`
    /// shows it.
    #[arg(long = "id", value_name = "ID", conflicts_with = "all")]
    ids: Vec<String>,
    /// Every dead job.
    #[arg(long)]
    all: bool,
}

fn context(queue: &QueueArg, redis: &RedisArgs) -> String {
    format!(
        "queue {:?} at Redis {}",
        queue.queue,
        redis.options().redis_url_redacted()
    )
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::List {
            queue,
            redis,
            limit,
            id,
            json,
        } => {
            sque::validate_queue_name(&queue.queue)?;
            let inspector = Inspector::new(&queue.queue, redis.options())
                .await
                .with_context(|| context(&queue, &redis))?;
            let jobs = match &id {
                None => inspector.dead_jobs(limit).await?,
                Some(id) => match inspector.dead_job(id).await? {
                    Some(job) => vec![job],
                    None => {
                        return Err(Outcome {
                            code: 1,
                            message: format!(
                                "job {id} is not in the dead list of {:?}; `sque-host job show` says where it is",
                                queue.queue
                            ),
                        }
                        .into())
                    }
                },
            };
            let mut any = false;
            for job in jobs {
                any = true;
                if json {
                    println!("{}", serde_json::to_string(&job)?);
                    continue;
                }
                let mut line = format!(
                    "{}  attempts {}  {}error: {}",
                    job.id,
                    job.attempts,
                    job.code
                        .as_deref()
                        .map(|c| format!("[{c}] "))
                        .unwrap_or_default(),
                    // Guest text: a traceback's newlines must not forge lines of the list.
                    crate::sandbox::escaped(job.error.as_deref().unwrap_or("-")),
                );
                if let Some(problem) = &job.problem {
                    line.push_str(&format!("  problem: {problem}"));
                }
                line.push_str(&format!(
                    "  data{}: {}",
                    if job.cut { " (cut to 4 KiB)" } else { "" },
                    job.data
                ));
                println!("{}", line.replace(['\n', '\r'], " "));
            }
            if !any && !json {
                println!("The dead list of {:?} is empty.", queue.queue);
            }
            Ok(())
        }
        Action::Retry(select) => {
            let (admin, which) = select.open().await?;
            let ids = select.ids();
            let report = admin
                .retry_dead_jobs(which.resolve(&ids))
                .await
                .with_context(|| context(&select.queue, &select.redis))?;
            println!(
                "{} job(s) back in queue {:?}",
                report.done, select.queue.queue
            );
            if report.skipped > 0 {
                println!(
                    "{} poison entr{} stay dead: poison cannot be delivered, purge it",
                    report.skipped,
                    if report.skipped == 1 { "y" } else { "ies" }
                );
            }
            refused(&report)
        }
        Action::Purge(select) => {
            let (admin, which) = select.open().await?;
            let ids = select.ids();
            let report = admin
                .purge_dead_jobs(which.resolve(&ids))
                .await
                .with_context(|| context(&select.queue, &select.redis))?;
            println!(
                "{} dead job(s) purged from {:?}",
                report.done, select.queue.queue
            );
            refused(&report)
        }
    }
}

/// Names each refused id on a line of its own; refusals make the exit code 2.
fn refused(report: &DeadReport) -> anyhow::Result<()> {
    for (id, why) in &report.refused {
        eprintln!("job {id} refused: {why}");
    }
    match report.refused.len() {
        0 => Ok(()),
        n => Err(usage(format!(
            "{n} of the jobs named {} refused (see above); the others were done",
            if n == 1 { "was" } else { "were" }
        ))),
    }
}

/// `--all`, or the ids.
enum Which {
    All,
    Ids,
}

impl Which {
    fn resolve<'a>(&self, ids: &'a [JobId]) -> DeadJobs<'a> {
        match self {
            Which::All => DeadJobs::All,
            Which::Ids => DeadJobs::Ids(ids),
        }
    }
}

impl Select {
    async fn open(&self) -> anyhow::Result<(Admin, Which)> {
        sque::validate_queue_name(&self.queue.queue)?;
        let which =
            match (self.all, self.ids.is_empty()) {
                (true, _) => Which::All,
                (false, false) => Which::Ids,
                (false, true) => return Err(usage(
                    "say which dead jobs: --id ID (repeatable) or --all; see `sque-host dead list`",
                )),
            };
        let admin = Admin::new(&self.queue.queue, self.redis.options())
            .await
            .with_context(|| context(&self.queue, &self.redis))?;
        Ok((admin, which))
    }

    fn ids(&self) -> Vec<JobId> {
        self.ids.iter().map(|id| JobId::from(id.as_str())).collect()
    }
}
