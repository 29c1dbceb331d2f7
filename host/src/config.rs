//! What a host serves: a [`QueueSpec`] for each queue (its handler, limits, grants, share of
//! the slots, and the settings it gives a queue it creates), from the command line
//! (`--queue emails --handler send.wasm`, `--queue emails=send.wasm --queue sms=sms.wasm`) or
//! from a file (`--config sque.toml`). In the file, a key a queue leaves out takes the
//! command line's value (or its default).
//!
//! Loading collects every problem rather than stopping at the first, so that `sque-host
//! check sque.toml` can name them all, one line each.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::common::{parse_duration, parse_size};
use crate::pool::{LaneShare, Order};
use crate::sandbox::{Grants, Limits};

/// The most a queue's weight may be.
pub const MAX_WEIGHT: u32 = 1000;

/// One queue a host serves, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueSpec {
    pub name: String,
    /// The handler component; `None` only for a host that runs no slots.
    pub handler: Option<PathBuf>,
    pub limits: Limits,
    pub grants: Grants,
    /// Settings given to the queue if this host creates it.
    pub settings: sque::SettingsChange,
    pub share: LaneShare,
}

/// What a config file says.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub order: Option<Order>,
    pub slots: Option<u32>,
    pub queues: Vec<QueueSpec>,
}

impl Plan {
    /// The largest memory limit of its queues, or `otherwise` when it has none: what the
    /// instance pool is made for.
    pub fn max_memory(&self, otherwise: usize) -> usize {
        self.queues
            .iter()
            .map(|q| q.limits.max_memory)
            .max()
            .unwrap_or(otherwise)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    order: Option<Order>,
    slots: Option<u32>,
    #[serde(default)]
    queue: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Entry {
    name: String,
    handler: Option<PathBuf>,
    weight: Option<u32>,
    slots: Option<usize>,
    timeout: Option<String>,
    max_memory: Option<Size>,
    reuse: Option<u32>,
    max_log_bytes: Option<Size>,
    max_log_lines: Option<usize>,
    max_resources: Option<u64>,
    log_payloads: Option<bool>,
    env: Option<BTreeMap<String, String>>,
    env_file: Option<PathBuf>,
    allow_http: Option<Vec<String>>,
    allow_push: Option<Vec<String>>,
    max_pushes_per_job: Option<usize>,
    max_attempts: Option<u32>,
    lease: Option<String>,
    max_job_bytes: Option<Size>,
    max_result_bytes: Option<Size>,
    max_error_bytes: Option<Size>,
}

/// A size: a number of bytes, or text such as "64MiB".
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// Reads `path`, each queue starting from `defaults` (the command line's values). On failure,
/// every problem found, one line each, naming the file and the queue.
pub fn load(path: &Path, defaults: &QueueSpec) -> Result<Plan, Vec<String>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: {e}")])?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().replace('\n', " ");
        vec![match line {
            Some(line) => format!("{shown}, line {line}: {}", message.trim()),
            None => format!("{shown}: {}", message.trim()),
        }]
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    if file.queue.is_empty() {
        problems.push(format!(
            "{shown}: no queue: add a [[queue]] table with a name and a handler"
        ));
    }
    if file.slots.is_some_and(|n| !(1..=4096).contains(&n)) {
        problems.push(format!("{shown}: slots must be 1 to 4096"));
    }
    let mut seen = HashSet::new();
    let mut queues = Vec::new();
    for entry in file.queue {
        let name = entry.name.clone();
        let mut said = |what: String| problems.push(format!("{shown}: queue {name:?}: {what}"));
        if let Err(e) = sque::validate_queue_name(&name) {
            said(e.to_string());
            continue;
        }
        if !seen.insert(name.clone()) {
            said("given twice; each queue appears once".into());
            continue;
        }
        if let Some(spec) = entry.into_spec(base, defaults, &mut said) {
            queues.push(spec);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Plan {
        order: file.order,
        slots: file.slots,
        queues,
    })
}

impl Entry {
    fn into_spec(
        self,
        base: &Path,
        defaults: &QueueSpec,
        said: &mut dyn FnMut(String),
    ) -> Option<QueueSpec> {
        let mut ok = true;
        let mut fail = |what: String| {
            ok = false;
            said(what)
        };
        let mut spec = defaults.clone();
        spec.name = self.name;
        spec.handler = match self.handler {
            Some(path) => Some(base.join(path)),
            None => {
                fail("no handler: give handler = \"FILE.wasm\"".into());
                None
            }
        };
        let duration = |key: &str, text: Option<String>, fail: &mut dyn FnMut(String)| {
            text.and_then(|t| match parse_duration(&t) {
                Ok(d) => Some(d),
                Err(e) => {
                    fail(format!("{key}: {e}"));
                    None
                }
            })
        };
        let size = |key: &str, value: Option<Size>, fail: &mut dyn FnMut(String)| match value {
            None => None,
            Some(Size::Bytes(n)) => Some(n as usize),
            Some(Size::Text(t)) => match parse_size(&t) {
                Ok(n) => Some(n),
                Err(e) => {
                    fail(format!("{key}: {e}"));
                    None
                }
            },
        };
        let in_range = |key: &str, n: u64, lo: u64, hi: u64, fail: &mut dyn FnMut(String)| {
            if n < lo || n > hi {
                fail(format!("{key} must be {lo} to {hi}"));
            }
        };
        if let Some(w) = self.weight {
            in_range("weight", w as u64, 1, MAX_WEIGHT as u64, &mut fail);
            spec.share.weight = w;
        }
        if let Some(n) = self.slots {
            in_range("slots", n as u64, 1, 4096, &mut fail);
            spec.share.max_held = Some(n);
        }
        if let Some(d) = duration("timeout", self.timeout, &mut fail) {
            spec.limits.timeout = d;
        }
        if let Some(n) = size("max-memory", self.max_memory, &mut fail) {
            let most = crate::sandbox::MAX_LINEAR_MEMORY;
            in_range("max-memory", n as u64, 1, most as u64, &mut fail);
            spec.limits.max_memory = n;
        }
        if let Some(n) = self.reuse {
            in_range("reuse", n as u64, 1, 1_000_000, &mut fail);
            spec.limits.reuse = n;
        }
        if let Some(n) = size("max-log-bytes", self.max_log_bytes, &mut fail) {
            spec.limits.max_log_bytes = n;
        }
        if let Some(n) = self.max_log_lines {
            spec.limits.max_log_lines = n;
        }
        if let Some(n) = self.max_resources {
            in_range("max-resources", n, 16, 1_000_000, &mut fail);
            spec.limits.max_resources = n as usize;
        }
        if let Some(on) = self.log_payloads {
            spec.grants.log_payloads = on;
        }
        if self.env.is_some() || self.env_file.is_some() {
            let mut env = Vec::new();
            if let Some(file) = &self.env_file {
                match read_env_file(&base.join(file)) {
                    Ok(vars) => env.extend(vars),
                    Err(e) => fail(format!("env-file {e}")),
                }
            }
            for (key, value) in self.env.unwrap_or_default() {
                // As `--env K=V` takes them: a name is not empty and holds no `=`.
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    fail(format!(
                        "env: {:?} is not a variable's name (not empty, no `=`)",
                        sque::wire::shown(&key)
                    ));
                } else {
                    env.push((key, value));
                }
            }
            spec.grants.env = last_of_each(env);
        }
        if let Some(hosts) = self.allow_http {
            for host in &hosts {
                if let Err(e) = crate::sandbox::check_http_grant(host) {
                    fail(format!("allow-http {host:?}: {e}"));
                }
            }
            spec.grants.http_hosts = hosts;
        }
        if let Some(queues) = self.allow_push {
            for queue in &queues {
                if let Err(e) = sque::validate_queue_name(queue) {
                    fail(format!("allow-push {queue:?}: {e}"));
                }
            }
            spec.grants.push_queues = queues;
        }
        if let Some(n) = self.max_pushes_per_job {
            in_range(
                "max-pushes-per-job",
                n as u64,
                1,
                sque::MAX_FOLLOW_UPS as u64,
                &mut fail,
            );
            spec.grants.max_pushes_per_job = n;
        }
        if let Some(n) = self.max_attempts {
            in_range("max-attempts", n as u64, 1, u32::MAX as u64, &mut fail);
            spec.settings.max_attempts = Some(n);
        }
        if let Some(d) = duration("lease", self.lease, &mut fail) {
            spec.settings.lease = Some(d);
        }
        if let Some(n) = size("max-job-bytes", self.max_job_bytes, &mut fail) {
            spec.settings.max_job_bytes = Some(n as u64);
        }
        if let Some(n) = size("max-result-bytes", self.max_result_bytes, &mut fail) {
            spec.settings.max_result_bytes = Some(n as u64);
            spec.limits.max_result_bytes = n;
        }
        if let Some(n) = size("max-error-bytes", self.max_error_bytes, &mut fail) {
            spec.settings.max_error_bytes = Some(n as u64);
            spec.limits.max_error_bytes = n;
        }
        ok.then_some(spec)
    }
}

/// Of variables given more than once, the last (in the order given).
pub fn last_of_each(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = HashSet::new();
    let mut kept: Vec<(String, String)> = env
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    kept.reverse();
    kept
}

/// Reads a file of K=V lines (blank lines and lines starting with # skipped). A file others
/// may read is refused: it holds secrets. Errors start with the file's name.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a file (a directory, a device or a pipe); name a file of K=V lines"
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{shown} may be read by other users; it holds secrets: `chmod 600 {shown}`"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(i, line)| {
            parse_env(line.trim_end_matches('\r'))
                .map_err(|e| format!("{shown}, line {}: {e}", i + 1))
        })
        .collect()
}

/// Parses K=V.
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        // The value may be a secret: name the key only.
        Some(_) => Err("a variable's name is empty (expected K=V)".to_string()),
        None => Err(format!(
            "{:?} is not K=V",
            s.chars().take(40).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> QueueSpec {
        QueueSpec {
            name: String::new(),
            handler: None,
            limits: Limits::default(),
            grants: Grants::default(),
            settings: Default::default(),
            share: LaneShare::default(),
        }
    }

    fn load_text(text: &str) -> Result<Plan, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sque.toml");
        std::fs::write(&path, text).unwrap();
        load(&path, &defaults()).map(|mut plan| {
            // Handler paths are relative to the file: make them comparable.
            for q in &mut plan.queues {
                q.handler = q
                    .handler
                    .as_ref()
                    .map(|h| h.strip_prefix(dir.path()).unwrap().to_path_buf());
            }
            plan
        })
    }

    #[test]
    fn a_key_given_wins_and_a_key_left_out_keeps_the_default() {
        let plan = load_text(
            "order = \"strict\"\nslots = 8\n\
             [[queue]]\nname = \"mail\"\nhandler = \"send.wasm\"\nweight = 3\nslots = 4\n\
             timeout = \"5s\"\nmax-memory = \"32MiB\"\nenv = { A = \"1\" }\nmax-attempts = 2\n\
             [[queue]]\nname = \"sms\"\nhandler = \"sms.wasm\"\nmax-memory = 1048576\n",
        )
        .unwrap();
        assert_eq!((plan.order, plan.slots), (Some(Order::Strict), Some(8)));
        let (mail, sms) = (&plan.queues[0], &plan.queues[1]);
        assert_eq!(mail.handler.as_deref(), Some(Path::new("send.wasm")));
        assert_eq!(
            mail.share,
            LaneShare {
                weight: 3,
                max_held: Some(4)
            }
        );
        assert_eq!(mail.limits.timeout, std::time::Duration::from_secs(5));
        assert_eq!(mail.limits.max_memory, 32 << 20);
        assert_eq!(mail.grants.env, [("A".to_string(), "1".to_string())]);
        assert_eq!(mail.settings.max_attempts, Some(2));
        assert_eq!(sms.limits.max_memory, 1 << 20);
        assert_eq!(sms.limits.timeout, Limits::default().timeout);
        assert_eq!(sms.share, LaneShare::default());
    }

    #[test]
    fn every_problem_is_named_once_with_its_queue() {
        let problems = load_text(
            "[[queue]]\nname = \"mail\"\nhandler = \"a.wasm\"\nweight = 0\nlease = \"often\"\n\
             [[queue]]\nname = \"mail\"\nhandler = \"b.wasm\"\n\
             [[queue]]\nname = \"bad name!\"\nhandler = \"c.wasm\"\n\
             [[queue]]\nname = \"sms\"\n",
        )
        .unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].contains("queue \"mail\": weight must be 1 to 1000"));
        assert!(problems[1].contains("queue \"mail\": lease:"));
        assert!(problems[2].contains("queue \"mail\": given twice"));
        assert!(problems[3].contains("queue \"bad name!\""));
        assert!(problems[4].contains("queue \"sms\": no handler"));
        let empty = load_text("order = \"weighted\"\n").unwrap_err();
        assert!(empty[0].contains("no queue"), "{empty:?}");
        let unknown = load_text("order = \"fair\"\n").unwrap_err();
        assert!(unknown[0].contains("line 1"), "{unknown:?}");
        // What `--env K=V` or `--max-memory` would refuse, a file of queues refuses too.
        let env = load_text(
            "[[queue]]\nname = \"mail\"\nhandler = \"a.wasm\"\nenv = { \"A=B\" = \"1\", \"\" = \"2\" }\n\
             max-memory = \"5GiB\"\n",
        )
        .unwrap_err();
        assert_eq!(env.len(), 3, "{env:#?}");
        assert!(env
            .iter()
            .any(|p| p.contains("max-memory must be 1 to 4294967296")));
        assert!(env
            .iter()
            .any(|p| p.contains("env: \"A=B\" is not a variable's name")));
        assert!(env
            .iter()
            .any(|p| p.contains("env: \"\" is not a variable's name")));
    }
}
