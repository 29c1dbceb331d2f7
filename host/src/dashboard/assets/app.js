// The sque dashboard: one page, routed by the URL's hash, fed by the server's snapshots
// (Server-Sent Events, at most one a second). Everything shown comes from someone else (job
// data, errors, queue names): it is written with text nodes only, never as HTML.
'use strict';

const state = { session: null, snap: null, route: null, connected: false };
const main = document.getElementById('main');

// An element: h('td', {class: 'n'}, 'text', child, ...). Strings become text nodes.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replaces what main shows with `parts` (nested lists flattened; null and false skipped).
function show(...parts) {
  main.replaceChildren(...parts.flat(Infinity).filter((p) => p !== null && p !== undefined && p !== false));
}

function svg(tag, attrs) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

const q = (name) => encodeURIComponent(name);
const num = (n) => Number(n || 0).toLocaleString('en');
const rate = (n) => (n >= 100 ? Math.round(n) : Math.round(n * 10) / 10).toLocaleString('en');

// "in 4 s", "12 s ago", against the snapshot's clock.
function when(ms, now) {
  if (!ms) return '—';
  const d = Math.round((ms - (now || Date.now())) / 1000);
  const span = (s) => (s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
    : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`);
  return d >= 0 ? `in ${span(d)}` : `${span(-d)} ago`;
}
// An age: "850 ms", "12 s", "4 min 5 s", "3 h 2 min"; "—" for none.
function age(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 1) return `${ms} ms`;
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
// The oldest waiting job's age; "unknown" when jobs wait but its push is not on record.
const oldest = (s) => (s.oldest_waiting_age_ms === null && s.waiting > 0 ? 'unknown' : age(s.oldest_waiting_age_ms));
const stamp = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');

async function api(path, options = {}) {
  const init = { credentials: 'same-origin', headers: {} , ...options };
  if (options.body !== undefined) {
    init.method = 'POST';
    init.headers = { 'content-type': 'application/json', 'x-sque-csrf': state.session.csrf };
    init.body = JSON.stringify(options.body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { body = { error: text }; }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

// ---- Routing ----------------------------------------------------------------------------

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('?');
  // A hash typed or pasted wrong (`%zz`) is read as it is rather than stopping the page.
  const decode = (p) => { try { return decodeURIComponent(p); } catch (_) { return p; } };
  const path = parts[0].split('/').filter(Boolean).map(decode);
  const params = new URLSearchParams(parts[1] || '');
  if (path[0] === 'queue' && path[1] !== undefined) {
    if (path[2] === 'dead') return { page: 'dead', queue: path[1], offset: Number(params.get('offset') || 0) };
    if (path[2] === 'job' && path[3] !== undefined) return { page: 'job', queue: path[1], id: path[3] };
    return { page: 'queue', queue: path[1] };
  }
  if (path[0] === 'workers') return { page: 'workers' };
  return { page: 'queues' };
}

function navigate() {
  state.route = parseRoute();
  const r = state.route;
  if (r.queue && [...document.getElementById('find-queue').options].some((o) => o.value === r.queue)) {
    document.getElementById('find-queue').value = r.queue;
  }
  if (r.page === 'dead') return showDead(r);
  if (r.page === 'job') return showJob(r);
  renderLive();
}

// ---- Live pages (from the snapshot) ------------------------------------------------------

function renderLive() {
  const r = state.route;
  if (!r || !['queues', 'queue', 'workers'].includes(r.page)) return;
  const snap = state.snap;
  if (!snap) { show(h('p', { class: 'muted' }, 'Waiting for the first reading…')); return; }
  const content = r.page === 'queues' ? queuesPage(snap) : r.page === 'queue' ? queuePage(snap, r.queue) : workersPage(snap);
  const top = snap.error ? h('p', { class: 'notice error', 'data-test': 'read-error' }, `Redis could not be read: ${snap.error}`) : null;
  show(...[top, ...content].filter(Boolean));
}

function queuesPage(snap) {
  const heads = ['Queue', 'Waiting', 'Oldest waiting', 'In flight', 'Scheduled', 'Retrying', 'Dead', 'Workers', 'Pushed/s', 'Completed/s', 'Failed/s', 'Completed'];
  const rows = snap.queues.map((s) => h('tr', { 'data-queue': s.queue },
    h('td', {}, h('a', { href: `#/queue/${q(s.queue)}` }, s.queue), s.paused ? h('span', { class: 'paused' }, ' (paused)') : null),
    h('td', { class: 'n', 'data-count': 'waiting' }, num(s.waiting)),
    h('td', { class: 'n', 'data-count': 'oldest' }, oldest(s)),
    h('td', { class: 'n', 'data-count': 'in_flight' }, num(s.in_flight)),
    h('td', { class: 'n', 'data-count': 'scheduled' }, num(s.scheduled)),
    h('td', { class: 'n', 'data-count': 'delayed' }, num(s.delayed)),
    h('td', { class: 'n', 'data-count': 'dead' }, h('a', { href: `#/queue/${q(s.queue)}/dead` }, num(s.dead))),
    h('td', { class: 'n', 'data-count': 'workers' }, num(s.workers)),
    h('td', { class: 'n' }, rate(s.pushed_per_sec)),
    h('td', { class: 'n' }, rate(s.completed_per_sec)),
    h('td', { class: 'n' }, rate(s.failed_per_sec)),
    h('td', { class: 'n', 'data-count': 'completed' }, num(s.completed)),
  ));
  return [
    h('h1', {}, 'Queues'),
    rows.length ? h('table', { 'data-test': 'queues' },
      h('thead', {}, h('tr', {}, heads.map((t, i) => h('th', { class: i ? 'n' : null }, t)))),
      h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'No queues yet: push a job (sque-host push --queue NAME) to make one.'),
  ];
}

function chart(history) {
  const W = 1200, H = 200, pad = 40;
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'jobs per second' });
  const max = Math.max(1, ...history.flat());
  box.append(svg('line', { class: 'axis', x1: pad, y1: H - 18, x2: W, y2: H - 18 }));
  const top = svg('text', { x: 0, y: 12 }); top.textContent = rate(max); box.append(top);
  const zero = svg('text', { x: 0, y: H - 20 }); zero.textContent = '0'; box.append(zero);
  const n = Math.max(history.length, 2);
  ['pushed', 'completed', 'failed'].forEach((name, k) => {
    const points = history.map((p, i) => `${pad + (i * (W - pad)) / (n - 1)},${(H - 18) - (p[k] / max) * (H - 36)}`).join(' ');
    box.append(svg('polyline', { class: name, points }));
  });
  return h('div', { class: 'chart' },
    h('div', { class: 'legend' },
      h('span', { class: 'pushed' }, '● pushed/s'), h('span', { class: 'completed' }, '● completed/s'), h('span', { class: 'failed' }, '● failed/s'),
      h('span', { class: 'muted' }, history.length ? `last ${history.length} s` : 'rates start with the second reading')),
    box);
}

function progressText(p) {
  if (!p) return '—';
  return `${p.percent}%${p.note ? ` ${p.note}` : ''}`;
}

function queuePage(snap, name) {
  const s = snap.queues.find((x) => x.queue === name);
  const crumbs = h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Queues'), ' / ', name);
  if (!s) return [crumbs, h('h1', {}, name), h('p', { class: 'muted' }, 'No such queue under this prefix (yet).')];
  const card = (k, label, v, href) => h('div', { class: 'card', 'data-count': k },
    h('div', { class: 'v' }, href ? h('a', { href }, num(v)) : num(v)), h('div', { class: 'k' }, label));
  const holders = new Map(s.live_workers.map((w) => [w.id, w]));
  const running = s.running.map((j) => {
    const w = j.holder && holders.get(j.holder);
    return h('tr', { 'data-job': j.id },
      h('td', {}, h('a', { href: `#/queue/${q(name)}/job/${q(j.id)}` }, j.id)),
      h('td', { class: 'n' }, j.attempt),
      h('td', {}, j.holder ? `${j.holder}${w && w.host ? ` (${w.host}${w.pid ? `, pid ${w.pid}` : ''})` : ''}` : '—'),
      h('td', {}, j.started ? age(Math.max(0, snap.at - j.started)) : '—'),
      h('td', {}, when(j.lease_until, snap.at)),
      h('td', {}, progressText(j.progress)));
  });
  return [
    crumbs,
    h('h1', {}, name, s.paused ? h('span', { class: 'paused' }, ' (paused: nothing is handed out)') : null),
    h('div', { class: 'cards' },
      card('waiting', 'waiting', s.waiting),
      h('div', { class: 'card', 'data-count': 'oldest' }, h('div', { class: 'v' }, oldest(s)), h('div', { class: 'k' }, 'oldest waiting')),
      card('in_flight', 'in flight', s.in_flight),
      card('scheduled', 'scheduled', s.scheduled), card('delayed', 'retrying', s.delayed),
      card('dead', 'dead', s.dead, `#/queue/${q(name)}/dead`), card('workers', 'workers', s.workers),
      card('pushed', 'pushed', s.pushed), card('completed', 'completed', s.completed),
      card('retried', 'retried', s.retried), card('cancelled', 'cancelled', s.cancelled)),
    h('h2', {}, 'Jobs per second'),
    chart(s.history),
    h('h2', {}, `In flight${s.in_flight > s.running.length ? ` (the ${s.running.length} renewed longest ago of ${num(s.in_flight)})` : ''}`),
    running.length ? h('table', { 'data-test': 'running' },
      h('thead', {}, h('tr', {}, ['Job', 'Attempt', 'Held by', 'Running for', 'Lease ends', 'Progress'].map((t, i) => h('th', { class: i === 1 ? 'n' : null }, t)))),
      h('tbody', {}, running)) : h('p', { class: 'muted' }, 'No job runs now.'),
    h('p', {}, h('a', { href: `#/queue/${q(name)}/dead` }, 'Dead list'), ' · ', h('a', { href: '#/workers' }, 'Workers')),
  ];
}

function workersPage(snap) {
  const rows = snap.queues.flatMap((s) => s.live_workers.map((w) => h('tr', { 'data-worker': w.id },
    h('td', {}, h('a', { href: `#/queue/${q(s.queue)}` }, s.queue)),
    h('td', {}, w.id),
    h('td', {}, w.host || '—'),
    h('td', { class: 'n' }, w.pid ?? '—'),
    h('td', {}, w.started ? when(w.started, snap.at) : '—'),
    h('td', {}, when(w.heartbeat_until, snap.at)),
    h('td', {}, w.holds.length ? w.holds.map((id, i) => [i ? ', ' : '', h('a', { href: `#/queue/${q(s.queue)}/job/${q(id)}` }, id)]) : '—'))));
  return [
    h('h1', {}, 'Workers'),
    rows.length ? h('table', { 'data-test': 'workers' },
      h('thead', {}, h('tr', {}, ['Queue', 'Worker', 'Host', 'Pid', 'Started', 'Heartbeat ends', 'Holds'].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows)) : h('p', { class: 'muted' }, 'No live worker.'),
  ];
}

// ---- Pages fetched on demand ------------------------------------------------------------

async function showDead(r) {
  const crumbs = h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Queues'), ' / ', h('a', { href: `#/queue/${q(r.queue)}` }, r.queue), ' / dead');
  show(crumbs, h('h1', {}, 'Dead jobs'), h('p', { class: 'muted' }, 'Loading…'));
  const limit = 50;
  let page;
  try {
    page = await api(`/api/queues/${q(r.queue)}/dead?offset=${r.offset}&limit=${limit}`);
  } catch (e) {
    show(crumbs, h('h1', {}, 'Dead jobs'), h('p', { class: 'error' }, e.message));
    return;
  }
  if (state.route !== r) return;
  const writable = !state.session.read_only;
  const message = h('span', { class: 'muted', 'data-test': 'message' });
  const act = async (action, which, what) => {
    if (action === 'purge' && !confirm(`Purge ${what}? Purged jobs are gone for good.`)) return;
    try {
      const report = await api(`/api/queues/${q(r.queue)}/dead/${action}`, { body: which });
      const refused = report.refused.length ? `; refused: ${report.refused.map(([id, why]) => `${id} (${why})`).join(', ')}` : '';
      await showDead(r);
      const m = main.querySelector('[data-test=message]');
      if (m) m.textContent = `${action === 'retry' ? 'Retried' : 'Purged'} ${report.done}${refused}`;
    } catch (e) {
      message.textContent = e.message;
      message.className = 'error';
    }
  };
  const rows = page.jobs.map((j) => h('tr', { 'data-job': j.id },
    writable ? h('td', {}, h('input', { type: 'checkbox', value: j.id, 'aria-label': `select ${j.id}` })) : null,
    h('td', {}, h('a', { href: `#/queue/${q(r.queue)}/job/${q(j.id)}` }, j.id)),
    h('td', {}, stamp(j.died_at)),
    h('td', { class: 'n' }, j.attempts),
    h('td', {}, j.code || '—'),
    h('td', { class: 'err' }, j.error || j.problem || '—'),
    writable ? h('td', {},
      h('button', { 'data-action': 'retry', onclick: () => act('retry', { ids: [j.id] }, `job ${j.id}`) }, 'Retry'), ' ',
      h('button', { class: 'danger', 'data-action': 'purge', onclick: () => act('purge', { ids: [j.id] }, `job ${j.id}`) }, 'Purge')) : null));
  const selected = () => [...main.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
  const bulk = writable && page.total > 0 ? h('div', { class: 'actions' },
    h('button', { onclick: () => { const ids = selected(); if (ids.length) act('retry', { ids }, `${ids.length} job(s)`); } }, 'Retry selected'),
    h('button', { class: 'danger', onclick: () => { const ids = selected(); if (ids.length) act('purge', { ids }, `${ids.length} job(s)`); } }, 'Purge selected'),
    h('button', { 'data-action': 'retry-all', onclick: () => act('retry', { all: true }, 'every dead job') }, `Retry all ${num(page.total)}`),
    h('button', { class: 'danger', 'data-action': 'purge-all', onclick: () => act('purge', { all: true }, `all ${num(page.total)} dead jobs`) }, `Purge all ${num(page.total)}`),
    message) : h('div', { class: 'actions' }, state.session.read_only ? h('span', { class: 'muted' }, 'Read-only: retry and purge are off.') : null, message);
  const heads = [writable ? '' : null, 'Job', 'Died', 'Attempts', 'Ending', 'Last error', writable ? '' : null].filter((x) => x !== null);
  const go = (offset) => { location.hash = `#/queue/${q(r.queue)}/dead${offset ? `?offset=${offset}` : ''}`; };
  show(crumbs,
    h('h1', {}, `Dead jobs (${num(page.total)})`),
    bulk,
    rows.length ? h('table', { 'data-test': 'dead' }, h('thead', {}, h('tr', {}, heads.map((t) => h('th', {}, t)))), h('tbody', {}, rows))
      : h('p', { class: 'muted', 'data-test': 'dead-empty' }, 'The dead list is empty.'),
    h('div', { class: 'pager' },
      h('button', { disabled: r.offset <= 0, onclick: () => go(Math.max(0, r.offset - limit)) }, '← Newer'),
      h('span', { class: 'muted' }, page.total ? `${num(r.offset + 1)}–${num(Math.min(page.total, r.offset + limit))} of ${num(page.total)}` : ''),
      h('button', { disabled: r.offset + limit >= page.total, onclick: () => go(r.offset + limit) }, 'Older →'),
      h('button', { onclick: () => showDead(r) }, 'Refresh')));
}

function pretty(v) {
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

async function showJob(r) {
  const crumbs = h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Queues'), ' / ', h('a', { href: `#/queue/${q(r.queue)}` }, r.queue), ` / job ${r.id}`);
  show(crumbs, h('h1', {}, `Job ${r.id}`), h('p', { class: 'muted' }, 'Loading…'));
  let job;
  try {
    job = await api(`/api/queues/${q(r.queue)}/jobs/${q(r.id)}`);
  } catch (e) {
    show(crumbs, h('h1', {}, `Job ${r.id}`), h('p', { class: 'error', 'data-test': 'job-error' }, e.message));
    return;
  }
  if (state.route !== r) return;
  const row = (k, v) => [h('dt', {}, k), h('dd', {}, v)];
  const err = job.last_error;
  show(crumbs,
    h('h1', {}, `Job ${job.id}`),
    h('dl', { 'data-test': 'job' },
      row('State', h('span', { class: `state ${job.state}`, 'data-test': 'job-state' }, job.state.replace('_', ' '))),
      row('Attempts', job.attempts ?? '—'),
      job.at ? row(job.state === 'dead' ? 'Died' : job.state === 'in_flight' ? 'Lease ends' : 'At', `${stamp(job.at)} (${when(job.at)})`) : null,
      job.unique_key ? row('Unique key', job.unique_key) : null,
      job.priority !== undefined && job.priority !== 5 ? row('Priority', job.priority) : null,
      job.progress ? row('Progress', progressText(job.progress)) : null,
      err ? row('Last error', h('span', { class: 'err' }, `${err.code ? `[${err.code}] ` : ''}${err.message || ''}`)) : null,
      job.problem ? row('Problem', h('span', { class: 'error' }, job.problem)) : null,
      job.children && job.children.length ? row('Follow-ups', job.children.map((c, i) => [i ? ', ' : '', c.id ? `${c.queue} #${c.id}` : `${c.queue}: ${c.error || 'not pushed'}`])) : null),
    job.data !== null && job.data !== undefined ? [h('h2', {}, 'Data'), h('pre', { 'data-test': 'job-data' }, pretty(job.data))] : null,
    job.result !== null && job.result !== undefined ? [h('h2', {}, 'Result'), h('pre', { 'data-test': 'job-result' }, pretty(job.result))] : null,
    h('p', {}, h('button', { onclick: () => showJob(r) }, 'Refresh')));
}

// ---- Start ------------------------------------------------------------------------------

function fillQueueChoice() {
  const select = document.getElementById('find-queue');
  const names = state.snap ? state.snap.queues.map((s) => s.queue) : [];
  const current = [...select.options].map((o) => o.value);
  if (names.join('\n') === current.join('\n')) return;
  const chosen = (state.route && state.route.queue) || select.value;
  select.replaceChildren(...names.map((n) => h('option', { value: n, selected: n === chosen }, n)));
}

function listen() {
  const live = document.getElementById('live');
  const events = new EventSource('/api/events');
  events.addEventListener('snapshot', (e) => {
    state.snap = JSON.parse(e.data);
    live.className = 'live on';
    live.textContent = `live · read ${new Date(state.snap.at).toLocaleTimeString()}`;
    live.dataset.seq = state.snap.seq;
    fillQueueChoice();
    renderLive();
  });
  events.addEventListener('error', () => {
    live.className = 'live off';
    live.textContent = 'reconnecting…';
  });
}

async function start() {
  try {
    state.session = await api('/api/session');
  } catch (e) {
    show(h('p', { class: 'error' }, `Cannot start: ${e.message}`));
    return;
  }
  document.getElementById('find').addEventListener('submit', (e) => {
    e.preventDefault();
    const queue = document.getElementById('find-queue').value;
    const id = document.getElementById('find-id').value.trim();
    if (queue && id) location.hash = `#/queue/${q(queue)}/job/${q(id)}`;
  });
  window.addEventListener('hashchange', navigate);
  navigate();
  listen();
}

start();
