//! The original design's `emails` queue: each job is `{"email": "..."}` (with an optional
//! `"subject"` and `"name"`). The handler checks the address, renders the message, and posts
//! it as JSON to the mail HTTP API named by the `MAIL_API_URL` variable. Without that
//! variable it only renders (a dry run).
//!
//! ```sh
//! sque-host run --queue emails --handler send_email.wasm \
//!   --env MAIL_API_URL=http://127.0.0.1:8025/send --allow-http 127.0.0.1:8025
//! ```
//!
//! A bad address fails for good (dead list); an unreachable or failing API (5xx) is retried.

mod http;

use serde::{Deserialize, Serialize};
use sque_guest::{handler, Error, Job};

#[derive(Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    subject: Option<String>,
}

#[derive(Serialize)]
struct Message {
    to: String,
    subject: String,
    text: String,
}

#[derive(Serialize)]
struct Sent {
    to: String,
    /// The API's HTTP status, or `None` for a dry run.
    status: Option<u16>,
}

#[handler]
fn send(job: Job) -> Result<Sent, Error> {
    let mail: Email = job.json()?;
    check_address(&mail.email).map_err(Error::fail)?;
    let message = render(&mail);
    let Ok(api) = std::env::var("MAIL_API_URL") else {
        sque_guest::info!(
            "dry run (no MAIL_API_URL): would send {:?} to {}",
            message.subject,
            message.to
        );
        return Ok(Sent {
            to: message.to,
            status: None,
        });
    };
    let body = serde_json::to_vec(&message).map_err(Error::fail)?;
    let status = http::post_json(&api, &body)?;
    match status {
        200..=299 => {
            sque_guest::info!("sent to {} (HTTP {status})", message.to);
            Ok(Sent {
                to: message.to,
                status: Some(status),
            })
        }
        500..=599 | 429 => Err(Error::retry(format!("mail API answered HTTP {status}"))),
        _ => Err(Error::fail(format!(
            "mail API refused the message: HTTP {status}"
        ))),
    }
}

fn check_address(address: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid email address {address:?}: {why}"));
    if address.len() > 254 {
        return bad("longer than 254 characters");
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return bad("no @");
    };
    if local.is_empty() || local.contains('@') {
        return bad("the part before @ is empty or has another @");
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return bad("the domain needs a dot, and not at either end");
    }
    Ok(())
}

fn render(mail: &Email) -> Message {
    let name = mail.name.as_deref().unwrap_or("there");
    Message {
        to: mail.email.clone(),
        subject: mail
            .subject
            .clone()
            .unwrap_or_else(|| "Hello from sque".into()),
        text: format!("Hi {name},\n\nthis message was sent by a sque job handler.\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::check_address;

    #[test]
    fn addresses() {
        assert!(check_address("test1@mail.org").is_ok());
        for bad in [
            "",
            "no-at",
            "@mail.org",
            "a@b",
            "a@.org",
            "a b@mail.org",
            "a@mail.org.",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }
}
