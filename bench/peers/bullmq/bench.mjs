// The BullMQ side of the sque benchmark. One case per invocation, one JSON line of results
// on stdout. The harness (bench/src/main.rs) runs it alternately with the sque side.
//
//   node bench.mjs <case> <redis-port> [n] [concurrency]
//   cases: bulk-push, single-push, process, latency, bytes-per-job
import { Queue, Worker } from "bullmq";
import { performance } from "node:perf_hooks";

const [, , kind, portArg, nArg, concArg] = process.argv;
const connection = { host: "127.0.0.1", port: Number(portArg) };
const n = Number(nArg || 0);
const concurrency = Number(concArg || 1);
const now = () => performance.timeOrigin + performance.now(); // ms, sub-ms precision
const job = (i) => ({ email: `test${i}@mail.org` });
const name = `bench-${kind}-${process.pid}`;

async function bulkPush(queue) {
  const t0 = now();
  for (let i = 0; i < n; i += 1000) {
    const chunk = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) chunk.push({ name: "email", data: job(j) });
    await queue.addBulk(chunk);
  }
  return { jobs: n, seconds: (now() - t0) / 1000 };
}

async function singlePush(queue) {
  const t0 = now();
  for (let i = 0; i < n; i++) await queue.add("email", job(i));
  return { jobs: n, seconds: (now() - t0) / 1000 };
}

async function processAll(queue) {
  await bulkPush(queue);
  let done = 0;
  let t0 = 0;
  let warm = 0;
  const warmAt = Math.max(1, Math.floor(n / 100));
  const finished = new Promise((resolve) => {
    const worker = new Worker(
      name,
      async () => {},
      { connection, concurrency, removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } },
    );
    worker.on("completed", () => {
      done++;
      if (done === warmAt) { t0 = now(); warm = done; }
      if (done === n) resolve(worker);
    });
  });
  const worker = await finished;
  const seconds = (now() - t0) / 1000;
  const rss = process.memoryUsage().rss;
  await worker.close();
  return { jobs: n - warm, seconds, rss_bytes: rss };
}

async function latency(queue) {
  const starts = new Map();
  let done = 0;
  const finished = new Promise((resolve) => {
    const worker = new Worker(
      name,
      async (j) => { starts.set(j.data.i, now()); },
      { connection, concurrency, removeOnComplete: { count: 0 } },
    );
    worker.on("completed", () => { if (++done === n) resolve(worker); });
  });
  await new Promise((r) => setTimeout(r, 200)); // let the worker connect
  const pushed = new Map();
  for (let i = 0; i < n; i++) {
    pushed.set(i, now());
    await queue.add("email", { ...job(i), i });
    await new Promise((r) => setTimeout(r, 2));
  }
  const worker = await finished;
  await worker.close();
  const ms = [...pushed.keys()].map((i) => starts.get(i) - pushed.get(i)).sort((a, b) => a - b);
  const q = (p) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))];
  return { jobs: n, p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99), max_ms: ms[ms.length - 1] };
}

async function bytesPerJob(queue) {
  const client = await queue.client;
  const used = async () => Number(/used_memory:(\d+)/.exec(await client.info("memory"))[1]);
  const before = await used();
  await bulkPush(queue);
  const after = await used();
  return { jobs: n, bytes_per_job: (after - before) / n };
}

const queue = new Queue(name, { connection });
await queue.waitUntilReady();
const cases = { "bulk-push": bulkPush, "single-push": singlePush, process: processAll, latency, "bytes-per-job": bytesPerJob };
if (!cases[kind]) {
  console.error(`unknown case ${kind}`);
  process.exit(2);
}
const result = await cases[kind](queue);
await queue.obliterate({ force: true });
await queue.close();
console.log(JSON.stringify(result));
process.exit(0);
