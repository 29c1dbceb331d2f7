'use strict';
// What the tests stand on: a private redis-server on a free port (never the shared one on
// 6379), which a test can kill and restart; a Redis Cluster of three masters; the real
// sque-host binary and guest components of the workspace; and waits that await events with
// a generous bound, so that a broken test fails instead of hanging.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const workspace = path.resolve(__dirname, '..', '..', '..');

/** The sque-host binary: SQUE_HOST_BIN, else the workspace's debug build. */
function squeHostBin() {
  const bin = process.env.SQUE_HOST_BIN || path.join(workspace, 'target', 'debug', 'sque-host');
  if (!fs.existsSync(bin)) {
    throw new Error(`${bin} is missing: build it with \`cargo build -p sque-host\` (or set SQUE_HOST_BIN)`);
  }
  return bin;
}

/** A guest component of the workspace (noop, send_email, fixtures), built for wasm32-wasip2. */
function guest(name) {
  const dir = process.env.SQUE_GUESTS_DIR || path.join(workspace, 'target', 'wasm32-wasip2', 'release');
  const file = path.join(dir, `${name}.wasm`);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: build it with \`cargo build --release --target wasm32-wasip2 -p noop -p send-email -p fixtures\``);
  }
  return file;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Waits until `check()` (sync or async) is truthy; returns its value. */
async function waitFor(what, check, { timeout = 20000, every = 20 } = {}) {
  const until = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** One redis-server on a free port, in a directory of its own. */
class RedisServer {
  static async start(args = []) {
    const server = new RedisServer(await freePort(), args);
    await server.spawn();
    return server;
  }

  constructor(port, args) {
    this.port = port;
    this.args = args;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sque-node-redis-'));
    this.child = null;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  async spawn() {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.args], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const child = this.child;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    this.exited = exited;
    await waitFor(`redis-server on port ${this.port}`, () => Promise.race([ping(this.port), exited.then(() => { throw new Error('redis-server exited at start (is it installed?)'); })]));
  }

  /** Runs a command with redis-cli; returns its output, trimmed. */
  cli(...args) {
    const out = spawnSync('redis-cli', ['-p', String(this.port), ...args.map(String)], { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${out.stderr}`);
    return out.stdout.trim();
  }

  /** kill -9, and wait until it is gone. */
  async kill() {
    if (!this.child) return;
    this.child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }

  async restart() {
    await this.kill();
    await this.spawn();
  }

  async stop() {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Redis Cluster of three masters on free ports. */
class RedisCluster {
  static async start() {
    const nodes = [];
    for (let i = 0; i < 3; i += 1) {
      nodes.push(await RedisServer.start(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000']));
    }
    const out = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-yes'], { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`redis-cli --cluster create failed: ${out.stdout}${out.stderr}`);
    await waitFor('the cluster to be ok', () => nodes.every((n) => n.cli('cluster', 'info').includes('cluster_state:ok')));
    const cluster = new RedisCluster();
    cluster.nodes = nodes;
    return cluster;
  }

  get url() {
    return `redis+cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  async stop() {
    for (const n of this.nodes) await n.stop();
  }
}

function ping(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('error', () => resolve(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
  });
}

/**
 * A child process (sque-host, or a Node script) whose output lines can be awaited. Its
 * stderr is kept, and shown when a wait fails.
 */
class Proc {
  constructor(command, args, { env = {}, stdin = 'pipe' } = {}) {
    this.child = spawn(command, args, { env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
    this.lines = [];
    this.errors = [];
    this.waiters = [];
    this.exit = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => this.see(this.lines, line));
    readline.createInterface({ input: this.child.stderr }).on('line', (line) => this.see(this.errors, line));
  }

  see(list, line) {
    list.push(line);
    for (const w of [...this.waiters]) w();
  }

  /** Waits for a line of stdout (or stderr, with `stderr: true`) that `match` accepts. */
  line(match, { stderr = false, timeout = 20000 } = {}) {
    const list = stderr ? this.errors : this.lines;
    const test = typeof match === 'function' ? match : (l) => l.includes(match);
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = list.find(test);
        if (found === undefined) return false;
        this.waiters = this.waiters.filter((w) => w !== check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out waiting for ${match} from the child; its stderr:\n${this.errors.slice(-30).join('\n')}`));
      }, timeout);
      if (!check()) this.waiters.push(check);
    });
  }

  async kill(signal = 'SIGKILL') {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exit;
  }
}

/** Runs `sque-host ARGS` to its end; resolves to {code, stdout, stderr}. */
function squeHost(args, { env = {}, input } = {}) {
  return new Promise((resolve) => {
    const child = spawn(squeHostBin(), args, { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Starts `sque-host run ARGS` against `url`, and waits until its slots are asking for jobs. */
async function startHost(url, args) {
  const host = new Proc(squeHostBin(), ['run', '--redis', url, ...args], { env: { SQUE_LOG: 'info' }, stdin: 'ignore' });
  await host.line(' started: ', { stderr: true });
  return host;
}

/**
 * A private redis-server for the test file that calls this (started before its tests,
 * stopped after them), fresh queue names on it, and what to close at the end:
 * `const env = privateRedis('t')`, then `env.redis`, `env.fresh(settings)` → [name, options]
 * and `env.track(managerOrClient)`.
 */
function privateRedis(prefix) {
  const { after, before } = require('node:test');
  const env = { redis: null };
  const opened = [];
  let n = 0;
  env.fresh = (extra = {}) => {
    n += 1;
    return [`${prefix}${n}`, { redis: { url: env.redis.url }, ...extra }];
  };
  env.track = (x) => {
    opened.push(x);
    return x;
  };
  before(async () => {
    env.redis = await RedisServer.start();
  });
  after(async () => {
    for (const x of opened.reverse()) await x.close().catch(() => {});
    await env.redis.stop();
  });
  return env;
}

module.exports = { RedisServer, RedisCluster, Proc, privateRedis, squeHost, squeHostBin, startHost, guest, waitFor, workspace };
