/**
 * Undo on real files: a real tool (fs-probe) overwrites, creates and removes
 * files in a temp workspace; undo puts every byte back, reports a file changed
 * after the run as a conflict and leaves it alone unless forced, obeys the
 * policy, and survives a SIGKILL in the middle.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { verifyAudit } from '../src/audit/index.ts';
import { ErrorCode } from '../src/errors.ts';
import type { PolicyInput } from '../src/policy/schema.ts';
import { PreImageStore } from '../src/undo/index.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

let rt: Awaited<ReturnType<typeof testRuntime>>;
let ws: { path: string; cleanup: () => void };
let data: { path: string; cleanup: () => void };
let grants: string[];
let policy: PolicyInput;

const ORIGINAL: Record<string, Buffer> = {
  'a.txt': Buffer.from('alpha\n'),
  'b.bin': Buffer.from([0, 1, 2, 254, 255, 10, 13, 0]),
  'notes/c.md': Buffer.from('# notes\n'.repeat(1000)),
};
const p = (rel: string): string => path.join(ws.path, rel);

function snapshot(): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const rel of [...Object.keys(ORIGINAL), 'new.txt']) out[rel] = fs.existsSync(p(rel)) ? fs.readFileSync(p(rel)).toString('base64') : null;
  return out;
}
const ORIGINAL_SNAPSHOT = (): Record<string, string | null> => ({ ...Object.fromEntries(Object.entries(ORIGINAL).map(([k, v]) => [k, v.toString('base64')])), 'new.txt': null });

async function openRuntime(): Promise<void> {
  rt = await testRuntime({ dataDir: data.path, audit: { durability: 'none' }, policy });
  await rt.register(await jsFixture('fs-probe'), { limits: { timeoutMs: 120_000 } });
  grants = [rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read', 'list', 'write', 'remove'], ttlMs: 3_600_000 })];
}

/** The bad run: overwrites a file twice, overwrites a binary, creates one, removes one. */
async function badRun(runId: string): Promise<void> {
  const r = await rt.invoke(
    'fs-probe',
    {
      ops: [
        { op: 'write', path: p('a.txt'), data: 'first overwrite' },
        { op: 'write', path: p('a.txt'), data: 'second overwrite' },
        { op: 'write', path: p('b.bin'), data: 'not binary any more' },
        { op: 'write', path: p('new.txt'), data: 'created by the run' },
        { op: 'remove', path: p('notes/c.md') },
      ],
    },
    { grants, runId },
  );
  const results = JSON.parse(r.output) as { ok: boolean }[];
  assert.ok(results.every((x) => x.ok), r.output);
}

beforeEach(async () => {
  ws = tempDir('authority-undo-ws-');
  data = tempDir('authority-undo-data-');
  for (const [rel, bytes] of Object.entries(ORIGINAL)) {
    fs.mkdirSync(path.dirname(p(rel)), { recursive: true });
    fs.writeFileSync(p(rel), bytes);
  }
  policy = { version: '1.0', name: 'undo', fs: { read: [`${ws.path}/**`], write: [`${ws.path}/**`] }, tools: { allow: ['fs-probe'] }, undo: { tools: ['fs-probe'] } };
  await openRuntime();
});

afterEach(async () => {
  await rt?.close();
  ws.cleanup();
  data.cleanup();
});

test('each write and remove outcome names its pre-image, kept content-addressed under the data folder', async () => {
  await badRun('run-bad');
  const outcomes = await auditRecords(data.path, (r) => r.runId === 'run-bad' && r.kind === 'call.outcome');
  const facts = outcomes.map((r) => [r.op, r.detail?.['preImage'], r.detail?.['postImage']]);
  const store = new PreImageStore(path.join(data.path, 'undo'));
  const hashOf = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  assert.deepEqual(facts, [
    ['fs.write', hashOf(ORIGINAL['a.txt'] as Buffer), hashOf('first overwrite')],
    ['fs.write', hashOf('first overwrite'), hashOf('second overwrite')],
    ['fs.write', hashOf(ORIGINAL['b.bin'] as Buffer), hashOf('not binary any more')],
    ['fs.write', 'absent', hashOf('created by the run')],
    ['fs.remove', hashOf(ORIGINAL['notes/c.md'] as Buffer), 'absent'],
  ]);
  assert.deepEqual(store.get(hashOf(ORIGINAL['b.bin'] as Buffer)), ORIGINAL['b.bin']);
  const mode = fs.statSync(path.join(data.path, 'undo', 'objects')).mode & 0o777;
  assert.equal(mode, 0o700);
});

test('undo restores every file byte for byte, newest change first, audited, and the chain verifies', async () => {
  await badRun('run-bad');
  assert.notDeepEqual(snapshot(), ORIGINAL_SNAPSHOT());
  const plan = await rt.undoPlan('run-bad');
  assert.equal(plan.allowed, true);
  assert.deepEqual(plan.steps.map((s) => [s.op, path.relative(ws.path, s.path), s.state, s.action]), [
    ['fs.remove', 'notes/c.md', 'ready', 'restore'],
    ['fs.write', 'new.txt', 'ready', 'remove'],
    ['fs.write', 'b.bin', 'ready', 'restore'],
    ['fs.write', 'a.txt', 'ready', 'restore'],
    ['fs.write', 'a.txt', 'ready', 'restore'],
  ]);
  const result = await rt.undoRun('run-bad');
  assert.equal(result.restored, 5);
  assert.equal(result.conflicts, 0);
  assert.deepEqual(snapshot(), ORIGINAL_SNAPSHOT());
  const undo = await auditRecords(data.path, (r) => r.kind.startsWith('undo.'));
  assert.deepEqual(undo.map((r) => r.kind), ['undo.start', ...Array(5).fill('undo.restore'), 'undo.end']);
  assert.ok(undo.every((r) => r.runId === 'run-bad'));
  assert.equal(undo[0]?.seq, result.audit.start);
  await rt.close();
  const report = await verifyAudit({ dir: data.path });
  assert.equal(report.ok, true, JSON.stringify(report.firstBad));
  // A second undo finds nothing left to do.
  await openRuntime();
  const again = await rt.undoRun('run-bad');
  assert.equal(again.restored, 0);
  assert.equal(again.skipped, 5);
  assert.deepEqual(snapshot(), ORIGINAL_SNAPSHOT());
});

test('a file changed after the run is a conflict, reported first and left alone; force restores it', async () => {
  await badRun('run-bad');
  fs.writeFileSync(p('b.bin'), 'edited by a person after the run');
  const plan = await rt.undoPlan('run-bad');
  const conflict = plan.steps.filter((s) => s.state === 'conflict');
  assert.deepEqual(conflict.map((s) => [path.relative(ws.path, s.path), s.why]), [['b.bin', 'changed since the run']]);
  const r = await rt.undoRun('run-bad');
  assert.equal(r.conflicts, 1);
  assert.equal(r.restored, 4);
  assert.equal(fs.readFileSync(p('b.bin'), 'utf8'), 'edited by a person after the run');
  assert.deepEqual(fs.readFileSync(p('a.txt')), ORIGINAL['a.txt']);
  const records = await auditRecords(data.path, (x) => x.kind === 'undo.conflict');
  assert.equal(records.length, 1);
  assert.equal(records[0]?.detail?.['path'], p('b.bin'));
  const end = (await auditRecords(data.path, (x) => x.kind === 'undo.end'))[0];
  assert.equal(end?.code, 'partial');
  const forced = await rt.undoRun('run-bad', { force: true });
  assert.equal(forced.restored, 1);
  assert.equal(forced.forced, 1);
  assert.deepEqual(snapshot(), ORIGINAL_SNAPSHOT());
});

test('undo is refused unless the policy names the tool in undo.tools, and nothing changes', async () => {
  await badRun('run-bad');
  const before = snapshot();
  policy = { ...policy, undo: { tools: ['some-other-tool'] } };
  await rt.close();
  await openRuntime();
  await assert.rejects(rt.undoRun('run-bad'), (e: unknown) => (e as { code?: string }).code === ErrorCode.POLICY_DENY);
  assert.deepEqual(snapshot(), before);
  const start = (await auditRecords(data.path, (x) => x.kind === 'undo.start'))[0];
  assert.equal(start?.decision, 'deny');
});

test('a restore is confined like any write: a path the policy no longer lets be written is blocked, not restored', async () => {
  await badRun('run-bad');
  policy = { ...policy, fs: { read: [`${ws.path}/**`], write: [`${ws.path}/notes/**`] } };
  await rt.close();
  await openRuntime();
  const r = await rt.undoRun('run-bad');
  const blocked = r.steps.filter((s) => s.state === 'blocked').map((s) => path.relative(ws.path, s.path));
  assert.deepEqual(blocked, ['new.txt', 'b.bin', 'a.txt', 'a.txt']);
  assert.equal(r.restored, 1);
  assert.deepEqual(fs.readFileSync(p('notes/c.md')), ORIGINAL['notes/c.md']);
  assert.equal(fs.readFileSync(p('a.txt'), 'utf8'), 'second overwrite');
});

test('an undo killed (SIGKILL) between restores leaves no file half restored, and running it again finishes it', async () => {
  await badRun('run-bad');
  await rt.close();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'helpers', 'undo-crash-child.ts'), data.path, 'run-bad', JSON.stringify(policy), '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: string) => {
      out += c;
      if (out.includes('stopped')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`child exited (${code}) before it stopped: ${out}`)));
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.on('exit', resolve));
  // Two restores done (notes/c.md back, new.txt gone), the rest as the run left them: every file whole.
  const s = snapshot();
  assert.equal(s['notes/c.md'], ORIGINAL['notes/c.md']?.toString('base64'));
  assert.equal(s['new.txt'], null);
  assert.equal(s['b.bin'], Buffer.from('not binary any more').toString('base64'));
  assert.equal(s['a.txt'], Buffer.from('second overwrite').toString('base64'));
  assert.deepEqual(fs.readdirSync(ws.path).filter((n) => n.includes('.tmp')), []);
  await openRuntime();
  const r = await rt.undoRun('run-bad');
  assert.equal(r.restored, 3);
  assert.equal(r.skipped, 2);
  assert.deepEqual(snapshot(), ORIGINAL_SNAPSHOT());
  await rt.close();
  assert.equal((await verifyAudit({ dir: data.path })).ok, true);
});

test('an undo killed (SIGKILL) at any moment, over and over, never leaves a file half written, and resumes to the original', async () => {
  // A large pre-image makes the restore itself take time, so kills land inside writes too.
  const big = Buffer.alloc(24 * 1024 * 1024, 7);
  fs.writeFileSync(p('b.bin'), big);
  ORIGINAL['b.bin'] = big;
  try {
    await badRun('run-bad');
    await rt.close();
    const legal = (rel: string, v: string | null): boolean => {
      const options = rel === 'a.txt' ? [ORIGINAL['a.txt'], 'first overwrite', 'second overwrite'] : rel === 'b.bin' ? [big, 'not binary any more'] : rel === 'new.txt' ? [null, 'created by the run'] : [ORIGINAL['notes/c.md'], null];
      return options.some((o) => (o === null ? v === null : Buffer.from(o as Buffer | string).toString('base64') === v));
    };
    let killedMidway = 0;
    for (const delay of [0, 2, 8, 20, 40]) {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'helpers', 'undo-crash-child.ts'), data.path, 'run-bad', JSON.stringify(policy), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      const exited = new Promise((resolve) => child.on('exit', resolve));
      // Kill `delay` ms after it reached its first restore, wherever it is then (inside a 24 MiB write, between steps...).
      await new Promise<void>((resolve) => {
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          if (out.includes('step ')) setTimeout(resolve, delay);
        });
        void exited.then(() => resolve());
      });
      if (!out.includes('finished')) killedMidway++;
      child.kill('SIGKILL');
      await exited;
      for (const [rel, v] of Object.entries(snapshot())) assert.ok(legal(rel, v), `${rel} is neither before nor after (killed after ${delay} ms: ${out.trim()})`);
    }
    assert.ok(killedMidway > 0, 'at least one kill landed before the undo finished');
    await openRuntime();
    await rt.undoRun('run-bad');
    assert.deepEqual(snapshot(), ORIGINAL_SNAPSHOT());
    await rt.close();
    assert.equal((await verifyAudit({ dir: data.path })).ok, true);
  } finally {
    ORIGINAL['b.bin'] = Buffer.from([0, 1, 2, 254, 255, 10, 13, 0]);
  }
});
