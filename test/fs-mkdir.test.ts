import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode } from '../src/errors.ts';
import { HOST_OPS } from '../src/host-call.ts';
import { loadPolicy } from '../src/policy/index.ts';
import type { Runtime } from '../src/runtime.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

// fs.mkdir end to end: a real tool (fs-probe) makes folders in a temp root
// through the WIT import, the gate decides each (capability `write`, the
// policy's fs.write rules, approvals), the host makes them, the log records them.

let ws: { path: string; cleanup: () => void };
let root: string;
let rt: Runtime & { cleanup: () => Promise<void> };
let probe: string;

type Outcome = { ok: boolean; tag?: string; code?: string; message?: string };

async function probeRun(ops: object[], grants: string[], runId: string, on: Runtime = rt): Promise<Outcome[]> {
  const r = await on.invoke('fs-probe', { ops }, { grants, runId });
  return JSON.parse(r.output) as Outcome[];
}

before(async () => {
  ws = tempDir('authority-mkdir-');
  root = fs.realpathSync(ws.path);
  fs.mkdirSync(path.join(root, 'out'));
  fs.mkdirSync(path.join(root, 'in'));
  probe = await jsFixture('fs-probe');
  rt = await testRuntime({
    audit: { durability: 'none' },
    policy: { version: '1.0', fs: { read: [`${root}/**`], write: [`${root}/out/**`] }, tools: { allow: ['fs-probe'] } },
  });
  await rt.register(probe, { limits: { timeoutMs: 120_000 } });
});

after(async () => {
  await rt?.cleanup();
  ws?.cleanup();
});

test('fs.mkdir is a host operation the policy and the CLI name', () => {
  assert.ok(HOST_OPS.includes('fs.mkdir'));
  const { policy } = loadPolicy({ version: '1.0', fs: { write: ['/out/**'] }, approvals: { ops: ['fs.mkdir'] } });
  assert.equal(policy.decide({ op: 'fs.mkdir', path: '/out/new' }).allow, true);
  const outside = policy.decide({ op: 'fs.mkdir', path: '/in/new' });
  assert.equal(outside.allow, false);
  assert.match(outside.reason, /fs\.mkdir needs fs\.write/);
  assert.equal(policy.approvalFor({ op: 'fs.mkdir' })?.rule, 'approvals.ops[0]');
});

test('a tool makes an output folder and writes into it, each step allowed and recorded', async () => {
  const token = rt.issueToken({ kind: 'fs', resource: `${root}/**`, methods: ['read', 'list', 'write'], ttlMs: 600_000 });
  const out = await probeRun(
    [
      { op: 'mkdir', path: `${root}/out/reports` },
      { op: 'mkdir', path: `${root}/out/reports/2026` },
      { op: 'write', path: `${root}/out/reports/2026/a.txt`, data: 'made by the tool' },
      { op: 'mkdir', path: `${root}/out/reports` },
      { op: 'list', path: `${root}/out/reports` },
    ],
    [token],
    'mkdir-ok',
  );
  assert.deepEqual(out.map((o) => o.ok), [true, true, true, true, true], JSON.stringify(out));
  assert.equal(fs.readFileSync(path.join(root, 'out', 'reports', '2026', 'a.txt'), 'utf8'), 'made by the tool');
  assert.equal(fs.statSync(path.join(root, 'out', 'reports')).mode & 0o777, 0o700);
  const records = await auditRecords(rt.dataDir, (r) => r.runId === 'mkdir-ok' && r.op === 'fs.mkdir');
  assert.deepEqual(
    records.map((r) => [r.kind, r.code, (r.detail as { path?: string } | undefined)?.path]),
    [
      ['call.intent', undefined, `${root}/out/reports`],
      ['call.outcome', 'ok', undefined],
      ['call.intent', undefined, `${root}/out/reports/2026`],
      ['call.outcome', 'ok', undefined],
      ['call.intent', undefined, `${root}/out/reports`],
      ['call.outcome', 'ok', undefined],
    ],
  );
  assert.ok(records.every((r) => r.decision === 'allow' && r.tokenId !== undefined));
});

test('a folder outside the write rules, without a write grant or through a link out is refused, and nothing is made', async () => {
  fs.symlinkSync(path.join(root, 'in'), path.join(root, 'out', 'link-to-in'));
  const write = rt.issueToken({ kind: 'fs', resource: `${root}/**`, methods: ['read', 'write'], ttlMs: 600_000 });
  const readOnly = rt.issueToken({ kind: 'fs', resource: `${root}/**`, methods: ['read', 'list'], ttlMs: 600_000 });
  const [policyDenied, linkOut] = await probeRun(
    [
      { op: 'mkdir', path: `${root}/in/new` },
      { op: 'mkdir', path: `${root}/out/link-to-in/new` },
    ],
    [write],
    'mkdir-denied',
  );
  assert.equal(policyDenied?.code, ErrorCode.POLICY_DENY);
  assert.equal(linkOut?.code, ErrorCode.POLICY_DENY, 'decided on the real path, under in/ where nothing may be written');
  const [noGrant] = await probeRun([{ op: 'mkdir', path: `${root}/out/by-reader` }], [readOnly], 'mkdir-no-grant');
  assert.equal(noGrant?.tag, 'denied');
  assert.match(noGrant?.code ?? '', /^E_CAP_/);
  const [noToken] = await probeRun([{ op: 'mkdir', path: `${root}/out/no-token` }], [], 'mkdir-no-token');
  assert.equal(noToken?.code, ErrorCode.CAP_MISSING);
  assert.deepEqual(fs.readdirSync(path.join(root, 'in')), []);
  assert.ok(!fs.existsSync(path.join(root, 'out', 'by-reader')) && !fs.existsSync(path.join(root, 'out', 'no-token')));
  const denied = await auditRecords(rt.dataDir, (r) => r.runId?.startsWith('mkdir-') === true && r.op === 'fs.mkdir' && r.kind === 'call.denied');
  assert.equal(denied.length, 4);
});

test('a policy can ask for an approval of every fs.mkdir, and the approver sees the real path', async () => {
  const seen: string[] = [];
  const strict = await testRuntime({
    audit: { durability: 'none' },
    policy: { version: '1.0', fs: { write: [`${root}/out/**`] }, tools: { allow: ['fs-probe'] }, approvals: { ops: ['fs.mkdir'] } },
    approve: (req) => {
      seen.push(`${req.op} ${req.target}`);
      return { approved: req.target.endsWith('/yes'), by: 'reviewer' };
    },
  });
  try {
    await strict.register(probe, { limits: { timeoutMs: 120_000 } });
    const token = strict.issueToken({ kind: 'fs', resource: `${root}/**`, methods: ['write'], ttlMs: 600_000 });
    const out = await probeRun(
      [
        { op: 'mkdir', path: `${root}/out/yes` },
        { op: 'mkdir', path: `${root}/out/no` },
      ],
      [token],
      'mkdir-approval',
      strict,
    );
    assert.deepEqual(out.map((o) => o.ok || o.code), [true, ErrorCode.APPROVAL_DENIED]);
    assert.deepEqual(seen, [`fs.mkdir ${root}/out/yes`, `fs.mkdir ${root}/out/no`]);
    assert.ok(fs.statSync(path.join(root, 'out', 'yes')).isDirectory());
    assert.ok(!fs.existsSync(path.join(root, 'out', 'no')));
    const kinds = (await auditRecords(strict.dataDir, (r) => r.runId === 'mkdir-approval' && r.op === 'fs.mkdir')).map((r) => `${r.kind}:${r.code}`);
    assert.deepEqual(kinds, ['approval:ok', 'call.intent:undefined', 'call.outcome:ok', 'approval:E_APPROVAL_DENIED', 'call.denied:E_APPROVAL_DENIED']);
  } finally {
    await strict.cleanup();
  }
});
