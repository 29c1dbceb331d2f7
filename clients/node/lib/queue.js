'use strict';
// An opened queue: its keys (docs/PROTOCOL.md, "Keys of one queue"), its settings as Redis
// holds them, and the shared connection. `open` creates the queue or joins it, writing its
// settings the first time (the package's defaults, or those given), as every sque does.

const bundle = require('./bundle');
const { Connection } = require('./connection');
const { SqueError } = require('./errors');

/** Checks a queue name: 1 to 200 bytes, not `.` or `..`, no whitespace or control characters, none of {}*?[]. */
function validateName(what, name) {
  let reason = null;
  if (typeof name !== 'string' || name.length === 0) reason = 'it is empty';
  else if (Buffer.byteLength(name) > 200) reason = `it is ${Buffer.byteLength(name)} bytes long, the limit is 200`;
  // In a URL (the dashboard's /api/queues/NAME/...) these are steps of the path.
  else if (name === '.' || name === '..') reason = 'it is a path step, which a URL cannot name; use letters, digits and - _ . : / only, not . or .. alone';
  else {
    const bad = [...name].find((c) => /[\s\p{Cc}{}*?[\]]/u.test(c));
    if (bad) reason = `it contains ${JSON.stringify(bad)}; use letters, digits and - _ . : / only`;
  }
  if (reason) {
    throw new SqueError(what === 'queue' ? 'invalid_queue_name' : 'invalid_input', `invalid ${what} name ${JSON.stringify(name)}: ${reason}`);
  }
}

/** The priority of a job pushed without one; levels go from 0 (low) to 9 (high). */
const NORMAL_PRIORITY = 5;

function keysOf(prefix, queue) {
  const base = `${prefix}:{${queue}}:`;
  const k = (n) => base + n;
  return {
    queue,
    base,
    meta: k('meta'),
    waiting: k('waiting'),
    jobs: k('jobs'),
    stats: k('stats'),
    requests: k('requests'),
    leases: k('leases'),
    workers: k('workers'),
    delayed: k('delayed'),
    scheduled: k('scheduled'),
    deadAt: k('dead_at'),
    dead: k('dead'),
    errors: k('errors'),
    results: k('results'),
    resultsAt: k('results_at'),
    cancelled: k('cancelled'),
    wake: k('wake'),
    inbox: (w) => `${base}inbox:${w}`,
    /** The list jobs of priority `level` wait in: `waiting` for 5 (normal), else `waiting:L`. */
    waitingAt: (level) => (level === NORMAL_PRIORITY ? base + 'waiting' : `${base}waiting:${level}`),
    registry: `${prefix}:queues`,
  };
}

/** The settings a caller gives, in meta's units (camelCase or snake_case names). */
const SETTING_NAMES = {
  lease: 'lease', inboxTtl: 'inbox_ttl', maxAttempts: 'max_attempts', maxJobBytes: 'max_job_bytes',
  backoff: 'backoff', backoffMax: 'backoff_max', resultTtl: 'result_ttl', resultMax: 'result_max',
  deadMax: 'dead_max', deadTtl: 'dead_ttl', maxResultBytes: 'max_result_bytes', maxErrorBytes: 'max_error_bytes',
  maxInFlight: 'max_in_flight', rateCount: 'rate_count', ratePeriod: 'rate_period', rateBurst: 'rate_burst',
};

/** The settings that are durations (ms); the others are bytes or counts. */
const DURATIONS = ['lease', 'inbox_ttl', 'backoff', 'backoff_max', 'result_ttl', 'dead_ttl', 'rate_period'];
/** The longest a duration may be: 100 years in ms, as the Rust library's LONGEST_DURATION. */
const LONGEST_DURATION_MS = 100 * 365 * 24 * 3600 * 1000;
/** The largest job or result: Redis's largest string, 512 MiB. */
const MAX_JOB_BYTES_CEILING = 512 * 1024 * 1024;
/** The most attempts a job may have: its token holds them in 9 digits (ID|ATTEMPT|MAX). */
const MAX_ATTEMPTS = 999999999;

/**
 * The settings a caller gives, in meta's units, checked as the Rust library's
 * `QueueSettings::validate` checks them (with the defaults of those not given), so that a
 * queue is never created with settings that cannot work together: nothing is written until
 * they pass. Each message names the setting and says what to give instead.
 */
function settingsFrom(options) {
  const given = {};
  for (const [camel, field] of Object.entries(SETTING_NAMES)) {
    const v = options[camel] ?? options[field];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new SqueError('invalid_input', `${camel} must be a whole number (milliseconds, bytes or a count) from 0 to ${Number.MAX_SAFE_INTEGER}, not ${show(v)}`);
    }
    given[field] = v;
  }
  validateSettings(settingsOf(given));
  return given;
}

/** The settings a queue created with `given` gets: the defaults where none is given. */
function settingsOf(given) {
  const settings = { ...bundle.DEFAULT_SETTINGS, ...given };
  if (given.lease !== undefined && given.inbox_ttl === undefined) {
    // A dead worker's inbox expires; a live one is emptied at once.
    settings.inbox_ttl = Math.max(given.lease * 4, 60000);
  }
  return settings;
}

/** Refuses settings that cannot work together (queue/src/settings.rs, `validate`). */
function validateSettings(s) {
  const bad = (what) => {
    throw new SqueError('invalid_input', what);
  };
  const name = (field) => Object.keys(SETTING_NAMES).find((camel) => SETTING_NAMES[camel] === field);
  for (const field of DURATIONS) {
    if (s[field] > LONGEST_DURATION_MS) {
      bad(`${name(field)} of ${s[field]} ms is over the longest allowed, 100 years (${LONGEST_DURATION_MS} ms)${field === 'inbox_ttl' ? ' (it is 4 leases unless given: give a shorter lease, or an inboxTtl)' : ''}`);
    }
  }
  if (s.lease < 100) bad(`lease must be at least 100 ms, not ${s.lease}`);
  if (s.result_ttl < 1) bad('resultTtl must be at least 1 ms (to keep no results, set resultMax to 0)');
  if (s.inbox_ttl < s.lease) bad(`inboxTtl (${s.inbox_ttl} ms) must be at least the lease (${s.lease} ms): a worker's inbox must outlive the leases of the jobs in it`);
  if (s.max_attempts < 1 || s.max_attempts > MAX_ATTEMPTS) bad(`maxAttempts must be 1 to ${MAX_ATTEMPTS}, not ${s.max_attempts}`);
  if (s.max_job_bytes < 1 || s.max_job_bytes > MAX_JOB_BYTES_CEILING) {
    bad(`maxJobBytes must be 1 to ${MAX_JOB_BYTES_CEILING} (Redis's largest string), not ${s.max_job_bytes}`);
  }
  if (s.max_result_bytes > MAX_JOB_BYTES_CEILING) {
    bad(`maxResultBytes must be at most ${MAX_JOB_BYTES_CEILING} (Redis's largest string), not ${s.max_result_bytes}`);
  }
  if (s.max_error_bytes < 64) bad(`maxErrorBytes must be at least 64, not ${s.max_error_bytes}`);
  if (s.rate_count > 0 && s.rate_period < 1) bad(`the rate limit's period (ratePeriod) must be at least 1 ms, not ${s.rate_period}`);
  if (s.backoff < 1 || s.backoff_max < s.backoff) {
    bad(`backoff (${s.backoff} ms) must be at least 1 ms and no larger than backoffMax (${s.backoff_max} ms): give a smaller backoff or a larger backoffMax`);
  }
}

/** A value as a message shows it (JSON.stringify gives nothing for some, and throws for others). */
function show(v) {
  try {
    return typeof v === 'number' || typeof v === 'bigint' ? String(v) : String(JSON.stringify(v));
  } catch {
    return typeof v;
  }
}

class Queue {
  /**
   * @param {string} name
   * @param {object} options {redis: {url, ...}, prefix, settings..., redisModule}
   */
  constructor(name, options = {}) {
    validateName('queue', name);
    if (options === null || typeof options !== 'object') {
      throw new SqueError('invalid_input', `the options must be an object such as {redis: {url}}, not ${show(options)}`);
    }
    const prefix = options.prefix || 'sque';
    validateName('prefix', prefix);
    this.name = name;
    this.keys = keysOf(prefix, name);
    this.given = settingsFrom(options);
    this.con = Connection.acquire(options.redis || {}, options.redisModule);
    this.ready = this.open();
    // A failure is reported by the call that awaits it, not as an unhandled rejection.
    this.ready.catch(() => {});
  }

  async open() {
    await this.con.ready;
    const settings = settingsOf(this.given);
    const args = Object.entries(settings).flat();
    const flat = await this.con.script('open', [this.keys.meta], args);
    await this.con.command(this.keys.registry, ['SADD', this.keys.registry, this.name]);
    const meta = {};
    for (let i = 0; i < flat.length; i += 2) meta[flat[i]] = flat[i + 1];
    this.settings = {};
    for (const field of Object.keys(bundle.DEFAULT_SETTINGS)) this.settings[field] = Number(meta[field]);
    /** The features the queue uses (its meta's `requires`), e.g. ['delay', 'cron']. */
    this.requires = meta.requires ? String(meta.requires).split(',') : [];
    for (const [field, value] of Object.entries(this.given)) {
      if (this.settings[field] !== value) {
        process.emitWarning(`sque: this program's ${field} is ${value}, queue ${JSON.stringify(this.name)}'s is ${this.settings[field]}: using the queue's (change it with \`sque-host queue config\`)`);
      }
    }
    return this;
  }

  async close() {
    await this.con.release();
  }
}

module.exports = { Queue, validateName, NORMAL_PRIORITY };
