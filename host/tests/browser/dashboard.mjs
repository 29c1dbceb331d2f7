// The dashboard in a real browser (Debian's Chromium, driven by playwright-core), run by
// host/tests/dashboard.rs, which starts Redis, the hosts and two dashboards and passes them
// here in the environment:
//   SQUE_DASHBOARD_URL   the dashboard with a user (SQUE_DASHBOARD_USER, _PASSWORD)
//   SQUE_READ_ONLY_URL   a --read-only dashboard of the same Redis
//   SQUE_REDIS_URL       that Redis (jobs are pushed through the Node package, clients/node)
//   SQUE_DEAD_ID         a dead job the page retries (a host that can complete it runs)
//   SQUE_HOSTILE_ID      a dead job whose data holds <script> and <img onerror>
//   SQUE_SCREENSHOTS     where each page's screenshot goes
// Every step waits for what the page shows; a step that does not come ends the run (exit 1)
// with what was awaited.

import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const sque = require('../../../clients/node');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = env('SQUE_DASHBOARD_URL');
const readOnlyUrl = env('SQUE_READ_ONLY_URL');
const user = env('SQUE_DASHBOARD_USER');
const password = env('SQUE_DASHBOARD_PASSWORD');
const redis = env('SQUE_REDIS_URL');
const deadId = env('SQUE_DEAD_ID');
const hostileId = env('SQUE_HOSTILE_ID');
const shots = env('SQUE_SCREENSHOTS');
const TIMEOUT = 30_000;

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.SQUE_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  timeout: TIMEOUT,
});
let current = null; // the page in use, for what it showed when a check failed
const manager = new sque.manager('mail', { redis: { url: redis }, dispatch: false });
try {
  // Without credentials: refused, page and API alike.
  {
    const anonymous = await browser.newContext();
    const response = await anonymous.request.get(url);
    check(response.status() === 401, `the page without credentials is refused (${response.status()})`);
    const api = await anonymous.request.get(new URL('/api/events', url).href);
    check(api.status() === 401, `the live stream without credentials is refused (${api.status()})`);
    await anonymous.close();
  }

  const context = await browser.newContext({ httpCredentials: { username: user, password }, viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  current = page;
  const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  // All queues, live: jobs pushed now show up as completed without a reload.
  await page.goto(url);
  const completed = page.locator('[data-queue="mail"] [data-count="completed"]');
  await completed.waitFor();
  const before = Number((await completed.textContent()).replace(/,/g, ''));
  await page.evaluate(() => { window.sameDocument = true; });
  for (let i = 0; i < 5; i++) await manager.push({ do: 'ok', n: i });
  await page.waitForFunction(
    ([want]) => Number(document.querySelector('[data-queue="mail"] [data-count="completed"]').textContent.replace(/,/g, '')) >= want,
    [before + 5],
  );
  check(await page.evaluate(() => window.sameDocument === true), `the count went from ${before} to ${before + 5}+ live, without a reload`);
  await shot('queues');

  // One queue: its counts, the chart, the live marker.
  await page.click('[data-queue="mail"] a');
  await page.locator('.chart polyline.completed').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('.chart polyline.completed')[0].getAttribute('points').split(' ').length >= 2);
  check(await page.locator('.cards [data-count="dead"]').count() === 1, 'the queue page shows its counts and a chart');
  const workers = await page.locator('.cards [data-count="workers"] .v').textContent();
  check(workers === '1', `the queue page counts its one live worker (${workers})`);
  await shot('queue');

  // The dead list: retry one job from the page, then find it by id and see it completed.
  await page.goto(`${url}#/queue/mail/dead`);
  const row = page.locator(`[data-test="dead"] tr[data-job="${deadId}"]`);
  await row.waitFor();
  check((await row.textContent()).includes('push'), `dead job ${deadId} is listed with its last error`);
  await shot('dead');
  await row.locator('[data-action="retry"]').click();
  await page.locator('[data-test="message"]', { hasText: 'Retried 1' }).waitFor();
  check(true, `job ${deadId} retried from the page`);
  await page.selectOption('#find-queue', 'mail');
  await page.fill('#find-id', deadId);
  await page.click('#find button');
  const state = page.locator('[data-test="job-state"]');
  for (;;) {
    await state.waitFor();
    if ((await state.textContent()) === 'completed') break;
    await page.waitForTimeout(200);
    await page.click('main button'); // Refresh
  }
  check((await page.locator('[data-test="job-result"]').textContent()).includes('pushed'), `job ${deadId}, found by id, completed with its result`);
  await shot('job');

  // Someone else's text is shown as text: no script of the job's data runs.
  await page.goto(`${url}#/queue/mail/job/${hostileId}`);
  const data = page.locator('[data-test="job-data"]');
  await data.waitFor();
  const text = await data.textContent();
  check(text.includes('<script>window.pwned=1</script>') && text.includes('<img src=x onerror='), 'the job data\'s markup is shown as text');
  check(await page.evaluate(() => window.pwned === undefined && document.querySelectorAll('main img, main script').length === 0), 'none of it ran or became an element');

  // Workers and hosts.
  await page.goto(`${url}#/workers`);
  await page.locator('[data-test="workers"] tr[data-worker]').first().waitFor();
  check(true, 'the workers page lists the live host');
  await shot('workers');
  await context.close();

  // Read-only: no buttons, and the server refuses a purge even when asked directly.
  const ro = await browser.newContext();
  ro.setDefaultTimeout(TIMEOUT);
  const roPage = await ro.newPage();
  current = roPage;
  await roPage.goto(`${readOnlyUrl}#/queue/mail/dead`);
  await roPage.locator(`[data-test="dead"] tr[data-job="${hostileId}"]`).waitFor();
  check(await roPage.locator('[data-action]').count() === 0, 'the read-only dead list has no retry or purge buttons');
  const status = await roPage.evaluate(async () => {
    const session = await (await fetch('/api/session')).json();
    const res = await fetch('/api/queues/mail/dead/purge', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-sque-csrf': session.csrf },
      body: JSON.stringify({ all: true }),
    });
    return res.status;
  });
  check(status === 403, `a purge sent to the read-only dashboard is refused (${status})`);
  await ro.close();
} catch (e) {
  if (current && !current.isClosed()) {
    console.error(`the page showed, at ${current.url()}:\n${await current.locator('main').innerText().catch(() => '?')}`);
    await current.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  }
  throw e;
} finally {
  await manager.close();
  await browser.close();
}
console.log('dashboard: every check passed');
