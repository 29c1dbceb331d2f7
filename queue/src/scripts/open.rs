//! `open.lua`: create the queue or join it; the first opener's settings are kept.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::backend::Conn;
use crate::error::Result;
use crate::keys::Keys;
use crate::settings::QueueSettings;

pub(crate) static SCRIPT: LazyLock<Script> = script!("open.lua");

/// Opens the queue with `settings` for a queue that does not exist yet; returns its meta.
pub(crate) async fn call(
    keys: &Keys,
    con: &mut Conn,
    settings: &QueueSettings,
) -> Result<HashMap<String, String>> {
    let mut inv = invocation(&SCRIPT, &[&keys.meta]);
    for (field, value) in settings.to_fields() {
        inv.arg(field).arg(value);
    }
    Ok(inv.invoke_async(con).await?)
}
