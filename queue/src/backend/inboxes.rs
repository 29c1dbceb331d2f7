//! One blocking pop for the inboxes of every worker whose roles share a connection set
//! (`Options::share_connection`), on one server. A blocking pop holds its connection while it
//! waits, so a pop an inbox meant a connection an inbox: ten queues, ten. Here one task, the
//! popper, waits on all of them at once (`BLMPOP` names every inbox key) and passes each
//! entry it takes on to the worker whose inbox it came from.
//!
//! Fairness: `BLMPOP` takes from the first inbox of its list that has entries, so after each
//! pop that took from an inbox, that inbox goes to the end of the list: every other inbox
//! with entries is served before it is served again.
//!
//! Joining: a worker that joins while a pop waits is not in that pop's list. The pop would
//! end by its own timeout (`POP_WAIT_SECS`), but a job for the new worker should not wait
//! that long, so the joiner ends the pop early (`CLIENT UNBLOCK … TIMEOUT`, which answers it
//! as a timeout: nothing taken is lost) and the next pop names the new inbox. Where the server
//! refuses `CLIENT UNBLOCK` (an ACL), the timeout does it.
//!
//! Leaving: a worker that leaves takes its inbox out of the list, then still receives what
//! the pop on its way takes for it (each pop keeps its own copy of the routes it names) until
//! that pop is over, as a worker popping alone finishes its pop on its way: so it can give
//! those jobs back at once, before `leave.lua` runs. Only a worker dropped without draining
//! its route (its runtime gone) loses them to their leases, which run out and bring the jobs
//! back. The popper ends once no worker is left, and the next to join starts it again.
//!
//! One inbox Redis cannot pop (a key of another type, written past sque) would fail every
//! pop: it is set aside, logged, and looked at again later, so that the others go on.
//!
//! On a Cluster (inboxes live in their queues' slots, and one command may not span slots) or
//! through Sentinel (a master that may move), each worker keeps a connection of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::{lock, plain, Conn};
use crate::backoff::Backoff;

/// How long one pop waits before the popper looks again at who is there. In unit tests, far
/// longer than a test waits: a test that passes shows that a join ended the pop on its way.
const POP_WAIT_SECS: f64 = if cfg!(test) {
    120.0
} else {
    INBOX_POP_WAIT_SECS
};
/// How long one inbox pop waits before its loop looks again (at a cancellation, at who is
/// there).
pub(crate) const INBOX_POP_WAIT_SECS: f64 = 1.0;
/// How long past its own wait a blocking pop may go unanswered before the reader gives it up
/// as lost (and takes a new connection). A pop's connection has no response timeout, since
/// the pop itself waits; a Redis that keeps the connection and answers nothing (stopped,
/// swapped out) would otherwise hold the reader, and the shutdown of a host behind it, for as
/// long as it lasts.
const POP_ANSWER_GRACE: Duration = Duration::from_secs(5);

/// `pop`, given up with a timeout error if it is not answered within its wait and
/// [`POP_ANSWER_GRACE`]. What it took, if anything, is then treated as a pop whose answer was
/// lost (`Popped::MaybeLost`), as for a connection that dropped.
pub(crate) async fn answered_in_time<T>(
    wait_secs: f64,
    pop: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    let deadline = Duration::from_secs_f64(wait_secs) + POP_ANSWER_GRACE;
    match tokio::time::timeout(deadline, pop).await {
        Ok(answer) => answer,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("Redis did not answer a blocking pop in {deadline:?}"),
        ))),
    }
}
/// Entries taken per pop (all from one inbox).
const POP_COUNT: usize = 128;

/// A pop of up to `POP_COUNT` entries from the first of `inboxes` that has any, waiting up to
/// `wait_secs` for one to have some (`BLMPOP`): the answer is the inbox's key and its entries,
/// or nil.
pub(crate) fn inbox_pop(inboxes: &[&str], wait_secs: f64) -> redis::Cmd {
    let mut pop = redis::cmd("BLMPOP");
    pop.arg(wait_secs)
        .arg(inboxes.len())
        .arg(inboxes)
        .arg("LEFT")
        .arg("COUNT")
        .arg(POP_COUNT);
    pop
}
/// How many times a worker that joins tries to end the pop on its way, one millisecond apart:
/// the pop may not have reached Redis yet when the first try does.
const UNBLOCK_TRIES: u32 = 100;
/// How long an inbox Redis cannot pop is left out of the pops.
const SET_ASIDE: Duration = Duration::from_secs(30);

/// Entries popped from one inbox, for its worker.
pub(crate) type Entries = Vec<Vec<u8>>;

/// What the popper hands a worker's route.
pub(crate) enum Popped {
    /// Entries taken from its inbox.
    Entries(Entries),
    /// A pop that named its inbox failed on its way back (the connection dropped or timed
    /// out): Redis may have taken entries whose answer never came. Their leases run out and
    /// the reaper brings their jobs back, but the requests they answered are gone from
    /// `requests`, so the worker stores its open requests again (`renew`).
    MaybeLost,
}

#[derive(Default)]
pub(crate) struct Inboxes {
    state: Arc<Mutex<State>>,
}

/// Where one inbox's entries go.
#[derive(Clone)]
struct Route {
    /// Tells the routes apart (a worker's key is its own, but a route is what leaves).
    id: u64,
    key: String,
    to: UnboundedSender<Popped>,
}

#[derive(Default)]
struct State {
    /// Each inbox's route, in the order the next pop names them.
    routes: Vec<Route>,
    /// Counts joins: a pop that names every inbox has seen the joins up to its count.
    joins: u64,
    /// The popper, while it runs.
    popper: Option<Popper>,
    /// Inboxes Redis could not pop, left out until then.
    set_aside: HashMap<String, Instant>,
}

#[derive(Default)]
struct Popper {
    /// Its connection's `CLIENT ID`, while it has one.
    client_id: Option<i64>,
    /// The count of joins its pop on its way has seen.
    seen: u64,
}

/// A worker's share of the popper: its inbox's entries.
pub(crate) struct InboxRoute {
    id: u64,
    entries: UnboundedReceiver<Popped>,
    state: Arc<Mutex<State>>,
}

impl InboxRoute {
    /// What the next pop took from the inbox, or that it may have been lost; `None` once the
    /// route has left and the pop on its way when it left is over.
    pub async fn recv(&mut self) -> Option<Popped> {
        self.entries.recv().await
    }

    /// Takes the inbox out of the pops to come; what the pop on its way takes for it is still
    /// received.
    pub fn leave(&mut self) {
        lock(&self.state).routes.retain(|r| r.id != self.id);
    }
}

impl Drop for InboxRoute {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Inboxes {
    /// Routes the entries of the inbox `key` (on `client`'s server) to the route returned,
    /// starting the popper if it is not running. `commands` is where the pop on its way is
    /// ended.
    pub(crate) fn join(&self, client: &redis::Client, commands: &Conn, key: String) -> InboxRoute {
        let (to, entries) = unbounded_channel();
        let mut state = lock(&self.state);
        state.joins += 1;
        let id = state.joins;
        state.routes.push(Route { id, key, to });
        match state.popper {
            None => start(&self.state, &mut state, client),
            Some(_) => {
                tokio::spawn(unblock(self.state.clone(), commands.clone(), id));
            }
        }
        InboxRoute {
            id,
            entries,
            state: self.state.clone(),
        }
    }
}

fn start(shared: &Arc<Mutex<State>>, state: &mut State, client: &redis::Client) {
    state.popper = Some(Popper::default());
    let running = Running {
        state: shared.clone(),
        client: client.clone(),
    };
    tokio::spawn(pop(running));
}

/// Held by the popper while it runs: if it ends other than by finding no worker left (a bug
/// made it panic), it is started again, a moment later, for the workers still there.
struct Running {
    state: Arc<Mutex<State>>,
    client: redis::Client,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return; // ended as planned, or its runtime is going
        }
        tracing::error!("the inboxes' reader panicked (a bug in sque); starting it again");
        let (state, client) = (self.state.clone(), self.client.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            lock(&state).popper = None;
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut locked = lock(&state);
            locked.popper = None;
            if !locked.routes.is_empty() {
                start(&state, &mut locked, &client);
            }
        });
    }
}

/// The popper: pops from every inbox with a route until none is left.
async fn pop(running: Running) {
    let state = &running.state;
    let mut con: Option<MultiplexedConnection> = None;
    let mut backoff = Backoff::new();
    loop {
        let Some(c) = con.as_mut() else {
            if no_one_left(&mut lock(state)) {
                return;
            }
            match connect(&running.client).await {
                Ok((c, id)) => {
                    set_client_id(state, id);
                    con = Some(c);
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    tracing::warn!(
                        "the inboxes' reader cannot reach Redis: {e}; retrying in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
            continue;
        };
        let Some(routes) = next_pop(&mut lock(state), Instant::now()) else {
            return;
        };
        if routes.is_empty() {
            // Every inbox set aside: look again later.
            tokio::time::sleep(Duration::from_secs_f64(POP_WAIT_SECS.min(1.0))).await;
            continue;
        }
        let keys: Vec<&str> = routes.iter().map(|r| r.key.as_str()).collect();
        let popped: redis::RedisResult<Option<(String, Entries)>> = answered_in_time(
            POP_WAIT_SECS,
            inbox_pop(&keys, POP_WAIT_SECS).query_async(c),
        )
        .await;
        match popped {
            Ok(Some((key, entries))) => {
                backoff.reset();
                served(&mut lock(state), &key);
                deliver(&routes, &key, entries);
            }
            Ok(None) => backoff.reset(),
            Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() => {
                tracing::warn!("the inboxes' reader lost Redis: {e}");
                for route in &routes {
                    let _ = route.to.send(Popped::MaybeLost);
                }
                con = None;
                set_client_id(state, None);
                tokio::time::sleep(backoff.next_wait()).await;
            }
            Err(e) => {
                // Redis refused the pop: find the inboxes it cannot pop and set them aside.
                tracing::warn!("Redis refused the inboxes' pop: {e}");
                set_aside_unpoppable(state, c, &keys, &e).await;
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
    }
}

/// Whether no worker is left; if so, the popper is gone (under the lock that joins take).
fn no_one_left(state: &mut State) -> bool {
    if state.routes.is_empty() {
        state.popper = None;
    }
    state.popper.is_none()
}

/// The routes the next pop names (a copy, which the pop keeps until it is over), in the
/// list's order, but for inboxes set aside; `None` (and the popper gone) once no worker is
/// left.
fn next_pop(state: &mut State, now: Instant) -> Option<Vec<Route>> {
    if no_one_left(state) {
        return None;
    }
    state.set_aside.retain(|_, until| *until > now);
    let joins = state.joins;
    state.popper.as_mut().expect("the popper runs").seen = joins;
    Some(
        state
            .routes
            .iter()
            .filter(|r| !state.set_aside.contains_key(&r.key))
            .cloned()
            .collect(),
    )
}

/// After a pop took from `key`: that inbox goes to the end of the list.
fn served(state: &mut State, key: &str) {
    if let Some(at) = state.routes.iter().position(|r| r.key == key) {
        state.routes[at..].rotate_left(1);
    }
}

/// Passes `entries` on to the route of `key` among those the pop named.
fn deliver(routes: &[Route], key: &str, entries: Entries) {
    let sent = routes
        .iter()
        .find(|r| r.key == key)
        .map(|r| r.to.send(Popped::Entries(entries)));
    if !matches!(sent, Some(Ok(()))) {
        // Its worker was dropped without draining its route: the leases run out, and the
        // reaper brings the jobs back.
        tracing::warn!(
            inbox = key,
            "entries taken for a worker that is gone; their leases will run out"
        );
    }
}

/// Asks Redis the type of each key the pop named, and sets aside those it cannot pop.
async fn set_aside_unpoppable(
    state: &Mutex<State>,
    con: &mut MultiplexedConnection,
    keys: &[&str],
    error: &redis::RedisError,
) {
    let mut types = redis::pipe();
    for key in keys {
        types.cmd("TYPE").arg(*key);
    }
    let types: Vec<String> = match types.query_async(con).await {
        Ok(types) => types,
        Err(e) => {
            tracing::warn!("Redis refused the inboxes' pop ({error}), and telling why failed: {e}");
            return;
        }
    };
    let until = Instant::now() + SET_ASIDE;
    let mut state = lock(state);
    for (key, kind) in keys.iter().zip(types) {
        if kind != "list" && kind != "none" {
            tracing::error!(inbox = key, "an inbox is a Redis {kind}, not a list (written past sque?): set aside for {SET_ASIDE:?}; its worker's jobs come back when their leases run out");
            state.set_aside.insert(key.to_string(), until);
        }
    }
}

/// A connection of its own for the popper (no response timeout: a pop waits as long as it
/// was told to), and its id for `CLIENT UNBLOCK`, unless the ACL denies `CLIENT ID`.
async fn connect(
    client: &redis::Client,
) -> crate::error::Result<(MultiplexedConnection, Option<i64>)> {
    let mut con = plain(client, None).await?;
    let id: redis::RedisResult<i64> = redis::cmd("CLIENT").arg("ID").query_async(&mut con).await;
    if let Err(e) = &id {
        tracing::debug!("CLIENT ID refused ({e}): an inbox that joins is read once the pop on its way times out");
    }
    Ok((con, id.ok()))
}

fn set_client_id(state: &Mutex<State>, id: Option<i64>) {
    if let Some(popper) = lock(state).popper.as_mut() {
        popper.client_id = id;
    }
}

/// Ends the pop on its way if it has not seen join number `join`, so that the next names
/// the new inbox.
async fn unblock(state: Arc<Mutex<State>>, mut commands: Conn, join: u64) {
    for _ in 0..UNBLOCK_TRIES {
        let client_id = match &lock(&state).popper {
            Some(popper) if popper.seen < join => popper.client_id,
            _ => return,
        };
        if let Some(id) = client_id {
            let ended: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg("UNBLOCK")
                .arg(id)
                .arg("TIMEOUT")
                .query_async(&mut commands)
                .await;
            match ended {
                Ok(1) => return,
                // Not blocked: its pop is on its way to Redis, or just answered.
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("CLIENT UNBLOCK refused ({e}): the new inbox is read once the pop on its way times out");
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use sque_testing::{eventually, query, RedisServer};

    use super::{next_pop, served, InboxRoute, Popper, Route, State};
    use crate::options::Options;
    use crate::queue::{Inbox, Queue};

    async fn route(queue: &Queue, worker: &str) -> InboxRoute {
        match queue.inbox(worker).await.unwrap() {
            Inbox::Shared(route) => route,
            Inbox::Own(_) => panic!("roles that share a connection share the inboxes' pop"),
        }
    }

    async fn recv(route: &mut InboxRoute) -> Option<Vec<String>> {
        let popped = tokio::time::timeout(Duration::from_secs(10), route.recv())
            .await
            .expect("an answer within 10 s (a pop waits 120 s in unit tests)")?;
        let super::Popped::Entries(entries) = popped else {
            panic!("a pop lost on its way back");
        };
        Some(
            entries
                .into_iter()
                .map(|e| String::from_utf8(e).unwrap())
                .collect(),
        )
    }

    async fn next(route: &mut InboxRoute) -> Vec<String> {
        recv(route).await.expect("the route is open")
    }

    /// The next thing the route hears is that a pop naming its inbox may have been lost.
    async fn told_of_a_lost_pop(route: &mut InboxRoute) {
        let popped = tokio::time::timeout(Duration::from_secs(10), route.recv())
            .await
            .expect("an answer within 10 s");
        assert!(matches!(popped, Some(super::Popped::MaybeLost)));
    }

    /// Connections blocked in a pop now, as `CLIENT LIST` shows them.
    fn blocked_pops(redis: &RedisServer) -> usize {
        let clients: String = query(redis, &["CLIENT", "LIST"]);
        clients
            .lines()
            .filter(|l| {
                l.contains("cmd=blmpop")
                    && l.split(' ')
                        .any(|f| f.starts_with("flags=") && f.contains('b'))
            })
            .count()
    }

    fn push(redis: &RedisServer, queue: &Queue, entries: &[&str]) {
        let key = queue.keys.inbox("1");
        let mut args = vec!["RPUSH", key.as_str()];
        args.extend(entries);
        let _: i64 = query(redis, &args);
    }

    #[tokio::test]
    async fn every_workers_inbox_is_read_by_one_pop_which_a_worker_joining_ends_at_once() {
        let redis = RedisServer::start();
        if sque_testing::on_cluster() {
            // One command may not name keys of several slots: a Cluster keeps a pop a worker.
            return;
        }
        let opts = Options::default().redis(redis.url()).share_connection();
        let a = Queue::open("a", opts.clone()).await.unwrap();
        let b = Queue::open("b", opts.clone()).await.unwrap();
        let c = Queue::open("c", opts).await.unwrap();
        let mut in_a = route(&a, "1").await;
        eventually("the pop to wait on a's inbox", || async {
            blocked_pops(&redis) == 1
        })
        .await;
        // b joins while the pop waits (120 s here): it must be ended for b to be heard.
        let mut in_b = route(&b, "1").await;
        push(&redis, &b, &["b1", "b2"]);
        assert_eq!(next(&mut in_b).await, ["b1", "b2"]);
        push(&redis, &a, &["a1"]);
        assert_eq!(next(&mut in_a).await, ["a1"]);
        eventually("one pop for both inboxes", || async {
            blocked_pops(&redis) == 1
        })
        .await;

        // Redis drops the pop's connection: each worker it named is told that what it took
        // may be lost (its requests are then stored again), and a new one reads on.
        let _: () = query(&redis, &["CLIENT", "KILL", "TYPE", "normal"]);
        told_of_a_lost_pop(&mut in_a).await;
        told_of_a_lost_pop(&mut in_b).await;
        push(&redis, &a, &["a2"]);
        assert_eq!(next(&mut in_a).await, ["a2"]);

        // b leaves while the pop on its way names its inbox: b still receives what that pop
        // takes for it, then nothing more; the pops after it name a alone.
        eventually("the pop to wait on both inboxes", || async {
            blocked_pops(&redis) == 1
        })
        .await;
        in_b.leave();
        push(&redis, &b, &["b3", "b4"]);
        assert_eq!(next(&mut in_b).await, ["b3", "b4"]);
        assert_eq!(
            recv(&mut in_b).await,
            None,
            "the route ends with the pop on its way"
        );
        push(&redis, &b, &["b5"]);
        push(&redis, &a, &["a3"]);
        assert_eq!(next(&mut in_a).await, ["a3"]);
        let left: Vec<String> = query(&redis, &["LRANGE", &b.keys.inbox("1"), "0", "-1"]);
        assert_eq!(left, ["b5"]);

        // An inbox Redis cannot pop (written past sque) is set aside; the others go on, also
        // once it comes first in the list (after a is served).
        let _: () = query(&redis, &["SET", &c.keys.inbox("1"), "not a list"]);
        let _in_c = route(&c, "1").await;
        for entry in ["a4", "a5", "a6"] {
            push(&redis, &a, &[entry]);
            assert_eq!(next(&mut in_a).await, [entry]);
        }
    }

    fn routes(
        keys: &[&str],
    ) -> (
        State,
        Vec<tokio::sync::mpsc::UnboundedReceiver<super::Popped>>,
    ) {
        let mut state = State::default();
        let mut receivers = Vec::new();
        for key in keys {
            let (to, entries) = tokio::sync::mpsc::unbounded_channel();
            state.joins += 1;
            state.routes.push(Route {
                id: state.joins,
                key: key.to_string(),
                to,
            });
            receivers.push(entries);
        }
        state.popper = Some(Popper::default());
        (state, receivers)
    }

    fn named(state: &mut State, now: Instant) -> Vec<String> {
        next_pop(state, now)
            .expect("routes left")
            .into_iter()
            .map(|r| r.key)
            .collect()
    }

    #[test]
    fn an_inbox_served_goes_to_the_end_so_that_every_other_with_entries_comes_first() {
        let (mut state, _receivers) = routes(&["a", "b", "c", "d"]);
        let now = Instant::now();
        assert_eq!(named(&mut state, now), ["a", "b", "c", "d"]);
        assert_eq!(state.popper.as_ref().unwrap().seen, 4);
        // Only a and b have entries: they take turns, whatever their places.
        served(&mut state, "a");
        assert_eq!(named(&mut state, now), ["b", "c", "d", "a"]);
        served(&mut state, "b");
        assert_eq!(named(&mut state, now), ["c", "d", "a", "b"]);
        served(&mut state, "a");
        assert_eq!(named(&mut state, now), ["c", "d", "b", "a"]);
        // An inbox set aside is left out until its time is up.
        state
            .set_aside
            .insert("d".into(), now + Duration::from_secs(30));
        assert_eq!(named(&mut state, now), ["c", "b", "a"]);
        assert_eq!(
            named(&mut state, now + Duration::from_secs(31)),
            ["c", "d", "b", "a"]
        );
        state.routes.clear();
        assert!(next_pop(&mut state, now).is_none());
        assert!(
            state.popper.is_none(),
            "the popper ends once no one is left"
        );
    }
}
