/**
 * The console's server over a real log: a runtime runs a real tool (fs-probe)
 * in a temp folder, and the console is asked over real HTTP on loopback.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { verifyAuditProof } from '../src/audit/index.ts';
import { startConsole, type ConsoleServer } from '../src/console/index.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { tempDir, testRuntime } from './helpers/runtime.ts';

let rt: Awaited<ReturnType<typeof testRuntime>>;
let ws: { path: string; cleanup: () => void };
let grants: string[];
let server: ConsoleServer;

before(async () => {
  ws = tempDir('authority-console-ws-');
  fs.writeFileSync(path.join(ws.path, 'keep.txt'), 'keep');
  rt = await testRuntime({
    audit: { durability: 'none' },
    policy: { version: '1.0', name: 'console', fs: { read: [`${ws.path}/**`], write: [`${ws.path}/out/**`] }, tools: { allow: ['fs-probe'] } },
  });
  await rt.register(await jsFixture('fs-probe'), { limits: { timeoutMs: 120_000 } });
  grants = [rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read', 'list', 'write', 'remove'], ttlMs: 3_600_000 })];
  fs.mkdirSync(path.join(ws.path, 'out'));
  await rt.invoke('fs-probe', { ops: [{ op: 'write', path: path.join(ws.path, 'out', 'a.txt'), data: 'A' }, { op: 'read', path: path.join(ws.path, 'keep.txt') }] }, { grants, runId: 'run-good' });
  // A write outside the policy's write root: denied by the policy.
  await rt.invoke('fs-probe', { ops: [{ op: 'write', path: path.join(ws.path, 'keep.txt'), data: 'X' }] }, { grants, runId: 'run-denied' });
  server = await startConsole({ dir: rt.dataDir, pollMs: 50 });
});

after(async () => {
  await server?.close();
  await rt?.cleanup();
  ws?.cleanup();
});

function get(urlPath: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path: urlPath, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}
const auth = (): Record<string, string> => ({ authorization: `Bearer ${server.token}` });
async function json<T = Record<string, unknown>>(urlPath: string): Promise<T> {
  const r = await get(urlPath, auth());
  assert.equal(r.status, 200, `${urlPath}: ${r.body}`);
  return JSON.parse(r.body) as T;
}

test('the console binds to loopback and prints a URL with its token', () => {
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
});

test('every route refuses a request without the token, or with a wrong one, with 401', async () => {
  for (const p of ['/', '/app.js', '/style.css', '/api/status', '/api/runs', '/api/runs/run-good', '/api/proof/1', '/api/events', '/nope']) {
    assert.equal((await get(p)).status, 401, p);
    assert.equal((await get(p, { authorization: 'Bearer ' + 'f'.repeat(64) })).status, 401, p);
    assert.equal((await get(`${p}${p.includes('?') ? '&' : '?'}token=${server.token.slice(0, -1)}0`)).status, 401, p);
    assert.equal((await get(p, { cookie: `authority_console=${'0'.repeat(64)}` })).status, 401, p);
  }
});

test('the token in the URL opens the page and sets a same-site cookie that later requests may use', async () => {
  const page = await get(`/?token=${server.token}`);
  assert.equal(page.status, 200);
  assert.match(page.body, /<title>Authority console<\/title>/);
  const cookie = String(page.headers['set-cookie']);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const js = await get('/app.js', { cookie: cookie.split(';')[0] as string });
  assert.equal(js.status, 200);
  assert.match(String(js.headers['content-type']), /javascript/);
});

test('a request addressed to another host name is refused (DNS rebinding)', async () => {
  const r = await get('/api/status', { ...auth(), host: `attacker.example:${server.port}` });
  assert.equal(r.status, 403);
});

test('a change needs the token in a header: the cookie alone cannot verify or undo', async () => {
  const r = await get('/api/verify', { cookie: `authority_console=${server.token}` }, 'POST');
  assert.equal(r.status, 403);
  const ok = await get('/api/verify', { 'x-authority-token': server.token }, 'POST');
  assert.equal(ok.status, 200, ok.body);
  assert.equal((JSON.parse(ok.body) as { ok: boolean }).ok, true);
});

test('the runs list shows tool, start, duration, outcome and denials, newest first', async () => {
  const { runs, total } = await json<{ runs: { id: string; tool: string; start: string; durationMs: number; outcome: string; calls: number; denials: number; denialCodes: Record<string, number> }[]; total: number }>('/api/runs');
  assert.equal(total, 2);
  assert.deepEqual(runs.map((r) => r.id), ['run-denied', 'run-good']);
  const [denied, good] = runs as [(typeof runs)[0], (typeof runs)[0]];
  assert.equal(good.tool, 'fs-probe');
  assert.equal(good.outcome, 'ok');
  assert.equal(good.calls, 2);
  assert.equal(good.denials, 0);
  assert.ok(good.durationMs >= 0);
  assert.ok(Date.parse(good.start) > Date.now() - 600_000);
  assert.equal(denied.denials, 1);
  assert.deepEqual(denied.denialCodes, { E_POLICY_DENY: 1 });
});

test('runs are paged with a cursor, and filtered by tool, code and time', async () => {
  const first = await json<{ runs: { id: string }[]; next: number }>('/api/runs?limit=1');
  assert.deepEqual(first.runs.map((r) => r.id), ['run-denied']);
  const second = await json<{ runs: { id: string }[]; next: number | null }>(`/api/runs?limit=1&before=${first.next}`);
  assert.deepEqual(second.runs.map((r) => r.id), ['run-good']);
  assert.equal(second.next, null);
  assert.deepEqual((await json<{ runs: { id: string }[] }>('/api/runs?code=E_POLICY_DENY')).runs.map((r) => r.id), ['run-denied']);
  assert.deepEqual((await json<{ runs: unknown[] }>('/api/runs?tool=other-tool')).runs, []);
  assert.deepEqual((await json<{ runs: unknown[] }>(`/api/runs?from=${new Date(Date.now() + 60_000).toISOString()}`)).runs, []);
  assert.equal((await json<{ runs: unknown[] }>(`/api/runs?to=${new Date(Date.now() + 60_000).toISOString()}`)).runs.length, 2);
  assert.equal((await get('/api/runs?from=yesterday', auth())).status, 400);
  assert.equal((await get('/api/runs?limit=100000', auth())).status, 400);
});

test("a run's timeline pairs each host call's intent and outcome, with target, code, timings and record ids", async () => {
  const t = await json<{ calls: { op: string; target: string; decision: string; code: string; durationMs: number; records: number[]; bytes: number }[] }>('/api/runs/run-good');
  assert.deepEqual(t.calls.map((c) => [c.op, c.decision, c.code]), [['fs.write', 'allow', 'ok'], ['fs.read', 'allow', 'ok']]);
  assert.equal(t.calls[0]?.target, path.join(ws.path, 'out', 'a.txt'));
  assert.equal(t.calls[1]?.bytes, 4);
  for (const c of t.calls) {
    assert.equal(c.records.length, 2);
    assert.ok(c.durationMs >= 0);
  }
  const d = await json<{ calls: { op: string; decision: string; code: string; records: number[] }[] }>('/api/runs/run-denied');
  assert.deepEqual(d.calls.map((c) => [c.op, c.decision, c.code, c.records.length]), [['fs.write', 'deny', 'E_POLICY_DENY', 1]]);
  assert.equal((await get('/api/runs/no-such-run', auth())).status, 404);
});

test('records are filtered by code and run, newest first', async () => {
  const { records } = await json<{ records: { seq: number; record: { code: string; runId: string } }[] }>('/api/records?code=E_POLICY_DENY');
  assert.ok(records.length >= 1);
  for (const r of records) assert.equal(r.record.code, 'E_POLICY_DENY');
  const run = await json<{ records: { seq: number; record: { runId: string } }[] }>('/api/records?run=run-good');
  assert.ok(run.records.every((r) => r.record.runId === 'run-good'));
  assert.deepEqual(run.records.map((r) => r.seq), [...run.records.map((r) => r.seq)].sort((a, b) => b - a));
});

test('the per-tool summary counts calls, denials by code and latency', async () => {
  const { tools } = await json<{ tools: { tool: string; invocations: number; calls: number; denials: number; denialsByCode: Record<string, number>; callLatency: { count: number } }[] }>('/api/tools');
  const probe = tools.find((t) => t.tool === 'fs-probe');
  assert.ok(probe);
  assert.equal(probe.invocations, 2);
  assert.equal(probe.calls, 3);
  assert.deepEqual(probe.denialsByCode, { E_POLICY_DENY: 1 });
  assert.equal(probe.callLatency.count, 2);
});

test('a record’s inclusion proof downloads as an attachment and verifies against the pinned key', async () => {
  const { calls } = await json<{ calls: { records: number[] }[] }>('/api/runs/run-good');
  const seq = calls[0]?.records[1] as number;
  // The writer anchors new records within its checkpoint interval.
  for (let i = 0; i < 100; i++) {
    const s = await json<{ checkpoint: { size: number } | null }>('/api/status');
    if ((s.checkpoint?.size ?? 0) > seq) break;
    await sleep(50);
  }
  const r = await get(`/api/proof/${seq}`, auth());
  assert.equal(r.status, 200, r.body);
  assert.match(String(r.headers['content-disposition']), new RegExp(`attachment; filename="record-${seq}.proof.json"`));
  const pinned = fs.readFileSync(path.join(rt.dataDir, 'checkpoints', 'audit-signing-key.pub.pem'), 'utf8');
  const check = verifyAuditProof(JSON.parse(r.body), { publicKey: pinned });
  assert.equal(check.ok, true, JSON.stringify(check));
  const status = await json<{ checkpoint: { root: string; size: number } }>('/api/status');
  assert.match(status.checkpoint.root, /^[0-9a-f]{64}$/);
});

test('the live tail streams records appended after it connected', async () => {
  const received: string[] = [];
  const req = http.request({ host: '127.0.0.1', port: server.port, path: '/api/events', headers: auth() });
  const done = new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream');
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        for (const m of chunk.matchAll(/^data: (.*)$/gm)) received.push(m[1] as string);
        if (received.some((d) => d.includes('run-tail') && d.includes('invoke.end'))) resolve();
      });
    });
    req.on('error', reject);
  });
  req.end();
  await sleep(150);
  await rt.invoke('fs-probe', { ops: [{ op: 'read', path: path.join(ws.path, 'keep.txt') }] }, { grants, runId: 'run-tail' });
  await done;
  req.destroy();
  const kinds = received.map((d) => (JSON.parse(d) as { record: { kind: string; runId?: string } }).record).filter((r) => r.runId === 'run-tail').map((r) => r.kind);
  assert.deepEqual(kinds, ['invoke.start', 'call.intent', 'call.outcome', 'invoke.end']);
});

test('`authority console` prints its URL, serves until SIGTERM, and exits 0', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, '..', 'src', 'cli', 'main.ts'), 'console', '--data-dir', rt.dataDir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: string) => {
      out += c;
      try {
        resolve((JSON.parse(out) as { url: string }).url);
      } catch {
        // not whole yet
      }
    });
    child.on('exit', (code) => reject(new Error(`exited ${code} before printing its URL`)));
  });
  const u = new URL(url);
  assert.equal(u.hostname, '127.0.0.1');
  const token = u.searchParams.get('token') as string;
  const res = await fetch(new URL('/api/runs', u), { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  assert.ok(((await res.json()) as { total: number }).total >= 2);
  assert.equal((await fetch(new URL('/api/runs', u))).status, 401);
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0);
});
