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
    /** Whether the first connection was made (a later outage is node-redis's to mend). */
    this.connected = false;
    // The first connection is tried once: a Redis unreachable at the start fails `ready`, and
    // every call that awaits it, with code 'unavailable' at once, as the README promises,
    // instead of node-redis retrying for ever while callers and close() wait on it.
    this.ready = connectOnce(this.client, this.kind.type, () => this.shownUrl).then(
      () => {
        this.connected = true;
        return this;
      },
      (err) => {
        // Let go, so that the next manager or client of this Redis tries a connection anew.
        if (shared.get(this.key) === this) shared.delete(this.key);
        throw err;
      },
    );
    this.ready.catch(() => {});
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

  /**
   * A connection of its own, for blocking pops (the inbox reader). Its connection is tried
   * once (a Redis away fails it with 'unavailable'; the caller tries again later), and
   * `signal` (an AbortSignal) gives up on it at once: a client's close() must not wait for
   * a Redis that is not coming back.
   */
  async blocking(signal) {
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
    await connectOnce(dup, this.kind.type, () => this.shownUrl, signal);
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
    await connectOnce(dup, this.kind.type, () => this.shownUrl);
    try {
      await dup.sSubscribe(channel, listener);
    } catch (err) {
      await closeQuietly(dup);
      throw fromRedis(err);
    }
    return () => closeQuietly(dup);
  }

  /** Lets go of the connection; the last to let go closes it. */
  async release() {
    this.refs -= 1;
    if (this.refs > 0 || this.closed) return;
    this.closed = true;
    if (shared.get(this.key) === this) shared.delete(this.key);
    if (!this.connected) {
      // A first connection still being made (or failed) is given up at once: nothing was
      // sent on it that close() should wait for.
      destroyQuietly(this.client);
      return;
    }
    await closeQuietly(this.client);
  }
}

/**
 * Connects a node-redis client, trying once: the first error (Redis refused, a timeout, a
 * password refused) fails it, and the client is destroyed so that node-redis stops trying
 * (its own connect() would retry for ever, holding the process open). A Cluster's or a
 * Sentinel's connect() gives up by itself once every node it knows failed; their errors
 * along the way are of single nodes, so they are not taken as the end. `signal` (an
 * AbortSignal) gives up at once, with code 'closed'.
 */
function connectOnce(client, type, shownUrl, signal) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err) => {
      if (settled) return;
      settled = true;
      client.off('error', onError);
      if (signal) signal.removeEventListener('abort', onAbort);
      if (err) {
        destroyQuietly(client);
        reject(err);
      } else resolve();
    };
    const onError = (err) => settle(unreachable(err, shownUrl()));
    const onAbort = () => settle(new SqueError('closed', 'closed while connecting to Redis'));
    if (signal && signal.aborted) return onAbort();
    if (type === 'single') client.on('error', onError);
    if (signal) signal.addEventListener('abort', onAbort);
    client.connect().then(
      // A client destroyed while it connected resolves too: settled already.
      () => settle(null),
      (err) => settle(unreachable(err, shownUrl())),
    );
  });
}

/** The error of a first connection that failed: 'unavailable' unless Redis itself refused. */
function unreachable(err, url) {
  const e = fromRedis(err);
  if (e.code !== 'redis' || /WRONGPASS|NOAUTH|NOPERM/.test(e.message)) return e;
  return new SqueError('unavailable', `cannot reach Redis at ${url}: ${(err && err.message) || err} (is redis-server running, and is the URL right?)`, err);
}

/** Destroys a node-redis client at once (its pending calls fail); one closed already is let be. */
function destroyQuietly(client) {
  try {
    client.destroy();
  } catch {
    // Closed already: nothing to let go.
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
