// The sque guest SDK for JavaScript: write a job handler as one wrapped function.
//
//   import { handler, Fail, info } from 'sque-guest';
//
//   export const handle = handler(async (job) => {
//     const mail = job.json();                      // the job's data; not JSON: Fail
//     if (!mail.email?.includes('@')) throw new Fail('invalid address');
//     info(`sending to ${mail.email}`);
//     return { sent: mail.email };                  // kept as the job's result
//   });
//
// Build with `node guest-sdk/js/build.mjs app.js -o app.wasm` (componentize-js, pinned in
// package.json). A returned value completes the job (undefined or null: no result);
// `throw new Retry(msg)` asks for another attempt after backoff; `throw new Fail(msg)` sends
// the job to the dead list; anything else thrown is a retry whose error is its name,
// message and stack. `env(name)` reads the values `sque-host run --env` grants; `fetch`
// reaches the hosts `--allow-http` names; `progress(40, 'rendered')` and `push(queue, data)`
// report and hand work on; `info(msg)` and its siblings send nothing below the host's level.
// Built against sque:handler@0.2.1 (wit/handler.wit here).

import { getEnvironment } from 'wasi:cli/environment@0.2.12';
import { push as hostPush } from 'sque:handler/follow-up@0.2.1';
import { enabled as hostEnabled, log as hostLog } from 'sque:handler/log@0.2.1';
import { report } from 'sque:handler/progress@0.2.1';

/** The longest error text sent to the host, which cuts it further to the queue's limit. */
export const MAX_ERROR_CHARS = 64 * 1024;

/** Throw to ask for another attempt after backoff (dead once out of attempts). */
export class Retry extends Error {
  constructor(message) {
    super(message);
    this.name = 'Retry';
  }
}

/** Throw when no retry can help: the job goes to the dead list at once. */
export class Fail extends Error {
  constructor(message) {
    super(message);
    this.name = 'Fail';
  }
}

/** One job: its id, queue, attempt (1 for the first) and data as JSON text. */
export class Job {
  constructor({ id, queue, attempt, data }) {
    this.id = id;
    this.queue = queue;
    this.attempt = attempt;
    this.data = data;
  }

  /** The job's data, parsed; data that is not JSON fails the job (no retry can mend it). */
  json() {
    try {
      return JSON.parse(this.data);
    } catch (e) {
      throw new Fail(`the job's data is not valid JSON: ${e.message}`);
    }
  }
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** Whether the host records lines at `level` ('trace' … 'error'; its `--log`). The log
 * functions ask it first: handing the host a line costs the interpreter about 17 µs (the
 * bindings count its UTF-8 bytes one character at a time), a line it would drop costs next to
 * nothing. Ask it yourself before work done only for a log line. */
export function enabled(level) {
  if (!LEVELS.includes(level)) {
    throw new TypeError(`unknown log level ${JSON.stringify(level)}: one of ${LEVELS.join(', ')}`);
  }
  return hostEnabled(level);
}

/** `value` as text: `String()`, or what it is when that throws (an object without a
 * prototype, a `toString` that throws). */
function text(value) {
  try {
    return String(value);
  } catch {
    try {
      return Object.prototype.toString.call(value);
    } catch {
      // A Proxy whose traps throw, a Symbol.toStringTag getter that throws.
      return '[a value that cannot be shown as text]';
    }
  }
}

const line = (level, message) => {
  if (hostEnabled(level)) hostLog(level, text(message));
};

export const trace = (message) => line('trace', message);
export const debug = (message) => line('debug', message);
export const info = (message) => line('info', message);
export const warn = (message) => line('warn', message);
export const error = (message) => line('error', message);

let environment;

/** A variable `sque-host run --env` granted, or `fallback`. Read when first asked for, in a
 * job: the build runs the module's top level, where no import can be called (the build
 * fails with "attempted to call an unknown imported function"). */
export function env(name, fallback = undefined) {
  environment ??= new Map(getEnvironment());
  return environment.has(name) ? environment.get(name) : fallback;
}

/** Reports how far the job has come: `percent` (0 to 100) and an optional short note (cut
 * at 256 bytes). The host records the latest, at most about once a second. */
export function progress(percent, note = undefined) {
  const capped = Math.max(0, Math.min(100, Math.trunc(Number(percent)) || 0));
  report(capped, note === undefined || note === null ? undefined : text(note));
}

/**
 * Pushes a follow-up job of `data` (any JSON value) to `queue`, committed only when this job
 * completes (a job that fails or is retried pushes nothing). Returns its index among this
 * job's pushes. A push the host refuses throws `Fail`.
 */
export function push(queue, data, options = undefined) {
  // What cannot be sent is the handler's mistake, which no retry mends: Fail, before the host
  // is asked (a negative delay wrapped around to a hundred years, once).
  if (typeof queue !== 'string') throw new Fail(`push's queue is a name, not ${typeof queue}`);
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new Fail(`push's options are an object such as {delayMs: 1000}, not ${text(options)}`);
  }
  const { delayMs, uniqueKey } = options ?? {};
  if (delayMs !== undefined && !(Number.isSafeInteger(delayMs) && delayMs >= 0)) {
    throw new Fail(`push's delayMs is a whole number of milliseconds from 0, not ${text(delayMs)}`);
  }
  if (uniqueKey !== undefined && typeof uniqueKey !== 'string') {
    throw new Fail(`push's uniqueKey is a string, not ${typeof uniqueKey}`);
  }
  let json;
  try {
    json = JSON.stringify(data);
  } catch (e) {
    throw new Fail(`the job pushed to ${JSON.stringify(queue)} is not JSON: ${described(e)}`);
  }
  if (typeof json !== 'string') {
    throw new Fail(`the job pushed to ${JSON.stringify(queue)} is not JSON (${typeof data})`);
  }
  try {
    return hostPush(queue, json, { delayMs: delayMs === undefined ? undefined : BigInt(delayMs), uniqueKey });
  } catch (e) {
    const why = e?.payload ?? e;
    switch (why?.tag) {
      case 'denied':
        throw new Fail(`pushing to ${JSON.stringify(queue)} was denied: this host does not let handlers push there`);
      case 'too-large':
        throw new Fail(`the job pushed to ${JSON.stringify(queue)} is too large (${why.val} bytes)`);
      case 'invalid':
        throw new Fail(`the push to ${JSON.stringify(queue)} is invalid: ${why.val}`);
      case 'limit':
        throw new Fail('this job has pushed as many jobs as it may');
      default:
        throw e;
    }
  }
}

const cut = (message) => text(message).slice(0, MAX_ERROR_CHARS);

/** The WIT error for what the handler threw. Even `instanceof` can throw (a Proxy whose
 * `getPrototypeOf` throws): whatever it is, the job ends as a retry with a message, never a
 * trap. */
function failure(thrown) {
  try {
    if (thrown instanceof Fail) return { tag: 'fail', val: cut(thrown.message) };
    if (thrown instanceof Retry) return { tag: 'retry', val: cut(thrown.message) };
    return { tag: 'retry', val: cut(described(thrown)) };
  } catch {
    return { tag: 'retry', val: 'thrown: [a value that cannot be shown as text]' };
  }
}

/** What was thrown, as its name and message, then its stack: the start is what counts. */
function described(thrown) {
  if (thrown instanceof Error) {
    return `${text(thrown.name)}: ${text(thrown.message)}\n${text(thrown.stack ?? '')}`.trimEnd();
  }
  let shown;
  try {
    shown = JSON.stringify(thrown);
  } catch {
    // Cyclic, or a BigInt: shown as String() shows it.
  }
  return `thrown: ${typeof shown === 'string' ? shown : text(thrown)}`;
}

/**
 * Makes `fn(job)` (sync or async) the component's handler: export what it returns as
 * `handle`.
 */
export function handler(fn) {
  return async function handle(raw) {
    let value;
    try {
      value = await fn(new Job(raw));
    } catch (e) {
      throw failure(e);
    }
    if (value === undefined || value === null) return undefined;
    // A result that is not JSON (a BigInt, a cycle, a function) is the handler's mistake,
    // which another attempt would make again, after its side effects: Fail. (NaN and the
    // infinities are null, as JSON.stringify makes them, and as the Rust SDK does.)
    let json;
    try {
      json = JSON.stringify(value);
    } catch (e) {
      throw { tag: 'fail', val: cut(`the handler's result is not JSON: ${described(e)}`) };
    }
    if (typeof json !== 'string') {
      throw { tag: 'fail', val: `the handler's result is not JSON (${typeof value})` };
    }
    return json;
  };
}
