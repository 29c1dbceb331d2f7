//! {name}: a sque job handler. Each job of the demo's `emails` queue is
//! `{"email": "..."}`; this one logs it and returns a result.

use serde::Deserialize;
use serde_json::{json, Value};
use sque_guest::{handler, Error, Job};

#[derive(Deserialize)]
struct Email {
    email: String,
}

#[handler]
fn handle(job: Job) -> Result<Value, Error> {
    let mail: Email = job.json()?; // not JSON or no "email": the dead list
    if !mail.email.contains('@') {
        return Err(Error::fail(format!("not an address: {}", mail.email)));
    }
    sque_guest::info!("handling {} (attempt {})", mail.email, job.attempt);
    Ok(json!({ "handled": mail.email }))
}
