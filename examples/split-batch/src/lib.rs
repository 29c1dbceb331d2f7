//! A pipeline's first step: each job is a batch, `{"queue": "emails", "items": [...]}`, and
//! the handler pushes every item to `queue` as a job of its own (a follow-up job). The
//! follow-ups are committed only when the batch job completes: a batch that fails half-way
//! pushes nothing, and a batch that is retried never pushes an item twice. A manager then
//! pushes each item to its queue exactly once, even on a Redis Cluster where the two queues
//! live on different nodes.
//!
//! ```sh
//! cargo build --release --target wasm32-wasip2 -p split-batch
//! sque-host run --queue batches --handler target/wasm32-wasip2/release/split_batch.wasm \
//!   --allow-push emails
//! sque-host push --queue batches '{"queue": "emails", "items": [{"email": "a@example.org"}, {"email": "b@example.org"}]}'
//! sque-host job show --queue batches 1     # lists the jobs it pushed to emails
//! ```
//!
//! A host pushes only to the queues `--allow-push` names (at most `--max-pushes-per-job`
//! items a batch, 1,000 by default); a batch for another queue fails for good.

use serde::Deserialize;
use serde_json::{json, Value};
use sque_guest::{handler, Error, Job};

#[derive(Deserialize)]
struct Batch {
    queue: String,
    items: Vec<Value>,
}

#[handler]
fn split_batch(job: Job) -> Result<Value, Error> {
    let batch: Batch = job.json()?;
    if batch.items.is_empty() {
        return Err(Error::fail("the batch has no items"));
    }
    for (i, item) in batch.items.iter().enumerate() {
        sque_guest::push(&batch.queue, item)?;
        sque_guest::progress((100 * (i + 1) / batch.items.len()) as u8, "split");
    }
    Ok(json!({ "split": batch.items.len(), "to": batch.queue }))
}
