//! What a job may use: its limits (time, memory, log volume) and the capabilities granted to
//! every job of a host (environment variables, outgoing HTTP hosts).

use std::time::Duration;

/// Per-job limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall time of one job, instantiation included.
    pub timeout: Duration,
    /// Linear memory of one instance, in bytes.
    pub max_memory: usize,
    /// Bytes of guest stdout, stderr and log lines kept per job; the rest is dropped.
    pub max_log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            max_memory: 64 << 20,
            max_log_bytes: 64 << 10,
        }
    }
}

/// Capabilities granted to the guest. Nothing by default: no files, no environment, no
/// sockets, no HTTP.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Environment variables the guest sees (`--env K=V`).
    pub env: Vec<(String, String)>,
    /// Hosts the guest may send HTTP requests to, as `host` or `host:port` (`--allow-http`).
    pub http_hosts: Vec<String>,
    /// Log job payloads (off by default: they may hold personal data).
    pub log_payloads: bool,
}

impl Grants {
    /// Whether an outgoing request to `authority` (`host[:port]`) is allowed.
    pub fn allows_http(&self, authority: &str, default_port: u16) -> bool {
        let (host, port) = split_authority(authority, default_port);
        self.http_hosts.iter().any(|allowed| {
            let (ahost, aport) = match allowed.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse::<u16>().ok()),
                _ => (allowed.as_str(), None),
            };
            ahost.eq_ignore_ascii_case(host) && aport.is_none_or(|p| p == port)
        })
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

#[cfg(test)]
mod tests {
    use super::Grants;

    #[test]
    fn http_allow_list() {
        let g = Grants {
            http_hosts: vec!["api.mail.org".into(), "127.0.0.1:8025".into()],
            ..Grants::default()
        };
        assert!(g.allows_http("api.mail.org", 443));
        assert!(g.allows_http("API.mail.org:8443", 443));
        assert!(g.allows_http("127.0.0.1:8025", 80));
        assert!(!g.allows_http("127.0.0.1:8026", 80));
        assert!(!g.allows_http("127.0.0.1", 80));
        assert!(!g.allows_http("evil.org", 80));
        assert!(!Grants::default().allows_http("api.mail.org", 443));
    }
}
