/**
 * Regressions found by trying the hostile corpora through real tools. Each
 * test is named after what broke.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { AuditRecord } from '../src/audit/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import type { Header } from '../src/host-call.ts';
import { HostFs } from '../src/host/index.ts';
import { CanaryServer } from './helpers/canary-server.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

type ProbeResult = { ok: true; status: number; body: string } | { ok: false; tag: string; code?: string; message: string };

let rt: Awaited<ReturnType<typeof testRuntime>>;
let grants: string[];
let allowed: CanaryServer;
let redirector: CanaryServer;
let location = '';
const refusedDials: string[] = [];

before(async () => {
  allowed = await CanaryServer.start('allowed');
  redirector = await CanaryServer.start('redirector', () => ({ status: 302, headers: [['location', location]] }));
  rt = await testRuntime({
    policy: {
      version: '1.0',
      net: {
        connect: [
          { url: `http://allowed.test:${allowed.port}`, resolves_to: ['127.0.0.1'] },
          { url: `http://redirector.test:${redirector.port}`, resolves_to: ['127.0.0.1'] },
        ],
      },
      tools: { allow: ['net-probe'] },
    },
    http: {
      lookup: async (name) => (name === 'allowed.test' || name === 'redirector.test' ? [{ address: '127.0.0.1', family: 4 }] : []),
      onConnect: (address) => {
        if (address !== '127.0.0.1') {
          refusedDials.push(address);
          throw new Error(`test guard: refused to dial ${address}`);
        }
      },
    },
  });
  await rt.register(await jsFixture('net-probe'));
  grants = [rt.issueToken({ kind: 'net', resource: 'http://*:*/**', methods: ['*'], ttlMs: 600_000 })];
});

after(async () => {
  await rt?.cleanup();
  await allowed?.close();
  await redirector?.close();
  assert.deepEqual(refusedDials, []);
});

async function probe(url: string, runId: string, headers: Header[] = []): Promise<{ result: ProbeResult; calls: AuditRecord[] }> {
  const run = await rt.invoke('net-probe', { requests: [{ method: 'GET', url, headers }] }, { grants, runId });
  const [result] = JSON.parse(run.output) as ProbeResult[];
  const calls = await auditRecords(rt.dataDir, (r) => r.runId === runId && r.kind.startsWith('call.'));
  return { result: result as ProbeResult, calls };
}

test('regression: the gate sent the repaired form of a URL the host refuses (empty userinfo, backslashes, a mapped host name) to the server', async () => {
  const port = allowed.port;
  // Each of these parses (WHATWG) to a URL the policy allows; the host's own parser refuses every one.
  const repaired = [`http://@allowed.test:${port}/`, `http://:@allowed.test:${port}/`, `http://allowed.test:${port}\\..\\..\\admin`, `http://allo\u00adwed.test:${port}/`, `http://ALLOWED\u212a.test:${port}/`];
  for (const [i, url] of repaired.entries()) {
    allowed.reset();
    const { result, calls } = await probe(url, `regression-repair-${i}`);
    assert.equal(result.ok, false, `${JSON.stringify(url)} is refused, not repaired (${JSON.stringify(result)})`);
    if (result.ok) continue;
    assert.equal(result.tag, 'invalid', url);
    assert.equal(allowed.requests.length, 0, `${JSON.stringify(url)} never reached the server`);
    assert.deepEqual(
      calls.map((r) => [r.kind, r.code]),
      [['call.denied', ErrorCode.INVALID_ARGUMENT]],
      `${JSON.stringify(url)} is refused at decode, before the checks`,
    );
  }
  // The canonical spelling still works: the fix refuses only what would be rewritten.
  allowed.reset();
  const ok = await probe(`http://allowed.test:${port}/admin`, 'regression-repair-control');
  assert.equal(ok.result.ok, true, JSON.stringify(ok.result));
  assert.deepEqual(
    allowed.requests.map((r) => r.target),
    ['/admin'],
  );
});

test('regression: a redirect whose Location the host refuses ended the call without a record of the refused hop', async () => {
  const hostile = ['file:///etc/passwd', `http://allowed.test:${allowed.port}@127.0.0.1:1/`, 'javascript:alert(1)', `/\\127.0.0.1:1/`];
  for (const [i, where] of hostile.entries()) {
    location = where;
    allowed.reset();
    const runId = `regression-location-${i}`;
    const { result, calls } = await probe(`http://redirector.test:${redirector.port}/`, runId);
    assert.equal(result.ok, false, JSON.stringify(result));
    if (result.ok) continue;
    assert.equal(result.tag, 'invalid', where);
    assert.equal(allowed.requests.length, 0);
    assert.deepEqual(
      calls.map((r) => [r.kind, r.code ?? null, r.detail?.['hop'] ?? 0]),
      [
        ['call.intent', null, 0],
        ['call.outcome', 'ok', 0],
        ['call.denied', ErrorCode.INVALID_ARGUMENT, 1],
      ],
      `the refused hop to ${JSON.stringify(where)} is in the audit log`,
    );
    const denied = calls[2] as AuditRecord;
    assert.equal(denied.decision, 'deny');
    assert.equal(denied.reason, result.message, 'the record says what the tool was told');
    assert.match(denied.reason ?? '', /^redirect hop 1: /);
  }
});

// Flips root/hl between nothing and a hard link to a file outside the root, as fast as it can.
const LINKER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const flag = new Int32Array(workerData.flag);
let flips = 0;
while (Atomics.load(flag, 0) === 0) {
  try { fs.linkSync(workerData.target, workerData.link); } catch {}
  try { fs.unlinkSync(workerData.link); } catch {}
  flips++;
}
Atomics.store(flag, 1, flips);
`;

test('regression: a hard link to a file outside the root, unlinked between the open and the link count check, was read', { timeout: 60_000 }, async () => {
  const ws = tempDir('authority-hardlink-race-');
  const root = path.join(ws.path, 'root');
  const outside = path.join(ws.path, 'outside');
  fs.mkdirSync(root);
  fs.mkdirSync(outside);
  const CANARY = 'CANARY-BEHIND-A-HARD-LINK';
  fs.writeFileSync(path.join(outside, 'secret.txt'), CANARY);
  const hostFs = new HostFs();
  const sharedFlag = new SharedArrayBuffer(8);
  const flag = new Int32Array(sharedFlag);
  const worker = new Worker(LINKER, { eval: true, workerData: { flag: sharedFlag, target: path.join(outside, 'secret.txt'), link: path.join(root, 'hl') } });
  const seen: Record<string, number> = {};
  let leaked = 0;
  try {
    for (let i = 0; i < 20_000 && leaked === 0; i++) {
      try {
        const bytes = await hostFs.readFile(path.join(root, 'hl'), { roots: [root] });
        if (Buffer.from(bytes).toString() === CANARY) leaked++;
        seen['ok'] = (seen['ok'] ?? 0) + 1;
      } catch (e) {
        assert.ok(e instanceof AuthorityError, String(e));
        seen[e.code] = (seen[e.code] ?? 0) + 1;
      }
    }
  } finally {
    Atomics.store(flag, 0, 1);
    await new Promise((r) => worker.once('exit', r));
    ws.cleanup();
  }
  assert.ok(Atomics.load(flag, 1) > 0, 'the linker ran');
  assert.equal(leaked, 0, `the outside file was read through a hard link that was being removed (${JSON.stringify(seen)})`);
  assert.ok((seen[ErrorCode.POLICY_DENY] ?? 0) > 0, `the hard link was seen and refused ${JSON.stringify(seen)}`);
});
