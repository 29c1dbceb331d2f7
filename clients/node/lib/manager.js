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
// How often a dispatching manager reads the queue's `requires` again (see startDispatching).
const REQUIRES_CHECK_MS = 1000;
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
    /** Whether this manager dispatches, reaps and promotes now (see `startDispatching`). */
    this.dispatching = false;
    this.ready = this.queue.ready.then(() => {
      if (options.dispatch !== false) {
        const refused = unserved(queName, this.queue.requires);
        if (refused) throw refused;
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
  push(params, options = {}) {
    if (options === null || typeof options !== 'object') {
      return Promise.reject(new SqueError('invalid_input', `push's options must be an object such as {priority: 'high'}, not ${show(options)}`));
    }
    if (options.uniqueKey !== undefined || options.uniqueFor !== undefined) return this.pushUnique(params, options);
    return this.pushMany([params], options).then(([id]) => id);
  }

  /**
   * `push` with a unique key, through the push_unique script (docs/PROTOCOL.md), placed in
   * the connection's lane as every push is: it reaches Redis in the order it was made.
   */
  pushUnique(params, options) {
    let item;
    try {
      const { uniqueKey: key, uniqueFor: window = 0 } = options;
      if (typeof key !== 'string' || Buffer.byteLength(key) < 1 || Buffer.byteLength(key) > 1024) {
        throw new SqueError('invalid_input', `uniqueKey must be a string of 1 to 1024 bytes, not ${show(key)}`);
      }
      if (!Number.isInteger(window) || window < 0 || window > LONGEST_DELAY_MS) {
        throw new SqueError('invalid_input', `uniqueFor must be a whole number of ms from 0 to 100 years, not ${show(window)}`);
      }
      const json = encode(params, 0);
      item = {
        kind: 'unique',
        level: encodePriority(options.priority),
        jobs: [[json]],
        args: [json, encodeAttempts(options.maxAttempts), encodeDue(options) || '', key, String(window)],
      };
    } catch (err) {
      return Promise.reject(err);
    }
    return this.queue.con.lane.add(this, item);
  }

  /**
   * Adds many jobs, in order, a thousand per script call. Every job is checked first: one
   * bad job fails the call with nothing pushed. Resolves to their ids, in order.
   */
  pushMany(list, options = {}) {
    let item;
    try {
      if (list === null || list === undefined || typeof list === 'string' || typeof list[Symbol.iterator] !== 'function') {
        throw new SqueError('invalid_input', `pushMany takes an array (or another iterable) of jobs, not ${show(list)}`);
      }
      if (options === null || typeof options !== 'object') {
        throw new SqueError('invalid_input', `pushMany's options must be an object such as {priority: 'high'}, not ${show(options)}`);
      }
      if (options.uniqueKey !== undefined) {
        throw new SqueError('invalid_input', 'pushMany takes no uniqueKey (one key would hold for every job): push each job with its own key');
      }
      const max = encodeAttempts(options.maxAttempts);
      const due = encodeDue(options);
      item = {
        kind: due ? 'schedule' : 'push',
        due,
        level: encodePriority(options.priority),
        jobs: Array.from(list, (params, i) => [encode(params, i), max]),
      };
    } catch (err) {
      return Promise.reject(err);
    }
    if (item.jobs.length === 0) return Promise.resolve([]);
    // Placed in the connection's lane now, so that it reaches Redis before any call this
    // process makes later, from this manager or any client: pushes of every kind (ready,
    // delayed, unique) keep the order they were made in, and so do their ids.
    return this.queue.con.lane.add(this, item);
  }

  // The lane's owner interface (lane.js): pushes go as soon as the queue is open, many at once.
  get busy() {
    return false;
  }

  /**
   * Pushes made together share a script call while they are of one kind (ready, or due at
   * the same time), share a priority and hold no more than a chunk; a unique push goes alone.
   */
  fits(items, item) {
    const first = items[0];
    return item.kind !== 'unique' && item.kind === first.kind && item.level === first.level && item.due === first.due
      && items.reduce((n, i) => n + i.jobs.length, item.jobs.length) <= PUSH_CHUNK;
  }

  /**
   * Issues the calls for the lane's entries (each item a list of [json, max] pairs, of one
   * kind and priority) at once: push, schedule (due later) or push_unique.
   */
  send(entries) {
    const limit = this.queue.settings.max_job_bytes;
    const good = [];
    for (const entry of entries) {
      const i = entry.item.jobs.findIndex(([json]) => Buffer.byteLength(json) > limit);
      if (i < 0) good.push(entry);
      else {
        const bytes = Buffer.byteLength(entry.item.jobs[i][0]);
        const which = entry.item.kind === 'unique' ? 'the job' : `job ${i + 1}`;
        entry.reject(new SqueError('too_large', `${which} is ${bytes} bytes of JSON, over the queue's limit of ${limit} bytes (max_job_bytes); nothing was pushed: keep large payloads elsewhere and push a reference`));
      }
    }
    if (good.length === 0) return;
    const { kind, level, due } = good[0].item;
    const k = this.queue.keys;
    if (kind === 'unique') {
      const keys = [k.meta, k.waitingAt(level), k.jobs, k.stats, k.requests, k.leases, k.workers, k.scheduled];
      // The new id, or 0 then this job's number (1) and the id of the job that holds its key.
      this.queue.con.script('push_unique', keys, good[0].item.args).then(
        (reply) => good[0].resolve(String(reply.length > 1 ? reply[2] : reply[0])),
        (err) => good[0].reject(err),
      );
      return;
    }
    let keys;
    if (kind === 'schedule') {
      keys = [k.meta, k.jobs, k.scheduled];
      if (level !== NORMAL_PRIORITY) keys.push(k.waitingAt(level));
    } else {
      keys = [k.meta, k.waitingAt(level), k.jobs, k.stats, k.requests, k.leases, k.workers];
    }
    const jobs = good.flatMap((e) => e.item.jobs);
    const calls = [];
    for (let i = 0; i < jobs.length; i += PUSH_CHUNK) {
      const chunk = jobs.slice(i, i + PUSH_CHUNK);
      const args = kind === 'schedule' ? chunk.flatMap(([json, max]) => [json, max, due]) : chunk.flat();
      calls.push(this.queue.con.script(kind, keys, args).then(Number));
    }
    // Ids are consecutive within a call; an entry's ids follow the entries before it.
    Promise.all(calls).then(
      (firsts) => {
        let at = 0;
        for (const e of good) {
          e.resolve(e.item.jobs.map((_, j) => {
            const n = at + j;
            return String(firsts[Math.floor(n / PUSH_CHUNK)] + (n % PUSH_CHUNK));
          }));
          at += e.item.jobs.length;
        }
      },
      (err) => {
        const settled = partly(calls, err);
        for (const e of good) e.reject(settled);
      },
    );
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
      if (Number(pending) === 0 && !error) {
        // The job is gone and left no error: it completed. The reads above are not one
        // transaction, so it may have completed after its result was read: read it again.
        const late = await this.queue.con.command(k.results, ['HGET', k.results, id]);
        return late !== null && late !== undefined ? JSON.parse(late) : null;
      }
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

  /**
   * Dispatches, reaps and promotes until close(), or until the queue comes to require a
   * feature this package does not serve (a `sque-host schedule add` after this manager
   * opened): the queue's `requires` is read again once a second (no script answers it), and
   * then this manager stops, with a warning (process.emitWarning, a SqueError of code
   * 'feature'), and goes on as one opened with {dispatch: false}.
   */
  startDispatching() {
    const k = this.queue.keys;
    this.dispatching = true;
    const on = () => this.dispatching && !this.closed;
    let running = false;
    let again = false;
    const dispatch = async () => {
      if (!on()) return;
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
            if (n < DISPATCH_BATCH || !on()) break;
          }
        } while (again && on());
      } catch {
        // Redis is away: the sweep tries again.
      } finally {
        running = false;
      }
      // The queue's rate limit held jobs back: dispatch again when it lets the next one go.
      clearTimeout(rateTimer);
      if (rateWait >= 0 && on()) rateTimer = setTimeout(dispatch, rateWait);
    };
    let rateTimer = null;
    this.stopRateTimer = () => clearTimeout(rateTimer);
    // Promotion: sleeps until the next scheduled job is due (as the script reports it, on
    // Redis's clock), at most PROMOTE_IDLE_MS; a `scheduled` message wakes it sooner.
    let promoting = false;
    let promoteTimer = null;
    const promote = async () => {
      if (promoting || !on()) return;
      promoting = true;
      clearTimeout(promoteTimer);
      let wait = PROMOTE_IDLE_MS;
      try {
        for (;;) {
          const [moved, nextDue] = (await this.queue.con.script('promote', [k.meta, k.scheduled, k.waiting, k.requests, k.jobs, k.leases, k.workers, k.stats], [PROMOTE_BATCH])).map(Number);
          if (moved < PROMOTE_BATCH || !on()) {
            if (nextDue >= 0) wait = Math.min(nextDue + 1, PROMOTE_IDLE_MS);
            break;
          }
        }
      } catch {
        // Redis is away: try again after the idle wait.
      } finally {
        promoting = false;
      }
      if (on()) promoteTimer = setTimeout(promote, wait);
    };
    this.stopPromoting = () => clearTimeout(promoteTimer);
    // The wake channel. A subscription that could not be made (Redis away) is tried again
    // by the check below; the sweep covers the wake-ups missed meanwhile.
    let subscribing = false;
    const subscribe = () => {
      if (subscribing || this.unsubscribe || !on()) return;
      subscribing = true;
      this.queue.con
        .subscribe(k.wake, (message) => {
          if (String(message) === 'scheduled') promote();
          dispatch();
        })
        .then((unsubscribe) => {
          if (on()) this.unsubscribe = unsubscribe;
          else unsubscribe();
        })
        .catch(() => {})
        .finally(() => {
          subscribing = false;
        });
    };
    subscribe();
    this.timers.push(setInterval(dispatch, SWEEP_MS));
    let reaping = false;
    const reap = async () => {
      if (reaping || !on()) return;
      reaping = true;
      try {
        for (;;) {
          const [expired, promoted, dropped, dead] = (await this.queue.con.script('reap', [k.meta, k.leases, k.waiting, k.delayed, k.deadAt, k.errors, k.stats, k.results, k.resultsAt, k.workers, k.requests, k.jobs, k.dead], [REAP_BATCH])).map(Number);
          if (Math.max(expired, promoted, dropped, dead) < REAP_BATCH || !on()) break;
        }
      } catch {
        // Redis is away: the next tick tries again.
      } finally {
        reaping = false;
      }
    };
    const every = Math.min(1000, Math.max(20, Math.floor(this.queue.settings.lease / 10)));
    this.timers.push(setInterval(reap, every));
    // The features the queue requires, as they may change after it opened.
    const check = async () => {
      subscribe();
      let requires;
      try {
        requires = await this.queue.con.command(k.meta, ['HGET', k.meta, 'requires']);
      } catch {
        return; // Redis is away: the next check reads it.
      }
      this.queue.requires = requires ? String(requires).split(',') : [];
      const refused = unserved(this.queue.name, this.queue.requires);
      if (refused && on()) {
        this.stopDispatching();
        refused.message += '; this manager stopped dispatching (its pushes still go)';
        process.emitWarning(refused);
      }
    };
    this.timers.push(setInterval(check, REQUIRES_CHECK_MS));
    dispatch();
    promote();
  }

  /** Stops dispatching, reaping and promoting; the manager still pushes. */
  stopDispatching() {
    this.dispatching = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.stopPromoting) this.stopPromoting();
    if (this.stopRateTimer) this.stopRateTimer();
    const unsubscribe = this.unsubscribe;
    this.unsubscribe = null;
    if (unsubscribe) return Promise.resolve(unsubscribe()).catch(() => {});
    return Promise.resolve();
  }

  /** Stops dispatching and reaping, and lets go of the connection. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    const stopped = this.stopDispatching();
    await this.ready.catch(() => {});
    await stopped;
    await this.queue.close();
  }
}

/**
 * Why a Node manager may not dispatch a queue that requires `requires`, or null. Cron
 * schedules are ticked, and follow-up jobs moved, by sque-host and the Rust manager only: a
 * Node manager that dispatched would leave them silent in a deployment of Node alone.
 */
function unserved(name, requires) {
  if (requires.includes('cron')) {
    return new SqueError('feature', `queue ${JSON.stringify(name)} has cron schedules, which this package does not run: run sque-host (or the Rust manager) on the queue, and open this manager with {dispatch: false}`);
  }
  if (requires.includes('children')) {
    return new SqueError('feature', `queue ${JSON.stringify(name)} has handlers that push follow-up jobs, which this package does not move: run sque-host (or the Rust manager) on the queue, and open this manager with {dispatch: false}`);
  }
  return null;
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
  // JSON.stringify writes NaN and the infinities as null, silently: refused, as a value no
  // JSON holds, rather than handed to a worker changed. Only data whose text has a null can
  // hold one, so most jobs are not walked for it.
  if (json.includes('null')) {
    const found = nonFinite(params);
    if (found !== undefined) {
      throw new SqueError('invalid_input', `job ${i + 1} holds ${found}${found === 'NaN' ? '' : ' (an infinity)'}, which JSON cannot hold: JSON.stringify would make it null; use null, a string or a finite number`);
    }
  }
  if (loneSurrogate(json)) {
    throw new SqueError('invalid_input', `job ${i + 1} holds a string with a lone UTF-16 surrogate (half of a character, e.g. a string cut in the middle of an emoji), which is not text: a worker of another language cannot read it; cut strings on whole characters (Array.from(string))`);
  }
  return json;
}

/**
 * Whether JSON text (as JSON.stringify writes it) holds a lone surrogate: JSON.stringify
 * writes one as an escape (`\ud83d`, since Node 12) and a paired one as the character
 * itself, so any escape of a surrogate in its text is a lone one. An escape is one whose
 * backslash is not itself escaped (an even number of backslashes before it). Text without
 * any `\u` escape (nearly all) is not searched further.
 */
function loneSurrogate(json) {
  return json.includes('\\u') && LONE_SURROGATE_ESCAPE.test(json);
}
const LONE_SURROGATE_ESCAPE = /(?<!\\)(?:\\\\)*\\ud[89a-f]/i;

/** A number in `value` that JSON cannot hold (NaN, Infinity, -Infinity), as text; or undefined. */
function nonFinite(value) {
  const stack = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return String(v);
    } else if (v !== null && typeof v === 'object' && typeof v.toJSON !== 'function') {
      // (An object with toJSON, a Date, is written as toJSON makes it, not as its values.)
      for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push(child);
    }
  }
  return undefined;
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

/** A value as a message shows it (JSON.stringify gives nothing for some, and throws for others). */
function show(v) {
  try {
    const json = JSON.stringify(v);
    return json === undefined ? String(v) : json;
  } catch {
    return typeof v;
  }
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

module.exports = { Manager, depth, loneSurrogate, parseRecord };
