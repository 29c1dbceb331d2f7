//! `sque-host dead list|retry|purge`: the jobs that used up their attempts or failed for good.

use anyhow::Context as _;
use sque::{Admin, Inspector, JobId};

use crate::cli::common::{QueueArg, RedisArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// Show dead jobs, newest first (one JSON object a line with --json).
    List {
        #[command(flatten)]
        target: Target,
        /// How many at most.
        #[arg(long, env = "SQUE_DEAD_LIMIT", default_value_t = 100)]
        limit: usize,
        /// One JSON object a line instead of text.
        #[arg(long, env = "SQUE_DEAD_JSON")]
        json: bool,
    },
    /// Put dead jobs back at the tail of the queue, their attempts started again.
    Retry {
        #[command(flatten)]
        target: Target,
    },
    /// Delete dead jobs for good.
    Purge {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(clap::Args, Debug)]
struct Target {
    #[command(flatten)]
    queue: QueueArg,
    #[command(flatten)]
    redis: RedisArgs,
    /// Only the job with this id (every dead job when left out).
    #[arg(long)]
    id: Option<String>,
}

impl Target {
    fn context(&self) -> String {
        format!(
            "queue {:?} at Redis {}",
            self.queue.queue,
            self.redis.options().redis_url_redacted()
        )
    }

    async fn inspector(&self) -> anyhow::Result<Inspector> {
        sque::validate_queue_name(&self.queue.queue)?;
        Inspector::new(&self.queue.queue, self.redis.options())
            .await
            .with_context(|| self.context())
    }

    async fn admin(&self) -> anyhow::Result<Admin> {
        sque::validate_queue_name(&self.queue.queue)?;
        Admin::new(&self.queue.queue, self.redis.options())
            .await
            .with_context(|| self.context())
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.action {
        Action::List {
            target,
            limit,
            json,
        } => {
            let inspector = target.inspector().await?;
            let jobs = inspector.dead_jobs(limit).await?;
            let jobs = jobs
                .into_iter()
                .filter(|j| target.id.as_deref().is_none_or(|id| j.id.as_str() == id));
            let mut any = false;
            for job in jobs {
                any = true;
                if json {
                    println!("{}", serde_json::to_string(&job)?);
                } else {
                    println!(
                        "{}  attempts {}  error: {}  data: {}",
                        job.id,
                        job.attempts,
                        job.error.as_deref().unwrap_or("-"),
                        job.data
                    );
                }
            }
            if !any && !json {
                println!("The dead list of {:?} is empty.", target.queue.queue);
            }
        }
        Action::Retry { target } => {
            let admin = target.admin().await?;
            let n = admin
                .retry_dead(target.id.clone().map(JobId::from).as_ref())
                .await?;
            println!("{n} job(s) back in queue {:?}", target.queue.queue);
        }
        Action::Purge { target } => {
            let admin = target.admin().await?;
            let n = admin
                .purge_dead(target.id.clone().map(JobId::from).as_ref())
                .await?;
            println!("{n} dead job(s) purged from {:?}", target.queue.queue);
        }
    }
    Ok(())
}
