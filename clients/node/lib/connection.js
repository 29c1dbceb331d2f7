'use strict';
// Where Redis is and how to talk to it: one server, a Redis Cluster, or a master found
// through Sentinel, over node-redis (a peer dependency, v5 or v6).
//
// Every manager and client of a process that name the same Redis share one connection, and
// their ordered calls (pushes, requests) go through one lane in the order they were made, so
// that "requests a process makes go to Redis in the order it made them, whichever client
// makes them" holds, as the original design's example needs (client1, client2, client1).
//
// URLs, as sque-host takes them:
//   redis://[user:password@]host[:port][/db]               (rediss:// for TLS)
//   redis+cluster://[user:password@]host:port[,host:port]  (rediss+cluster://)
//   redis+sentinel://[user:password@]host:port[,...]/service[/db]

const { fromRedis, SqueError } = require('./errors');
const bundle = require('./bundle');
const { Lane } = require('./lane');

/** @type {Map<string, Connection>} */
const shared = new Map();

class Connection {
  /**
   * The connection for `redis` options ({url, ...node-redis client options}), shared within
   * the process; release it with `release()`.
   */
  static acquire(redis, redisModule) {
    const url = redis.url || process.env.SQUE_REDIS_URL || 'redis://127.0.0.1:6379';
    const key = JSON.stringify({ ...redis, url });
    let con = shared.get(key);
    if (!con || con.closed) {
      con = new Connection(key, url, redis, redisModule || require('redis'));
      shared.set(key, con);
    }
    con.refs += 1;
    return con;
  }

  constructor(key, url, options, mod) {
    this.key = key;
    this.url = url;
    this.refs = 0;
    this.closed = false;
    this.mod = mod;
    this.options = options;
    this.kind = parseKind(url);
    /** Ordered calls (pushes, a worker's exchanges) go through here; see lane.js. */
    this.lane = new Lane();
    /** Scripts loaded on this connection (by name, and by queue on a cluster). */
    this.loaded = new Set();
    this.buffers = { [mod.RESP_TYPES.BLOB_STRING]: Buffer };
    const { url: _u, ...rest } = options;
    // A call made while Redis is away fails at once (code 'unavailable') instead of waiting
    // in node-redis's offline queue for a reconnect that may never come: a push that cannot
    // be stored says so, as sque-host's and the Rust library's do, and never hangs its caller.
    const offline = { disableOfflineQueue: true };
    if (this.kind.type === 'cluster') {
      this.client = mod.createCluster({
        ...rest,
        rootNodes: this.kind.nodes.map((n) => ({ url: n })),
        defaults: { ...offline, ...(rest.defaults || {}), ...credentials(url) },
      });
    } else if (this.kind.type === 'sentinel') {
      this.client = mod.createSentinel({
        ...rest,
        name: this.kind.service,
        sentinelRootNodes: this.kind.sentinels,
        nodeClientOptions: { ...offline, ...(rest.nodeClientOptions || {}), ...credentials(url), database: this.kind.db },
      });
    } else {
      this.client = mod.createClient({ ...offline, ...rest, url });
    }
    // Errors surface on the calls that meet them; node-redis reconnects by itself.
    this.client.on('error', () => {});
    this.ready = this.client.connect().then(
      () => this,
      (err) => {
        throw fromRedis(err);
      },
    );
  }

  /** Redacted URL, for messages. */
  get shownUrl() {
    return this.url.replace(/\/\/([^:@/]*):[^/]*@/, '//$1:***@');
  }

  /** A command; `firstKey` routes it on a cluster. */
  async command(firstKey, args, { readonly = false, binary = false } = {}) {
    await this.ready;
    return this.send(firstKey, args, readonly, binary).catch((err) => {
      throw fromRedis(err);
    });
  }

  send(firstKey, args, readonly, binary) {
    const target = binary ? this.client.withTypeMapping(this.buffers) : this.client;
    const strs = args.map((a) => (Buffer.isBuffer(a) ? a : String(a)));
    if (this.kind.type === 'cluster') return target.sendCommand(firstKey, readonly, strs);
    if (this.kind.type === 'sentinel') return target.sendCommand(readonly, strs);
    return target.sendCommand(strs);
  }

  /**
   * Calls a protocol script by SHA and returns the promise of the reply. Every script takes
   * the queue's meta first and the protocol version first among its arguments.
   *
   * The command is issued at once (the lane relies on it): the first call of a script on
   * this connection (on a cluster: for this queue) issues `SCRIPT LOAD` just before, on the
   * same node, so that it never meets NOSCRIPT and never falls behind a later call. A
   * NOSCRIPT later (Redis restarted and lost its script cache) loads it again and retries.
   */
  script(name, keys, args, { binary = false } = {}) {
    const { sha, text } = bundle.scripts[name];
    const call = ['EVALSHA', sha, keys.length, ...keys, bundle.PROTOCOL, ...args];
    const seen = this.kind.type === 'cluster' ? `${name} ${keys[0]}` : name;
    if (!this.loaded.has(seen)) {
      this.loaded.add(seen);
      this.send(keys[0], ['SCRIPT', 'LOAD', text], false, false).catch(() => this.loaded.delete(seen));
    }
    return this.send(keys[0], call, false, binary).catch(async (err) => {
      if (!String(err && err.message).startsWith('NOSCRIPT')) throw fromRedis(err);
      await this.send(keys[0], ['SCRIPT', 'LOAD', text], false, false).catch((e) => {
        throw fromRedis(e);
      });
      return this.send(keys[0], call, false, binary).catch((e) => {
        throw fromRedis(e);
      });
    });
  }

  /** A connection of its own, for blocking pops (the inbox reader). */
  async blocking() {
    await this.ready;
    if (this.kind.type === 'sentinel') {
      const lease = await this.client.acquire();
      return {
        call: (args) => lease.withTypeMapping(this.buffers).sendCommand(args.map(String)),
        close: async () => lease.release(),
      };
    }
    const dup = this.client.duplicate();
    dup.on('error', () => {});
    await dup.connect();
    const typed = dup.withTypeMapping(this.buffers);
    return {
      call: (args, firstKey) =>
        this.kind.type === 'cluster'
          ? typed.sendCommand(firstKey, false, args.map(String))
          : typed.sendCommand(args.map(String)),
      close: () => closeQuietly(dup),
    };
  }

  /** Subscribes to a sharded channel; returns the function that unsubscribes. */
  async subscribe(channel, listener) {
    await this.ready;
    if (this.kind.type === 'sentinel') {
      await this.client.sSubscribe(channel, listener);
      return async () => this.client.sUnsubscribe(channel, listener).catch(() => {});
    }
    const dup = this.client.duplicate();
    dup.on('error', () => {});
    await dup.connect();
    await dup.sSubscribe(channel, listener);
    return () => closeQuietly(dup);
  }

  /** Lets go of the connection; the last to let go closes it. */
  async release() {
    this.refs -= 1;
    if (this.refs > 0 || this.closed) return;
    this.closed = true;
    shared.delete(this.key);
    await this.ready.catch(() => {});
    await closeQuietly(this.client);
  }
}

/** Closes a node-redis client; one that never connected, or lost its socket, is let go. */
async function closeQuietly(client) {
  try {
    await (client.close ? client.close() : client.quit());
  } catch {
    try {
      client.destroy();
    } catch {
      // Already closed: nothing to let go.
    }
  }
}

function parseKind(url) {
  const m = /^(rediss?)\+(cluster|sentinel):\/\/(?:([^@]*)@)?([^/]*)(?:\/(.*))?$/.exec(url);
  if (!m) {
    if (!/^rediss?:\/\//.test(url)) {
      throw new SqueError('invalid_input', `bad Redis URL ${url.replace(/:[^:@/]*@/, ':***@')}: expected redis://[user:password@]host[:port][/db], redis+cluster://host:port[,host:port...] or redis+sentinel://host:port[,host:port...]/service`);
    }
    return { type: 'single' };
  }
  const [, scheme, type, userinfo, hosts, pathPart] = m;
  const auth = userinfo ? `${userinfo}@` : '';
  const list = hosts.split(',').filter(Boolean);
  if (list.length === 0) throw new SqueError('invalid_input', `bad Redis URL: it names no host`);
  if (type === 'cluster') return { type, nodes: list.map((h) => `${scheme}://${auth}${h}`) };
  const [service, db] = (pathPart || '').split('/');
  if (!service) throw new SqueError('invalid_input', `bad Redis URL: it names no service (the master's name the sentinels know)`);
  return {
    type,
    service,
    db: db ? Number(db) : 0,
    sentinels: list.map((h) => {
      const [host, port] = h.split(':');
      return { host, port: Number(port || 26379) };
    }),
  };
}

/** The user and password of a URL, as node-redis options. */
function credentials(url) {
  const m = /^[a-z+]+:\/\/([^:@/]*)(?::([^@/]*))?@/.exec(url);
  if (!m) return {};
  const out = {};
  if (m[1]) out.username = decodeURIComponent(m[1]);
  if (m[2] !== undefined) out.password = decodeURIComponent(m[2]);
  return out;
}

module.exports = { Connection };
