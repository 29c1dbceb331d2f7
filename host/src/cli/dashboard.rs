//! `sque-host dashboard`: the web dashboard alone, for every queue under the prefix, until
//! SIGINT or SIGTERM. (`run --dashboard-addr` serves the same beside a host.)

use crate::cli::common::{usage, RedisArgs};
use crate::cli::signals::Signals;
use crate::dashboard::{self, Dashboard};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    sque-host dashboard --dashboard-addr 127.0.0.1:8080\n  \
    htpasswd -cnB admin > users && chmod 600 users   # a user, as bcrypt\n  \
    sque-host dashboard --dashboard-addr 0.0.0.0:8080 --auth-file users\n  \
    SQUE_DASHBOARD_AUTH=ops:long-password sque-host dashboard --dashboard-addr 0.0.0.0:8080 --read-only")]
pub struct Args {
    #[command(flatten)]
    dashboard: dashboard::DashboardArgs,

    #[command(flatten)]
    redis: RedisArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut signals = Signals::install(false)?;
    let Some(bound) = dashboard::bind(&args.dashboard).await? else {
        return Err(usage(
            "where should the dashboard listen? pass --dashboard-addr, e.g. --dashboard-addr 127.0.0.1:8080 (or SQUE_DASHBOARD_ADDR)",
        ));
    };
    let opts = args.redis.options();
    // Fail at start, with the address, if Redis cannot be read at all.
    sque::queue_names(&opts).await.map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "reading the queues at Redis {}",
            opts.redis_url_redacted()
        ))
    })?;
    let dashboard = Dashboard::serve(bound, opts)?;
    let name = signals.stop_requested().await;
    tracing::info!("{name}: stopping");
    dashboard.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
