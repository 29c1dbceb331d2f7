// The Node side of sque in the benchmark: the npm package of clients/node, in the cases
// BullMQ runs too (bench/peers/bullmq/bench.mjs), one case per invocation, one JSON line of
// results on stdout. The harness (bench/src/main.rs) runs it alternately with BullMQ.
//
//   node bench.mjs <case> <redis-port> [n] [concurrency]
//   cases: push-many, single-push, process
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";

const sque = createRequire(import.meta.url)("../../clients/node/index.js");

const [, , kind, portArg, nArg, concArg] = process.argv;
const redis = { url: `redis://127.0.0.1:${Number(portArg)}` };
const n = Number(nArg || 0);
const concurrency = Number(concArg || 1);
const now = () => performance.timeOrigin + performance.now(); // ms, sub-ms precision
const job = (i) => ({ email: `test${i}@mail.org` });
const name = `bench-node-${kind}-${process.pid}`;

// As BullMQ's side: chunks of 1,000 jobs, each awaited.
async function pushMany(manager) {
  const t0 = now();
  for (let i = 0; i < n; i += 1000) {
    const chunk = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) chunk.push(job(j));
    await manager.pushMany(chunk);
  }
  return { jobs: n, seconds: (now() - t0) / 1000 };
}

async function singlePush(manager) {
  const t0 = now();
  for (let i = 0; i < n; i++) await manager.push(job(i));
  return { jobs: n, seconds: (now() - t0) / 1000 };
}

// Workers at `concurrency` with a no-op handler; timed from the first 1% of jobs handled to
// the last one completed in Redis, as the other processing cases are.
async function processAll(manager) {
  await pushMany(manager);
  const client = new sque.client(name, { redis });
  const warmAt = Math.max(1, Math.floor(n / 100));
  let handled = 0;
  let t0 = 0;
  let allHandled;
  const finished = new Promise((resolve) => (allHandled = resolve));
  client.process(() => {
    handled++;
    if (handled === warmAt) t0 = now();
    if (handled === n) allHandled();
  }, { concurrency });
  await finished;
  while ((await manager.stats()).completed < n) await new Promise((r) => setTimeout(r, 2));
  const seconds = (now() - t0) / 1000;
  const rss = process.memoryUsage().rss;
  await client.close();
  return { jobs: n - warmAt, seconds, rss_bytes: rss };
}

const cases = { "push-many": pushMany, "single-push": singlePush, process: processAll };
if (!cases[kind]) {
  console.error(`unknown case ${kind}`);
  process.exit(2);
}
// Only the processing case needs a dispatcher: pushes alone measure pushing.
const manager = new sque.manager(name, { redis, dispatch: kind === "process" });
await manager.ready;
const result = await cases[kind](manager);
await manager.close();
console.log(JSON.stringify(result));
process.exit(0);
