//! The inspector role: looks into a queue (counts, a job by id, results of completed jobs,
//! the dead list) and never writes to Redis. Opening one creates nothing: a queue that does
//! not exist is an error, so `sque-host stats --queue typo` changes nothing, and an ACL user
//! with read-only rights can use it (`docs/PROTOCOL.md`).
//!
//! What it reads may have been written by anyone: entries that are not in the protocol's
//! shape (poison data, a token that does not parse, a counter that is not a number) are shown
//! as what they are, with what is wrong, and never hide the rest.

use std::collections::HashMap;

use redis::AsyncCommands as _;
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::follow_up::Child;
use crate::job::JobId;
use crate::options::Options;
use crate::queue::Queue;
use crate::schedules::{Schedule, ScheduleInfo};
use crate::settings::QueueSettings;
use crate::wire::{describe_json_error, LastError, Token};

/// Bytes read back as they are (data nobody here wrote need not be UTF-8).
type Raw = Vec<u8>;

/// The most of a dead job's data shown when it is not JSON.
const SHOWN_RAW: usize = 4096;

/// Reads one queue.
#[derive(Clone)]
pub struct Inspector {
    queue: Queue,
}

/// A snapshot of one queue.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: String,
    /// Jobs waiting to be dispatched.
    pub waiting: u64,
    /// Jobs dispatched and not yet completed or failed (leased).
    pub in_flight: u64,
    /// Jobs waiting out a retry backoff.
    pub delayed: u64,
    /// Jobs pushed with a delay or a time, not yet due.
    pub scheduled: u64,
    /// Whether the queue is paused (`Admin::pause`): nothing is handed out.
    pub paused: bool,
    /// Jobs in the dead list.
    pub dead: u64,
    /// Workers whose heartbeat is current.
    pub workers: u64,
    /// Open "I am free" requests.
    pub requests: u64,
    /// Completed jobs whose results are kept.
    pub results: u64,
    /// Counters since the queue was created.
    pub pushed: u64,
    pub dispatched: u64,
    pub completed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub expired: u64,
    /// Jobs whose data could not be delivered (dead at once).
    pub poisoned: u64,
    /// Dead jobs dropped to keep the dead list within its bounds.
    pub dead_dropped: u64,
    /// Jobs cancelled (`Admin::cancel`).
    pub cancelled: u64,
    /// How long ago the job at the head of the queue (the next to go; with priorities, the
    /// oldest of the heads of every priority) was pushed, in ms on Redis's clock (a scheduled
    /// job: since it was due); `None` when none waits, and when it is not known: the head
    /// came back to the queue (its lease expired, its backoff ended, it was released or
    /// retried from the dead list) or was promoted after the record of its push was dropped,
    /// or was pushed by a producer before protocol 1.2.
    pub oldest_waiting_age_ms: Option<u64>,
}

/// The most workers read to tell the holders of jobs in flight.
const MAX_WORKERS_READ: usize = 1000;

/// A job in flight, and how far it has come.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunningJob {
    pub id: JobId,
    pub attempt: u32,
    /// When its lease runs out unless renewed, in ms since the epoch on Redis's clock.
    pub lease_until: u64,
    /// Its latest progress report, if it made one: `{"percent", "note", "at"}`.
    pub progress: Option<Value>,
    /// The worker that held it at that worker's last renewal, if one did.
    pub holder: Option<String>,
    /// When that worker took it (its lease began), in ms since the epoch on Redis's clock,
    /// as its renewals say; `None` before the first.
    pub started: Option<u64>,
}

/// A worker of the queue (a host's slots, a library client), alive by its heartbeat.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkerInfo {
    pub id: String,
    /// When its heartbeat runs out unless renewed, in ms since the epoch on Redis's clock.
    pub heartbeat_until: u64,
    /// The machine it runs on, its process id and when it started (ms), as it said when it
    /// joined (`None` for a worker of a version that does not say).
    pub host: Option<String>,
    pub pid: Option<u64>,
    pub started: Option<u64>,
    /// The jobs it held at its last renewal.
    pub holds: Vec<JobId>,
}

/// A job in the dead list.
#[derive(Clone, Debug, Serialize)]
pub struct DeadJob {
    /// The job's id; for an entry that is not a lease token, the entry itself.
    pub id: JobId,
    /// The job's data (`null` when it is gone); data that is not JSON is shown as a string
    /// of its first 4 KiB, and `problem` says so.
    pub data: Value,
    /// The attempts it had made.
    pub attempts: u32,
    /// The last error's message.
    pub error: Option<String>,
    /// How its last attempt ended (`poison`, `lease_expired`, `trap`, ...).
    pub code: Option<String>,
    /// When it died, in ms since the epoch (Redis's clock).
    pub died_at: Option<u64>,
    /// Its data was cut to 4 KiB (poison keeps no more).
    pub cut: bool,
    /// What is wrong with the entry itself, when it is not in the protocol's shape.
    pub problem: Option<String>,
}

/// What [`Inspector::stats`] reads for the oldest waiting job's age: the head item of
/// `waiting`, the two oldest push records (with their scores) and Redis's clock.
type HeadReading = (Vec<String>, Vec<(String, f64)>, (u64, u64));

/// The head of one priority's list (none, or its item), that priority's two oldest push
/// records, and the key of its records.
struct LevelHead {
    head: Vec<String>,
    oldest: Vec<(String, f64)>,
    records: String,
}

/// A page of the dead list ([`Inspector::dead_page`]).
#[derive(Clone, Debug, Serialize)]
pub struct DeadPage {
    /// Entries the dead list holds in all.
    pub total: u64,
    /// The page's, newest first.
    pub jobs: Vec<DeadJob>,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// In the queue, ready: it is handed out in its turn.
    Waiting,
    /// Pushed with a delay or a time, not yet due (`JobInfo::at` says when it is).
    Scheduled,
    /// Handed to a worker, under a lease (`JobInfo::at` says when the lease runs out).
    InFlight,
    /// Failed, waiting out its backoff before the next attempt (`JobInfo::at`: when).
    Retrying,
    /// Completed: its result (if it left one) is kept for the queue's `result_ttl`.
    Completed,
    /// In the dead list (`JobInfo::at`: when it died).
    Dead,
    /// Cancelled (`Admin::cancel`; `JobInfo::at`: when, while the queue remembers it): it
    /// never runs again.
    Cancelled,
    /// The queue keeps nothing of it any more, though the id was given: it completed and its
    /// result was dropped or never given, or it was purged from the dead list.
    Gone,
}

/// What the queue holds of one job.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct JobInfo {
    pub id: JobId,
    pub state: JobState,
    /// Attempts begun so far, the running one included; `None` when the queue no longer
    /// knows (a completed job).
    pub attempts: Option<u32>,
    /// When it is due (scheduled, retrying), its lease runs out (in flight) or it died
    /// (dead), in ms since the epoch on Redis's clock.
    pub at: Option<u64>,
    /// The job's data while it is not completed (or purged); data that is not JSON is shown
    /// as a string, and `problem` says so.
    pub data: Option<Value>,
    /// The result of a completed job, while it is kept.
    pub result: Option<Value>,
    /// The last error of a job that failed, was retried or is dead.
    pub last_error: Option<LastError>,
    /// Its unique key, while the queue keeps the job.
    pub unique_key: Option<String>,
    /// Its priority (0 to 9, 9 served first): the one it was pushed at while the queue keeps
    /// the job, 5 (normal) for a job pushed without one or no longer kept.
    pub priority: u8,
    /// Its latest progress report (`Client::progress`, a guest's `progress` import), kept
    /// for the queue's result_ttl: `{"percent", "note", "at"}`.
    pub progress: Option<Value>,
    /// The follow-up jobs it pushed, once a mover has pushed them (kept for the queue's
    /// result_ttl), in the order it pushed them.
    pub children: Vec<Child>,
    /// Follow-ups committed with its completion that no mover has pushed yet.
    pub children_waiting: u64,
    /// What is wrong with what the queue holds of it, if anything.
    pub problem: Option<String>,
}

impl Inspector {
    /// Connects to Redis and reads the queue's meta; a queue that does not exist is
    /// [`crate::Error::NoSuchQueue`]. Writes nothing.
    pub async fn new(queue: &str, opts: Options) -> Result<Inspector> {
        Ok(Inspector {
            queue: Queue::open_existing(queue, opts).await?,
        })
    }

    pub(crate) fn from_queue(queue: Queue) -> Inspector {
        Inspector { queue }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue.keys.queue
    }

    /// The queue's settings, as they were when this inspector was made.
    pub fn settings(&self) -> &QueueSettings {
        &self.queue.settings
    }

    /// Counts of the queue, read in one round trip (and one more on a queue with priorities,
    /// for its other levels, and one more when the push of the job at the head of the queue
    /// is not among the two oldest kept). A counter that is not a number counts 0.
    pub async fn stats(&self) -> Result<QueueStats> {
        let k = &self.queue.keys;
        let mut con = self.queue.con.clone();
        // Fourteen replies: more than a tuple reads, so each is read on its own.
        let replies: Vec<redis::Value> = redis::pipe()
            .llen(&k.waiting)
            .zcard(&k.leases)
            .zcard(&k.delayed)
            .zcard(&k.scheduled)
            .zcard(&k.dead_at)
            .llen(&k.dead)
            // The reaper drops workers whose heartbeat ran out, on Redis's clock.
            .zcard(&k.workers)
            .llen(&k.requests)
            .zcard(&k.results_at)
            .hgetall(&k.stats)
            // How many jobs were ever pushed: the last id given (push.lua keeps no counter);
            // and whether the queue is paused.
            .cmd("HMGET")
            .arg(&k.meta)
            .arg("seq")
            .arg("paused")
            .arg("requires")
            // The oldest waiting job, the two oldest pushes kept and Redis's clock: its age.
            .lrange(&k.waiting, 0, 0)
            .zrange_withscores(&k.pushed, 0, 1)
            .cmd("TIME")
            // A reader whose ACL predates +time is refused TIME alone, not the counts.
            .ignore_errors()
            .query_async(&mut con)
            .await?;
        let mut replies = replies.into_iter();
        let mut next = || replies.next().unwrap_or(redis::Value::Nil);
        fn read<T: redis::FromRedisValue>(v: redis::Value) -> Result<T> {
            if let redis::Value::ServerError(e) = v {
                return Err(redis::RedisError::from(e).into());
            }
            redis::from_redis_value(v)
                .map_err(|e| crate::Error::Corrupt(format!("the queue's counts: {e}")))
        }
        let mut counts = [0u64; 9];
        for count in counts.iter_mut() {
            *count = read(next())?;
        }
        let counters: HashMap<String, Raw> = read(next())?;
        let seq: (Option<Raw>, Option<Raw>, Option<String>) = read(next())?;
        let head: Vec<String> = read(next())?;
        let oldest: Vec<(String, f64)> = read(next())?;
        // Redis's clock; this machine's when TIME is refused.
        let time: (u64, u64) = read(next()).unwrap_or_else(|_| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (now.as_secs(), u64::from(now.subsec_micros()))
        });
        let (seq, paused, requires) = seq;
        let mut first = LevelHead {
            head,
            oldest,
            records: k.pushed.clone(),
        };
        // A queue with priorities: its other levels' lists, read in a second round trip; the
        // oldest of every level's head is the one whose age is given.
        if requires.is_some_and(|r| r.split(',').any(|f| f == "priority")) {
            let (more, others) = self.other_levels(&mut con).await?;
            counts[0] += more;
            first = oldest_of(std::iter::once(first).chain(others));
        }
        let reading = (first.head, first.oldest, time);
        let oldest_waiting_age_ms = self
            .oldest_waiting_age(&mut con, reading, &first.records)
            .await?;
        let [waiting, in_flight, delayed, scheduled, dead, legacy_dead, workers, requests, results] =
            counts;
        let number = |v: Option<&Raw>| {
            v.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0)
        };
        let c = |name: &str| number(counters.get(name));
        Ok(QueueStats {
            queue: k.queue.clone(),
            waiting,
            in_flight,
            delayed,
            scheduled,
            paused: paused.is_some_and(|p| p.as_slice() == b"1"),
            dead: dead + legacy_dead,
            workers,
            requests,
            results,
            pushed: number(seq.as_ref()),
            oldest_waiting_age_ms,
            dispatched: c("dispatched"),
            completed: c("completed"),
            retried: c("retried"),
            dead_lettered: c("dead"),
            expired: c("expired"),
            poisoned: c("poisoned"),
            dead_dropped: c("dead_dropped"),
            cancelled: c("cancelled"),
        })
    }

    /// The jobs waiting at the priorities other than the normal one (`waiting:L`), and each
    /// of those levels' head and oldest push records (`pushed:L`).
    async fn other_levels(&self, con: &mut crate::backend::Conn) -> Result<(u64, Vec<LevelHead>)> {
        let k = &self.queue.keys;
        let levels: Vec<u8> = (0..=crate::producer::HIGHEST_PRIORITY)
            .filter(|level| *level != crate::producer::NORMAL_PRIORITY)
            .collect();
        let mut pipe = redis::pipe();
        for level in &levels {
            let list = k.waiting_at(*level);
            pipe.llen(&list)
                .lrange(&list, 0, 0)
                .zrange_withscores(k.pushed_at(*level), 0, 1);
        }
        // Each level's length, head and two oldest push records.
        type Level = (u64, Vec<String>, Vec<(String, f64)>);
        let replies: Vec<Level> = pipe.query_async(con).await?;
        let waiting = replies.iter().map(|(n, _, _)| n).sum();
        let heads = levels
            .iter()
            .zip(replies)
            .map(|(level, (_, head, oldest))| LevelHead {
                head,
                oldest,
                records: k.pushed_at(*level),
            })
            .collect();
        Ok((waiting, heads))
    }

    /// The age of the job at the head of the queue, from what [`Inspector::stats`] read: its
    /// item, the two oldest push records (first id, "FIRST|MS") and Redis's clock.
    async fn oldest_waiting_age(
        &self,
        con: &mut crate::backend::Conn,
        (head, oldest, (secs, micros)): HeadReading,
        records: &str,
    ) -> Result<Option<u64>> {
        let Some(head) = head.first() else {
            return Ok(None);
        };
        let now = secs * 1000 + micros / 1000;
        // A first push's item is "ID|0[|MAX]"; one that came back has other attempts ("00":
        // retried from the dead list), and no record says when it did.
        let mut item = head.split('|');
        let (Some(id), Some("0")) = (
            item.next().and_then(|id| id.parse::<u64>().ok()),
            item.next(),
        ) else {
            return Ok(None);
        };
        let age = |record: &str| pushed_at(record, id).map(|at| now.saturating_sub(at));
        let record = match &oldest[..] {
            [] => return Ok(None),
            // Before every record kept: it came back to the head (or was promoted) after its
            // record was dropped, and when it was pushed is not known.
            [(_, score), ..] if *score > id as f64 => return Ok(None),
            [(first, _)] => first.clone(),
            [(first, _), (_, next)] if *next > id as f64 => first.clone(),
            // The head moved on since the reaper last dropped records: look its push up.
            _ => {
                let found: Vec<String> = redis::cmd("ZRANGE")
                    .arg(records)
                    .arg(id)
                    .arg("-inf")
                    .arg("BYSCORE")
                    .arg("REV")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1)
                    .query_async(con)
                    .await?;
                match found.into_iter().next() {
                    Some(record) => record,
                    None => return Ok(None),
                }
            }
        };
        Ok(age(&record))
    }

    /// Up to `limit` jobs in flight, those whose lease runs out soonest first (the longest
    /// since their holder renewed), each with its latest progress report: three reads.
    pub async fn running(&self, limit: usize) -> Result<Vec<RunningJob>> {
        Ok(self.in_flight(limit, 0).await?.0)
    }

    /// [`Inspector::running`] and [`Inspector::workers`] together, the workers read once for
    /// both (the holders of jobs in flight are found among them).
    pub async fn in_flight(
        &self,
        running: usize,
        workers: usize,
    ) -> Result<(Vec<RunningJob>, Vec<WorkerInfo>)> {
        let k = &self.queue.keys;
        let mut con = self.queue.con.clone();
        let leases: Vec<(String, f64)> = match running {
            0 => Vec::new(),
            n => {
                redis::cmd("ZRANGE")
                    .arg(&k.leases)
                    .arg(0)
                    .arg(last_index(n))
                    .arg("WITHSCORES")
                    .query_async(&mut con)
                    .await?
            }
        };
        let running: Vec<(Token, u64)> = leases
            .into_iter()
            .filter_map(|(token, until)| Token::parse(&token).ok().map(|t| (t, until as u64)))
            .collect();
        let read = match running.is_empty() {
            true => workers,
            false => workers.max(MAX_WORKERS_READ),
        };
        let mut read = self.read_workers(read).await?;
        if running.is_empty() {
            return Ok((Vec::new(), read.into_iter().map(|(w, _)| w).collect()));
        }
        // One slot holds every key of the queue, so one MGET reads them all on a Cluster too.
        let mut mget = redis::cmd("MGET");
        for (token, _) in &running {
            mget.arg(k.progress(token.id.as_str()));
        }
        let progress: Vec<Option<Raw>> = mget.query_async(&mut con).await?;
        let holder = |id: &JobId| {
            read.iter().find_map(|(w, since)| {
                let i = w.holds.iter().position(|held| held == id)?;
                Some((w.id.clone(), since[i]))
            })
        };
        let jobs = running
            .into_iter()
            .zip(progress)
            .map(|((token, lease_until), progress)| {
                let (holder, started) = holder(&token.id).unzip();
                RunningJob {
                    holder,
                    started: started.flatten(),
                    id: token.id,
                    attempt: token.attempt,
                    lease_until,
                    progress: progress.map(|p| json_or_text(&p).0),
                }
            })
            .collect();
        read.truncate(workers);
        Ok((jobs, read.into_iter().map(|(w, _)| w).collect()))
    }

    /// Up to `limit` live workers, those whose heartbeat runs out soonest first, each with what
    /// it said of itself and the jobs it held at its last renewal: two reads.
    pub async fn workers(&self, limit: usize) -> Result<Vec<WorkerInfo>> {
        Ok(self
            .read_workers(limit)
            .await?
            .into_iter()
            .map(|(w, _)| w)
            .collect())
    }

    /// As [`Inspector::workers`], each with when it took each job it holds (beside `holds`).
    async fn read_workers(&self, limit: usize) -> Result<Vec<(WorkerInfo, Vec<Option<u64>>)>> {
        let k = &self.queue.keys;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut con = self.queue.con.clone();
        let alive: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&k.workers)
            .arg(0)
            .arg(last_index(limit))
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await?;
        if alive.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for (w, _) in &alive {
            mget.arg(k.worker_info(w)).arg(k.held_by(w));
        }
        let said: Vec<Option<Raw>> = mget.query_async(&mut con).await?;
        Ok(alive
            .into_iter()
            .zip(said.chunks(2))
            .map(|((id, until), said)| {
                let info: Value = said[0]
                    .as_deref()
                    .and_then(|i| serde_json::from_slice(i).ok())
                    .unwrap_or(Value::Null);
                // "TOKEN@MS ..." (or "TOKEN ..." from a worker of an earlier version).
                let (holds, since): (Vec<JobId>, Vec<Option<u64>>) = said[1]
                    .as_deref()
                    .map(|h| {
                        String::from_utf8_lossy(h)
                            .split(' ')
                            .filter_map(|entry| {
                                let (token, since) = match entry.split_once('@') {
                                    Some((token, ms)) => (token, ms.parse().ok()),
                                    None => (entry, None),
                                };
                                Token::parse(token).ok().map(|t| (t.id, since))
                            })
                            .unzip()
                    })
                    .unwrap_or_default();
                let worker = WorkerInfo {
                    id,
                    heartbeat_until: until as u64,
                    host: info["host"].as_str().map(str::to_string),
                    pid: info["pid"].as_u64(),
                    started: info["started"].as_u64(),
                    holds,
                };
                (worker, since)
            })
            .collect())
    }

    /// The result a completed job left, while it is kept (the queue's `result_ttl` and
    /// `result_max`). `None` when the job left no result, is not complete, or its result was
    /// dropped; a result that is not JSON is shown as a string.
    pub async fn result(&self, id: &JobId) -> Result<Option<Value>> {
        let text: Option<Raw> = redis::cmd("HGET")
            .arg(&self.queue.keys.results)
            .arg(id.as_str())
            .query_async(&mut self.queue.con.clone())
            .await?;
        Ok(text.map(|t| json_or_text(&t).0))
    }

    /// The message of a job's last error (failed, retried or dead), while the job is not
    /// completed. [`Inspector::job`] gives its code and time too.
    pub async fn last_error(&self, id: &JobId) -> Result<Option<String>> {
        let entry: Option<Raw> = redis::cmd("HGET")
            .arg(&self.queue.keys.errors)
            .arg(id.as_str())
            .query_async(&mut self.queue.con.clone())
            .await?;
        Ok(entry.map(|e| LastError::parse(&e).message))
    }

    /// What the queue holds of the job `id` and where it is in its life, read with the
    /// read-only commands of `docs/PROTOCOL.md` in two or three round trips (not atomically:
    /// a job that moves meanwhile may show the state it had a moment before). `None` for an
    /// id the queue never gave (not decimal, or past its last id).
    pub async fn job(&self, id: &JobId) -> Result<Option<JobInfo>> {
        let k = &self.queue.keys;
        let mut con = self.queue.con.clone();
        // Ids are given from 1 and written without leading zeros: "0" and "01" name no job
        // (each was read as an id given, "0" as one whose record had gone).
        let given_form = crate::wire::is_id(id.as_str())
            && id
                .as_str()
                .parse::<u64>()
                .is_ok_and(|n| n >= 1 && n.to_string() == id.as_str());
        if !given_form {
            return Ok(None);
        }
        type Read = (
            Option<Raw>,
            Option<Raw>,
            Option<Raw>,
            Option<u64>,
            Option<String>,
            Option<Raw>,
            Option<f64>,
            Vec<String>,
            u64,
            Option<u8>,
        );
        let (data, result, error, seq, unique, progress, cancelled_at, children, staged, priority): Read =
            redis::pipe()
                .hget(&k.jobs, id.as_str())
                .hget(&k.results, id.as_str())
                .hget(&k.errors, id.as_str())
                .hget(&k.meta, "seq")
                .hget(&k.unique_of, id.as_str())
                .get(k.progress(id.as_str()))
                .zscore(&k.cancelled, id.as_str())
                .lrange(k.children_of(id.as_str()), 0, -1)
                .llen(k.children(id.as_str()))
                .hget(k.priority(), id.as_str())
                .query_async(&mut con)
                .await?;
        let given = id
            .as_str()
            .parse::<u64>()
            .is_ok_and(|n| seq.is_some_and(|seq| n <= seq));
        if !given && data.is_none() && result.is_none() {
            return Ok(None);
        }
        let last_error = error.map(|e| LastError::parse(&e));
        // The token of the attempt that last failed, where a job retrying or dead sits.
        let failed = last_error
            .as_ref()
            .and_then(|e| e.token.as_deref())
            .and_then(|t| Token::parse(t).ok().map(|parsed| (t.to_string(), parsed)));
        let (dead_at, retry_at): (Option<f64>, Option<f64>) = match &failed {
            Some((token, _)) => {
                redis::pipe()
                    .zscore(&k.dead_at, token)
                    .zscore(&k.delayed, token)
                    .query_async(&mut con)
                    .await?
            }
            None => (None, None),
        };
        let failed_attempt = failed.as_ref().map(|(_, t)| t.attempt);
        // A job cancelled while it waited keeps the empty string as its data until it is
        // dropped from the queue (`cancel.lua`).
        let cancelled_queued = data.as_ref().is_some_and(|d| d.is_empty());
        let data = data.filter(|d| !d.is_empty());
        let (state, attempts, at) = if cancelled_at.is_some() || cancelled_queued {
            (JobState::Cancelled, None, cancelled_at.map(|at| at as u64))
        } else if let Some(at) = dead_at {
            (JobState::Dead, failed_attempt, Some(at as u64))
        } else if let Some(at) = retry_at {
            (JobState::Retrying, failed_attempt, Some(at as u64))
        } else if data.is_none() {
            let state = match result.is_some() {
                true => JobState::Completed,
                false => JobState::Gone,
            };
            (state, None, None)
        } else if let Some((lease, until)) =
            scan_one(&mut con, &k.leases, &format!("{}|*", id.as_str())).await?
        {
            let attempt = Token::parse(&lease).ok().map(|t| t.attempt);
            (JobState::InFlight, attempt, Some(until))
        } else if let Some((_, due)) =
            scan_one(&mut con, &k.scheduled, &format!("{:0>20}|*", id.as_str())).await?
        {
            (JobState::Scheduled, Some(0), Some(due))
        } else {
            (JobState::Waiting, Some(failed_attempt.unwrap_or(0)), None)
        };
        let (data, problem) = match data {
            Some(d) => {
                let (value, problem) = json_or_text(&d);
                (Some(value), problem)
            }
            None => (None, None),
        };
        Ok(Some(JobInfo {
            id: id.clone(),
            state,
            attempts,
            at,
            data,
            result: result.map(|r| json_or_text(&r).0),
            last_error,
            // "WINDOW_MS|KEY"
            unique_key: unique.and_then(|u| u.split_once('|').map(|(_, key)| key.to_string())),
            priority: priority.unwrap_or(crate::producer::NORMAL_PRIORITY),
            progress: progress.map(|p| json_or_text(&p).0),
            children: children.iter().map(|c| Child::parse(c)).collect(),
            // Four values a follow-up (`stage.lua`).
            children_waiting: staged / 4,
            problem,
        }))
    }

    /// The queue's schedules, soonest tick first. A definition that cannot be read (written
    /// past this library) is listed with its `problem`.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        let k = &self.queue.keys;
        let (definitions, ticks): (HashMap<String, String>, Vec<(String, f64)>) = redis::pipe()
            .hgetall(&k.schedules)
            .zrange_withscores(&k.schedule_due, 0, -1)
            .query_async(&mut self.queue.con.clone())
            .await?;
        let mut next: HashMap<String, u64> =
            ticks.into_iter().map(|(n, at)| (n, at as u64)).collect();
        let mut all: Vec<ScheduleInfo> = definitions
            .into_iter()
            .map(|(name, definition)| {
                let next_at = next.remove(&name);
                match serde_json::from_str::<Schedule>(&definition) {
                    Ok(schedule) => ScheduleInfo {
                        name,
                        schedule: Some(schedule),
                        next_at,
                        problem: None,
                    },
                    Err(e) => ScheduleInfo {
                        name,
                        schedule: None,
                        next_at,
                        problem: Some(format!("the definition does not read: {e}")),
                    },
                }
            })
            .collect();
        all.sort_by(|a, b| (a.next_at, &a.name).cmp(&(b.next_at, &b.name)));
        Ok(all)
    }

    /// Up to `limit` dead jobs, newest first. An entry that is not a lease token, or whose
    /// data is not JSON, is shown with what is wrong (`problem`), beside the others.
    pub async fn dead_jobs(&self, limit: usize) -> Result<Vec<DeadJob>> {
        Ok(self.dead_page(0, limit).await?.jobs)
    }

    /// A page of the dead list: up to `limit` dead jobs from the `offset`-th newest on, and
    /// how many the list holds (for a pager).
    pub async fn dead_page(&self, offset: usize, limit: usize) -> Result<DeadPage> {
        let k = &self.queue.keys;
        let mut con = self.queue.con.clone();
        // The sorted set, and then what an older version left in its list and the reaper
        // has not moved yet (read only when the page reaches it).
        let (in_set, in_list): (usize, usize) = redis::pipe()
            .zcard(&k.dead_at)
            .llen(&k.dead)
            .query_async(&mut con)
            .await?;
        let total = (in_set + in_list) as u64;
        // Past the end (a page asked for by hand, say) is an empty page, not a wrapped range.
        let end = offset.saturating_add(limit).min(in_set + in_list);
        let mut entries: Vec<Raw> = Vec::new();
        if offset < end && offset < in_set {
            entries = con
                .zrevrange(&k.dead_at, offset as isize, end.min(in_set) as isize - 1)
                .await?;
        }
        if offset < end && end > in_set {
            let from = offset.saturating_sub(in_set) as isize;
            let legacy: Vec<Raw> = con
                .lrange(&k.dead, from, (end - in_set) as isize - 1)
                .await?;
            entries.extend(legacy);
        }
        let jobs = self.dead_entries(entries).await?;
        Ok(DeadPage { total, jobs })
    }

    /// Job `id` as the dead list holds it, or `None` when it is not dead. Found through its
    /// error record, which names the entry (its lease token), in a few reads whatever the
    /// list's length, found or not; an entry that is not a token is found under itself, and
    /// only one buried by a version that wrote no token in its record (or whose record is
    /// gone) is searched for (`ZSCAN`): a record that names a token not in the dead list is a
    /// job that is not dead (retried, or failed and still trying).
    pub async fn dead_job(&self, id: &str) -> Result<Option<DeadJob>> {
        let k = &self.queue.keys;
        let mut con = self.queue.con.clone();
        let record: Option<Raw> = con.hget(&k.errors, id).await?;
        let named = record.and_then(|r| LastError::parse(&r).token);
        let token_named = named.is_some();
        let mut candidates: Vec<String> = named.into_iter().collect();
        candidates.push(id.to_owned());
        for entry in candidates {
            let score: Option<f64> = con.zscore(&k.dead_at, &entry).await?;
            if score.is_some() && dead_entry_is(&entry, id) {
                return Ok(self.dead_entries(vec![entry.into_bytes()]).await?.pop());
            }
        }
        // An entry that is a token starts with a job id, which has no character a pattern
        // gives a meaning to; anything else was looked for under itself above.
        if crate::wire::is_id(id) && !token_named {
            let found = scan_one(&mut con, &k.dead_at, &format!("{id}|*")).await?;
            if let Some((entry, _)) = found.filter(|(entry, _)| dead_entry_is(entry, id)) {
                return Ok(self.dead_entries(vec![entry.into_bytes()]).await?.pop());
            }
        }
        // What an older version left in its list, until the reaper has moved it.
        let legacy: Vec<Raw> = con.lrange(&k.dead, 0, -1).await?;
        let found = legacy
            .into_iter()
            .find(|e| dead_entry_is(&String::from_utf8_lossy(e), id));
        Ok(match found {
            Some(entry) => self.dead_entries(vec![entry]).await?.pop(),
            None => None,
        })
    }

    /// The dead jobs of these dead-list entries, in their order, with their data and errors.
    async fn dead_entries(&self, entries: Vec<Raw>) -> Result<Vec<DeadJob>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.queue.keys;
        let mut con = self.queue.con.clone();
        let parsed: Vec<(String, std::result::Result<Token, String>)> = entries
            .iter()
            .map(|e| {
                let text = String::from_utf8_lossy(e).into_owned();
                let token = Token::parse(&text);
                (text, token)
            })
            .collect();
        // Data and errors are kept under the job id; an entry that is no token, under itself.
        let keys: Vec<&str> = parsed
            .iter()
            .map(|(text, token)| match token {
                Ok(t) => t.id.as_str(),
                Err(_) => text.as_str(),
            })
            .collect();
        let (datas, errors): (Vec<Option<Raw>>, Vec<Option<Raw>>) = redis::pipe()
            .cmd("HMGET")
            .arg(&k.jobs)
            .arg(&keys)
            .cmd("HMGET")
            .arg(&k.errors)
            .arg(&keys)
            .query_async(&mut con)
            .await?;
        let jobs = parsed
            .into_iter()
            .zip(datas.into_iter().zip(errors))
            .map(|((text, token), (data, error))| {
                let error = error.map(|e| LastError::parse(&e));
                let (data, data_problem) = match data {
                    Some(d) => json_or_text(&d),
                    None => (Value::Null, None),
                };
                let (id, attempts, problem) = match token {
                    Ok(t) => (t.id, t.attempt, data_problem),
                    Err(e) => (JobId::from(text), 0, Some(e)),
                };
                DeadJob {
                    id,
                    data,
                    attempts,
                    code: error.as_ref().and_then(|e| e.code.clone()),
                    died_at: error.as_ref().and_then(|e| e.at),
                    cut: error.as_ref().is_some_and(|e| e.cut),
                    error: error.map(|e| e.message),
                    problem,
                }
            })
            .collect();
        Ok(jobs)
    }
}

/// The first member of the sorted set `key` that matches `pattern`, with its score, found with
/// ZSCAN (a read-only command; the sets it is used on hold the jobs in flight, scheduled or
/// dead).
async fn scan_one(
    con: &mut crate::backend::Conn,
    key: &str,
    pattern: &str,
) -> Result<Option<(String, u64)>> {
    let mut cursor = 0u64;
    loop {
        let (next, found): (u64, Vec<(String, f64)>) = redis::cmd("ZSCAN")
            .arg(key)
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await?;
        if let Some((member, score)) = found.into_iter().next() {
            return Ok(Some((member, score as u64)));
        }
        if next == 0 {
            return Ok(None);
        }
        cursor = next;
    }
}

/// The index of a range's last member, for the first `limit` (at least 1): Redis reads an
/// index as a signed 64-bit number, so a limit past that (`usize::MAX`, for "all") is all.
fn last_index(limit: usize) -> i64 {
    i64::try_from(limit - 1).unwrap_or(-1)
}

/// Whether dead-list entry `entry` is job `id`'s: its lease token names the id, or the
/// entry, not a token, is the id itself.
fn dead_entry_is(entry: &str, id: &str) -> bool {
    match Token::parse(entry) {
        Ok(token) => token.id.as_str() == id,
        Err(_) => entry == id,
    }
}

/// JSON as a value; anything else as a string of its first bytes, with what is wrong.
fn json_or_text(bytes: &[u8]) -> (Value, Option<String>) {
    match serde_json::from_slice(bytes) {
        Ok(value) => (value, None),
        Err(e) => (
            Value::String(
                String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN_RAW)]).into_owned(),
            ),
            Some(describe_json_error(&e)),
        ),
    }
}

/// The names of all queues under the prefix of `opts` (those ever opened).
pub async fn queue_names(opts: &Options) -> Result<Vec<String>> {
    let mut con = crate::backend::Backend::new(opts)?.connection().await?;
    let mut names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{}:queues", opts.prefix))
        .query_async(&mut con)
        .await?;
    names.sort();
    Ok(names)
}

/// The level whose head is the oldest job (the lowest id) of `levels`; a head that does not
/// parse comes first (its age is not known), a level with none last.
fn oldest_of(levels: impl IntoIterator<Item = LevelHead>) -> LevelHead {
    let rank = |level: &LevelHead| match level.head.first() {
        None => (2, 0),
        Some(item) => match item.split('|').next().and_then(|id| id.parse::<u64>().ok()) {
            Some(id) => (1, id),
            None => (0, 0),
        },
    };
    levels
        .into_iter()
        .min_by_key(rank)
        .expect("the normal level is always given")
}

/// When job `id` was pushed, by the push record `record`: "FIRST|MS|LAST", or "FIRST|MS" as
/// protocol 1.1 wrote it (covering every id up to the next record). `None` when the record
/// does not cover the id (a job of a producer that records no push) or does not parse.
fn pushed_at(record: &str, id: u64) -> Option<u64> {
    let mut fields = record.split('|').skip(1);
    let at = fields.next()?.parse().ok()?;
    match fields.next() {
        None => Some(at),
        Some(last) if last.parse::<u64>().ok()? >= id => Some(at),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::pushed_at;

    #[test]
    fn a_push_record_dates_the_ids_it_covers_only() {
        assert_eq!(pushed_at("10|5000|12", 10), Some(5000));
        assert_eq!(pushed_at("10|5000|12", 12), Some(5000));
        // Pushed by a producer that writes no record: not this call's.
        assert_eq!(pushed_at("10|5000|12", 13), None);
        // Protocol 1.1's records have no last id.
        assert_eq!(pushed_at("10|5000", 99), Some(5000));
        assert_eq!(pushed_at("10|soon", 10), None);
        assert_eq!(pushed_at("10|5000|x", 10), None);
    }
}
