'use strict';
// The Node package beside the real sque-host binary on one private redis-server: Node
// producers with sque-host workers, sque-host producers with Node workers, and each side's
// manager dispatching and reaping for the other side's workers.

const assert = require('node:assert/strict');
const { describe, test } = require('node:test');

const sque = require('sque');
const { guest, privateRedis, squeHost, startHost } = require('./support');

const env = privateRedis('interop');
const { fresh, track } = env;

/** Stops a sque-host politely (SIGTERM) and checks that it said it stopped cleanly. */
async function stop(host) {
  const { code } = await host.kill('SIGTERM');
  assert.equal(code, 0, `sque-host exited with ${code}; its stderr:\n${host.errors.slice(-20).join('\n')}`);
}

describe('Node and sque-host on one queue', () => {
  test('jobs Node pushes are handled by sque-host run, and their results read back from Node', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, { ...o, dispatch: false }));
    const ids = await manager.pushMany(Array.from({ length: 50 }, (_, i) => ({ email: `test${i}@mail.org` })));
    const host = await startHost(env.redis.url, ['--queue', q, '--handler', guest('send_email'), '--slots', '4']);
    try {
      for (const [i, id] of ids.entries()) {
        assert.deepEqual(await manager.wait(id, { timeout: 20000 }), { to: `test${i}@mail.org`, status: null });
      }
      // A bad address fails for good: the handler's own verdict reaches Node as "dead".
      const bad = await manager.push({ email: 'not an address' });
      await assert.rejects(manager.wait(bad, { timeout: 20000 }), (e) => e.code === 'dead' && /address/.test(e.message));
      const s = await manager.stats();
      assert.equal(s.completed, 50);
      assert.equal(s.dead, 1);
    } finally {
      await stop(host);
    }
  });

  test('jobs sque-host push writes are consumed by Node workers in the order they were pushed', async () => {
    const [q, o] = fresh();
    const lines = Array.from({ length: 300 }, (_, i) => JSON.stringify({ i, text: `line ${i}` })).join('\n');
    const pushed = await squeHost(['push', '--redis', env.redis.url, '--queue', q, '--quiet'], { input: `${lines}\n` });
    assert.equal(pushed.code, 0, pushed.stderr);
    const ids = pushed.stdout.trim().split('\n');
    assert.equal(ids.length, 300);
    // A Node manager dispatches: no sque-host runs now.
    track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const seen = [];
    const done = new Promise((resolve) => {
      client.process((data, job) => {
        seen.push([job.id, data.i]);
        if (seen.length === 300) resolve();
        return { i: data.i };
      });
    });
    await done;
    assert.deepEqual(seen, ids.map((id, i) => [id, i]));
  });

  test('a Node manager dispatches and reaps for sque-host workers (--no-manager): retries come back, attempt 2', async () => {
    const [q, o] = fresh({ backoff: 100, backoffMax: 100, maxAttempts: 2 });
    const manager = track(new sque.manager(q, o));
    await manager.ready;
    const host = await startHost(env.redis.url, ['--queue', q, '--handler', guest('fixtures'), '--no-manager', '--slots', '2']);
    try {
      const ok = await manager.push({ do: 'ok' });
      assert.deepEqual(await manager.wait(ok, { timeout: 20000 }), { ok: true, attempt: 1 });
      // Retried once (the Node manager's reaper moves it back from the delayed set), then dead.
      const retry = await manager.push({ do: 'retry' });
      await assert.rejects(manager.wait(retry, { timeout: 20000 }), (e) => e.code === 'dead' && /asked to retry/.test(e.message));
      const s = await manager.stats();
      assert.equal(s.retried, 1);
      assert.equal(s.dead_lettered, 1);
      const dead = await squeHost(['dead', 'list', '--redis', env.redis.url, '--queue', q, '--json']);
      assert.equal(dead.code, 0, dead.stderr);
      const [entry] = dead.stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(entry.id, retry);
      assert.equal(entry.attempts, 2);
    } finally {
      await stop(host);
    }
  });

  test('a sque-host manager (--manager-only) dispatches and reaps for Node workers', async () => {
    const [q, o] = fresh({ backoff: 100, backoffMax: 100, maxAttempts: 3 });
    const manager = track(new sque.manager(q, { ...o, dispatch: false }));
    await manager.ready;
    const host = await startHost(env.redis.url, ['--queue', q, '--manager-only']);
    try {
      const client = track(new sque.client(q, o));
      client.process((data, job) => {
        if (job.attempt < 2) throw new Error('not yet');
        return { attempt: job.attempt, data };
      });
      const ids = await manager.pushMany([{ a: 1 }, { a: 2 }, { a: 3 }]);
      for (const [i, id] of ids.entries()) {
        assert.deepEqual(await manager.wait(id, { timeout: 20000 }), { attempt: 2, data: { a: i + 1 } });
      }
      assert.equal((await manager.stats()).retried, 3);
    } finally {
      await stop(host);
    }
  });

  test('Node workers and sque-host slots share one queue: every job handled once, none lost', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    await manager.ready;
    const host = await startHost(env.redis.url, ['--queue', q, '--handler', guest('fixtures'), '--slots', '2']);
    try {
      const client = track(new sque.client(q, o));
      client.process(() => ({ ok: true, by: 'node' }), { concurrency: 2 });
      const ids = await manager.pushMany(Array.from({ length: 400 }, () => ({ do: 'ok' })));
      const by = { node: 0, host: 0 };
      for (const id of ids) {
        const result = await manager.wait(id, { timeout: 20000 });
        by[result.by === 'node' ? 'node' : 'host'] += 1;
      }
      assert.equal(by.node + by.host, 400);
      const s = await manager.stats();
      assert.equal(s.completed, 400);
      assert.equal(s.dispatched, 400);
      assert.equal(s.expired, 0);
    } finally {
      await stop(host);
    }
  });
});

describe('sque-host and Node agree on what is refused', () => {
  test('a job over the queue limit that sque-host set is refused by Node, and nothing is pushed', async () => {
    const [q, o] = fresh();
    const created = await squeHost(['push', '--redis', env.redis.url, '--queue', q, '--max-job-bytes', '100', '{"first":true}']);
    assert.equal(created.code, 0, created.stderr);
    const manager = track(new sque.manager(q, { ...o, dispatch: false }));
    await manager.ready;
    assert.equal(manager.settings.max_job_bytes, 100);
    await assert.rejects(manager.push({ big: 'x'.repeat(200) }), (e) => e.code === 'too_large' && /100 bytes/.test(e.message));
    assert.equal((await manager.stats()).waiting, 1);
    assert.equal((await manager.stats()).pushed, 1);
  });
});

describe('a job cancelled by sque-host', () => {
  test('a Node worker holding it has its completion refused with code cancelled, and the job is not completed', async () => {
    const [q, o] = fresh();
    const manager = track(new sque.manager(q, o));
    const client = track(new sque.client(q, o));
    const id = await manager.push({ long: true });
    const job = await client.iAmFree();
    const cancelled = await squeHost(['job', 'cancel', '--redis', env.redis.url, '--queue', q, String(id)]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, /it was running/);
    await assert.rejects(job.complete({ late: true }), (e) => e.code === 'cancelled');
    assert.equal((await manager.stats()).completed, 0);
    const shown = await squeHost(['job', 'show', '--json', '--redis', env.redis.url, '--queue', q, String(id)]);
    assert.equal(JSON.parse(shown.stdout).state, 'cancelled');
    await assert.rejects(manager.wait(id, { timeout: 5000 }), (e) => e.code === 'cancelled');
    // One cancelled while it waited, too.
    const queued = await manager.push({ never: true });
    const again = await squeHost(['job', 'cancel', '--redis', env.redis.url, '--queue', q, String(queued)]);
    assert.equal(again.code, 0, again.stderr);
    await assert.rejects(manager.wait(queued, { timeout: 5000 }), (e) => e.code === 'cancelled');
  });
});
