//! The inbox reader duty of a client: pops the jobs a manager (or a push) put in this
//! worker's inbox (a blocking pop on a connection of its own) and routes each to its request.
//! Jobs handed out the moment they are asked for come back in the exchange's reply instead.

use std::sync::Arc;
use std::time::Duration;

use crate::queue::backend::Conn;
use crate::queue::client::ClientInner;
use crate::queue::duty::{Backoff, Duty, Shutdown};

/// How long one blocking pop waits before the loop looks at the shutdown signal again.
const POP_WAIT_SECS: f64 = 1.0;
/// Entries taken per pop.
const POP_COUNT: usize = 128;

pub(crate) fn start(inner: Arc<ClientInner>, con: Conn) -> Duty {
    Duty::start("inbox", move |shutdown| run(inner, con, shutdown))
}

async fn run(inner: Arc<ClientInner>, con: Conn, mut shutdown: Shutdown) {
    let inbox = inner.queue.keys.inbox(&inner.worker);
    let mut con = Some(con);
    let mut backoff = Backoff::new();
    // The pop is never cancelled half-way (a popped entry would be lost until its lease ran
    // out): shutdown is looked at between pops.
    while !shutdown.is_set() {
        let Some(c) = con.as_mut() else {
            match inner.queue.blocking_connection().await {
                Ok(c) => {
                    tracing::info!(queue = %inner.queue.keys.queue, "inbox reader reconnected to Redis");
                    con = Some(c);
                    backoff.reset();
                }
                Err(e) => {
                    let wait = backoff.next();
                    tracing::warn!(queue = %inner.queue.keys.queue, "inbox reader cannot reach Redis: {e}; retrying in {wait:?}");
                    shutdown.sleep(wait).await;
                }
            }
            continue;
        };
        let popped: redis::RedisResult<Option<(String, Vec<String>)>> = redis::cmd("BLMPOP")
            .arg(POP_WAIT_SECS)
            .arg(1)
            .arg(&inbox)
            .arg("LEFT")
            .arg("COUNT")
            .arg(POP_COUNT)
            .query_async(c)
            .await;
        match popped {
            Ok(Some((_, entries))) => {
                for entry in entries {
                    inner.accept(&entry);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(queue = %inner.queue.keys.queue, "inbox reader lost Redis: {e}");
                con = None;
                shutdown.sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
