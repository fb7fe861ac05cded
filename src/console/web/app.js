// The console page: plain ES modules, no build step. All data arrives as JSON and is put in the page as text.
import { latencyStrip, timelineChart, toolBars } from './charts.js';

const token = new URLSearchParams(location.search).get('token') ?? sessionStorage.getItem('authority-token') ?? '';
if (token) sessionStorage.setItem('authority-token', token);
// The token stays out of the address bar (and so out of screenshots and shared links) once the cookie is set.
if (location.search.includes('token=')) history.replaceState(null, '', location.pathname);

const $ = (sel) => document.querySelector(sel);
function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) if (kid !== undefined && kid !== null) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}

async function api(path, init = {}) {
  const res = await fetch(`/api${path}`, { ...init, headers: { 'x-authority-token': token, ...(init.headers ?? {}) } });
  const body = await res.json();
  if (!res.ok) throw Object.assign(new Error(body.error?.message ?? res.statusText), { code: body.error?.code, status: res.status });
  return body;
}

const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { hour12: false }) : '–');
const fmtMs = (ms) => (ms === null || ms === undefined ? '–' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`);
const codeSpan = (code) => h('span', { class: `code ${code === 'ok' ? 'ok' : code ? 'bad' : ''}` }, code ?? '–');

function filterQuery() {
  const f = new FormData($('#filters'));
  const q = new URLSearchParams();
  for (const [k, v] of f) {
    if (!v) continue;
    q.set(k, k === 'from' || k === 'to' ? new Date(v).toISOString() : v);
  }
  return q;
}

const state = { before: null, selected: null };

async function loadFacets() {
  const { tools, codes } = await api('/facets');
  for (const [sel, names] of [['#f-tool', tools], ['#f-code', codes]]) {
    const el = $(sel);
    const keep = el.value;
    el.replaceChildren(h('option', { value: '' }, 'all'), ...names.map((n) => h('option', { value: n }, n)));
    el.value = keep;
  }
}

async function loadRuns(append = false) {
  const q = filterQuery();
  q.set('limit', '50');
  if (append && state.before !== null) q.set('before', String(state.before));
  const page = await api(`/runs?${q}`);
  const body = $('#runs tbody');
  if (!append) body.replaceChildren();
  for (const r of page.runs) {
    body.append(
      h('tr', { 'data-run': r.id, class: r.id === state.selected ? 'selected' : undefined, onclick: () => showRun(r.id) },
        h('td', {}, r.tool ?? '–'),
        h('td', {}, fmtTime(r.start)),
        h('td', { class: 'num' }, fmtMs(r.durationMs)),
        h('td', {}, codeSpan(r.outcome ?? 'running'), r.undone ? h('span', { class: 'muted' }, ' undone') : null),
        h('td', { class: 'num' }, r.calls),
        h('td', { class: `num ${r.denials ? 'deny' : ''}` }, r.denials),
      ),
    );
  }
  state.before = page.next;
  $('#runs-more').hidden = page.next === null;
  $('#runs-count').textContent = `${page.total} in the log`;
}

async function showRun(id, page = 0) {
  state.selected = id;
  for (const tr of document.querySelectorAll('#runs tbody tr')) tr.classList.toggle('selected', tr.dataset.run === id);
  const data = await api(`/runs/${encodeURIComponent(id)}?page=${page}`);
  const r = data.run;
  $('#run-panel').hidden = false;
  $('#run-id').textContent = r.id;
  $('#run-facts').replaceChildren(
    ...[['Tool', r.tool ?? '–'], ['Start', fmtTime(r.start)], ['Duration', fmtMs(r.durationMs)], ['Outcome', codeSpan(r.outcome ?? 'running')], ['Calls', r.calls], ['Denials', r.denials], ['Reversible', r.reversible]].map(([k, v]) => h('div', {}, h('b', {}, v), k)),
  );
  $('#timeline-chart').replaceChildren(timelineChart(data.calls, r.durationMs), h('figcaption', { class: 'muted' }, `${data.totalCalls} host calls; green ok, amber failed, red denied`));
  $('#calls tbody').replaceChildren(
    ...data.calls.map((c, i) =>
      h('tr', { class: c.decision === 'deny' ? 'denied' : undefined },
        h('td', { class: 'num' }, page * 200 + i + 1),
        h('td', {}, c.op ?? '–'),
        h('td', { class: 'target', title: c.reason ?? '' }, c.target ?? '–'),
        h('td', { class: c.decision ?? '' }, c.decision ?? '–'),
        h('td', {}, codeSpan(c.code)),
        h('td', {}, c.start ? new Date(c.start).toLocaleTimeString(undefined, { hour12: false }) : '–'),
        h('td', { class: 'num' }, c.durationMs ?? '–'),
        h('td', { class: 'num' }, c.bytes ?? '–'),
        h('td', {}, c.records.map((seq) => h('a', { class: 'rec', href: `/api/proof/${seq}`, download: `record-${seq}.proof.json`, title: `download the inclusion proof of record ${seq}` }, `#${seq}`))),
      ),
    ),
  );
  $('#calls-pager').replaceChildren(
    ...(data.pages > 1 ? Array.from({ length: data.pages }, (_, p) => h('button', { type: 'button', disabled: p === page, onclick: () => showRun(id, p) }, p + 1)) : []),
  );
  const undoRecords = data.records.filter((x) => x.record?.kind?.startsWith('undo.'));
  $('#undo-history').hidden = undoRecords.length === 0;
  $('#undo-records').replaceChildren(
    ...undoRecords.map(({ seq, record: u }) =>
      h('li', {}, h('a', { class: 'rec', href: `/api/proof/${seq}`, download: `record-${seq}.proof.json` }, `#${seq}`), `${u.kind} `, codeSpan(u.code), u.detail?.path ? ` ${u.detail.path}` : '', u.reason ? h('span', { class: 'muted' }, ` — ${u.reason}`) : ''),
    ),
  );
  const undoable = r.reversible > 0 && (await status).undo;
  $('#undo-box').hidden = !undoable;
  $('#undo-view').replaceChildren();
}

async function planUndo() {
  const id = state.selected;
  const plan = await api(`/runs/${encodeURIComponent(id)}/undo`);
  const conflicts = plan.steps.filter((s) => s.state === 'conflict');
  const list = (steps, cls) => h('ul', {}, steps.map((s) => h('li', { class: cls }, `${s.action} ${s.path}`, s.why ? h('span', { class: 'muted' }, ` — ${s.why}`) : null)));
  const view = [];
  if (conflicts.length > 0) {
    view.push(h('p', { class: 'conflict' }, `${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: changed since the run; left alone unless forced`), list(conflicts, 'conflict'));
  }
  const ready = plan.steps.filter((s) => s.state === 'ready');
  view.push(h('p', {}, `${ready.length} change${ready.length === 1 ? '' : 's'} to restore`), list(ready));
  if (plan.steps.some((s) => s.state === 'done')) view.push(h('p', { class: 'muted' }, `${plan.steps.filter((s) => s.state === 'done').length} already restored`));
  const go = (force) => async () => {
    const result = await api(`/runs/${encodeURIComponent(id)}/undo${force ? '?force=1' : ''}`, { method: 'POST' }).catch((e) => ({ error: e.message }));
    $('#undo-view').replaceChildren(
      result.error
        ? h('p', { class: 'conflict' }, result.error)
        : h('p', { id: 'undo-result' }, `restored ${result.restored}, conflicts ${result.conflicts}, already done ${result.skipped}`),
    );
    await Promise.all([loadRuns(), refreshStatus()]);
  };
  view.push(h('button', { type: 'button', class: 'danger', id: 'undo-confirm', onclick: go(false) }, conflicts.length ? 'Undo, leaving conflicts alone' : 'Undo'));
  if (conflicts.length) view.push(' ', h('button', { type: 'button', id: 'undo-force', onclick: go(true) }, 'Undo and overwrite conflicts'));
  $('#undo-view').replaceChildren(...view);
}

async function loadTools() {
  const { tools } = await api('/tools');
  const max = Math.max(1, ...tools.map((t) => t.calls));
  $('#tools').replaceChildren(
    ...tools.map((t) =>
      h('div', { class: 'tool' },
        h('h3', {}, t.tool),
        h('div', { class: 'facts' },
          h('span', {}, `${t.invocations} runs`),
          h('span', {}, `${t.calls} calls`),
          h('span', { class: t.denials ? 'deny' : '' }, `${t.denials} denied`),
          h('span', {}, `call p50 ≤${t.callLatency.p50Ms ?? '–'} ms, p95 ≤${t.callLatency.p95Ms ?? '–'} ms`),
        ),
        toolBars(t, max),
        latencyStrip(t.callLatency),
      ),
    ),
  );
}

let status = Promise.resolve({ undo: false });
async function refreshStatus() {
  status = api('/status');
  const s = await status;
  $('#chain-records').textContent = s.records.toLocaleString();
  $('#chain-cp').textContent = s.checkpoint ? `${s.checkpoint.size.toLocaleString()} @ ${fmtTime(s.checkpoint.time)}` : s.checkpointProblem ?? 'none yet';
  $('#chain-root').textContent = s.checkpoint ? `${s.checkpoint.root.slice(0, 16)}…` : '–';
  $('#chain-root').title = s.checkpoint?.root ?? '';
  const badge = $('#chain-verified');
  if (s.verified) {
    badge.className = `badge ${s.verified.ok ? (s.verified.stale ? 'stale' : 'ok') : 'bad'}`;
    badge.textContent = s.verified.ok ? `verified ${s.verified.records.toLocaleString()} records${s.verified.stale ? ' (new records since)' : ''}` : `problem: ${s.verified.firstBad?.message ?? 'see audit verify'}`;
  }
}

function startTail() {
  const es = new EventSource('/api/events');
  es.onopen = () => $('#tail-dot').classList.add('on');
  es.onerror = () => $('#tail-dot').classList.remove('on');
  let pending = null;
  es.addEventListener('record', (ev) => {
    const { seq, record } = JSON.parse(ev.data);
    const li = h('li', { class: 'fresh' }, `#${seq} ${record?.kind ?? 'invalid'} `, record?.tool ?? '', ' ', record?.op ?? '', ' ', codeSpan(record?.code));
    const list = $('#tail');
    list.prepend(li);
    while (list.children.length > 100) list.lastChild.remove();
    // New records change the runs and the counters: refresh once the burst is over.
    clearTimeout(pending);
    pending = setTimeout(() => {
      loadRuns().catch(() => {});
      loadTools().catch(() => {});
      refreshStatus().catch(() => {});
      loadFacets().catch(() => {});
    }, 400);
  });
}

$('#filters').addEventListener('submit', (e) => {
  e.preventDefault();
  loadRuns().catch(show);
});
$('#filters').addEventListener('reset', () => setTimeout(() => loadRuns().catch(show), 0));
$('#runs-more').addEventListener('click', () => loadRuns(true).catch(show));
$('#undo-plan').addEventListener('click', () => planUndo().catch(show));
$('#verify').addEventListener('click', async () => {
  $('#chain-verified').textContent = 'verifying…';
  await api('/verify', { method: 'POST' }).catch(show);
  await refreshStatus();
});

function show(e) {
  const box = h('div', { class: 'panel conflict', role: 'alert' }, e.message);
  document.body.prepend(box);
  setTimeout(() => box.remove(), 6000);
}

await Promise.all([refreshStatus(), loadFacets(), loadRuns(), loadTools()]).catch(show);
startTail();
document.body.dataset.ready = '1';
