'use strict';
// The package on what it promises to run over besides node-redis v5 and one server:
// node-redis v6 (the peer dependency allows both), and a Redis Cluster of three masters,
// where each queue lives on the node of its hash slot.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');

const sque = require('sque');
const { RedisCluster, RedisServer } = require('./support');

/** Pushes, consumes in order, fails once and retries, completes and reads the results back. */
async function roundTrip(queue, options) {
  const o = { ...options, backoff: 50, backoffMax: 50 };
  const manager = new sque.manager(queue, o);
  const client = new sque.client(queue, o);
  try {
    const ids = await manager.pushMany(Array.from({ length: 120 }, (_, i) => ({ i })));
    const order = [];
    for (let i = 0; i < 120; i += 1) {
      const job = await client.iAmFree();
      order.push(job.data.i);
      if (i === 0) {
        await job.fail(new Error('once'));
        continue;
      }
      await job.complete({ twice: job.data.i * 2 });
    }
    // The job that failed comes back after its backoff, attempt 2.
    const again = await client.iAmFree();
    assert.equal(again.id, ids[0]);
    assert.equal(again.attempt, 2);
    await again.complete({ twice: 0 });
    assert.deepEqual(order, Array.from({ length: 120 }, (_, i) => i));
    for (const [i, id] of ids.entries()) assert.deepEqual(await manager.wait(id), { twice: i * 2 });
    const s = await manager.stats();
    assert.equal(s.completed, 120);
    assert.equal(s.retried, 1);
    assert.equal(s.requests, 0);
  } finally {
    await client.close();
    await manager.close();
  }
}

describe('node-redis v6', () => {
  let redis;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis.stop();
  });

  test('the same protocol over redis@6', async () => {
    // eslint-disable-next-line global-require
    const redis6 = require('redis6');
    assert.match(require('redis6/package.json').version, /^6\./);
    await roundTrip('v6', { redis: { url: redis.url }, redisModule: redis6 });
  });
});

describe('Redis Cluster', () => {
  let cluster;
  before(async () => {
    cluster = await RedisCluster.start();
  });
  after(async () => {
    await cluster.stop();
  });

  test('queues on different masters each keep their order and lose nothing', async () => {
    const url = cluster.url;
    // Names whose hash slots fall on different masters (slots 0-5460, 5461-10922, 10923-16383).
    await Promise.all(['alpha', 'beta', 'gamma'].map((q) => roundTrip(q, { redis: { url } })));
    const owners = new Set(
      ['alpha', 'beta', 'gamma'].map((q) => cluster.nodes.findIndex((node) => node.cli('EXISTS', `sque:{${q}}:meta`) === '1')),
    );
    assert.ok(owners.size >= 2, `the queues should span masters, they are on ${[...owners]}`);
  });
});
