//! Who may see the dashboard, and what they may do: HTTP Basic users (from `--auth-file`, as
//! `htpasswd -B` writes them, or one from `SQUE_DASHBOARD_AUTH`), `--read-only`, and the
//! CSRF token every POST must carry.
//!
//! Why Basic and bcrypt: every operator has `htpasswd`, every browser and `curl -u` speak
//! Basic, and it needs no session store. A bcrypt check costs tens of milliseconds by
//! design, so a header that passed once is remembered (as a keyed hash, never the password)
//! and a page's SSE stream and requests cost no more checks.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;

use crate::cli::common::usage;

/// Headers remembered as checked; past this many, the memory starts again (each then costs
/// one bcrypt check more).
const REMEMBERED: usize = 1024;
/// bcrypt checks run at once, on threads of their own (never the thread that renews leases):
/// past this, a sign-in is answered 429 at once instead of queueing CPU work.
const CHECKS_AT_ONCE: usize = 2;

/// How one user's password is checked.
enum Secret {
    /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`), from `--auth-file`.
    Bcrypt(String),
    /// The password itself, from `SQUE_DASHBOARD_AUTH` (the environment is no more readable
    /// than the file would be, and argv, which is, never holds it).
    Plain(String),
}

/// The dashboard's rules of access.
pub struct Access {
    /// Empty: no authentication (loopback only, or `--insecure-no-auth`).
    users: Vec<(String, Secret)>,
    pub read_only: bool,
    /// Served without users on purpose (something in front checks who comes in).
    pub insecure_no_auth: bool,
    /// What every POST carries in `x-sque-csrf`: served to the page by `/api/session`, which a
    /// page of another origin cannot read.
    pub csrf: String,
    remembered: Mutex<HashSet<u64>>,
    hasher: RandomState,
    checks: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Whether a request may go on.
pub enum Verdict {
    Allowed,
    /// No or wrong credentials: 401, asking for Basic.
    Unauthorized,
    /// Too many sign-ins being checked at once: 429.
    Busy,
}

impl Access {
    /// The rules from the flags: users from `auth_file` or `env_user` ("user:password"),
    /// refused when that cannot be read or is not safe, and serving `addr` without users
    /// only on loopback unless `insecure_no_auth`.
    pub fn new(
        addr: SocketAddr,
        auth_file: Option<&Path>,
        env_user: Option<&str>,
        read_only: bool,
        insecure_no_auth: bool,
    ) -> anyhow::Result<Access> {
        let users = match (auth_file, env_user) {
            (Some(_), Some(_)) => {
                return Err(usage(
                    "both --auth-file and SQUE_DASHBOARD_AUTH are set: use one of them",
                ))
            }
            (Some(file), None) => read_auth_file(file)?,
            (None, Some(pair)) => {
                let Some((user, password)) = pair.split_once(':') else {
                    return Err(usage(
                        "SQUE_DASHBOARD_AUTH is not user:password; set it as e.g. admin:a-long-password",
                    ));
                };
                if user.is_empty() || password.is_empty() {
                    return Err(usage(
                        "SQUE_DASHBOARD_AUTH has an empty user or password; set it as e.g. admin:a-long-password",
                    ));
                }
                vec![(user.to_string(), Secret::Plain(password.to_string()))]
            }
            (None, None) => Vec::new(),
        };
        if users.is_empty() && !addr.ip().is_loopback() && !insecure_no_auth {
            return Err(usage(format!(
                "the dashboard would serve {addr} to the network without authentication; give users with --auth-file FILE or SQUE_DASHBOARD_AUTH=user:password, serve on 127.0.0.1, or pass --insecure-no-auth if something in front of it checks who comes in"
            )));
        }
        Ok(Access {
            users,
            read_only,
            insecure_no_auth,
            csrf: random_token()?,
            remembered: Mutex::new(HashSet::new()),
            hasher: RandomState::new(),
            checks: std::sync::Arc::new(tokio::sync::Semaphore::new(CHECKS_AT_ONCE)),
        })
    }

    /// Whether users must sign in.
    pub fn authenticates(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks an `Authorization` header's value (`None` when there is none). A header that
    /// passed before is let in from memory; a new one is checked on the blocking pool.
    pub async fn check(self: &std::sync::Arc<Self>, authorization: Option<&[u8]>) -> Verdict {
        if self.users.is_empty() {
            return Verdict::Allowed;
        }
        let Some(header) = authorization else {
            return Verdict::Unauthorized;
        };
        let key = self.hasher.hash_one(header);
        if self.remembered.lock().expect("not poisoned").contains(&key) {
            return Verdict::Allowed;
        }
        let Ok(permit) = self.checks.clone().try_acquire_owned() else {
            return Verdict::Busy;
        };
        let access = self.clone();
        let header = header.to_vec();
        // The permit goes with the check, not with this request: a client that hangs up
        // does not end a check running on the blocking pool, so its place stays taken until
        // the check ends (it was given back at once, and hang-ups ran checks without bound).
        let passed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            access.verify(&header)
        })
        .await
        .unwrap_or(false);
        if !passed {
            return Verdict::Unauthorized;
        }
        let mut remembered = self.remembered.lock().expect("not poisoned");
        if remembered.len() >= REMEMBERED {
            remembered.clear();
        }
        remembered.insert(key);
        Verdict::Allowed
    }

    fn verify(&self, header: &[u8]) -> bool {
        // The scheme's name is case-insensitive (RFC 7235): "basic" is Basic too.
        let encoded = match header.split_at_checked(6) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"Basic ") => rest,
            _ => return false,
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii())
        else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        // An unknown user costs the same check as a known one: the time of an answer does not
        // tell which users exist.
        let secret = self
            .users
            .iter()
            .find(|(name, _)| name == user)
            .map(|(_, secret)| secret);
        match secret {
            Some(Secret::Bcrypt(hash)) => bcrypt::verify(password, hash).unwrap_or(false),
            Some(Secret::Plain(expected)) => same(expected.as_bytes(), password.as_bytes()),
            None => {
                if let Some((_, Secret::Bcrypt(hash))) = self.users.first() {
                    let _ = bcrypt::verify(password, hash);
                }
                false
            }
        }
    }

    /// Whether a POST's CSRF header is this dashboard's token.
    pub fn csrf_ok(&self, header: Option<&[u8]>) -> bool {
        header.is_some_and(|h| same(h, self.csrf.as_bytes()))
    }
}

/// Compares in a time that depends on the lengths only, not on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// 32 random bytes as hex, from the kernel.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            anyhow::anyhow!("cannot read /dev/urandom for the dashboard's CSRF token: {e}")
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `user:hash` lines (bcrypt, as `htpasswd -nB user` writes them); blank lines and `#`
/// comments are skipped. A file other users can read (its hashes could be attacked offline)
/// or write (they could add themselves) is refused.
fn read_auth_file(path: &Path) -> anyhow::Result<Vec<(String, Secret)>> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| usage(format!("cannot read --auth-file {shown}: {e}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(usage(format!(
            "--auth-file {shown} can be read or changed by other users of this machine; make it private with chmod 600 {shown}"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read --auth-file {shown}: {e}")))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| {
            usage(format!(
                "--auth-file {shown}, line {}: {why}; each line is user:bcrypt-hash, as `htpasswd -nB user` prints it",
                n + 1
            ))
        };
        let Some((user, hash)) = line.split_once(':') else {
            return Err(bad("no ':' between the user and the hash"));
        };
        if user.is_empty() {
            return Err(bad("the user is empty"));
        }
        if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
            || bcrypt::verify("", hash).is_err()
        {
            return Err(bad("the hash is not a bcrypt hash"));
        }
        users.push((user.to_string(), Secret::Bcrypt(hash.to_string())));
    }
    if users.is_empty() {
        return Err(usage(format!(
            "--auth-file {shown} names no user; add a line with `htpasswd -nB admin >> {shown}`"
        )));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn basic(pair: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
        .into_bytes()
    }

    fn verdict(access: &std::sync::Arc<Access>, header: Option<&[u8]>) -> Verdict {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(access.check(header))
    }

    #[test]
    fn a_user_from_the_environment_signs_in_with_their_password_only() {
        let access = std::sync::Arc::new(
            Access::new(loopback(), None, Some("ops:s3cret:x"), false, false).unwrap(),
        );
        assert!(matches!(
            verdict(&access, Some(&basic("ops:s3cret:x"))),
            Verdict::Allowed
        ));
        // Twice: the second time from memory.
        assert!(matches!(
            verdict(&access, Some(&basic("ops:s3cret:x"))),
            Verdict::Allowed
        ));
        assert!(matches!(
            verdict(&access, Some(&basic("ops:s3cret"))),
            Verdict::Unauthorized
        ));
        // The scheme's name in any case (RFC 7235).
        let lower = String::from_utf8(basic("ops:s3cret:x"))
            .unwrap()
            .replacen("Basic", "bAsIc", 1);
        assert!(matches!(
            verdict(&access, Some(lower.as_bytes())),
            Verdict::Allowed
        ));
        assert!(matches!(
            verdict(&access, Some(&basic("root:s3cret:x"))),
            Verdict::Unauthorized
        ));
        assert!(matches!(verdict(&access, None), Verdict::Unauthorized));
        assert!(matches!(
            verdict(&access, Some(b"Bearer x")),
            Verdict::Unauthorized
        ));
    }

    #[test]
    fn the_network_without_users_needs_insecure_no_auth() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let refused = Access::new(any, None, None, false, false).err().unwrap();
        assert!(
            refused.to_string().contains("--insecure-no-auth"),
            "{refused}"
        );
        assert!(Access::new(any, None, None, false, true).is_ok());
        assert!(Access::new(loopback(), None, None, false, false).is_ok());
    }

    /// A client that hangs up mid-check does not give its place back: the bcrypt check goes
    /// on on the blocking pool, and checks at once stay bounded however many hang up.
    #[tokio::test]
    async fn a_check_keeps_its_place_until_it_ends_even_when_its_client_hangs_up() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        // Cost 12: each check takes a good part of a second, far longer than this test's
        // steps between the hang-ups and the last ask.
        let hash = bcrypt::hash("pw", 12).unwrap();
        std::fs::write(&file, format!("admin:{hash}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let access =
            std::sync::Arc::new(Access::new(loopback(), Some(&file), None, false, false).unwrap());
        let wrong = basic("admin:wrong");
        for _ in 0..CHECKS_AT_ONCE {
            let mut check = Box::pin(access.check(Some(&wrong)));
            // Polled once (a zero timeout polls first): its place taken, its check started.
            assert!(
                tokio::time::timeout(std::time::Duration::ZERO, check.as_mut())
                    .await
                    .is_err(),
                "still checking"
            );
            // The client hangs up.
            drop(check);
        }
        assert!(
            matches!(access.check(Some(&wrong)).await, Verdict::Busy),
            "the places stay taken while the abandoned checks run"
        );
    }

    #[test]
    fn an_auth_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        let hash = bcrypt::hash("pw", 4).unwrap();
        std::fs::write(&file, format!("# ops\nadmin:{hash}\n")).unwrap();
        // Readable or writable by others or the group: refused.
        for mode in [0o644, 0o640, 0o602] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let refused = Access::new(loopback(), Some(&file), None, false, false)
                .err()
                .unwrap();
            assert!(
                refused.to_string().contains("chmod 600"),
                "{mode:o}: {refused}"
            );
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let access =
            std::sync::Arc::new(Access::new(loopback(), Some(&file), None, false, false).unwrap());
        assert!(matches!(
            verdict(&access, Some(&basic("admin:pw"))),
            Verdict::Allowed
        ));
        assert!(matches!(
            verdict(&access, Some(&basic("admin:px"))),
            Verdict::Unauthorized
        ));
        assert!(matches!(
            verdict(&access, Some(&basic("root:pw"))),
            Verdict::Unauthorized
        ));
    }

    #[test]
    fn a_line_that_is_not_user_and_bcrypt_hash_is_refused_with_its_number() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, "admin:plaintext\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let refused = Access::new(loopback(), Some(&file), None, false, false)
            .err()
            .unwrap();
        assert!(refused.to_string().contains("line 1"), "{refused}");
    }

    #[test]
    fn the_csrf_token_is_compared_whole() {
        let access = Access::new(loopback(), None, None, false, false).unwrap();
        assert_eq!(access.csrf.len(), 64);
        assert!(access.csrf_ok(Some(access.csrf.as_bytes())));
        assert!(!access.csrf_ok(Some(&access.csrf.as_bytes()[1..])));
        assert!(!access.csrf_ok(None));
    }
}
