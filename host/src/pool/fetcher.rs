//! The fetcher: gives the pool's free credits to the lanes (one lane per queue) as
//! `share.rs` decides, keeps a request open for every credit a lane was given, and passes
//! jobs on to the slots in the order each lane's requests were made (the order its queue
//! serves them), so slots start jobs in queue order. A lane that goes idle with several
//! requests open keeps one and withdraws the rest, so that its credits go where there is
//! work; so does a lane whose queue ran dry, as soon as Redis's reply says so (the client
//! wakes the lane's news, `Client::watch_dry`). Resizes an adaptive prefetch as the rate of
//! finished jobs changes. When asking fails (Redis is away), the lane waits with the
//! library's backoff (jittered, so that many hosts do not come back at once) and holds the
//! credit meanwhile. Lanes come and go on reload.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::{AbortHandle, Abortable, Aborted};
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::task::{waker, waker_ref, ArcWake, AtomicWaker};
use sque::backoff::Backoff;
use sque::Job;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::pool::lane::{Credit, Lane, LaneShare};
use crate::pool::prefetch::{self, Prefetch};
use crate::pool::share::{Order, Shares, Turn, Want, IDLE_AFTER};
use crate::pool::{release, Ready, Shared};
use crate::sandbox::{JobInput, JobProgress};

/// A change to the lanes, made on reload.
pub enum Change {
    /// Serve this lane from now on.
    Add(Arc<Lane>, LaneShare),
    /// Stop asking for this queue's jobs; the ones held finish.
    Remove(String),
    /// Share the slots anew with this queue.
    Reshare(String, LaneShare),
    /// Serve the queues in this order, sharing the slots so (the config file read again).
    Arrange(Order, Vec<String>),
}

type Asked = (Result<Job, sque::Error>, Credit);

/// Ticks of [`prefetch::RETUNE_EVERY`] over which a lane's answers are counted (100 ms).
const RECENT_TICKS: usize = 4;
type Ask = Abortable<Pin<Box<dyn Future<Output = Asked> + Send>>>;

/// What the fetcher keeps of one lane.
struct LaneFetch {
    lane: Arc<Lane>,
    share: LaneShare,
    turn: Turn,
    /// Requests open, oldest first; dropping one withdraws it.
    asks: FuturesOrdered<Ask>,
    /// Whether `asks` may have an answer, or its queue ran dry: they are looked at only then
    /// ([`next_news`]).
    news: Arc<LaneNews>,
    /// Their abort handles, in the same order (withdrawn ones stay until they come out).
    aborts: VecDeque<AbortHandle>,
    open: usize,
    /// Answers in each of the last few ticks, newest first: how many requests its queue can
    /// answer in about [`RECENT_TICKS`] ticks.
    answered: [usize; RECENT_TICKS],
    /// When it last had news: an answer, or a first request after it had none open.
    last_news: Instant,
    /// When it was last answered.
    last_answer: Option<Instant>,
    /// The client's dry spells (`Client::dry_spells`) as of the last it acted on.
    dry_spells: u64,
    backoff: Backoff,
    /// After a failed request: until when the lane asks no more, and the credit it holds.
    paused: Option<(Instant, Credit)>,
}

impl LaneFetch {
    fn new(lane: Arc<Lane>, share: LaneShare, fetcher: &Arc<AtomicWaker>) -> LaneFetch {
        let news = Arc::new(LaneNews {
            woken: AtomicBool::new(true),
            fetcher: fetcher.clone(),
        });
        // Its queue running dry is news too (`next_news`).
        lane.client.watch_dry(waker(news.clone()));
        LaneFetch {
            dry_spells: lane.client.dry_spells(),
            lane,
            turn: Turn::new(share.weight),
            share,
            asks: FuturesOrdered::new(),
            news,
            aborts: VecDeque::new(),
            open: 0,
            answered: [0; RECENT_TICKS],
            last_news: Instant::now(),
            last_answer: None,
            backoff: Backoff::new(),
            paused: None,
        }
    }

    /// Whether this lane takes the next credit, if it is its turn (`share.rs`). A lane alone
    /// in the pool takes every credit, as a one-queue host always has.
    fn wants(&self, now: Instant, alone: bool) -> Want {
        if self.paused.is_some()
            || self
                .share
                .max_held
                .is_some_and(|max| self.lane.held() >= max)
        {
            Want::No
        } else if alone || self.open == 0 {
            Want::Yes
        } else if self.lane.client.is_dry() {
            // Its queue had no job for its last request: its requests wait in Redis, and a
            // job coming is news (an answer).
            Want::No
        } else if self.is_answered_within(now) {
            Want::Yes
        } else if !self.is_idle(now) {
            Want::Wait
        } else {
            Want::No
        }
    }

    /// Its requests have waited [`IDLE_AFTER`] with no news.
    fn is_idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_news) >= IDLE_AFTER
    }

    fn is_answered_within(&self, now: Instant) -> bool {
        self.last_answer
            .is_some_and(|at| now.saturating_duration_since(at) < IDLE_AFTER)
    }

    fn ask(&mut self, credit: Credit, track_time: bool) {
        let lane = self.lane.clone();
        let (handle, registration) = AbortHandle::new_pair();
        let ask: Pin<Box<dyn Future<Output = Asked> + Send>> =
            Box::pin(async move { (lane.client.i_am_free(None).await, credit) });
        self.asks.push_back(Abortable::new(ask, registration));
        // A request pushed is polled at the next turn (pushing wakes nobody).
        self.news.woken.store(true, Ordering::Relaxed);
        self.aborts.push_back(handle);
        if self.open == 0 && track_time {
            self.last_news = Instant::now();
        }
        self.open += 1;
    }

    fn answered_lately(&self) -> usize {
        self.answered.iter().sum()
    }

    /// Keeps its oldest `keep` requests (at least one) and withdraws the others.
    fn withdraw_all_but(&mut self, keep: usize) {
        let keep = keep.max(1);
        for handle in self.aborts.iter().rev() {
            if self.open <= keep {
                break;
            }
            if !handle.is_aborted() {
                handle.abort();
                self.open -= 1;
            }
        }
    }
}

pub(super) async fn run(
    shared: Arc<Shared>,
    lanes: Vec<(Arc<Lane>, LaneShare)>,
    credits: Arc<Semaphore>,
    mut prefetch: Prefetch,
    ready: mpsc::UnboundedSender<Ready>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    stop: CancellationToken,
) {
    // Woken by any lane's news (`LaneNews`).
    let fetcher = Arc::new(AtomicWaker::new());
    let mut lanes: Vec<LaneFetch> = lanes
        .into_iter()
        .map(|(lane, share)| LaneFetch::new(lane, share, &fetcher))
        .collect();
    let mut shares = Shares::new(shared.order);
    // Credits of lanes removed, taken out of the pool as they come free (`mod.rs`: a lane
    // beyond the first brings one, for its probe).
    let mut owed = 0;
    // Told when a credit of a lane at its most comes back, for a credit held while no lane
    // wants one.
    let returned = Arc::new(Notify::new());
    for l in &lanes {
        l.lane
            .tell_when_returned(&returned, l.share.max_held.is_some());
    }
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut tick = tokio::time::interval(prefetch::RETUNE_EVERY);
    let mut last_tick = Instant::now();
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Made once: a wait made anew at each turn (a turn a job) registered and unregistered
    // itself at every turn; polled first, as shutdown must be heard under load, it still takes
    // two locks a turn.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        // Dropping `lanes` on return withdraws the open requests; a job that reached one
        // meanwhile goes back to the head of the queue.
        tokio::select! {
            biased;
            _ = &mut stopped => return,
            _ = tick.tick() => {
                // Reloads are rare: looked for at each tick rather than at every turn of this
                // loop, where waiting on the channel cost a job hundreds of instructions.
                while let Ok(change) = changes.try_recv() {
                    match change {
                        Change::Add(lane, share) => {
                            let before = lanes.len();
                            lanes.retain(|l| l.lane.queue != lane.queue);
                            if lanes.len() == before && before > 0 {
                                credits.add_permits(1);
                            }
                            if let Some(m) = lane.metrics() {
                                m.prefetch.set(prefetch.current() as i64);
                            }
                            lane.tell_when_returned(&returned, share.max_held.is_some());
                            lanes.push(LaneFetch::new(lane, share, &fetcher));
                        }
                        Change::Remove(queue) => {
                            let before = lanes.len();
                            lanes.retain(|l| l.lane.queue != queue);
                            if lanes.len() < before && !lanes.is_empty() {
                                owed += 1;
                            }
                        }
                        Change::Reshare(queue, share) => {
                            if let Some(l) = lanes.iter_mut().find(|l| l.lane.queue == queue) {
                                l.lane.tell_when_returned(&returned, share.max_held.is_some());
                                l.turn.weight = share.weight.max(1);
                                l.share = share;
                            }
                        }
                        Change::Arrange(order, queues) => {
                            lanes.sort_by_key(|l| queues.iter().position(|q| *q == l.lane.queue));
                            if order != shares.order() {
                                shares = Shares::new(order);
                            }
                        }
                    }
                }
                if prefetch.is_adaptive() {
                    // The queues that share the work, by their answers of the last ticks.
                    let queues = prefetch::busy_queues(
                        lanes.iter().map(|l| l.answered.iter().sum::<usize>()),
                    );
                    prefetch.retune(shared.finished.load(Ordering::Relaxed), queues, &credits);
                    for m in lanes.iter().filter_map(|l| l.lane.metrics()) {
                        m.prefetch.set(prefetch.current() as i64);
                    }
                }
                last_tick = Instant::now();
                if owed > 0 {
                    owed -= credits.forget_permits(owed);
                }
                let now = Instant::now();
                for l in &mut lanes {
                    if l.paused.as_ref().is_some_and(|(until, _)| *until <= now) {
                        l.paused = None;
                    }
                }
                // Beside other lanes, an idle lane keeps only its probe, and a slow one no more
                // requests than its queue answered lately.
                if lanes.len() > 1 {
                    for l in &mut lanes {
                        if l.is_idle(now) {
                            l.withdraw_all_but(1);
                        } else if l.open > l.answered_lately() + 1 {
                            l.withdraw_all_but(l.answered_lately());
                        }
                    }
                }
                for l in &mut lanes {
                    l.answered.rotate_right(1);
                    l.answered[0] = 0;
                }
            }
            permit = credits.clone().acquire_owned(), if held.is_none() => {
                held = Some(permit.expect("never closed"));
            }
            _ = returned.notified(), if held.is_some() => {}
            // Falls through (no `continue`) to the credit held at the end of the turn: what
            // changed may let a lane take it.
            news = next_news(&mut lanes, &fetcher) => { 'news: {
                    let (i, asked) = match news {
                        News::Answer(i, asked) => (i, asked),
                        News::Dry(i) => {
                            // Beside other lanes, its credits go where there is work at once: its
                            // probe stays open to hear of the next job. Unless a job came
                            // meanwhile: then its requests are being served.
                            if lanes.len() > 1 && lanes[i].lane.client.is_dry() {
                                lanes[i].withdraw_all_but(1);
                            }
                            break 'news;
                        }
                    };
                    let alone = lanes.len() == 1;
                    let l = &mut lanes[i];
                    // A withdrawn request was counted off when it was withdrawn; one that had
                    // been answered just before still brings its job.
                    let withdrawn = l.aborts.pop_front().is_some_and(|h| h.is_aborted());
                    let Ok((asked, credit)) = asked else { break 'news };
                    if !withdrawn {
                        l.open -= 1;
                    }
                    match asked {
                        Ok(job) => {
                            l.backoff.reset();
                            l.answered[0] += 1;
                            // A lane alone needs no clock (`wants`): one read a job saved.
                            if !alone {
                                let now = Instant::now();
                                (l.last_answer, l.last_news) = (Some(now), now);
                            }
                            if let Some(m) = l.lane.metrics() {
                                m.held.inc();
                            }
                            let input = JobInput {
                                id: job.id.to_string(),
                                queue: job.queue.clone(),
                                attempt: job.attempt,
                                data: job.data.to_string(),
                                progress: Some(JobProgress {
                                    sink: l.lane.progress.clone(),
                                    token: job.lease_token().to_string(),
                                }),
                            };
                            let lane = l.lane.clone();
                            if let Err(mpsc::error::SendError(r)) = ready.send(Ready { lane, input, job, credit }) {
                                release(&r.lane, &r.job).await;
                                return;
                            }
                        }
                        Err(e) => {
                            let wait = l.backoff.next_wait();
                            tracing::warn!(queue = %l.lane.queue, "asking for a job failed: {e}; asking again in {wait:?}");
                            // The credit is held through the pause, so that no new request goes out.
                            l.paused = Some((Instant::now() + wait, credit));
                        }
                    }
            }}
        }
        if let Some(permit) = held.take() {
            let alone = lanes.len() == 1;
            let now = if alone { last_tick } else { Instant::now() };
            let queues = lanes.iter_mut().enumerate().map(|(i, l)| {
                let want = l.wants(now, alone);
                (i, &mut l.turn, want)
            });
            let chosen = match alone {
                // One lane: no turn to take.
                true => (lanes[0].wants(now, true) == Want::Yes).then_some(0),
                false => shares.choose(queues),
            };
            match chosen {
                Some(i) => {
                    let credit = Credit::new(permit, lanes[i].lane.clone());
                    lanes[i].ask(credit, !alone);
                }
                None => held = Some(permit),
            }
        }
    }
}

/// A lane's news flag: set by the waker its requests are polled with (and that its client
/// wakes when the queue runs dry), which then wakes the fetcher. With many lanes, a turn polls
/// only the lanes woken since it last looked, rather than every lane's requests at every
/// answer.
struct LaneNews {
    woken: AtomicBool,
    fetcher: Arc<AtomicWaker>,
}

impl ArcWake for LaneNews {
    fn wake_by_ref(news: &Arc<Self>) {
        news.woken.store(true, Ordering::Release);
        news.fetcher.wake();
    }
}

/// What a lane's news was.
enum News {
    /// An answer to one of its requests.
    Answer(usize, Result<Asked, Aborted>),
    /// Its queue ran dry since the fetcher last looked.
    Dry(usize),
}

/// The next news of any lane woken, and whose.
fn next_news<'a>(
    lanes: &'a mut [LaneFetch],
    fetcher: &'a AtomicWaker,
) -> impl Future<Output = News> + 'a {
    poll_fn(move |cx| {
        // Registered before the flags are read: news after this wakes this task again.
        fetcher.register(cx.waker());
        for (i, l) in lanes.iter_mut().enumerate() {
            if !l.news.woken.swap(false, Ordering::Acquire) {
                continue;
            }
            let waker = waker_ref(&l.news);
            match l.asks.poll_next_unpin(&mut Context::from_waker(&waker)) {
                Poll::Ready(Some(asked)) => {
                    // More may be ready behind it.
                    l.news.woken.store(true, Ordering::Relaxed);
                    return Poll::Ready(News::Answer(i, asked));
                }
                // Its requests hold the lane's waker, or it has none left: the next one
                // pushed sets the flag.
                Poll::Ready(None) | Poll::Pending => {}
            }
            let spells = l.lane.client.dry_spells();
            if spells != l.dry_spells {
                l.dry_spells = spells;
                return Poll::Ready(News::Dry(i));
            }
        }
        Poll::Pending
    })
}
