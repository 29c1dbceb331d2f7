//! The mover duty: pushes the follow-up jobs of completed jobs to their queues (which may live
//! on other Cluster nodes), each exactly once, by `children.lua` and `push_unique.lua`.
//!
//! A completion commits its job's follow-ups in the job's own queue (`exchange.lua`) and
//! publishes `children`, which the dispatch duty passes on here. The mover takes a few
//! parents at a time, claiming each for [`CLAIM`], pushes their follow-ups, one call per run
//! of follow-ups to the same queue, and reports each parent done with what became of every
//! follow-up. Every manager runs one. Two movers may push the same parent's follow-ups (a
//! claim ran out while the first was still at it, or it died before reporting): each
//! follow-up is pushed under a unique key named for its parent and index (or under its own
//! key), so the second push writes nothing and answers the first one's id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::follow_up::Child;
use crate::job::JobId;
use crate::options::Options;
use crate::producer::{JobOptions, Producer};
use crate::queue::Queue;
use crate::scripts;
use crate::scripts::children::{Parent, Staged};
use crate::settings::SettingsChange;
use crate::tasks::Tasks;

/// Parents per `take`: each may have pushed thousands of follow-ups.
const BATCH: usize = 16;
/// How long a mover has a parent to itself before another may take it.
const CLAIM: Duration = Duration::from_secs(30);
/// The longest sleep between looks when no message comes: a `children` message lost while
/// the subscription reconnected costs at most this.
const IDLE: Duration = Duration::from_secs(5);
/// How long the key a follow-up is pushed under stays held after it completes, so that a
/// mover taking its parent again (the first died before reporting) pushes nothing.
const ORIGIN_WINDOW: Duration = Duration::from_secs(24 * 3600);

pub(super) fn start(tasks: &Tasks, queue: Queue, woken: Arc<Notify>) {
    tasks.spawn("mover", move |stop| run(queue, woken, stop));
}

async fn run(queue: Queue, woken: Arc<Notify>, stop: CancellationToken) {
    let mut targets = Targets::new(&queue.opts);
    let mut backoff = Backoff::new();
    loop {
        let step = move_all(&queue, &mut targets).await;
        let step = step.map(|next| next.map_or(IDLE, |d| d.min(IDLE)));
        let wait = super::wait_after(&queue, "moving follow-up jobs", &mut backoff, step);
        if !super::sleep_unless_woken(wait, &woken, &stop).await {
            return;
        }
    }
}

/// Moves every parent that may be taken; returns how long until the next one may be.
async fn move_all(queue: &Queue, targets: &mut Targets) -> Result<Option<Duration>> {
    loop {
        let (parents, next) = scripts::children::take(queue, BATCH, CLAIM).await?;
        let full = parents.len() == BATCH;
        for parent in parents {
            move_parent(queue, targets, parent).await?;
        }
        if !full {
            return Ok(next);
        }
    }
}

/// Pushes one parent's follow-ups and reports them. Fails only when Redis does: the parent is
/// taken again once its claim runs out.
async fn move_parent(queue: &Queue, targets: &mut Targets, parent: Parent) -> Result<()> {
    let mut entries = Vec::with_capacity(parent.children.len());
    let mut index = 0;
    for run in parent.children.chunk_by(|a, b| a.queue == b.queue) {
        let target = &run[0].queue;
        let pushed = match targets.get(target).await {
            Ok(producer) => push_run(queue, producer, &parent.id, index, run).await,
            Err(e) => Err(e),
        };
        match pushed {
            Ok(results) => {
                for (child, result) in run.iter().zip(results) {
                    entries.push(match result {
                        Ok(id) => Child::pushed(&child.queue, &id),
                        Err(e) => refused(queue, &parent.id, child, &e),
                    });
                }
            }
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => {
                for child in run {
                    entries.push(refused(queue, &parent.id, child, &e));
                }
            }
        }
        index += run.len();
    }
    scripts::children::done(queue, &parent.id, &entries).await?;
    tracing::debug!(queue = %queue.keys.queue, job = %parent.id, "pushed its {} follow-up job(s)", entries.len());
    Ok(())
}

/// Pushes a run of follow-ups to one queue in one call; each one encoded alone, so that one
/// that its queue refuses (too large for it) fails alone.
async fn push_run(
    queue: &Queue,
    producer: &Producer,
    parent: &str,
    first_index: usize,
    run: &[Staged],
) -> Result<Vec<Result<JobId>>> {
    let mut results: Vec<Result<JobId>> = Vec::with_capacity(run.len());
    let mut encoded = Vec::with_capacity(run.len());
    let mut slots = Vec::with_capacity(run.len());
    for (i, child) in run.iter().enumerate() {
        let options = options(&queue.keys.queue, parent, first_index + i, child);
        match options.and_then(|o| producer.encode_json(child.json.clone(), &o)) {
            Ok(job) => {
                slots.push(i);
                encoded.push(job);
                results.push(Ok(JobId::from("")));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if !encoded.is_empty() {
        let ids = producer.push_encoded(&encoded).await?;
        for (slot, id) in slots.into_iter().zip(ids) {
            results[slot] = Ok(id);
        }
    }
    Ok(results)
}

/// How follow-up `index` of `parent` is pushed: under its own unique key, or under one named
/// for its origin and held for [`ORIGIN_WINDOW`] after it completes.
fn options(queue: &str, parent: &str, index: usize, child: &Staged) -> Result<JobOptions> {
    let (unique_key, unique_for) = match child.unique_key.as_str() {
        "" => (
            format!("sque:follow-up:{queue}:{parent}:{index}"),
            ORIGIN_WINDOW,
        ),
        key => (key.to_string(), Duration::ZERO),
    };
    let delay = match child.due.strip_prefix('+') {
        Some(ms) => Some(Duration::from_millis(ms.parse().map_err(|_| {
            Error::Corrupt(format!("follow-up due {:?} is not +MS", child.due))
        })?)),
        None => None,
    };
    Ok(JobOptions {
        delay,
        unique_key: Some(unique_key),
        unique_for: Some(unique_for),
        ..Default::default()
    })
}

/// Logs a follow-up that cannot be pushed, and says why in its entry.
fn refused(queue: &Queue, parent: &str, child: &Staged, e: &Error) -> String {
    tracing::warn!(queue = %queue.keys.queue, job = %parent, target = %child.queue, "a follow-up job could not be pushed: {e}");
    Child::failed(&child.queue, &e.to_string())
}

/// Whether trying again later may go better: Redis was out of reach, or answered oddly.
fn is_transient(e: &Error) -> bool {
    matches!(
        e,
        Error::Unavailable(_) | Error::Redis(_) | Error::Refused(_)
    )
}

/// The queues follow-ups go to, opened once each (created as a producer creates them).
struct Targets {
    opts: Options,
    open: HashMap<String, Producer>,
}

impl Targets {
    fn new(opts: &Options) -> Targets {
        // The target queues keep their own settings; one made here gets the defaults.
        let mut opts = opts.clone();
        opts.settings = SettingsChange::default();
        Targets {
            opts,
            open: HashMap::new(),
        }
    }

    async fn get(&mut self, name: &str) -> Result<&Producer> {
        if !self.open.contains_key(name) {
            let producer = Producer::new(name, self.opts.clone()).await?;
            self.open.insert(name.to_string(), producer);
        }
        Ok(&self.open[name])
    }
}
