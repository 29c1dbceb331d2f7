'use strict';
// The package on its own against a private redis-server: the original API, FIFO order,
// at-least-once through a worker's death, fencing of stale completions, bad input refused
// with nothing changed, and a clean leave.

const assert = require('node:assert/strict');
const path = require('node:path');
const { describe, test } = require('node:test');

const sque = require('sque');
const { Proc, RedisServer, privateRedis, waitFor } = require('./support');

const env = privateRedis('t');
const { fresh, track } = env;

/** A queue opened by a manager that does not dispatch, with its connection and keys, for
 * tests that speak the protocol by hand. */
async function byHand(settings) {
  const [q, o] = fresh(settings);
  const manager = track(new sque.manager(q, { ...o, dispatch: false }));
  await manager.ready;
  return { q, o, manager, con: manager.queue.con, k: manager.queue.keys };
}

/** Joins as a worker on the wire (docs/PROTOCOL.md, step 1): its id, then its first heartbeat. */
async function joinByHand(con, k) {
  const w = String(await con.command(k.meta, ['HINCRBY', k.meta, 'workers_seq', 1]));
  await con.script('renew', [k.meta, k.leases, k.workers, k.requests], [w, 0, 0]);
  return w;
}

describe('the original API', () => {
  test('the original example, as written, prints true three times', async () => {
    const example = new Proc(process.execPath, [path.join(__dirname, 'fixtures', 'original-example.js')], {
      env: { SQUE_REDIS_URL: env.redis.url },
    });
    try {
      await waitFor('three lines from the example', () => example.lines.length >= 3);
      assert.deepEqual(example.lines.slice(0, 3), ['true', 'true', 'true']);
    } finally {
      await example.kill();
    }
  });

  test('push resolves to consecutive ids, and jobs come out in the order they went in', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const ids = [];
    for (let i = 0; i < 5; i += 1) ids.push(await manager.push({ i }));
    ids.push(...(await manager.pushMany(Array.from({ length: 2500 }, (_, j) => ({ i: 5 + j })))));
    assert.equal(ids.length, 2505);
    ids.forEach((id, i) => assert.equal(id, String(Number(ids[0]) + i)));
    const seen = [];
    for (let i = 0; i < 2505; i += 1) {
      const job = await client.iAmFree();
      seen.push(job.data.i);
      await job.complete();
    }
    assert.deepEqual(seen, Array.from({ length: 2505 }, (_, i) => i));
    const stats = await manager.stats();
    assert.equal(stats.completed, 2505);
    assert.equal(stats.waiting, 0);
    assert.equal(stats.in_flight, 0);
  });

  test('a callback that throws fails the job; it comes back with attempt 2 after the backoff', async () => {
    const [q, o] = fresh({ backoff: 100, backoffMax: 100 });
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    await manager.push({ flaky: true });
    const first = await new Promise((resolve) => {
      client.iAmFree((error, data, job) => {
        resolve(job.attempt);
        throw new Error('not today');
      });
    });
    assert.equal(first, 1);
    const again = await client.iAmFree();
    assert.equal(again.attempt, 2);
    assert.deepEqual(again.data, { flaky: true });
    await again.complete('done');
    assert.equal(await manager.wait(again.id), 'done');
  });

  test('a first attempt says how long it waited, in a reply or through the inbox; a retry does not', async () => {
    const [q, o] = fresh({ backoff: 100, backoffMax: 100 });
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, { ...o, measureWaits: true }));
    await client.ready;
    await manager.push('early');
    const pushed = Date.now();
    await waitFor('50 ms', () => Date.now() >= pushed + 50);
    const early = await client.iAmFree();
    assert.ok(early.waited >= 50 && early.waited < 60000, String(early.waited));
    const asked = client.iAmFree();
    await waitFor('the request stored', async () => (await manager.stats()).requests === 1);
    await manager.push('late');
    const late = await asked;
    assert.equal(late.data, 'late');
    assert.ok(late.waited >= 0 && late.waited < 60000, String(late.waited));
    await late.fail(new Error('again'));
    const retry = await client.iAmFree();
    assert.equal(retry.attempt, 2);
    assert.equal(retry.waited, undefined);
    await early.complete();
    await retry.complete();
  });

  test('a rate limit set at creation holds the Node manager to it: jobs go one per interval, none lost', async () => {
    const [q, o] = fresh({ rateCount: 20, ratePeriod: 1000, rateBurst: 1 });
    const manager = track(new sque.manager(q, o));
    await manager.ready;
    assert.equal(manager.queue.requires.includes('rate'), true);
    const client = track(new sque.client(q, o));
    const asked = Array.from({ length: 5 }, () => client.iAmFree());
    await waitFor('five requests stored', async () => (await manager.stats()).requests === 5);
    const start = Date.now();
    await manager.pushMany([1, 2, 3, 4, 5]);
    const jobs = await Promise.all(asked);
    // One job at once, then one each 50 ms: the last no sooner than 200 ms after the push.
    assert.ok(Date.now() - start >= 195, `${Date.now() - start} ms`);
    assert.deepEqual(jobs.map((j) => j.data).sort(), [1, 2, 3, 4, 5]);
    for (const job of jobs) await job.complete();
  });

  test('a callback that returns a Promise completes the job with its value', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const id = await manager.push({ x: 2 });
    client.iAmFree(async (error, data) => ({ doubled: data.x * 2 }));
    assert.deepEqual(await manager.wait(id), { doubled: 4 });
  });

  test('asking again with the id of an open request or a held job gives that same job', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const asked = client.iAmFree('a');
    const askedAgain = client.iAmFree('a');
    await manager.push({ one: 1 });
    await manager.push({ two: 2 });
    const [a, b] = await Promise.all([asked, askedAgain]);
    assert.equal(a, b);
    assert.equal(a.requestId, 'a');
    assert.equal(await client.iAmFree('a'), a, 'a held job is given again for its id');
    await a.complete();
    const next = await client.iAmFree('a');
    assert.deepEqual(next.data, { two: 2 });
    await next.complete();
  });

  test('process runs a handler at a concurrency, completing with its values and failing with its throws', async () => {
    const [q, o] = fresh({ maxAttempts: 1 });
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const ids = await manager.pushMany(Array.from({ length: 200 }, (_, i) => ({ i })));
    let running = 0;
    let most = 0;
    const done = client.process(async (data) => {
      running += 1;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 2));
      running -= 1;
      if (data.i === 7) throw new Error('seven is bad');
      return data.i;
    }, { concurrency: 8 });
    await waitFor('every job to end', async () => {
      const s = await manager.stats();
      return s.completed + s.dead === 200;
    });
    assert.equal(await manager.wait(ids[3]), 3);
    await assert.rejects(manager.wait(ids[7]), (e) => e.code === 'dead' && /seven is bad/.test(e.message));
    assert.ok(most > 1 && most <= 8, `ran ${most} at once`);
    await client.close();
    await done;
  });
});

describe('nothing lost, nothing stale', () => {
  test('a worker killed with a job in hand loses nothing: the job comes back, attempt 2', async () => {
    const [q, o] = fresh({ lease: 500 });
    const manager = track(new sque.manager(q, o));
    const id = await manager.push({ precious: true });
    const holder = new Proc(process.execPath, [path.join(__dirname, 'fixtures', 'holder.js'), q], { env: { SQUE_REDIS_URL: env.redis.url } });
    const held = JSON.parse(await holder.line('"held"'));
    assert.equal(held.held, id);
    assert.equal(held.attempt, 1);
    await holder.kill('SIGKILL');
    const client = track(new sque.client(q, o));
    const job = await client.iAmFree();
    assert.equal(job.id, id);
    assert.equal(job.attempt, 2);
    await job.complete();
    assert.equal((await manager.stats()).expired, 1);
  });

  test('a request whose delivery was lost on the way back from the inbox is stored again', async () => {
    const [q, o] = fresh({ lease: 600 });
    const manager = track(new sque.manager(q, o));
    await manager.ready;
    const { con, keys: k } = manager.queue;
    // The pops blocked before this client's: other tests' clients share the server.
    const pops = async () =>
      String(await con.command(k.meta, ['CLIENT', 'LIST']))
        .split('\n')
        .filter((l) => l.includes('cmd=blmpop'))
        .map((l) => /(?:^| )id=(\d+)/.exec(l)[1]);
    const others = new Set(await pops());
    const client = track(new sque.client(q, o));
    const asking = client.iAmFree();
    await waitFor('the request stored', async () => Number(await con.command(k.requests, ['LLEN', k.requests])) === 1);
    // What a lost pop leaves behind: the request taken from `requests` (serving it took it),
    // its delivery gone, and the pop's connection dropped.
    const [entry] = await con.command(k.requests, ['LRANGE', k.requests, 0, -1]);
    await con.command(k.requests, ['LREM', k.requests, 0, entry]);
    let pop;
    await waitFor("the client's inbox pop blocked", async () => {
      pop = (await pops()).find((id) => !others.has(id));
      return Boolean(pop);
    });
    await con.command(k.meta, ['CLIENT', 'KILL', 'ID', pop]);
    const id = await manager.push({ next: true });
    const job = await asking;
    assert.equal(job.id, id);
    await job.complete();
  });

  test('a completion after the lease ran out is refused and changes nothing', async () => {
    const [q, o] = fresh({ lease: 300 });
    const manager = track(new sque.manager(q, o));
    const id = await manager.push({ contested: true });
    const frozen = new Proc(process.execPath, [path.join(__dirname, 'fixtures', 'holder.js'), q], { env: { SQUE_REDIS_URL: env.redis.url } });
    await frozen.line('"held"');
    frozen.child.kill('SIGSTOP');
    const client = track(new sque.client(q, o));
    const job = await client.iAmFree();
    assert.equal(job.attempt, 2);
    frozen.child.kill('SIGCONT');
    frozen.child.stdin.write('complete\n');
    const answer = JSON.parse(await frozen.line((l) => l.includes('"error"') || l.includes('"completed"')));
    await frozen.kill();
    assert.equal(answer.error, 'stale_lease', JSON.stringify(answer));
    assert.equal(await manager.queue.con.command(manager.queue.keys.results, ['HGET', manager.queue.keys.results, id]), null);
    await job.complete({ by: 'second' });
    assert.deepEqual(await manager.wait(id), { by: 'second' });
    await assert.rejects(job.complete(), /already completed/);
  });

  test('the lease of a job held longer than the lease is renewed while the callback runs', async () => {
    const [q, o] = fresh({ lease: 300 });
    const manager = track(new sque.manager(q, o));
    const id = await manager.push({ slow: true });
    const client = track(new sque.client(q, o));
    client.iAmFree(() => new Promise((r) => setTimeout(() => r('slow but fine'), 1200)));
    assert.equal(await manager.wait(id, { timeout: 10000 }), 'slow but fine');
    const s = await manager.stats();
    assert.equal(s.expired, 0);
    assert.equal(s.dispatched, 1);
  });

  test('jobs pushed while Redis restarts are refused with a clear error, and the package recovers', async () => {
    // Every write on disk before it is answered, as a Redis that must not lose jobs runs.
    const own = await RedisServer.start(['--appendonly', 'yes', '--appendfsync', 'always']);
    try {
      const o = { redis: { url: own.url } };
      const manager = new sque.manager('restart', o);
      const client = new sque.client('restart', o);
      await manager.push({ before: true });
      const first = await client.iAmFree();
      await first.complete();
      await own.kill();
      await assert.rejects(manager.push({ during: true }), (e) => ['unavailable', 'redis'].includes(e.code));
      await own.spawn();
      // The data is back from the append-only file, the script cache is not: this covers NOSCRIPT.
      const id = await waitFor('a push to go through again', () => manager.push({ after: true }).catch(() => null));
      const job = await waitFor('a job', () => client.iAmFree().catch(() => null));
      assert.equal(job.id, id);
      await job.complete();
      await client.close();
      await manager.close();
    } finally {
      await own.stop();
    }
  });

  test('close leaves cleanly: open requests withdrawn, heartbeat dropped, later jobs go to others', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const leaving = new sque.client(q, o);
    const withdrawn = leaving.iAmFree();
    await leaving.ready;
    await waitFor('the request to be stored', async () => (await manager.stats()).requests === 1);
    await leaving.close();
    await assert.rejects(withdrawn, (e) => e.code === 'closed');
    const s = await manager.stats();
    assert.equal(s.requests, 0);
    assert.equal(s.workers, 0);
    const id = await manager.push({ for: 'someone else' });
    const other = track(new sque.client(q, o));
    const job = await other.iAmFree();
    assert.equal(job.id, id);
    assert.equal(job.attempt, 1);
    await job.complete();
  });
});

describe('leaving', () => {
  test('leave gives back what a worker\'s inbox holds, at the head and with its attempt uncounted', async () => {
    const { q, o, manager, con, k } = await byHand();
    // A worker on the wire, as docs/PROTOCOL.md has it, that will never read its inbox.
    const w = await joinByHand(con, k);
    const exchangeKeys = [k.meta, k.requests, k.waiting, k.workers, k.jobs, k.leases, k.stats, k.errors, k.results, k.resultsAt];
    await con.script('exchange', exchangeKeys, [w, 0, `${w}:1`]);
    const [first, second] = await manager.pushMany([{ n: 1 }, { n: 2 }]);
    // The push served the stored request: the first job is leased, in the worker's inbox.
    assert.equal(env.redis.cli('LLEN', k.inbox(w)), '1');
    let s = await manager.stats();
    assert.deepEqual([s.waiting, s.in_flight, s.requests, s.workers], [1, 1, 0, 1]);
    const [withdrawn, given] = (await con.script('leave', [k.meta, k.requests, k.workers, k.leases, k.waiting, k.inbox(w)], [w, 0])).map(Number);
    assert.deepEqual([withdrawn, given], [0, 1]);
    s = await manager.stats();
    assert.deepEqual([s.waiting, s.in_flight, s.requests, s.workers], [2, 0, 0, 0]);
    assert.equal(env.redis.cli('EXISTS', k.inbox(w)), '0');
    const client = track(new sque.client(q, o));
    const job = await client.iAmFree();
    assert.deepEqual([job.id, job.attempt], [first, 1]);
    await job.complete();
    const next = await client.iAmFree();
    assert.equal(next.id, second);
    await next.complete();
  });
});

describe('bad input is refused with a clear error and changes nothing', () => {
  test('jobs that are not JSON, too deep, too large, or with a bad attempt limit', async () => {
    const [q, o] = fresh({ maxJobBytes: 1000 });
    const manager = track(new sque.manager(q, o));
    await manager.ready;
    const cyclic = {};
    cyclic.self = cyclic;
    let deep = 1;
    for (let i = 0; i < 200; i += 1) deep = [deep];
    const cases = [
      [undefined, 'invalid_input', /not JSON/],
      [() => 1, 'invalid_input', /not JSON/],
      [cyclic, 'invalid_input', /not JSON-serializable/],
      [deep, 'invalid_input', /128 levels/],
      [{ big: 'x'.repeat(2000) }, 'too_large', /over the queue's limit of 1000 bytes/],
    ];
    for (const [job, code, message] of cases) {
      await assert.rejects(manager.push(job), (e) => e instanceof sque.SqueError && e.code === code && message.test(e.message));
    }
    await assert.rejects(manager.pushMany([{ ok: 1 }, { big: 'x'.repeat(2000) }]), (e) => e.code === 'too_large' && /job 2/.test(e.message));
    for (const maxAttempts of [0, -1, 1.5, 'x', 1e10]) {
      await assert.rejects(manager.push({ ok: 1 }, { maxAttempts }), (e) => e.code === 'invalid_input' && /maxAttempts/.test(e.message));
    }
    const s = await manager.stats();
    assert.equal(s.pushed, 0);
    assert.equal(s.waiting, 0);
  });

  test('a token that is not ID|ATTEMPT|MAX is refused by release and left alone by leave, and the reaper buries its lease', async () => {
    const { q, o, manager, con, k } = await byHand();
    // A lease under a name no sque writes (another writer's), running out in a minute.
    const bogus = '12|x|5';
    const [secs] = (await con.command(k.meta, ['TIME'])).map(Number);
    await con.command(k.meta, ['ZADD', k.leases, (secs + 60) * 1000, bogus]);
    await assert.rejects(
      con.script('release', [k.meta, k.leases, k.waiting, k.requests], [bogus]),
      (e) => e.code === 'invalid_input' && /is not ID\|ATTEMPT\|MAX/.test(e.message),
    );
    const w = await joinByHand(con, k);
    const [withdrawn, given] = (await con.script('leave', [k.meta, k.requests, k.workers, k.leases, k.waiting, k.inbox(w)], [w, 0, bogus])).map(Number);
    assert.deepEqual([withdrawn, given], [0, 0]);
    assert.notEqual(await con.command(k.leases, ['ZSCORE', k.leases, bogus]), null, 'the lease is still there');
    assert.equal(env.redis.cli('LLEN', k.waiting), '0');
    // Once it runs out, a dispatching manager's reaper buries it with a reason.
    await con.command(k.meta, ['ZADD', k.leases, 1, bogus]);
    track(new sque.manager(q, o));
    await waitFor('the bogus lease buried', async () => (await manager.stats()).dead === 1);
    assert.equal(await con.command(k.leases, ['ZSCORE', k.leases, bogus]), null);
  });

  test('a poison report is kept no longer than the queue\'s max_error_bytes', async () => {
    const [q, o] = fresh({ maxErrorBytes: 1000 });
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const id = await manager.push({ any: 1 });
    const job = await client.iAmFree();
    const k = manager.queue.keys;
    // A worker of another language reporting poison with a message of its own making.
    const said = await manager.queue.con.script('poison', [k.meta, k.leases, k.deadAt, k.errors, k.stats, k.jobs], [job.token, 'é'.repeat(50000)]);
    assert.equal(Number(said), 1);
    const record = JSON.parse(env.redis.cli('HGET', k.errors, id));
    assert.equal(record.code, 'poison');
    assert.ok(Buffer.byteLength(record.message) <= 1000, `${Buffer.byteLength(record.message)} bytes kept`);
    assert.match(record.message, /cut: 100000 bytes in all/);
    assert.equal((await manager.stats()).poisoned, 1);
  });

  test('bad queue names, settings, URLs and request ids', async () => {
    for (const name of ['', 'a b', 'a{b}', 'x'.repeat(201), 'tab\there', '.', '..']) {
      assert.throws(() => new sque.manager(name, { redis: { url: env.redis.url } }), (e) => e.code === 'invalid_queue_name' && e.message.startsWith('invalid queue name'));
    }
    assert.throws(() => new sque.manager('q', { redis: { url: env.redis.url }, lease: 10 }), /lease must be at least 100 ms/);
    assert.throws(() => new sque.client('q', { redis: { url: env.redis.url }, maxAttempts: 'many' }), /maxAttempts must be a whole number/);
    assert.throws(() => new sque.manager('q', { redis: { url: 'http://example.com' } }), (e) => e.code === 'invalid_input' && /bad Redis URL/.test(e.message));
    const [q, o] = fresh();
    const client = track(new sque.client(q, o));
    await assert.rejects(client.iAmFree(''), (e) => e.code === 'invalid_input' && /request id/.test(e.message));
    await assert.rejects(client.process(() => {}, { concurrency: 0 }), /concurrency/);
  });

  test('a queue of another major protocol version is refused before anything is written', async () => {
    const [q, o] = fresh();
    env.redis.cli('HSET', `sque:{${q}}:meta`, 'protocol', '2.0');
    const manager = new sque.manager(q, o);
    await assert.rejects(manager.ready, (e) => e.code === 'protocol' && /uses protocol 2\.0/.test(e.message));
    await assert.rejects(manager.push({ a: 1 }), (e) => e.code === 'protocol');
    await manager.close();
    assert.equal(env.redis.cli('HLEN', `sque:{${q}}:jobs`), '0');
    assert.equal(env.redis.cli('HGET', `sque:{${q}}:meta`, 'seq'), '');
  });

  test('the dead script deletes only when told "purge": a misspelt action is refused', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, { ...o, dispatch: false }));
    await manager.ready;
    const k = manager.queue.keys;
    const keys = [k.meta, k.deadAt, k.waiting, k.jobs, k.errors, k.requests];
    env.redis.cli('ZADD', k.deadAt, '1', 'gone-entry');
    await assert.rejects(manager.queue.con.script('dead', keys, ['purgee', 'oldest', '0', '10']), (e) => e.code === 'invalid_input' && /"retry" or "purge"/.test(e.message));
    assert.equal(env.redis.cli('ZCARD', k.deadAt), '1');
    const [purged] = await manager.queue.con.script('dead', keys, ['purge', 'oldest', '0', '10']);
    assert.equal(Number(purged), 1);
  });

  test('an unreachable Redis is one clear error', async () => {
    const manager = new sque.manager('nowhere', { redis: { url: 'redis://127.0.0.1:1', socket: { reconnectStrategy: false } } });
    await assert.rejects(manager.push({ a: 1 }), (e) => e.code === 'unavailable' && /cannot reach Redis/.test(e.message));
    await manager.close();
  });
});

describe('delayed jobs', () => {
  test('a delayed job waits aside until due on Redis\'s clock, then joins the tail; the Node manager promotes it', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const redisNow = () => {
      const [s, us] = env.redis.cli('TIME').split('\n');
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    const pushedAt = redisNow();
    const later = await manager.push({ n: 'later' }, { delay: 1500 });
    const now = await manager.push({ n: 'now' });
    const past = await manager.push({ n: 'past' }, { at: new Date(1000) });
    assert.equal((await manager.stats()).scheduled >= 1, true);
    assert.equal(env.redis.cli('HGET', `sque:{${q}}:meta`, 'requires'), 'delay');
    const first = await client.iAmFree();
    assert.equal(first.id, now);
    await first.complete();
    const second = await client.iAmFree();
    assert.equal(second.id, past, 'a time already past is due at once');
    await second.complete();
    const third = await client.iAmFree();
    assert.equal(third.id, later);
    assert.ok(redisNow() >= pushedAt + 1500, 'not before its delay');
    await third.complete();
    assert.equal((await manager.stats()).scheduled, 0);
  });

  test('a higher priority goes first, each priority in push order, delayed and unique jobs too', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const low = await manager.pushMany([{ n: 'low1' }, { n: 'low2' }], { priority: 'low' });
    const normal = await manager.push({ n: 'normal' });
    const high = await manager.push({ n: 'high' }, { priority: 9 });
    const seven = await manager.push({ n: 'seven' }, { priority: 7, uniqueKey: 'k' });
    const later = await manager.push({ n: 'later' }, { priority: 'high', delay: 1 });
    await waitFor('the delayed job promoted', async () => (await manager.stats()).scheduled === 0);
    assert.equal((await manager.stats()).waiting, 6);
    assert.equal(env.redis.cli('HGET', `sque:{${q}}:meta`, 'requires'), 'priority,unique,delay');
    await assert.rejects(manager.push({}, { priority: 10 }), { code: 'invalid_input' });
    const client = track(new sque.client(q, o));
    const order = [];
    for (let i = 0; i < 6; i++) {
      const job = await client.iAmFree();
      order.push(job.id);
      await job.complete();
    }
    assert.deepEqual(order, [high, later, seven, normal, ...low]);
    // Pushes of any priority reach Redis in the order they were made (the connection's lane).
    const producer = track(new sque.manager(q, { ...o, dispatch: false }));
    await producer.stats();
    const [first, second] = await Promise.all([producer.push({ n: 'a' }, { priority: 0 }), producer.push({ n: 'b' })]);
    assert.ok(Number(first) < Number(second), `${first} then ${second}`);
  });

  test('a delay and a time together, or a bad one, are refused and push nothing', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    await assert.rejects(manager.push({ a: 1 }, { delay: 10, at: Date.now() }), (e) => e.code === 'invalid_input' && /not both/.test(e.message));
    await assert.rejects(manager.push({ a: 1 }, { delay: -1 }), (e) => e.code === 'invalid_input');
    await assert.rejects(manager.push({ a: 1 }, { at: 'tomorrow' }), (e) => e.code === 'invalid_input');
    assert.equal((await manager.stats()).pushed, 0);
  });

  test('a queue that requires a feature this package does not know is refused', async () => {
    const [q, o] = fresh();
    const first = track(new sque.manager(q, o));
    await first.ready;
    env.redis.cli('HSET', `sque:{${q}}:meta`, 'requires', 'delay,teleport');
    const manager = new sque.manager(q, o);
    await assert.rejects(manager.ready, (e) => e.code === 'feature' && /teleport/.test(e.message));
    await manager.close();
  });
});

describe('cron schedules', () => {
  test('a manager that dispatches refuses a queue with schedules, one that only pushes opens it', async () => {
    const [q, o] = fresh();
    const first = track(new sque.manager(q, { ...o, dispatch: false }));
    await first.ready;
    env.redis.cli('HSET', `sque:{${q}}:meta`, 'requires', 'cron');
    const manager = new sque.manager(q, o);
    await assert.rejects(manager.ready, (e) => e.code === 'feature' && /cron schedules/.test(e.message));
    await manager.close();
    const producer = track(new sque.manager(q, { ...o, dispatch: false }));
    assert.ok(await producer.push({ a: 1 }));
  });

  test('so does a queue whose handlers push follow-up jobs', async () => {
    const [q, o] = fresh();
    const first = track(new sque.manager(q, { ...o, dispatch: false }));
    await first.ready;
    env.redis.cli('HSET', `sque:{${q}}:meta`, 'requires', 'children');
    const manager = new sque.manager(q, o);
    await assert.rejects(manager.ready, (e) => e.code === 'feature' && /follow-up jobs/.test(e.message));
    await manager.close();
  });
});

describe('unique keys', () => {
  test('a key held answers its holder\'s id and writes nothing; it is free once the job completes', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const pushes = await Promise.all(Array.from({ length: 20 }, () => manager.push({ order: 1 }, { uniqueKey: 'order-1' })));
    assert.equal(new Set(pushes).size, 1);
    assert.equal((await manager.stats()).pushed, 1);
    const job = await client.iAmFree();
    assert.equal(job.id, pushes[0]);
    await job.complete();
    const again = await manager.push({ order: 1 }, { uniqueKey: 'order-1' });
    assert.notEqual(again, pushes[0]);
    await assert.rejects(manager.push({ a: 1 }, { uniqueKey: '' }), (e) => e.code === 'invalid_input');
    await assert.rejects(manager.pushMany([{ a: 1 }], { uniqueKey: 'k' }), (e) => e.code === 'invalid_input');
  });
});
