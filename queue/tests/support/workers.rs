//! Workers for the fault tests: clients in a loop that record each job's number and
//! complete it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sque::Client;

use super::{opts, RedisServer};

/// Runs each client in a loop: take a job, record its data (an integer), complete it.
pub fn start_workers(
    clients: Vec<Client>,
    handled: Arc<Mutex<Vec<i64>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    clients
        .into_iter()
        .map(|client| {
            let handled = handled.clone();
            tokio::spawn(async move {
                loop {
                    match client.i_am_free(None).await {
                        Ok(job) => {
                            handled.lock().unwrap().push(job.data.as_i64().unwrap());
                            // An ack lost to a fault is fine: the lease brings the job back.
                            let _ = client.complete(&job, None).await;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        })
        .collect()
}

/// `n` clients of `queue`.
pub async fn clients(redis: &RedisServer, queue: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Client::new(queue, opts(redis)).await.unwrap());
    }
    out
}
