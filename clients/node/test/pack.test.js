'use strict';
// What npm publishes: `npm pack` makes a tarball that installs in an empty directory and runs
// there, required and imported, with nothing of the repository beside it.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { after, before, test } = require('node:test');

const { RedisServer } = require('./support');

const pkgDir = path.resolve(__dirname, '..');
let redis;
let dir;

function run(command, args, options = {}) {
  const out = spawnSync(command, args, { encoding: 'utf8', ...options });
  assert.equal(out.status, 0, `${command} ${args.join(' ')} failed:\n${out.stdout}\n${out.stderr}`);
  return out.stdout.trim();
}

before(async () => {
  redis = await RedisServer.start();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sque-pack-'));
});
after(async () => {
  await redis.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('npm pack gives a package that installs and runs in an empty directory', () => {
  const tarball = run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: pkgDir }).split('\n').pop();
  const listed = run('tar', ['-tzf', path.join(dir, tarball)]).split('\n');
  for (const file of ['package/index.js', 'package/index.mjs', 'package/index.d.ts', 'package/README.md', 'package/lua/manifest.json', 'package/lua/push.lua']) {
    assert.ok(listed.includes(file), `${file} should be in the tarball`);
  }
  assert.ok(!listed.some((f) => f.startsWith('package/test/') || f.startsWith('package/node_modules/')), 'tests and node_modules stay out');
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  // The redis version the repository tests with is in npm's cache after `npm ci`.
  const redisVersion = require('../node_modules/redis/package.json').version;
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--silent', path.join(dir, tarball), `redis@${redisVersion}`], { cwd: app });
  fs.writeFileSync(
    path.join(app, 'main.mjs'),
    `import sque from 'sque';
import { createRequire } from 'node:module';
const required = createRequire(import.meta.url)('sque');
const manager = new sque.manager('packed');
const id = await manager.push({ hello: 'world' });
const client = new required.client('packed');
const job = await client.iAmFree();
await job.complete({ seen: job.data.hello });
console.log(JSON.stringify({ same: job.id === id, result: await manager.wait(id), protocol: sque.PROTOCOL }));
await client.close();
await manager.close();
`,
  );
  const out = run(process.execPath, ['main.mjs'], { cwd: app, env: { ...process.env, SQUE_REDIS_URL: redis.url } });
  assert.deepEqual(JSON.parse(out), { same: true, result: { seen: 'world' }, protocol: '1.2' });
});
