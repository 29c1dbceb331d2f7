'use strict';
// The package where things go wrong around it: completions whose answer was lost, a Redis
// away at the start or gone later, settings that cannot work together, handlers and
// arguments of the wrong kind, data that is not JSON text, pushes of every kind keeping
// their order, wait() racing a completion, and a queue that comes to require a feature
// after a manager opened it. Against a private redis-server, as semantics.test.js.

const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { describe, test } = require('node:test');

const sque = require('sque');
const { Proc, RedisServer, privateRedis, waitFor } = require('./support');

const env = privateRedis('r');
const { fresh, track } = env;

/** Fails when `promise` has not settled within `ms`: a test that would hang fails instead. */
function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Drops every connection of the clients named `name` (node-redis's `name` option), as a
 * network cut does: the call in flight on them gets no answer. Others are left alone.
 */
function cut(name) {
  const ids = env.redis
    .cli('CLIENT', 'LIST')
    .split('\n')
    .filter((l) => l.includes(` name=${name} `))
    .map((l) => /(?:^| )id=(\d+)/.exec(l)[1]);
  assert.ok(ids.length > 0, `no connection named ${name}`);
  for (const id of ids) env.redis.cli('CLIENT', 'KILL', 'ID', id);
}

/** A port nothing listens on. */
function deadPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

describe('a completion whose answer was lost', () => {
  test('may be called again: the job stays held and renewed, and the second call completes it', async () => {
    const [q, o] = fresh({ lease: 600 });
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, { redis: { ...o.redis, name: 'cut-a' } }));
    const id = await manager.push({ once: true });
    const job = await client.iAmFree();
    cut('cut-a');
    await assert.rejects(job.complete('done'), (e) => e.code === 'unavailable');
    assert.equal(job.ended, false, 'still the caller\'s to end');
    assert.equal(client.heldCount, 1);
    await waitFor('a completion to go through', () =>
      job.complete('done').then(
        () => true,
        (e) => {
          if (e.code === 'unavailable') return false;
          throw e;
        },
      ),
    );
    assert.equal(await manager.wait(id), 'done');
    assert.equal(client.heldCount, 0);
    const s = await manager.stats();
    assert.deepEqual([s.completed, s.expired], [1, 0]);
  });

  test('process lets the job go (no more renewals): its lease runs out and it comes back', async () => {
    const [q, o] = fresh({ lease: 500 });
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, { redis: { ...o.redis, name: 'cut-b' } }));
    const id = await manager.push({ precious: true });
    const attempts = [];
    const done = client.process((data, job) => {
      attempts.push(job.attempt);
      // The completion of this first attempt goes on a connection just cut.
      if (job.attempt === 1) cut('cut-b');
      return `attempt ${job.attempt}`;
    });
    assert.equal(await manager.wait(id, { timeout: 15000 }), 'attempt 2');
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(client.heldCount, 0);
    await client.close();
    await done;
  });

  test('so does the callback form of iAmFree', async () => {
    const [q, o] = fresh({ lease: 500 });
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, { redis: { ...o.redis, name: 'cut-c' } }));
    const id = await manager.push({ precious: true });
    const ran = new Promise((resolve) => {
      client.iAmFree((error, data, job) => {
        resolve(job.attempt);
        cut('cut-c');
        return 'lost';
      });
    });
    assert.equal(await ran, 1);
    const other = track(new sque.client(q, o));
    const again = await within(other.iAmFree(), 15000, 'the job to come back');
    assert.deepEqual([again.id, again.attempt], [id, 2]);
    await again.complete('found');
    assert.equal(await manager.wait(id), 'found');
    await waitFor('the first client to hold nothing', () => client.heldCount === 0);
  });
});

describe('a Redis that is not there', () => {
  test('at the start: calls fail at once with unavailable, close() settles, the process exits', async () => {
    const url = `redis://127.0.0.1:${await deadPort()}`;
    const child = new Proc(process.execPath, [path.join(__dirname, 'fixtures', 'unreachable.js'), url, 'start']);
    try {
      const said = JSON.parse(await child.line('"closed"'));
      assert.deepEqual(said, { pushed: 'unavailable', asked: 'unavailable', closed: true });
      const { code } = await within(child.exit, 10000, 'the process to exit');
      assert.equal(code, 0);
    } finally {
      await child.kill();
    }
  });

  test('gone later: close() settles while Redis is away, the process exits', async () => {
    const own = await RedisServer.start();
    const child = new Proc(process.execPath, [path.join(__dirname, 'fixtures', 'unreachable.js'), own.url, 'outage']);
    try {
      await child.line('"ready"');
      await waitFor('the request stored', () => own.cli('LLEN', 'sque:{unreachable}:requests') === '1');
      await own.kill();
      child.child.stdin.write('down\n');
      const said = JSON.parse(await child.line('"closed"'));
      assert.deepEqual(said, { asked: 'closed', closed: true });
      const { code } = await within(child.exit, 10000, 'the process to exit');
      assert.equal(code, 0);
    } finally {
      await child.kill();
      await own.stop();
    }
  });
});

describe('settings that cannot work together', () => {
  test('are refused, naming the setting, before anything is written', async () => {
    const century = 100 * 365 * 24 * 3600 * 1000;
    const cases = [
      [{ maxAttempts: 1e10 }, /maxAttempts must be 1 to 999999999/],
      [{ maxAttempts: 0 }, /maxAttempts must be 1 to/],
      [{ inboxTtl: 0 }, /inboxTtl \(0 ms\) must be at least the lease/],
      [{ lease: 1000, inboxTtl: 999 }, /inboxTtl .* must be at least the lease/],
      [{ lease: 1e21 }, /lease must be a whole number .* from 0 to 9007199254740991/],
      [{ lease: century + 1 }, /lease of \d+ ms is over the longest allowed, 100 years/],
      [{ lease: century / 2 }, /inboxTtl of \d+ ms is over the longest allowed/],
      [{ resultTtl: century + 1 }, /resultTtl of .* 100 years/],
      [{ resultTtl: 0 }, /resultTtl must be at least 1 ms/],
      [{ maxJobBytes: 0 }, /maxJobBytes must be 1 to 536870912/],
      [{ maxJobBytes: 2 ** 29 + 1 }, /maxJobBytes must be 1 to 536870912/],
      [{ maxResultBytes: 2 ** 30 }, /maxResultBytes must be at most 536870912/],
      [{ maxErrorBytes: 10 }, /maxErrorBytes must be at least 64/],
      [{ backoff: 0 }, /backoff \(0 ms\) must be at least 1 ms/],
      [{ backoff: 5000, backoffMax: 1000 }, /no larger than backoffMax/],
      [{ rateCount: 5, ratePeriod: 0 }, /ratePeriod\) must be at least 1 ms/],
      [{ deadMax: -1 }, /deadMax must be a whole number/],
      [{ resultMax: 2 ** 53 }, /resultMax must be a whole number/],
    ];
    for (const [settings, message] of cases) {
      const [q, o] = fresh(settings);
      assert.throws(() => new sque.manager(q, o), (e) => e instanceof sque.SqueError && e.code === 'invalid_input' && message.test(e.message), JSON.stringify(settings));
      assert.throws(() => new sque.client(q, o), (e) => e.code === 'invalid_input', JSON.stringify(settings));
      assert.equal(env.redis.cli('EXISTS', `sque:{${q}}:meta`), '0');
      assert.equal(env.redis.cli('SISMEMBER', 'sque:queues', q), '0');
    }
    // A century is the longest allowed, not over it.
    const [q, o] = fresh({ deadTtl: century, backoff: 10, backoffMax: 10 });
    const manager = track(new sque.manager(q, { ...o, dispatch: false }));
    await manager.ready;
    assert.equal(manager.settings.dead_ttl, century);
  });
});

describe('handlers and arguments of the wrong kind', () => {
  test('a handler that throws what String() cannot convert fails the job, as job.fail of it does', async () => {
    const [q, o] = fresh({ maxAttempts: 1 });
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const first = await manager.push({ n: 1 });
    client.iAmFree(() => {
      throw Object.create(null);
    });
    await assert.rejects(manager.wait(first, { timeout: 10000 }), (e) => e.code === 'dead' && /\{\}/.test(e.message));
    const second = await manager.push({ n: 2 });
    const job = await client.iAmFree();
    assert.equal(job.id, second);
    const bare = Object.create(null);
    bare.why = 'no prototype';
    assert.deepEqual(await job.fail(bare), { dead: true });
    await assert.rejects(manager.wait(second), (e) => e.code === 'dead' && /no prototype/.test(e.message));
    assert.equal(client.heldCount, 0);
  });

  test("job.fail's options of the wrong type, and codes that are not words, are refused with invalid_input; the job stays held", async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const id = await manager.push({ n: 1 });
    const job = await client.iAmFree();
    for (const options of [null, 'permanent', true, 3, [true]]) {
      await assert.rejects(job.fail('no', options), (e) => e instanceof sque.SqueError && e.code === 'invalid_input' && /fail's options must be an object/.test(e.message));
    }
    // A code that is not a word, or is the queue's own `poison` (a dead job `dead retry`
    // would refuse for good), as the Rust client refuses them.
    for (const code of ['poison', 'Some Code', '', 'x'.repeat(33), 7]) {
      await assert.rejects(job.fail('no', { code, permanent: true }), (e) => e instanceof sque.SqueError && e.code === 'invalid_input' && /a failure's code is a word/.test(e.message));
    }
    assert.equal(job.ended, false);
    assert.equal(client.heldCount, 1);
    assert.deepEqual(await job.fail('no', { permanent: true, code: 'bad_address' }), { dead: true });
    await assert.rejects(manager.wait(id), (e) => e.code === 'dead' && /no/.test(e.message));
  });

  test('a handler that is not a function is refused before anything is asked', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    await manager.push({ untouched: true });
    await within(assert.rejects(client.process(undefined), (e) => e.code === 'invalid_input' && /handler function/.test(e.message)), 5000, 'process(undefined)');
    await within(assert.rejects(client.process('handler'), (e) => e.code === 'invalid_input'), 5000, 'process(a string)');
    await within(assert.rejects(client.process(() => {}, null), (e) => e.code === 'invalid_input'), 5000, 'process(f, null)');
    assert.throws(() => client.iAmFree('id', 5), (e) => e.code === 'invalid_input' && /callback must be a function/.test(e.message));
    const s = await manager.stats();
    assert.deepEqual([s.dispatched, s.requests, s.waiting], [0, 0, 1]);
  });

  test('arguments of the wrong type are refused with invalid_input, not a TypeError', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, { ...o, dispatch: false }));
    for (const [call, what] of [
      [() => manager.pushMany(null), /pushMany takes an array/],
      [() => manager.pushMany(undefined), /pushMany takes an array/],
      [() => manager.pushMany(42), /pushMany takes an array/],
      [() => manager.pushMany('abc'), /pushMany takes an array/],
      [() => manager.pushMany([1], null), /options must be an object/],
      [() => manager.push({ a: 1 }, null), /options must be an object/],
      [() => manager.push({ a: 1 }, 'high'), /options must be an object/],
    ]) {
      await assert.rejects(call(), (e) => e instanceof sque.SqueError && e.code === 'invalid_input' && what.test(e.message));
    }
    assert.throws(() => new sque.manager(q, null), (e) => e.code === 'invalid_input' && /options must be an object/.test(e.message));
    assert.equal((await manager.stats()).pushed, 0);
  });
});

describe('data that JSON text cannot hold', () => {
  test('lone surrogates, NaN and the infinities are refused, and nothing is pushed', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const cases = [
      [() => manager.push({ name: '🐳 whale'.slice(0, 1) }), /lone UTF-16 surrogate/],
      [() => manager.push('a\udc00b'), /lone UTF-16 surrogate/],
      [() => manager.push({ n: NaN }), /holds NaN/],
      [() => manager.push([1, [Infinity]]), /holds Infinity/],
      [() => manager.pushMany([1, { x: -Infinity }]), /job 2 holds -Infinity/],
      [() => manager.push('\ud83d', { uniqueKey: 'k' }), /lone UTF-16 surrogate/],
      [() => manager.push({ n: NaN }, { delay: 10 }), /holds NaN/],
    ];
    for (const [call, message] of cases) {
      await assert.rejects(call(), (e) => e.code === 'invalid_input' && message.test(e.message));
    }
    assert.equal((await manager.stats()).pushed, 0);
    // What is text: whole characters, an escaped backslash before "ud83d", null itself, a Date.
    const fine = ['🐳', '\\ud83d', '\\\ud83d\udc33', { n: null, at: new Date(0) }];
    const ids = await manager.pushMany(fine);
    const client = track(new sque.client(q, o));
    for (const [i, id] of ids.entries()) {
      const job = await client.iAmFree();
      assert.equal(job.id, id);
      assert.deepEqual(job.data, JSON.parse(JSON.stringify(fine[i])));
      await job.complete();
    }
    // A result with a lone surrogate is not kept: no reader of another language could parse it.
    const bad = await manager.push({ result: 'bad' });
    client.iAmFree(() => '\ud83d');
    await assert.rejects(manager.wait(bad, { timeout: 10000 }), (e) => e.code === 'dead' && /lone UTF-16 surrogate/.test(e.message));
  });
});

describe('pushes of every kind', () => {
  test('reach Redis in the order they were made: ready, unique and delayed, before the queue opens and after', async () => {
    const [q, o] = fresh();
    const early = track(new sque.manager(q, { ...o, dispatch: false }));
    const a = early.push({ n: 'a' });
    const b = early.push({ n: 'b' }, { uniqueKey: 'b' });
    const c = early.push({ n: 'c' }, { delay: 1 });
    const d = early.push({ n: 'd' });
    const ids = (await Promise.all([a, b, c, d])).map(Number);
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), `ids ${ids}`);
    // A client's exchange in flight holds the lane; pushes made behind it keep their order.
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    await manager.ready;
    await client.ready;
    const r1 = client.iAmFree();
    const r2 = client.iAmFree();
    const e = manager.push({ n: 'e' });
    const f = manager.push({ n: 'f' }, { uniqueKey: 'f' });
    assert.ok(Number(await e) < Number(await f), `${await e} then ${await f}`);
    for (const job of await Promise.all([r1, r2])) await job.complete();
  });
});

describe('wait', () => {
  test('gives the result of a job that completed between its reads', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const id = await manager.push({ x: 1 });
    const job = await client.iAmFree();
    const con = manager.queue.con;
    // The first round of wait's reads: the result is read (none yet), then the job completes,
    // then whether the job is still there is read (it is not).
    let resultRead = null;
    con.command = function (key, args, options) {
      const call = Object.getPrototypeOf(this).command.call(this, key, args, options);
      if (args[0] === 'HGET' && key === manager.queue.keys.results && !resultRead) resultRead = call;
      if (args[0] !== 'HEXISTS' || !resultRead) return call;
      delete con.command;
      return resultRead
        .then(() => job.complete('late'))
        .then(() => Object.getPrototypeOf(this).command.call(this, key, args, options));
    };
    try {
      assert.equal(await manager.wait(id, { timeout: 5000 }), 'late');
    } finally {
      delete con.command;
    }
  });
});

describe('a queue that comes to require a feature after a manager opened it', () => {
  test('stops the Node manager that dispatches, with a warning; it still pushes', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    await manager.ready;
    assert.equal(manager.dispatching, true);
    const warned = new Promise((resolve) => {
      const listen = (w) => {
        if (w.code !== 'feature' || !w.message.includes(q)) return;
        process.off('warning', listen);
        resolve(w);
      };
      process.on('warning', listen);
    });
    // What `sque-host schedule add` records.
    env.redis.cli('HSET', `sque:{${q}}:meta`, 'requires', 'cron');
    const warning = await within(warned, 10000, 'the warning');
    assert.ok(warning instanceof sque.SqueError);
    assert.match(warning.message, /cron schedules.*stopped dispatching/);
    assert.equal(manager.dispatching, false);
    assert.ok(await manager.push({ still: 'pushes' }));
  });
});
