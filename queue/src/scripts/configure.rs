//! `configure.lua`: change a queue's settings.

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::Script;

use super::{invocation, script};
use crate::error::Result;
use crate::queue::Queue;
use crate::settings::SettingsChange;

pub(crate) static SCRIPT: LazyLock<Script> = script!("configure.lua");

/// Sets the settings given in `change`; returns the queue's meta after it.
pub(crate) async fn call(q: &Queue, change: &SettingsChange) -> Result<HashMap<String, String>> {
    let mut inv = invocation(&SCRIPT, &[&q.keys.meta]);
    for (field, value) in change.to_fields() {
        inv.arg(field).arg(value);
    }
    Ok(inv.invoke_async(&mut q.con.clone()).await?)
}
