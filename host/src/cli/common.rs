//! What the subcommands share: Redis settings, parsing of sizes and durations, and the
//! mapping of errors to one line and an exit code.

use std::time::Duration;

/// Bad input or usage: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A failure after the command had changed something (part of a push went in, a host ran
/// and then could not leave cleanly): exit code 1 whatever the cause, since retrying the
/// whole command is not the same as never having run it. The message says what was done.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PartlyDone(pub String);

/// An answer with an exit code of its own, said in one line on stderr (`job wait`: 1 when
/// the job died, 3 when the wait timed out).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Outcome {
    pub code: u8,
    pub message: String,
}

/// Shorthand for a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

#[derive(clap::Args, Clone, Debug)]
pub struct RedisArgs {
    /// Redis URL: redis://[user:password@]host[:port][/db] for one server;
    /// redis+cluster://host:port[,host:port...] for a Redis Cluster;
    /// redis+sentinel://host:port[,host:port...]/service[/db] for the master Sentinel names.
    /// rediss… for TLS. (The value of SQUE_REDIS_URL is not shown here: it may hold a
    /// password.)
    #[arg(
        long = "redis",
        env = "SQUE_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,

    /// Prefix of every Redis key sque writes.
    #[arg(long, env = "SQUE_PREFIX", default_value = "sque")]
    pub prefix: String,

    /// For rediss://: a PEM file of the CA that signed Redis's certificate (default: the
    /// system's trusted roots).
    #[arg(long, env = "SQUE_TLS_CA", value_name = "PEM_FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
}

impl RedisArgs {
    pub fn options(&self) -> sque::Options {
        let opts = sque::Options::default()
            .redis(self.url.clone())
            .prefix(self.prefix.clone());
        match &self.tls_ca {
            Some(ca) => opts.tls_ca(ca.clone()),
            None => opts,
        }
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct QueueArg {
    /// The queue's name.
    #[arg(long, short = 'q', env = "SQUE_QUEUE")]
    pub queue: String,
}

/// Parses `30s`, `500ms`, `2m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 30s, 500ms, 2m)"))
}

/// Parses `64MiB`, `1GiB`, `512KiB`, `65536` (bytes); `MB`/`KB`/`GB` mean the same powers of 2.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (use e.g. 64MiB, 512KiB, 1GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{s:?}: unknown unit (use B, KiB, MiB or GiB)")),
    };
    number
        .checked_mul(1usize << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A `--max-memory`: a size (as [`parse_size`]) from 64 KiB, one wasm page, to 4 GiB, where a
/// 32-bit memory's addresses end.
pub fn parse_memory_limit(s: &str) -> Result<usize, String> {
    let most = crate::sandbox::MAX_LINEAR_MEMORY;
    match parse_size(s)? {
        n if (64 << 10..=most).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is outside 64KiB to 4GiB, the linear memory a handler can have"
        )),
    }
}

/// `high`, `normal`, `low` or 0 to 9.
pub fn parse_priority(s: &str) -> Result<u8, String> {
    match s {
        "high" => Ok(sque::HIGHEST_PRIORITY),
        "normal" => Ok(sque::NORMAL_PRIORITY),
        "low" => Ok(0),
        _ => s
            .parse::<u8>()
            .ok()
            .filter(|level| *level <= sque::HIGHEST_PRIORITY)
            .ok_or_else(|| format!("{s:?} is not a priority: use high, normal, low or a number from 0 (low) to 9 (high)")),
    }
}

/// The error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line.replace('\n', " ")
}

/// 2 for bad input, usage, or a Redis that cannot be reached or refuses us before anything
/// was written; 1 otherwise, and whenever something was done first ([`PartlyDone`]).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    // A context is found by downcasting the error itself, not through its chain.
    if e.downcast_ref::<PartlyDone>().is_some() {
        return 1;
    }
    if let Some(outcome) = e.downcast_ref::<Outcome>() {
        return outcome.code;
    }
    for cause in e.chain() {
        if cause.is::<UsageError>() || cause.is::<crate::sandbox::LoadError>() {
            return 2;
        }
        if let Some(q) = cause.downcast_ref::<sque::Error>() {
            return match q {
                sque::Error::Unavailable(_)
                | sque::Error::Auth(_)
                | sque::Error::Permission(_)
                | sque::Error::Protocol { .. }
                | sque::Error::UnknownFeature { .. } => 2,
                other if other.is_bad_input() => 2,
                _ => 1,
            };
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5XB").is_err());
    }

    #[test]
    fn priorities_read_as_names_or_numbers() {
        assert_eq!(parse_priority("high"), Ok(9));
        assert_eq!(parse_priority("normal"), Ok(5));
        assert_eq!(parse_priority("low"), Ok(0));
        assert_eq!(parse_priority("7"), Ok(7));
        for bad in ["10", "-1", "urgent", ""] {
            assert!(
                parse_priority(bad)
                    .unwrap_err()
                    .contains("high, normal, low"),
                "{bad}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }
}
