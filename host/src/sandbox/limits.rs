//! What a job may use: its limits (time, memory, host resources, every output) and the
//! capabilities granted to every job of a host (environment variables, outgoing HTTP hosts).
//! Each limit is a flag of `sque-host run` with an environment variable, and a line in
//! docs/HOST.md, which also gives the host's worst-case memory from them.

use std::time::Duration;

/// Bytes of HTTP header names and values (`wasi:http` fields) one instance may create in
/// all, whatever it drops meanwhile: headers live in the host's memory, not the guest's.
pub const MAX_HTTP_FIELD_BYTES: usize = 4 << 20;
/// The most outgoing HTTP bodies (`wasi:http` `outgoing-body`, of requests or responses) one
/// instance may create in all, whatever it drops meanwhile: what a guest writes to a body is
/// buffered in the host's memory until the request is sent, if ever.
pub const MAX_HTTP_BODIES: usize = 256;
/// The most bytes one write to an outgoing HTTP body may carry; a body buffers at most two
/// writes (wasmtime's default: 1 MiB, so two handles of a body unsent held 2 MiB).
pub const HTTP_BODY_CHUNK_BYTES: usize = 16 << 10;
/// The most bytes one `get-random-bytes` call may ask for (wasmtime's default is 64 MiB,
/// held in the host's memory while it is copied).
pub const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// The most linear memory a handler may be given: where a 32-bit memory's addresses end.
pub const MAX_LINEAR_MEMORY: usize = 4 << 30;

/// Per-job limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall time of one job, instantiation included.
    pub timeout: Duration,
    /// Linear memory of one instance, in bytes.
    pub max_memory: usize,
    /// Bytes of guest stdout, stderr and log lines kept per job; the rest is dropped.
    pub max_log_bytes: usize,
    /// Lines of guest stdout, stderr and log kept per job; the rest is dropped.
    pub max_log_lines: usize,
    /// Host resources (handles: HTTP fields and requests, pollables, streams) one instance
    /// may hold at once.
    pub max_resources: usize,
    /// The largest result, in bytes of JSON: over it the job fails (`result_too_large`).
    pub max_result_bytes: usize,
    /// The longest error text kept (a panic's message, a returned error): cut, marked as cut.
    pub max_error_bytes: usize,
    /// Jobs one instance may serve (`--reuse`): 1, the default, is a fresh instance per job.
    pub reuse: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            max_memory: 64 << 20,
            max_log_bytes: 64 << 10,
            max_log_lines: 1000,
            max_resources: 10_000,
            max_result_bytes: 1 << 20,
            max_error_bytes: 4 << 10,
            reuse: 1,
        }
    }
}

/// Capabilities granted to the guest. Nothing by default: no files, no environment, no
/// sockets, no HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// Environment variables the guest sees (`--env K=V`).
    pub env: Vec<(String, String)>,
    /// Hosts the guest may send HTTP requests to (`--allow-http`): `HOST` on its scheme's
    /// default port only (80 for http, 443 for https), `HOST:PORT`, or `HOST:*` for any port.
    pub http_hosts: Vec<String>,
    /// Log job payloads (off by default: they may hold personal data).
    pub log_payloads: bool,
    /// Queues the guest may push follow-up jobs to (`--allow-push`).
    pub push_queues: Vec<String>,
    /// Follow-up jobs one job may push (`--max-pushes-per-job`).
    pub max_pushes_per_job: usize,
}

impl Grants {
    /// Whether an outgoing request to `authority` (`host[:port]`) is allowed; `default_port`
    /// is its scheme's (80 for http, 443 for https). A grant without a port allows that
    /// default port only: a request to any other port (a Redis's, say) must be granted by
    /// name, or with `HOST:*`.
    pub fn allows_http(&self, authority: &str, default_port: u16) -> bool {
        let (host, port) = split_authority(authority, default_port);
        self.http_hosts.iter().any(|allowed| {
            let (ahost, aport) = split_grant(allowed);
            ahost.eq_ignore_ascii_case(host)
                && match aport {
                    GrantPort::Default => port == default_port,
                    GrantPort::Any => true,
                    GrantPort::Only(p) => p == port,
                }
        })
    }

    /// The grants that name `host` (to warn when one names the Redis the queue uses).
    pub fn http_grants_for(&self, host: &str) -> Vec<&str> {
        self.http_hosts
            .iter()
            .filter(|g| split_grant(g).0.eq_ignore_ascii_case(host))
            .map(String::as_str)
            .collect()
    }
}

fn split_authority(authority: &str, default_port: u16) -> (&str, u16) {
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
            Ok(port) => (h, port),
            Err(_) => (authority, default_port),
        },
        _ => (authority, default_port),
    }
}

enum GrantPort {
    Default,
    Any,
    Only(u16),
}

fn split_grant(grant: &str) -> (&str, GrantPort) {
    match grant.rsplit_once(':') {
        Some((h, "*")) => (h, GrantPort::Any),
        Some((h, p)) if !h.ends_with(']') || grant.starts_with('[') => match p.parse() {
            Ok(port) => (h, GrantPort::Only(port)),
            Err(_) => (grant, GrantPort::Default),
        },
        _ => (grant, GrantPort::Default),
    }
}

/// Checks a `--allow-http` grant: `HOST`, `HOST:PORT` or `HOST:*`.
pub fn check_http_grant(grant: &str) -> Result<(), String> {
    let (host, port) = split_grant(grant);
    let bad = |why: &str| {
        Err(format!(
            "--allow-http {grant:?}: {why} (use HOST for its default port, HOST:PORT, or HOST:* for any port)"
        ))
    };
    if host.is_empty() || host.contains(['/', '@', ' ', '?', '#']) {
        return bad("not a host name");
    }
    if let (GrantPort::Default, Some((_, p))) = (&port, grant.rsplit_once(':')) {
        if !host.starts_with('[') && !p.is_empty() {
            return bad("the port is not a number");
        }
    }
    if let GrantPort::Only(0) = port {
        return bad("port 0");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Grants;

    #[test]
    fn http_allow_list() {
        let g = Grants {
            http_hosts: vec![
                "api.mail.org".into(),
                "127.0.0.1:8025".into(),
                "any.org:*".into(),
            ],
            ..Grants::default()
        };
        assert!(g.allows_http("api.mail.org", 443));
        assert!(g.allows_http("api.mail.org:443", 443));
        assert!(g.allows_http("API.mail.org", 80), "http's default port");
        assert!(
            !g.allows_http("api.mail.org:6379", 80),
            "a grant without a port is its scheme's default port only"
        );
        assert!(g.allows_http("127.0.0.1:8025", 80));
        assert!(!g.allows_http("127.0.0.1:8026", 80));
        assert!(!g.allows_http("127.0.0.1", 80));
        assert!(g.allows_http("any.org:6379", 80));
        assert!(!g.allows_http("evil.org", 80));
        assert!(!Grants::default().allows_http("api.mail.org", 443));
        assert_eq!(g.http_grants_for("127.0.0.1"), vec!["127.0.0.1:8025"]);
    }

    #[test]
    fn grants_are_checked() {
        for good in ["api.mail.org", "127.0.0.1:8025", "h:*", "[::1]:80"] {
            assert!(super::check_http_grant(good).is_ok(), "{good}");
        }
        for bad in ["", "h:port", "http://h", "h:0", "u@h"] {
            assert!(super::check_http_grant(bad).is_err(), "{bad}");
        }
    }
}
