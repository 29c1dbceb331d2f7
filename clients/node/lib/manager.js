'use strict';
// The manager, as the original design has it: `new sque.manager(queName, options)` creates
// the queue or joins it, `push(params)` adds a job, and it "listens all the time" for free
// workers: it dispatches stored requests (woken by the queue's channel, and sweeping every
// 250 ms for wake-ups lost), reaps expired leases and promotes scheduled jobs when they are
// due, like the Rust Manager, so that a deployment of Node alone works, and one beside
// sque-host hosts and Rust managers too.

const { Queue, NORMAL_PRIORITY } = require('./queue');
const { SqueError } = require('./errors');

const PUSH_CHUNK = 1000;
const DISPATCH_BATCH = 256;
const REAP_BATCH = 500;
const SWEEP_MS = 250;
// Promotion (docs/PROTOCOL.md, "promote"): jobs per call, and the longest sleep between calls.
const PROMOTE_BATCH = 1000;
const PROMOTE_IDLE_MS = 1000;
// The longest delay a job may be given: 100 years, in ms.
const LONGEST_DELAY_MS = 100 * 365 * 24 * 3600 * 1000;

class Manager {
  /**
   * @param {string} queName
   * @param {object} [options] {redis: {url, ...node-redis options}, prefix, dispatch (default
   *   true), queue settings for a new queue (lease, maxAttempts, maxJobBytes, ...), redisModule}
   */
  constructor(queName, options = {}) {
    this.queue = new Queue(queName, options);
    this.closed = false;
    this.timers = [];
    this.unsubscribe = null;
    /** Whether the queue is open (the lane's owner interface, lane.js). */
    this.opened = false;
    this.ready = this.queue.ready.then(() => {
      // Cron schedules are ticked, and follow-up jobs moved, by sque-host and the Rust manager
      // only: a Node manager that dispatches would leave them silent in a deployment of Node
      // alone, so it refuses.
      if (options.dispatch !== false && this.queue.requires.includes('cron')) {
        throw new SqueError('feature', `queue ${JSON.stringify(queName)} has cron schedules, which this package does not run: run sque-host (or the Rust manager) on the queue, and open this manager with {dispatch: false}`);
      }
      if (options.dispatch !== false && this.queue.requires.includes('children')) {
        throw new SqueError('feature', `queue ${JSON.stringify(queName)} has handlers that push follow-up jobs, which this package does not move: run sque-host (or the Rust manager) on the queue, and open this manager with {dispatch: false}`);
      }
      this.opened = true;
      if (options.dispatch !== false && !this.closed) this.startDispatching();
      return this;
    });
    this.ready.catch(() => {});
  }

  /** The queue's settings, as Redis holds them (after `ready`). */
  get settings() {
    return this.queue.settings;
  }

  /**
   * Adds a job at the tail of the queue: any JSON value. Resolves to its id (a string).
   * With `delay` (ms) or `at` (a Date, or ms since the epoch) it waits aside until then, on
   * Redis's clock, and a manager moves it to the tail of the queue when it is due.
   * With `uniqueKey` (1 to 1024 bytes, unique within the queue) the push is idempotent:
   * while a job with that key is scheduled, waits or runs (and for `uniqueFor` ms after it
   * completes), it writes nothing and resolves to that job's id.
   * With `priority` ('high', 'normal', 'low' or 0 to 9, normal being 5) a job of a higher
   * priority is handed out before any of a lower one; within one priority, in push order.
   * @param {unknown} params
   * @param {{maxAttempts?: number, delay?: number, at?: Date | number, uniqueKey?: string,
   *   uniqueFor?: number, priority?: 'high' | 'normal' | 'low' | number}} [options]
   */
  async push(params, options = {}) {
    if (options.uniqueKey !== undefined || options.uniqueFor !== undefined) return this.pushUnique(params, options);
    const [id] = await this.pushMany([params], options);
    return id;
  }

  /** `push` with a unique key, through the push_unique script (docs/PROTOCOL.md). */
  async pushUnique(params, options) {
    const { uniqueKey: key, uniqueFor: window = 0 } = options;
    if (typeof key !== 'string' || Buffer.byteLength(key) < 1 || Buffer.byteLength(key) > 1024) {
      throw new SqueError('invalid_input', `uniqueKey must be a string of 1 to 1024 bytes, not ${JSON.stringify(key)}`);
    }
    if (!Number.isInteger(window) || window < 0 || window > LONGEST_DELAY_MS) {
      throw new SqueError('invalid_input', `uniqueFor must be a whole number of ms from 0 to 100 years, not ${JSON.stringify(window)}`);
    }
    const json = encode(params, 0);
    const level = encodePriority(options.priority);
    const args = [json, encodeAttempts(options.maxAttempts), encodeDue(options) || '', key, String(window)];
    await this.queue.ready;
    const limit = this.queue.settings.max_job_bytes;
    if (Buffer.byteLength(json) > limit) {
      throw new SqueError('too_large', `the job is ${Buffer.byteLength(json)} bytes of JSON, over the queue's limit of ${limit} bytes (max_job_bytes); nothing was pushed: keep large payloads elsewhere and push a reference`);
    }
    const k = this.queue.keys;
    const keys = [k.meta, k.waitingAt(level), k.jobs, k.stats, k.requests, k.leases, k.workers, k.scheduled];
    // The new id, or 0 then this job's number (1) and the id of the job that holds its key.
    const reply = await this.queue.con.script('push_unique', keys, args);
    const id = reply.length > 1 ? reply[2] : reply[0];
    return String(id);
  }

  /**
   * Adds many jobs, in order, a thousand per script call. Every job is checked first: one
   * bad job fails the call with nothing pushed. Resolves to their ids, in order.
   */
  pushMany(list, options = {}) {
    let jobs;
    let due;
    let level;
    try {
      if (options.uniqueKey !== undefined) {
        throw new SqueError('invalid_input', 'pushMany takes no uniqueKey (one key would hold for every job): push each job with its own key');
      }
      const max = encodeAttempts(options.maxAttempts);
      due = encodeDue(options);
      level = encodePriority(options.priority);
      jobs = Array.from(list, (params, i) => [encode(params, i), max]);
    } catch (err) {
      return Promise.reject(err);
    }
    if (jobs.length === 0) return Promise.resolve([]);
    if (due) return this.schedule(jobs, due, level);
    // The list they join: a call's jobs share one priority (`fits`).
    jobs.level = level;
    // Placed in the connection's lane now, so that it reaches Redis before any call this
    // process makes later, from this manager or any client.
    return this.queue.con.lane.add(this, jobs);
  }

  // The lane's owner interface (lane.js): pushes go as soon as the queue is open, many at once.
  get busy() {
    return false;
  }

  /**
   * Pushes made together share a script call while they share a priority and it holds no
   * more than a chunk.
   */
  fits(items, jobs) {
    return jobs.level === items[0].level && items.reduce((n, j) => n + j.length, jobs.length) <= PUSH_CHUNK;
  }

  /** Issues the push calls for the lane's entries (each a list of [json, max] pairs). */
  send(entries) {
    const limit = this.queue.settings.max_job_bytes;
    const good = [];
    for (const entry of entries) {
      const i = entry.item.findIndex(([json]) => Buffer.byteLength(json) > limit);
      if (i < 0) good.push(entry);
      else {
        const bytes = Buffer.byteLength(entry.item[i][0]);
        entry.reject(new SqueError('too_large', `job ${i + 1} is ${bytes} bytes of JSON, over the queue's limit of ${limit} bytes (max_job_bytes); nothing was pushed: keep large payloads elsewhere and push a reference`));
      }
    }
    if (good.length === 0) return;
    const k = this.queue.keys;
    const keys = [k.meta, k.waitingAt(good[0].item.level), k.jobs, k.stats, k.requests, k.leases, k.workers];
    const jobs = good.flatMap((e) => e.item);
    const calls = [];
    for (let i = 0; i < jobs.length; i += PUSH_CHUNK) {
      const args = jobs.slice(i, i + PUSH_CHUNK).flat();
      calls.push(this.queue.con.script('push', keys, args).then(Number));
    }
    // Ids are consecutive within a call; an entry's ids follow the entries before it.
    Promise.all(calls).then(
      (firsts) => {
        let at = 0;
        for (const e of good) {
          e.resolve(e.item.map((_, j) => {
            const n = at + j;
            return String(firsts[Math.floor(n / PUSH_CHUNK)] + (n % PUSH_CHUNK));
          }));
          at += e.item.length;
        }
      },
      (err) => {
        const settled = partly(calls, err);
        for (const e of good) e.reject(settled);
      },
    );
  }

  /**
   * Pushes [json, max] pairs due at `due` ("+MS" or "@MS") through the schedule script, to
   * join the list of priority `level` when due.
   */
  async schedule(jobs, due, level = NORMAL_PRIORITY) {
    await this.queue.ready;
    const k = this.queue.keys;
    tooLarge(jobs, this.queue.settings.max_job_bytes);
    const keys = [k.meta, k.jobs, k.scheduled];
    if (level !== NORMAL_PRIORITY) keys.push(k.waitingAt(level));
    const calls = [];
    for (let at = 0; at < jobs.length; at += PUSH_CHUNK) {
      const args = jobs.slice(at, at + PUSH_CHUNK).flatMap(([json, max]) => [json, max, due]);
      calls.push(this.queue.con.script('schedule', keys, args).then(Number));
    }
    let firsts;
    try {
      firsts = await Promise.all(calls);
    } catch (err) {
      throw partly(calls, err);
    }
    return jobs.map((_, n) => String(firsts[Math.floor(n / PUSH_CHUNK)] + (n % PUSH_CHUNK)));
  }

  /**
   * Waits until the job `id` has completed, and resolves to its result (null if it left
   * none). Rejects with code "dead" when it went to the dead list, "timeout" when `timeout`
   * (ms, default 30000) passes first.
   */
  async wait(id, { timeout = 30000, every = 50 } = {}) {
    await this.queue.ready;
    const k = this.queue.keys;
    const until = Date.now() + timeout;
    for (;;) {
      const [result, pending, record, cancelled] = await Promise.all([
        this.queue.con.command(k.results, ['HGET', k.results, id]),
        this.queue.con.command(k.jobs, ['HEXISTS', k.jobs, id]),
        this.queue.con.command(k.errors, ['HGET', k.errors, id]),
        this.queue.con.command(k.cancelled, ['ZSCORE', k.cancelled, id]),
      ]);
      if (result !== null && result !== undefined) return JSON.parse(result);
      if (cancelled !== null && cancelled !== undefined) {
        throw new SqueError('cancelled', `job ${id} was cancelled`);
      }
      const error = parseRecord(record);
      if (error && error.token) {
        const dead = await this.queue.con.command(k.deadAt, ['ZSCORE', k.deadAt, error.token]);
        if (dead !== null && dead !== undefined) {
          throw new SqueError('dead', `job ${id} is dead: ${error.message}`);
        }
      }
      if (Number(pending) === 0 && !error) return null;
      if (Date.now() > until) throw new SqueError('timeout', `job ${id} did not complete within ${timeout} ms`);
      await sleep(every);
    }
  }

  /**
   * Pauses the queue: no job is handed out, by any host, until `resume`; jobs running finish
   * and pushes are kept. Resolves to false when it was paused already.
   */
  async pause() {
    await this.queue.ready;
    return Number(await this.queue.con.script('pause', [this.queue.keys.meta], ['pause'])) === 1;
  }

  /** Resumes a paused queue; the waiting workers are served at once. False if not paused. */
  async resume() {
    await this.queue.ready;
    return Number(await this.queue.con.script('pause', [this.queue.keys.meta], ['resume'])) === 1;
  }

  /** Counts of the queue (as `sque-host stats --json` gives them). */
  async stats() {
    await this.queue.ready;
    const k = this.queue.keys;
    const c = this.queue.con;
    // Every priority's list (`waiting` is priority 5's).
    const levels = Array.from({ length: 10 }, (_, level) => k.waitingAt(level));
    const [waiting, inFlight, delayed, scheduled, dead, workers, requests, counters, seq, paused] = await Promise.all([
      Promise.all(levels.map((list) => c.command(list, ['LLEN', list]))).then((ns) => ns.reduce((a, x) => a + Number(x), 0)),
      c.command(k.leases, ['ZCARD', k.leases]),
      c.command(k.delayed, ['ZCARD', k.delayed]),
      c.command(k.scheduled, ['ZCARD', k.scheduled]),
      c.command(k.deadAt, ['ZCARD', k.deadAt]),
      c.command(k.workers, ['ZCARD', k.workers]),
      c.command(k.requests, ['LLEN', k.requests]),
      c.command(k.stats, ['HGETALL', k.stats]),
      // How many jobs were ever pushed: the last id given (push.lua keeps no counter).
      c.command(k.meta, ['HGET', k.meta, 'seq']),
      c.command(k.meta, ['HGET', k.meta, 'paused']),
    ]);
    const map = Array.isArray(counters)
      ? Object.fromEntries(counters.reduce((a, v, i) => (i % 2 ? a : [...a, [v, counters[i + 1]]]), []))
      : counters || {};
    const n = (x) => Number(x) || 0;
    return {
      queue: this.queue.name,
      waiting: n(waiting), in_flight: n(inFlight), delayed: n(delayed),
      scheduled: n(scheduled), paused: String(paused) === '1', dead: n(dead),
      workers: n(workers), requests: n(requests),
      pushed: n(seq), dispatched: n(map.dispatched), completed: n(map.completed),
      retried: n(map.retried), dead_lettered: n(map.dead), expired: n(map.expired),
      poisoned: n(map.poisoned), dead_dropped: n(map.dead_dropped),
    };
  }

  startDispatching() {
    const k = this.queue.keys;
    let running = false;
    let again = false;
    const dispatch = async () => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      let rateWait = -1;
      try {
        do {
          again = false;
          for (;;) {
            const [n, wait] = (await this.queue.con.script('dispatch', [k.meta, k.waiting, k.requests, k.jobs, k.leases, k.workers, k.stats], [DISPATCH_BATCH])).map(Number);
            rateWait = wait;
            if (n < DISPATCH_BATCH || this.closed) break;
          }
        } while (again && !this.closed);
      } catch {
        // Redis is away: the sweep tries again.
      } finally {
        running = false;
      }
      // The queue's rate limit held jobs back: dispatch again when it lets the next one go.
      clearTimeout(rateTimer);
      if (rateWait >= 0 && !this.closed) rateTimer = setTimeout(dispatch, rateWait);
    };
    let rateTimer = null;
    this.stopRateTimer = () => clearTimeout(rateTimer);
    // Promotion: sleeps until the next scheduled job is due (as the script reports it, on
    // Redis's clock), at most PROMOTE_IDLE_MS; a `scheduled` message wakes it sooner.
    let promoting = false;
    let promoteTimer = null;
    const promote = async () => {
      if (promoting || this.closed) return;
      promoting = true;
      clearTimeout(promoteTimer);
      let wait = PROMOTE_IDLE_MS;
      try {
        for (;;) {
          const [moved, nextDue] = (await this.queue.con.script('promote', [k.meta, k.scheduled, k.waiting, k.requests, k.jobs, k.leases, k.workers, k.stats], [PROMOTE_BATCH])).map(Number);
          if (moved < PROMOTE_BATCH || this.closed) {
            if (nextDue >= 0) wait = Math.min(nextDue + 1, PROMOTE_IDLE_MS);
            break;
          }
        }
      } catch {
        // Redis is away: try again after the idle wait.
      } finally {
        promoting = false;
      }
      if (!this.closed) promoteTimer = setTimeout(promote, wait);
    };
    this.stopPromoting = () => clearTimeout(promoteTimer);
    this.queue.con
      .subscribe(k.wake, (message) => {
        if (String(message) === 'scheduled') promote();
        dispatch();
      })
      .then((unsubscribe) => {
        if (this.closed) unsubscribe();
        else this.unsubscribe = unsubscribe;
      })
      .catch(() => {});
    this.timers.push(setInterval(dispatch, SWEEP_MS));
    let reaping = false;
    const reap = async () => {
      if (reaping) return;
      reaping = true;
      try {
        for (;;) {
          const [expired, promoted, dropped, dead] = (await this.queue.con.script('reap', [k.meta, k.leases, k.waiting, k.delayed, k.deadAt, k.errors, k.stats, k.results, k.resultsAt, k.workers, k.requests, k.jobs, k.dead], [REAP_BATCH])).map(Number);
          if (Math.max(expired, promoted, dropped, dead) < REAP_BATCH || this.closed) break;
        }
      } catch {
        // Redis is away: the next tick tries again.
      } finally {
        reaping = false;
      }
    };
    const every = Math.min(1000, Math.max(20, Math.floor(this.queue.settings.lease / 10)));
    this.timers.push(setInterval(reap, every));
    dispatch();
    promote();
  }

  /** Stops dispatching and reaping, and lets go of the connection. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (this.stopPromoting) this.stopPromoting();
    if (this.stopRateTimer) this.stopRateTimer();
    await this.ready.catch(() => {});
    if (this.unsubscribe) await this.unsubscribe();
    await this.queue.close();
  }
}

/** The error of a push of many calls of which some may have gone through. */
function partly(calls, err) {
  if (calls.length > 1) {
    err.message += ' (a push of many jobs goes in calls of 1,000: those before the failed one were pushed; see manager.stats())';
  }
  return err;
}

function encode(params, i) {
  let json;
  try {
    json = JSON.stringify(params);
  } catch (e) {
    throw new SqueError('invalid_input', `job ${i + 1} is not JSON-serializable: ${e.message}`);
  }
  if (json === undefined) throw new SqueError('invalid_input', `job ${i + 1} is not JSON (undefined, a function or a symbol)`);
  if (depth(params) >= 128) {
    throw new SqueError('invalid_input', `job ${i + 1} is nested 128 levels deep or more; the most allowed is 127`);
  }
  return json;
}

/** How deeply arrays and objects nest, looking no deeper than the limit. */
function depth(value) {
  let deepest = 0;
  const stack = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > deepest) deepest = d + 1;
    if (deepest >= 128) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return deepest;
}

/** Refuses [json, max] pairs of which one is over `limit` bytes, before anything is pushed. */
function tooLarge(jobs, limit) {
  const i = jobs.findIndex(([json]) => Buffer.byteLength(json) > limit);
  if (i >= 0) {
    throw new SqueError('too_large', `job ${i + 1} is ${Buffer.byteLength(jobs[i][0])} bytes of JSON, over the queue's limit of ${limit} bytes (max_job_bytes); nothing was pushed: keep large payloads elsewhere and push a reference`);
  }
}

/** The priority of `priority` ('high', 'normal', 'low', 0 to 9; normal when absent). */
function encodePriority(priority) {
  if (priority === undefined || priority === null || priority === 'normal') return NORMAL_PRIORITY;
  if (priority === 'high') return 9;
  if (priority === 'low') return 0;
  if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
    throw new SqueError('invalid_input', `priority must be 'high', 'normal', 'low' or a whole number from 0 (low) to 9 (high), not ${JSON.stringify(priority)}`);
  }
  return priority;
}

function encodeAttempts(n) {
  if (n === undefined || n === null) return '';
  if (!Number.isInteger(n) || n < 1 || n > 999999999) {
    throw new SqueError('invalid_input', `maxAttempts must be a whole number from 1 to 999999999, not ${JSON.stringify(n)}`);
  }
  return String(n);
}

/** The schedule script's due argument for `delay`/`at`, or null for a job ready at once. */
function encodeDue({ delay, at }) {
  if (delay !== undefined && delay !== null && at !== undefined && at !== null) {
    throw new SqueError('invalid_input', 'a job takes a delay or a time to run at, not both');
  }
  if (delay !== undefined && delay !== null) {
    if (!Number.isFinite(delay) || delay < 0 || delay > LONGEST_DELAY_MS) {
      throw new SqueError('invalid_input', `delay must be a number of ms from 0 to 100 years, not ${JSON.stringify(delay)}`);
    }
    return delay === 0 ? null : `+${Math.max(1, Math.round(delay))}`;
  }
  if (at !== undefined && at !== null) {
    const ms = at instanceof Date ? at.getTime() : at;
    if (!Number.isFinite(ms) || ms < 0 || ms > 2 * LONGEST_DELAY_MS) {
      throw new SqueError('invalid_input', `at must be a Date or ms since the epoch, between 1970 and the year 2170, not ${JSON.stringify(at)}`);
    }
    return `@${Math.round(ms)}`;
  }
  return null;
}

function parseRecord(text) {
  if (text === null || text === undefined) return null;
  try {
    const e = JSON.parse(text);
    if (e && typeof e === 'object') return e;
  } catch {
    // An older version's plain message.
  }
  return { message: String(text) };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { Manager, depth, parseRecord };
