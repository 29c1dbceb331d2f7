//! The mover duty: pushes the follow-up jobs of completed jobs to their queues (which may live
//! on other Cluster nodes), each exactly once, by `children.lua` and `push_unique.lua`.
//!
//! A completion commits its job's follow-ups in the job's own queue (`exchange.lua`) and
//! publishes `children`, which the dispatch duty passes on here. The mover takes a few
//! parents at a time, claiming each for [`CLAIM`], pushes their follow-ups, one call per run
//! of follow-ups to the same queue, records what became of each run in the parent's queue
//! (which renews the claim) and ends the parent. Every manager runs one. A parent taken
//! again (its mover died, or was slower than its claim) is moved on from its first follow-up
//! not recorded; a run its first mover pushed but did not record is pushed again under the
//! same unique keys, named for the parent and index (or the follow-up's own), so that push
//! writes nothing and answers the first one's ids.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::follow_up::{Child, ORIGIN_KEY_PREFIX};
use crate::options::Options;
use crate::producer::{EncodedJob, JobOptions, Producer};
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
/// Follow-ups pushed between two records of a parent's progress (each record renews its
/// claim).
const RECORD_EVERY: usize = 1000;
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

/// Pushes one parent's follow-ups, from the first not recorded, recording each run as it
/// goes, and ends the parent. Fails only when Redis does: the parent is taken again once its
/// claim runs out.
async fn move_parent(queue: &Queue, targets: &mut Targets, parent: Parent) -> Result<()> {
    let mut recorded = parent.recorded;
    let Some(children) = parent.children else {
        let why =
            "its follow-ups are not in the protocol's shape (written past sque?): none was pushed";
        tracing::warn!(queue = %queue.keys.queue, job = %parent.id, "{why}");
        let entry = Child::failed(&queue.keys.queue, why);
        if scripts::children::record(queue, &parent.id, CLAIM, recorded, &[entry]).await? {
            scripts::children::done(queue, &parent.id, recorded + 1).await?;
        }
        return Ok(());
    };
    let runs = children
        .chunk_by(|a, b| a.queue == b.queue)
        .flat_map(|run| run.chunks(RECORD_EVERY));
    for run in runs {
        let entries = push_run(queue, targets, &parent.id, recorded, run).await?;
        if !scripts::children::record(queue, &parent.id, CLAIM, recorded, &entries).await? {
            // Another mover took the parent over (this one was slower than its claim).
            return Ok(());
        }
        recorded += entries.len();
    }
    scripts::children::done(queue, &parent.id, recorded).await?;
    tracing::debug!(queue = %queue.keys.queue, job = %parent.id, "pushed its {recorded} follow-up job(s)");
    Ok(())
}

/// Pushes a run of follow-ups to one queue, the first being follow-up `first_index` of
/// `parent`, in one call; when the queue refuses the call (one of them too large for it, say),
/// one by one, so that only what it refuses fails. Returns what became of each, as
/// `children_of` keeps it; fails only when Redis does.
async fn push_run(
    queue: &Queue,
    targets: &mut Targets,
    parent: &str,
    first_index: usize,
    run: &[Staged],
) -> Result<Vec<String>> {
    let producer = match targets.get(&run[0].queue).await {
        Ok(producer) => producer,
        Err(e) if is_transient(&e) => return Err(e),
        Err(e) => return Ok(run.iter().map(|c| refused(queue, parent, c, &e)).collect()),
    };
    let encoded: Vec<Result<EncodedJob>> = run
        .iter()
        .enumerate()
        .map(|(i, child)| {
            options(&queue.keys.queue, parent, first_index + i, child)
                .and_then(|o| EncodedJob::checked_by_script(child.json.clone(), &o))
        })
        .collect();
    let pushable: Vec<EncodedJob> = encoded
        .iter()
        .filter_map(|e| e.as_ref().ok().cloned())
        .collect();
    let mut ids = match producer.push_encoded(&pushable).await {
        Ok(ids) => ids.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) if is_transient(&e) => return Err(e),
        Err(e) if pushable.len() == 1 => vec![Err(e)],
        Err(_) => {
            let mut one_by_one = Vec::with_capacity(pushable.len());
            for job in &pushable {
                match producer.push_encoded(std::slice::from_ref(job)).await {
                    Ok(mut id) => one_by_one.push(Ok(id.remove(0))),
                    Err(e) if is_transient(&e) => return Err(e),
                    Err(e) => one_by_one.push(Err(e)),
                }
            }
            one_by_one
        }
    }
    .into_iter();
    Ok(run
        .iter()
        .zip(encoded)
        .map(|(child, encoded)| {
            match encoded.and_then(|_| ids.next().expect("one answer a job pushed")) {
                Ok(id) => Child::pushed(&child.queue, &id),
                Err(e) => refused(queue, parent, child, &e),
            }
        })
        .collect())
}

/// How follow-up `index` of `parent` is pushed: under its own unique key, or under one named
/// for its origin and held for [`ORIGIN_WINDOW`] after it completes.
fn options(queue: &str, parent: &str, index: usize, child: &Staged) -> Result<JobOptions> {
    let (unique_key, unique_for) = match child.unique_key.as_str() {
        "" => (
            format!("{ORIGIN_KEY_PREFIX}{queue}:{parent}:{index}"),
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
