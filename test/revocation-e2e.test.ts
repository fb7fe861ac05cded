/**
 * Revocation reaches a run that is already going, at its next host call: the
 * `hammer` fixture (a WAT tool making N fs.stat calls in a row) is started
 * with a large N, and while it runs its run is revoked through the runtime,
 * its token (by the id of the token it was derived from) is revoked, or the
 * run is revoked by another process with `authority cap revoke --run`. The
 * audit log must show allowed calls, then only `call.denied` E_CAP_REVOKED
 * records: never an allowed call after the first revoked one.
 *
 * N is chosen from the speed measured here, so the run lasts well past the
 * revocation; nothing is asserted about time. If a very slow machine still
 * finished the run before the revocation landed, the attempt is made again
 * with a larger N (the property is checked on every attempt all the same).
 */
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tailAuditRecords, verifyAudit, type AuditRecord } from '../src/audit/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import type { InvokeResult } from '../src/runtime.ts';
import { watFixture } from './helpers/fixtures.ts';
import { auditRecords, testRuntime } from './helpers/runtime.ts';

const HAMMER_FILE = '/tmp/hammer';
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'authority.js');

let rt: Awaited<ReturnType<typeof testRuntime>>;
let createdHammerFile = false;
/** Host calls per millisecond, measured on an unrevoked run. */
let rate = 1;
/** How long one `authority cap revoke` takes here, start to exit (ms). */
let cliMs = 2000;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env['PATH'] ?? '' }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

function fsGrant(): string {
  return rt.issueToken({ kind: 'fs', resource: HAMMER_FILE, methods: ['read'], ttlMs: 600_000 });
}

before(async () => {
  if (!existsSync(HAMMER_FILE)) {
    writeFileSync(HAMMER_FILE, 'hammer\n');
    createdHammerFile = true;
  }
  // Durability is not what is under test here; without an fsync per record the runs are short.
  rt = await testRuntime({ audit: { durability: 'none' }, policy: { version: '1.0', name: 'revocation-e2e', fs: { read: [HAMMER_FILE] }, tools: { allow: ['hammer'] } } });
  await rt.register(await watFixture('hammer'), { limits: { timeoutMs: 300_000, maxHostCalls: 10_000_000 } });
  // Speed of this machine, now: an unrevoked run of 500 calls (all allowed).
  const started = performance.now();
  const r = await rt.invoke('hammer', { n: 500 }, { grants: [fsGrant()], runId: 'calibrate' });
  rate = 500 / Math.max(1, performance.now() - started);
  assert.equal(r.stats.allowed, 500);
  // And of the command line (also warms its module cache): revoke a run nobody uses.
  const t = performance.now();
  const warm = await cli(['cap', 'revoke', '--run', 'unused-run', '--data-dir', rt.dataDir]);
  cliMs = performance.now() - t;
  assert.equal(warm.code, 0, warm.stderr);
});

after(async () => {
  await rt?.cleanup();
  if (createdHammerFile) rmSync(HAMMER_FILE, { force: true });
});

/** Resolves once the run has made an allowed call (its latest record is a call's), or its invocation settled. */
async function firstAllowedCall(runId: string, settled: () => boolean): Promise<void> {
  for (;;) {
    if (settled()) return;
    const [last] = await tailAuditRecords({ dir: rt.dataDir }, 1, { runId });
    if (last?.record?.kind === 'call.intent' || last?.record?.kind === 'call.outcome') return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Cut {
  allowed: number;
  denied: number;
  records: AuditRecord[];
  result: InvokeResult;
}

/**
 * Start the hammer on `n` calls, revoke once it has made an allowed call, and
 * return the run's records. Retries with a larger n if the run ended first.
 */
async function hammerAndRevoke(t: TestContext, label: string, n: number, grants: string[], revoke: (runId: string) => Promise<void> | void): Promise<Cut> {
  for (let attempt = 1; ; attempt++) {
    const runId = `${label}-${attempt}`;
    let done = false;
    const running = rt.invoke('hammer', { n }, { grants, runId }).finally(() => {
      done = true;
    });
    await firstAllowedCall(runId, () => done);
    await revoke(runId);
    // Where the log stood when the revocation was durable: at most the one call then inside the gate may still be allowed.
    const revokedAt = (await tailAuditRecords({ dir: rt.dataDir }, 1, { runId }))[0]?.record?.seq ?? 0;
    const result = await running;
    const records = await auditRecords(rt.dataDir, (r) => r.runId === runId);
    const late = records.filter((r) => r.kind === 'call.intent' && r.seq > revokedAt).length;
    assert.ok(late <= 1, `${label}: ${late} calls were allowed after the revocation returned; at most the one already past the check may be`);
    const cut = checkCutOff(label, records, n);
    assert.equal(result.stats.hostCalls, n, `${label}: every call reached the gate`);
    assert.equal(result.stats.allowed, cut.allowed);
    assert.equal(result.stats.denied, cut.denied);
    if (cut.denied > 0 || attempt === 3) {
      t.diagnostic(`${runId}: ${n} calls, ${cut.allowed} allowed before the revocation, ${cut.denied} denied after it`);
      return { ...cut, result };
    }
    n *= 4; // the run outran the revocation: make it longer
  }
}

/** Allowed calls (intent, outcome ok) first, then only E_CAP_REVOKED denials; never an allowed call after the first revoked one. */
function checkCutOff(label: string, records: AuditRecord[], n: number): { allowed: number; denied: number; records: AuditRecord[] } {
  const calls = records.filter((r) => r.kind.startsWith('call.'));
  const firstDenied = calls.findIndex((r) => r.kind === 'call.denied');
  const before = firstDenied < 0 ? calls : calls.slice(0, firstDenied);
  const after = firstDenied < 0 ? [] : calls.slice(firstDenied);
  assert.equal(before.length % 2, 0, `${label}: before the revocation, whole calls`);
  for (let i = 0; i < before.length; i += 2) {
    assert.equal(before[i]?.kind, 'call.intent', label);
    assert.equal(before[i + 1]?.kind, 'call.outcome', label);
    assert.equal(before[i + 1]?.code, 'ok', label);
  }
  const stray = after.filter((r) => r.kind !== 'call.denied' || r.code !== ErrorCode.CAP_REVOKED || r.decision !== 'deny');
  assert.deepEqual(
    stray.map((r) => [r.seq, r.kind, r.code]),
    [],
    `${label}: after the first revoked call, every call is denied E_CAP_REVOKED and none is allowed`,
  );
  const allowed = before.length / 2;
  assert.ok(allowed >= 1, `${label}: the run made allowed calls before the revocation`);
  assert.equal(allowed + after.length, n, `${label}: one record per call`);
  const end = records.find((r) => r.kind === 'invoke.end');
  assert.equal(end?.detail?.['allowed'], allowed);
  assert.equal(end?.detail?.['denied'], after.length);
  return { allowed, denied: after.length, records: calls };
}

test('revoking the run cuts a running invocation off at its next host call, and refuses new invocations in the run', async (t) => {
  const cut = await hammerAndRevoke(t, 'revoke-run', 2000, [fsGrant()], (runId) => rt.revokeRun(runId, 'stop this run'));
  assert.ok(cut.denied > 0, 'the revocation landed during the run');
  const denied = cut.records.filter((r) => r.kind === 'call.denied');
  assert.match(denied[0]?.reason ?? '', /revoked/);
  assert.equal(denied[0]?.op, 'fs.stat');
  // The run stays revoked: a new invocation in it is refused before it starts.
  const runId = (cut.records[0] as AuditRecord).runId as string;
  await assert.rejects(rt.invoke('hammer', { n: 1 }, { grants: [fsGrant()], runId }), (e: unknown) => {
    assert.ok(e instanceof AuthorityError);
    assert.equal(e.code, ErrorCode.CAP_REVOKED);
    return true;
  });
  const starts = await auditRecords(rt.dataDir, (r) => r.runId === runId && r.kind === 'invoke.start');
  assert.deepEqual(
    starts.map((r) => [r.decision, r.code]),
    [
      ['allow', 'ok'],
      ['deny', ErrorCode.CAP_REVOKED],
    ],
  );
});

test('revoking a token by id cuts off a running invocation that holds a token derived from it', async (t) => {
  const parent = fsGrant();
  const child = rt.attenuateToken(parent, { methods: ['read'], ttlMs: 300_000 });
  const parentId = rt.inspectToken(parent).tokenId;
  assert.notEqual(rt.inspectToken(child).tokenId, parentId);
  const cut = await hammerAndRevoke(t, 'revoke-token', 2000, [child], () => rt.revokeToken(parentId, 'leaked'));
  assert.ok(cut.denied > 0, 'the revocation landed during the run');
  // Only the token is revoked, not the run: another token still works in a new run.
  const ok = await rt.invoke('hammer', { n: 3 }, { grants: [fsGrant()], runId: 'revoke-token-after' });
  assert.equal(ok.stats.allowed, 3);
  const again = await rt.invoke('hammer', { n: 3 }, { grants: [child], runId: 'revoke-token-again' });
  assert.equal(again.stats.denied, 3, 'the derived token stays revoked');
  assert.deepEqual(
    again.denials.map((d) => d.code),
    [ErrorCode.CAP_REVOKED, ErrorCode.CAP_REVOKED, ErrorCode.CAP_REVOKED],
  );
});

test('a revocation written by another process (authority cap revoke --run) reaches the running invocation', async (t) => {
  // Long enough to outlast the command line's start-up twice over.
  const n = Math.max(2000, Math.round(rate * (cliMs * 2 + 1000)));
  const cut = await hammerAndRevoke(t, 'revoke-cli', n, [fsGrant()], async (runId) => {
    const r = await cli(['cap', 'revoke', '--run', runId, '--reason', 'operator', '--data-dir', rt.dataDir]);
    assert.equal(r.code, 0, r.stderr);
  });
  assert.ok(cut.denied > 0, 'the revocation landed during the run');
  assert.match(cut.records.find((r) => r.kind === 'call.denied')?.reason ?? '', /revoked/);
});

test('the audit chain verifies after the revocations', async () => {
  const report = await verifyAudit({ dir: rt.dataDir });
  assert.equal(report.ok, true, JSON.stringify(report.firstBad));
});
