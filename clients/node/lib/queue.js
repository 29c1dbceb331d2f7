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

function settingsFrom(options) {
  const given = {};
  for (const [camel, field] of Object.entries(SETTING_NAMES)) {
    const v = options[camel] ?? options[field];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 0) {
      throw new SqueError('invalid_input', `${camel} must be a whole number (milliseconds, bytes or a count), not ${JSON.stringify(v)}`);
    }
    given[field] = v;
  }
  if (given.lease !== undefined && given.lease < 100) throw new SqueError('invalid_input', 'lease must be at least 100 ms');
  if (given.max_attempts !== undefined && given.max_attempts < 1) throw new SqueError('invalid_input', 'maxAttempts must be at least 1');
  return given;
}

class Queue {
  /**
   * @param {string} name
   * @param {object} options {redis: {url, ...}, prefix, settings..., redisModule}
   */
  constructor(name, options = {}) {
    validateName('queue', name);
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
    const settings = { ...bundle.DEFAULT_SETTINGS, ...this.given };
    if (this.given.lease !== undefined && this.given.inbox_ttl === undefined) {
      settings.inbox_ttl = Math.max(this.given.lease * 4, 60000);
    }
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
