//! The `sque-host` command line: one file a subcommand (and `common`, `native_code` and
//! `signals`, which several share), over the `sque` library and the
//! `sandbox` and `pool` modules. Errors end as one line on stderr and an exit code: 0 success, 2 bad input
//! or usage (including an unreachable Redis or refused credentials at start), 1 anything else.

mod check;
pub(crate) mod common;
mod compile;
mod dashboard;
mod dead;
mod job;
pub mod native_code;
mod new;
mod push;
mod queue;
mod run;
mod schedule;
mod signals;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use common::UsageError;

#[derive(Parser)]
#[command(
    name = "sque-host",
    version,
    about = "A Redis job queue whose handlers run as sandboxed WebAssembly components",
    long_about = "A Redis job queue whose handlers run as sandboxed WebAssembly components.\n\n\
        Push JSON jobs into a queue, then run hosts that hand each job to a fresh instance of \
        a handler component (built with the sque-guest crate for wasm32-wasip2).\n\n\
        Examples:\n  \
        echo '{\"email\":\"test1@mail.org\"}' | sque-host push --queue emails\n  \
        sque-host run --queue emails --handler send_email.wasm --slots 16\n  \
        sque-host stats --queue emails\n  \
        sque-host dashboard --dashboard-addr 127.0.0.1:8080\n  \
        sque-host check send_email.wasm\n  \
        sque-host compile send_email.wasm -o send_email.cwasm\n  \
        sque-host new --lang python my-handler\n  \
        sque-host push --queue emails --delay 10m '{\"email\":\"later@mail.org\"}'\n  \
        sque-host job wait --queue emails 42\n  \
        sque-host schedule add --queue reports --name nightly --cron '0 3 * * *' --data '{}'\n  \
        sque-host dead list --queue emails\n  \
        sque-host queue config --queue emails --lease 10s\n  \
        sque-host queue pause --queue emails\n\n\
        Settings can also be given as environment variables (shown in each subcommand's --help), \
        e.g. SQUE_REDIS_URL. Flags that name what to act on (a job argument, --id, --create) \
        and the settings of `queue config` have none: those happen only when typed.",
    after_help = "Exit codes: 0 success, 2 bad input or usage (also: Redis unreachable or credentials refused at start), 1 other failures."
)]
struct Cli {
    /// Log level of sque's own lines (error, warn, info, debug, trace; other crates log
    /// warnings only), or a full tracing filter such as `sque=debug,wasmtime=info`.
    #[arg(long, global = true, env = "SQUE_LOG", default_value = "info")]
    log: String,

    /// How log lines are written: text for a person, or json (one object a line: time,
    /// level, message and fields) for a log shipper.
    #[arg(
        long,
        global = true,
        env = "SQUE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the manager and a pool of worker slots running a handler component.
    Run(run::Args),
    /// Push jobs: one JSON argument, or NDJSON on stdin (one job a line). Prints the ids.
    Push(push::Args),
    /// Show a queue's counts (or every queue's), for a person or with --json for scripts.
    Stats(stats::Args),
    /// Check that a file is a valid handler component: its world, what it is made of, the
    /// capabilities it imports; or that a config file of queues (.toml) can be served.
    Check(check::Args),
    /// Compile a handler to native code ahead of time (.cwasm), for hosts that start at once.
    Compile(compile::Args),
    /// Create a handler project in Rust, Python or JavaScript that builds with one command.
    New(new::Args),
    /// List, retry or purge the dead list of a queue.
    Dead(dead::Args),
    /// Add, list or remove schedules: jobs pushed on a cron pattern by the queue's managers.
    Schedule(schedule::Args),
    /// Show one job by its id (state, attempts, data, last error, result), or wait until it
    /// has ended.
    Job(job::Args),
    /// Serve the web dashboard: every queue's counts, live; the dead list (retry, purge); a
    /// job by id; the workers.
    Dashboard(dashboard::Args),
    /// Show or change a queue's settings (lease, attempts, size limit, backoff, retention),
    /// or pause and resume it.
    Queue(queue::Args),
}

/// Clap's usage error on one line: what is wrong, the arguments it names and its tip, without
/// the usage it repeats.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version as clap writes them; a usage error as one line, as every other
        // error of this program is, with where to read more.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!(
                "{} (see sque-host --help)",
                one_line(&e.render().to_string())
            );
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&cli.log, cli.log_format) {
        eprintln!(
            "error: --log {:?} (SQUE_LOG) is not a level (error, warn, info, debug, trace) nor a tracing filter such as `sque=debug,wasmtime=info`: {}",
            cli.log,
            one_line(&e.to_string())
        );
        return ExitCode::from(2);
    }
    if !matches!(cli.command, Command::Run(_)) {
        die_quietly_on_closed_stdout();
    }
    // One thread for everything that talks to Redis: that work is light and mostly waiting,
    // and one thread wakes no other. `run` gives the guests a runtime of their own (see
    // cli/run.rs), so a busy guest never holds up renewals, dispatch or stats.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("sque-main")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Push(args) => push::run(args).await,
            Command::Stats(args) => stats::run(args).await,
            Command::Check(args) => check::run(args).await,
            Command::Compile(args) => compile::run(args).await,
            Command::New(args) => new::run(args).await,
            Command::Dead(args) => dead::run(args).await,
            Command::Job(args) => job::run(args).await,
            Command::Schedule(args) => schedule::run(args).await,
            Command::Queue(args) => queue::run(args).await,
            Command::Dashboard(args) => dashboard::run(args).await,
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match cli.log_format {
                LogFormat::Text => eprintln!("error: {}", common::one_line(&e)),
                // A log shipper reads every line as JSON, the last one too.
                LogFormat::Json => tracing::error!("{}", common::one_line(&e)),
            }
            ExitCode::from(common::exit_code(&e))
        }
    }
}

/// `sque-host stats | head -3`: when the reader goes away, end at once and quietly, as Unix
/// tools do, instead of failing a write with a panic. (Rust ignores SIGPIPE by default.)
/// `run` keeps ignoring it: a host must not die because whoever read its log went away.
fn die_quietly_on_closed_stdout() {
    // SAFETY: setting a signal's disposition to its default touches no Rust state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The form of the log's lines (`--log-format`).
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Starts the log at `filter`; a filter that does not parse is refused, not replaced by a
/// default the user did not ask for.
fn init_logging(
    filter: &str,
    format: LogFormat,
) -> Result<(), tracing_subscriber::filter::ParseError> {
    use tracing_subscriber::EnvFilter;
    // A bare level applies to sque's lines; dependencies (cranelift is chatty) stay at warn,
    // and the redis crate's cluster client at error: sque says itself, once, what a lost node
    // means for the user.
    let filter = if filter.contains('=') || filter.contains(',') {
        filter.to_string()
    } else {
        format!("warn,redis=error,sque={filter}")
    };
    let filter = EnvFilter::try_new(&filter)?;
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => log
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => log.json().with_current_span(false).init(),
    }
    Ok(())
}
