'use strict';
// The worker's side, as the original design has it: `new sque.client(queName, options)` and
// `client.iAmFree([id], done(error, jobData))`, with a Promise form: `await client.iAmFree(id)`
// resolves to a Job whose lease is renewed until `complete`, `fail` or `release` is called.
//
// A client is one worker identity (from the queue's `meta.workers_seq`). Its requests and
// completions go to Redis together in one `exchange` call when they come together (a job
// completed and the next one asked for cost one round trip); jobs handed out at once come
// back in the reply, the others through the worker's inbox (a blocking pop on a connection
// of its own). Every third of the queue's lease it renews the leases it holds and its
// heartbeat. The truth is in Redis: a client that dies loses nothing, its jobs come back
// when their leases run out.

const { Queue } = require('./queue');
const { SqueError } = require('./errors');
const { depth, loneSurrogate, parseRecord } = require('./manager');

const MAX_BATCH = 256;
const POP_WAIT_SECS = 1;
const POP_COUNT = 128;
const decoder = new TextDecoder('utf-8', { fatal: true });

class Job {
  constructor(client, delivery) {
    this.id = delivery.id;
    this.queue = client.queue.name;
    this.data = delivery.data;
    /** 1 on the first delivery, one more on each later one. */
    this.attempt = delivery.attempt;
    /** The id given to iAmFree, if any. */
    this.requestId = undefined;
    /** The fencing token of this delivery. */
    this.token = delivery.token;
    /**
     * How long the job waited in the queue, from its push to this delivery (ms, Redis's
     * clock), for a client opened with {measureWaits: true}; undefined for a retry, or when
     * the queue no longer kept its push time.
     */
    this.waited = delivery.waited;
    /** Whether complete, fail or release was called. */
    this.ended = false;
    this._client = client;
  }

  /** Marks the job done, keeping `result` (any JSON) readable by its id for a while. */
  complete(result) {
    return this._client._end(this, () => this._client._complete(this, result));
  }

  /**
   * Reports a failure: retried after a backoff (dead once out of attempts), or with
   * `{permanent: true}` straight to the dead list. Resolves to {retryAfterMs} or {dead: true}.
   */
  fail(error, options = {}) {
    // Refused before the job counts as ended: it stays held, and a corrected call may follow.
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      return Promise.reject(new SqueError('invalid_input', `fail's options must be an object such as {permanent: true}, not ${describeType(options)}`));
    }
    const { permanent = false, code } = options;
    // As the Rust client checks it: a word, and not the queue's own mark of data no worker can
    // be given (a dead job of code `poison` is never retried).
    if (code !== undefined && (typeof code !== 'string' || !/^[a-z_]{1,32}$/.test(code) || code === 'poison')) {
      return Promise.reject(new SqueError('invalid_input', `a failure's code is a word of 1 to 32 lowercase letters and underscores (retry, timeout, ...), and not "poison" (the queue's own): not ${describeType(code)}`));
    }
    return this._client._end(this, () => this._client._fail(this, error, permanent, code));
  }

  /** Gives the job back to the head of the queue without counting the attempt. */
  release() {
    return this._client._end(this, () => this._client._release(this));
  }
}

class Client {
  /**
   * @param {string} queName
   * @param {object} [options] {redis: {url, ...}, prefix, redisModule, measureWaits (jobs say
   *   how long they waited since their push: `job.waited`; costs Redis about a microsecond a
   *   job while a client that asks for it runs)}
   */
  constructor(queName, options = {}) {
    this.queue = new Queue(queName, options);
    /** 1 when this client's jobs say how long they waited (a flag of renew.lua's ARGV[3]). */
    this.measureWaits = options.measureWaits === true ? 1 : 0;
    /** Whether a pop of the inbox failed since the last renewal (see readInbox). */
    this.popLost = false;
    this.closed = false;
    this.seq = 0;
    /** @type {Map<number, {requestId?: string, waiters: Array<{promise: Promise, resolve: Function, reject: Function}>}>} */
    this.pending = new Map();
    /** @type {Map<string, Job>} jobs delivered and not yet acknowledged, by token */
    this.held = new Map();
    /** @type {Map<string, {seq?: number, token?: string}>} the caller's request ids */
    this.byRequestId = new Map();
    /** Whether the client has joined (the lane's owner interface, lane.js). */
    this.opened = false;
    /** Whether an exchange call is in flight (the lane holds this client's next items). */
    this.busy = false;
    /** Aborted by close(): gives up the inbox connection being made, if any. */
    this.leaving = new AbortController();
    this.ready = this.queue.ready.then(async () => {
      const k = this.queue.keys;
      this.workerId = String(await this.queue.con.command(k.meta, ['HINCRBY', k.meta, 'workers_seq', 1]));
      this.lease = this.queue.settings.lease;
      // The heartbeat is written here, before the first exchange: only a renewal writes it
      // (lua/exchange.lua says why). No requests are named:
      // those asked for already are not stored yet, and their exchange stores them.
      await this.queue.con.script('renew', [k.meta, k.leases, k.workers, k.requests], [this.workerId, this.measureWaits, 0]);
      this.inbox = this.readInbox();
      this.scheduleRenewal();
      this.opened = true;
      return this;
    });
    this.ready.catch(() => {});
  }

  /**
   * Asks for a job. With a callback, `done(error, jobData, job)` gets the job's data: the job
   * is completed when `done` returns (or the Promise it returns resolves, with its value as
   * the result), and failed when it throws or rejects. Without one, resolves to the Job.
   * With `id`, asking again with the id of a request still open, or of a job still held,
   * gives that same job, not a second one.
   */
  iAmFree(id, done) {
    if (typeof id === 'function') {
      done = id;
      id = undefined;
    }
    // Checked before anything is asked: a callback that cannot be called would fail every
    // job it is given until they are dead.
    if (done !== undefined && done !== null && typeof done !== 'function') {
      throw new SqueError('invalid_input', `iAmFree's callback must be a function (error, jobData, job) => ..., not ${describeType(done)}; leave it out for the Promise form`);
    }
    const asked = this._ask(id);
    if (!done) return asked;
    asked.then(
      (job) => this._run(job, done),
      (err) => done(err),
    );
    return undefined;
  }

  /**
   * Runs `handler(data, job)` on every job, `concurrency` at a time, until `close()`: each
   * job is completed with the handler's return value, or failed with what it threw. The next
   * request travels with the completion. Returns when the client closes.
   */
  async process(handler, options = {}) {
    if (typeof handler !== 'function') {
      throw new SqueError('invalid_input', `process takes a handler function (data, job) => result, not ${describeType(handler)}`);
    }
    if (options === null || typeof options !== 'object') {
      throw new SqueError('invalid_input', `process's options must be an object such as {concurrency: 4}, not ${describeType(options)}`);
    }
    const { concurrency = 1 } = options;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new SqueError('invalid_input', `concurrency must be a whole number of at least 1, not ${JSON.stringify(concurrency)}`);
    }
    const loop = async () => {
      let next = this._ask(undefined);
      while (!this.closed) {
        let job;
        try {
          job = await next;
        } catch (err) {
          if (this.closed || (err && err.code === 'closed')) return;
          await sleep(100);
          next = this._ask(undefined);
          continue;
        }
        const { ack } = await this._handle(job, (error, data) => handler(data, job));
        ack.catch(() => {});
        if (this.closed) return;
        // Asked in the same tick as the completion: both go in one exchange call.
        next = this._ask(undefined);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
  }

  /** The jobs this client holds (delivered, not yet acknowledged). */
  get heldCount() {
    return this.held.size;
  }

  /** Runs `end` unless the job was already ended: a job is acknowledged once. */
  _end(job, end) {
    if (job.ended) {
      return Promise.reject(new SqueError('invalid_input', `job ${job.id} was already completed, failed or released`));
    }
    job.ended = true;
    const answer = end();
    // A call that Redis answered (done, stale, cancelled) forgets the job. One that got no
    // answer (Redis away: code 'unavailable') or that was refused for what it carries (a
    // result that is not JSON) leaves it held, its lease renewed, as the Rust client does:
    // the job is still the caller's to end, so it may call again (a completion that did
    // reach Redis is then refused as stale, and changes nothing).
    answer.catch(() => {
      if (this.held.has(job.token)) job.ended = false;
    });
    return answer;
  }

  /**
   * Lets go of a job whose acknowledgement failed without an answer, for the forms that end
   * jobs themselves (process and the callback form: nobody is left to call again). Its lease
   * is no longer renewed, so it runs out and the job comes back, as after a worker's death
   * (sque-host does the same).
   */
  _letGo(job, ack) {
    return ack.catch((err) => {
      if (!job.ended && this.held.has(job.token)) this._forget(job.token);
      throw err;
    });
  }

  /** Runs `done` on a job and acknowledges it; the callback form of iAmFree. */
  async _run(job, done) {
    const { ack } = await this._handle(job, done);
    await ack.catch(() => {});
  }

  /**
   * Runs `done(null, data, job)` and then acknowledges the job: completed with the value
   * it returned (or resolved to), failed with what it threw (or rejected with). Resolves,
   * once the acknowledgement is on its way, to `{ack}`: the Promise of its answer.
   */
  async _handle(job, done) {
    let value;
    try {
      value = await done(null, job.data, job);
    } catch (err) {
      return { ack: job.ended ? Promise.resolve() : this._letGo(job, job.fail(thrown(err))) };
    }
    if (job.ended) return { ack: Promise.resolve() };
    try {
      encodeResult(value);
    } catch (err) {
      return { ack: this._letGo(job, job.fail(err.message, { permanent: true, code: 'bad_result' })) };
    }
    return { ack: this._letGo(job, job.complete(value)) };
  }

  /**
   * Makes a request, placing it in the connection's lane at once (never after an await: the
   * order of requests is the order of the calls). Resolves to the Job that answers it.
   */
  _ask(requestId) {
    if (requestId !== undefined && (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > 200)) {
      return Promise.reject(new SqueError('invalid_input', `a request id must be a string of 1 to 200 characters, not ${JSON.stringify(requestId)}`));
    }
    if (this.closed) return Promise.reject(new SqueError('closed', 'the client was closed'));
    if (requestId !== undefined) {
      const slot = this.byRequestId.get(requestId);
      if (slot && slot.token && this.held.has(slot.token)) return Promise.resolve(this.held.get(slot.token));
      if (slot && slot.seq !== undefined && this.pending.has(slot.seq)) {
        const { promise, waiter } = waiting();
        this.pending.get(slot.seq).waiters.push(waiter);
        return promise;
      }
    }
    const seq = ++this.seq;
    const { promise: answer, waiter } = waiting();
    this.pending.set(seq, { requestId, waiters: [waiter] });
    if (requestId !== undefined) this.byRequestId.set(requestId, { seq });
    this._submit({ ask: seq }).catch((err) => this._endRequest(seq, err));
    return answer;
  }

  _endRequest(seq, err) {
    const p = this.pending.get(seq);
    if (!p) return;
    this.pending.delete(seq);
    if (p.requestId !== undefined) this.byRequestId.delete(p.requestId);
    for (const w of p.waiters) {
      // A request withdrawn by close() is no error of the caller's: a Promise nobody awaits
      // any more must not bring the process down as an unhandled rejection.
      if (err.code === 'closed') w.promise.catch(() => {});
      w.reject(err);
    }
  }

  async _complete(job, result) {
    const json = encodeResult(result);
    const held = await this._submit({ complete: job.token, result: json });
    this._forget(job.token);
    if (held === 1) return;
    if (held === 2) {
      throw new SqueError('too_large', `job ${job.id}: the result is over the queue's max_result_bytes; nothing was kept and the job went to the dead list`);
    }
    if (held === 3) throw cancelled(job);
    throw stale(job);
  }

  async _fail(job, error, permanent, code) {
    const k = this.queue.keys;
    const message = error instanceof Error ? text(error.message) : text(error);
    const delay = Number(
      await this.queue.con.script('fail', [k.meta, k.leases, k.delayed, k.deadAt, k.errors, k.stats, k.jobs], [
        job.token, code || (permanent ? 'fail' : 'retry'), message, permanent ? '1' : '0',
      ]),
    );
    this._forget(job.token);
    if (delay === -2) throw cancelled(job);
    if (delay < 0) throw stale(job);
    return delay === 0 ? { dead: true } : { retryAfterMs: delay };
  }

  async _release(job) {
    const k = this.queue.keys;
    const released = Number(await this.queue.con.script('release', [k.meta, k.leases, k.waiting, k.requests], [job.token]));
    this._forget(job.token);
    if (released !== 1) throw stale(job);
  }

  _forget(token) {
    const job = this.held.get(token);
    this.held.delete(token);
    if (job && job.requestId !== undefined) {
      const slot = this.byRequestId.get(job.requestId);
      if (slot && slot.token === token) this.byRequestId.delete(job.requestId);
    }
  }

  /**
   * Places an item (an ask `{ask: seq}` or a completion `{complete: token, result}`) in the
   * connection's lane; resolves to its answer: `true` for an ask (its job comes through
   * `pending`), 1/0/2 for a completion.
   */
  _submit(item) {
    return this.queue.con.lane.add(this, item);
  }

  // The lane's owner interface (lane.js): one exchange call in flight at a time; what comes
  // meanwhile goes together in the next one, up to MAX_BATCH items.
  fits(items, item) {
    return items.length < MAX_BATCH && item.leave === undefined && items[0].leave === undefined;
  }

  send(entries) {
    this.busy = true;
    this._exchange(entries.map((e) => e.item)).then(
      (answers) => entries.forEach((e, i) => (answers[i] instanceof Error ? e.reject(answers[i]) : e.resolve(answers[i]))),
      (err) => entries.forEach((e) => e.reject(err)),
    ).finally(() => {
      this.busy = false;
      this.queue.con.lane.kick();
    });
  }

  /**
   * One exchange call for `items`; resolves to one answer per item. A call Redis refuses
   * for what it carries (not for being away), e.g. a result over proto-max-bulk-len, is
   * made again item by item, so that only the item at fault fails.
   */
  async _exchange(items) {
    const k = this.queue.keys;
    if (items[0].leave !== undefined) {
      const seqs = items[0].leave;
      await this.queue.con.script('leave', [k.meta, k.requests, k.workers, k.leases, k.waiting, k.inbox(this.workerId)], [
        this.workerId, seqs.length, ...seqs.map((seq) => `${this.workerId}:${seq}`),
      ]);
      return [true];
    }
    // Asks withdrawn before they were sent (the client closed) are not sent.
    const gone = items.filter((i) => i.ask !== undefined && !this.pending.has(i.ask));
    if (gone.length > 0) {
      const sent = items.filter((i) => !gone.includes(i));
      const answers = sent.length > 0 ? await this._exchange(sent) : [];
      return items.map((i) => (gone.includes(i) ? new SqueError('closed', 'the client was closed') : answers[sent.indexOf(i)]));
    }
    const completions = items.filter((i) => i.complete !== undefined);
    const args = [this.workerId, completions.length];
    for (const c of completions) args.push(c.complete, c.result === undefined ? '0' : '1', c.result === undefined ? '' : c.result);
    for (const i of items) if (i.ask !== undefined) args.push(`${this.workerId}:${i.ask}`);
    const keys = [k.meta, k.requests, k.waiting, k.workers, k.jobs, k.leases, k.stats, k.errors, k.results, k.resultsAt];
    let reply;
    try {
      reply = await this.queue.con.script('exchange', keys, args, { binary: true });
    } catch (err) {
      if (items.length === 1 || err.code === 'unavailable' || err.code === 'protocol' || err.code === 'no_such_queue') throw err;
      return Promise.all(items.map((i) => this._exchange([i]).then((a) => a[0], (e) => e)));
    }
    const [held, delivered] = reply;
    this._accept(delivered);
    let h = 0;
    return items.map((i) => (i.complete !== undefined ? Number(held[h++]) : true));
  }

  /** Routes deliveries (Buffers) to their requests; poison is buried and the request asked again. */
  _accept(entries) {
    for (const entry of entries || []) {
      const d = parseDelivery(entry);
      if (!d) continue;
      if (d.problem) {
        this._buryPoison(d);
        continue;
      }
      const job = new Job(this, d);
      const p = this.pending.get(d.request);
      if (!p || p.waiters.length === 0) {
        this._release(job).catch(() => {});
        continue;
      }
      this.pending.delete(d.request);
      job.requestId = p.requestId;
      this.held.set(job.token, job);
      if (p.requestId !== undefined) this.byRequestId.set(p.requestId, { token: job.token });
      for (const w of p.waiters) w.resolve(job);
    }
  }

  _buryPoison(d) {
    const k = this.queue.keys;
    this.queue.con
      .script('poison', [k.meta, k.leases, k.deadAt, k.errors, k.stats, k.jobs], [d.token, d.problem])
      .catch(() => {})
      .then(() => {
        if (this.pending.has(d.request) && !this.closed) {
          this._submit({ ask: d.request }).catch((err) => this._endRequest(d.request, err));
        }
      });
  }

  async readInbox() {
    const inbox = this.queue.keys.inbox(this.workerId);
    let con = null;
    while (!this.closed) {
      try {
        // close() aborts a connection still being made (Redis away): it does not wait for it.
        if (!con) con = await this.queue.con.blocking(this.leaving.signal);
        const popped = await con.call(['BLMPOP', POP_WAIT_SECS, 1, inbox, 'LEFT', 'COUNT', POP_COUNT], inbox);
        if (popped) this._accept(popped[1]);
      } catch {
        // The pop may have taken deliveries whose answer never came: their jobs come back
        // when their leases run out, but the requests they answered would be answered by
        // nothing. The next renewal stores every open request again.
        this.popLost = true;
        if (con) await con.close().catch(() => {});
        con = null;
        if (!this.closed) await sleep(50 + Math.random() * 200);
      }
    }
    if (con) await con.close().catch(() => {});
  }

  scheduleRenewal() {
    if (this.closed) return;
    this.renewTimer = setTimeout(async () => {
      await this.renew().catch(() => {});
      this.scheduleRenewal();
    }, Math.max(33, Math.floor(this.lease / 3)));
  }

  async renew() {
    const k = this.queue.keys;
    const tokens = [...this.held.keys()];
    const requests = [...this.pending.keys()].map((s) => `${this.workerId}:${s}`);
    // renew.lua's flags: 1 when jobs say how long they waited, 2 to store the requests again.
    const restore = this.popLost;
    this.popLost = false;
    let reply;
    try {
      reply = await this.queue.con.script('renew', [k.meta, k.leases, k.workers, k.requests], [this.workerId, this.measureWaits + (restore ? 2 : 0), tokens.length, ...tokens, ...requests]);
    } catch (err) {
      if (restore) this.popLost = true;
      throw err;
    }
    const [, lease, stale] = reply;
    this.lease = Number(lease) || this.lease;
    for (const token of stale || []) this._forget(String(token));
  }

  /**
   * Leaves the queue cleanly: open requests are withdrawn (their callers see code "closed"),
   * jobs in the inbox go back to the queue, the heartbeat is dropped, the connection let go.
   * Jobs still held keep their leases until they run out: complete or release them first.
   */
  async close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.renewTimer);
    this.leaving.abort();
    try {
      await this.ready;
    } catch {
      await this.queue.close();
      return;
    }
    const seqs = [...this.pending.keys()];
    const closed = new SqueError('closed', 'the client was closed');
    for (const seq of seqs) this._endRequest(seq, closed);
    // Through the lane: after every exchange this client made before, so that nothing it
    // asked for is stored after it has left.
    await this._submit({ leave: seqs }).catch(() => {});
    await this.inbox;
    await this.queue.close();
  }
}

/** A result as exchange takes it: JSON text, or undefined for none. */
function encodeResult(result) {
  if (result === undefined || result === null) return undefined;
  let json;
  try {
    json = JSON.stringify(result);
  } catch (e) {
    throw new SqueError('invalid_input', `the handler's result is not valid JSON: ${e.message}`);
  }
  if (json === undefined) throw new SqueError('invalid_input', "the handler's result is not valid JSON (a function, a symbol or undefined)");
  if (depth(result) >= 128) throw new SqueError('invalid_input', "the handler's result is nested 128 levels deep or more; the most allowed is 127");
  // A reader of another language (manager.wait in Rust, sque-host job show) cannot parse it.
  if (loneSurrogate(json)) {
    throw new SqueError('invalid_input', "the handler's result holds a string with a lone UTF-16 surrogate (half of a character), which is not text: cut strings on whole characters (Array.from(string))");
  }
  return json;
}

/**
 * Text for any value, as String() gives it, for values String() cannot convert too (an
 * object without a prototype, one whose toString throws, a Symbol's description): a failure
 * is recorded whatever was thrown, never left unacknowledged by a TypeError.
 */
function text(value) {
  try {
    return String(value);
  } catch {
    // Not convertible: as JSON, else by its type.
  }
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
    return Object.prototype.toString.call(value);
  } catch {
    return 'a value that cannot be shown as text';
  }
}

/** A value's kind, for messages about an argument of the wrong type. */
function describeType(value) {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return `${typeof value} ${text(value)}`;
}

/** What a handler threw, as the failure's message: `Name: message` for an Error. */
function thrown(err) {
  try {
    if (err instanceof Error) return `${text(err.name)}: ${text(err.message)}`;
  } catch {
    // A getter that throws: shown as a value like any other.
  }
  return text(err);
}

function cancelled(job) {
  return new SqueError('cancelled', `job ${job.id} (attempt ${job.attempt}) was cancelled: stop working on it; this call was refused and changed nothing`);
}

function stale(job) {
  return new SqueError('stale_lease', `job ${job.id} (attempt ${job.attempt}): the lease ran out and the job has moved on; this call was refused and changed nothing`);
}

/**
 * A delivery: `{"r":"SEQ","t":"ID|ATTEMPT|MAX","d":DATA}`, or with `"w":MS` (its wait) before
 * the data (docs/PROTOCOL.md, "Wire forms"), read from its fixed prefix without parsing the data first, so that data which is not JSON
 * does not hide the token; an envelope in another key order is read as JSON. Returns null
 * for an envelope that cannot be read (nothing can be done for it but let its lease run
 * out), and a delivery with `problem` set when its data cannot be given to a worker.
 */
function parseDelivery(entry) {
  const buf = Buffer.isBuffer(entry) ? entry : Buffer.from(String(entry));
  let request;
  let token;
  let waited;
  let raw;
  const head = buf.subarray(0, 128).toString('latin1');
  const m = /^\{"r":"([^"]*)","t":"([^"]*)",(?:"w":(\d{1,15}),)?"d":/.exec(head);
  if (m && buf[buf.length - 1] === 0x7d) {
    [, request, token, waited] = m;
    raw = buf.subarray(m[0].length, buf.length - 1);
  } else {
    try {
      const e = JSON.parse(buf.toString('utf8'));
      if (typeof e.r !== 'string' || typeof e.t !== 'string' || !('d' in e)) return null;
      if ('w' in e && !(Number.isSafeInteger(e.w) && e.w >= 0)) return null;
      request = e.r;
      token = e.t;
      waited = e.w;
      raw = Buffer.from(JSON.stringify(e.d));
    } catch {
      return null;
    }
  }
  const t = /^(\d{1,20})\|(\d{1,9})\|(\d{1,9})$/.exec(token);
  if (!/^\d{1,20}$/.test(request) || !t) return null;
  const d = { request: Number(request), token, id: t[1], attempt: Number(t[2]) };
  if (waited !== undefined) d.waited = Number(waited);
  try {
    d.data = JSON.parse(decoder.decode(raw));
    if (depth(d.data) >= 128) d.problem = 'data is nested 128 levels deep or more; the most allowed is 127';
  } catch (e) {
    d.problem = e instanceof TypeError ? 'data is not valid UTF-8' : `data is not valid JSON: ${e.message}`;
  }
  return d;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A Promise and its waiter ({promise, resolve, reject}), for a request's callers. */
function waiting() {
  const waiter = {};
  waiter.promise = new Promise((resolve, reject) => {
    waiter.resolve = resolve;
    waiter.reject = reject;
  });
  return { promise: waiter.promise, waiter };
}

module.exports = { Client, Job, parseDelivery, parseRecord };
