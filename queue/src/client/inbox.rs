//! The inbox reader duty of a client: takes the jobs a dispatcher (or a push) put in this
//! worker's inbox and hands them to the worker to route. It pops them itself, with a blocking
//! pop on a connection of its own, or, where roles share a connection set on one server,
//! receives them from the pop that every worker of the set shares (`backend/inboxes.rs`).
//! Jobs handed out the moment they are asked for come back in the exchange's reply instead.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::{answered_in_time, inbox_pop, Conn, InboxRoute, Popped, INBOX_POP_WAIT_SECS};
use crate::backoff::Backoff;
use crate::client::worker::Worker;
use crate::queue::Inbox;
use crate::tasks::sleep_unless;

pub(super) fn start(worker: &Arc<Worker>, inbox: Inbox) {
    let worker = worker.clone();
    let tasks = worker.tasks.clone();
    match inbox {
        Inbox::Own(con) => tasks.spawn("inbox", move |stop| pop(worker, con, stop)),
        Inbox::Shared(route) => tasks.spawn("inbox", move |stop| relay(worker, route, stop)),
    }
}

/// Hands on what the shared pop took from this worker's inbox. Once stopped, it takes the
/// inbox out of the pops to come and routes what the pop on its way takes for it, as `pop`
/// routes what its own pop on its way takes: with no request open any more, those jobs go
/// back to the head of the queue at once.
async fn relay(worker: Arc<Worker>, mut route: InboxRoute, stop: CancellationToken) {
    // Made once, and polled only when nothing was taken: a wait made anew at each turn
    // registered and unregistered itself (locks) at every pop. What arrives after the stop
    // is routed below anyway.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            taken = route.recv() => match taken {
                Some(Popped::Entries(entries)) => worker.accept(entries),
                Some(Popped::MaybeLost) => worker.pop_may_be_lost(),
                None => return,
            },
            _ = &mut stopped => break,
        }
    }
    route.leave();
    while let Some(popped) = route.recv().await {
        if let Popped::Entries(entries) = popped {
            worker.accept(entries);
        }
    }
}

/// Pops this worker's inbox on a connection of its own.
async fn pop(worker: Arc<Worker>, con: Conn, stop: CancellationToken) {
    let inbox = worker.queue.keys.inbox(&worker.id);
    let queue = worker.queue.keys.queue.clone();
    let mut con = Some(con);
    let mut backoff = Backoff::new();
    // The pop is never cancelled half-way (a popped entry would be lost until its lease ran
    // out): cancellation is looked at between pops.
    while !stop.is_cancelled() {
        let Some(c) = con.as_mut() else {
            match worker.queue.blocking_connection().await {
                Ok(c) => {
                    tracing::info!(%queue, "inbox reader reconnected to Redis");
                    con = Some(c);
                    backoff.reset();
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(%queue, "inbox reader cannot reach Redis: {e}; retrying in {wait:?}");
                    sleep_unless(&stop, wait).await;
                }
            }
            continue;
        };
        let popped: redis::RedisResult<Option<(String, Vec<Vec<u8>>)>> = answered_in_time(
            INBOX_POP_WAIT_SECS,
            inbox_pop(&[&inbox], INBOX_POP_WAIT_SECS).query_async(c),
        )
        .await;
        match popped {
            Ok(Some((_, entries))) => worker.accept(entries),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%queue, "inbox reader lost Redis: {e}");
                // The pop may have taken deliveries whose answer never came.
                worker.pop_may_be_lost();
                con = None;
                sleep_unless(&stop, Duration::from_millis(50)).await;
            }
        }
    }
}
