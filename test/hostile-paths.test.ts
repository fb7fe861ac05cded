/**
 * The hostile path corpus (test/fixtures/hostile-paths.json), tried end to
 * end: a real tool (fs-probe, a component in the sandbox) asks for each path
 * across the worker bridge, through the gate (canonicalisation, symlink
 * resolution, capability, policy, audit) to the host's confined file effects,
 * with a real temp folder as the policy's only root. Canary files live beside
 * the root (and a canary folder is symlinked in); none may ever be read,
 * changed or listed: their content, size, mtime, inode and atime (set in the
 * past, so a read moves it on this relatime mount) are compared after every
 * entry, and no tool output may contain canary content.
 *
 * Then races: a worker thread flips a directory inside the root between a
 * real folder and a symlink to the canaries, a file between an inside file and
 * a hard link to a canary, and renames a folder out of the root and back,
 * while the tool makes thousands of host calls in one invocation.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { tailAuditRecords, verifyAudit, type AuditRecord } from '../src/audit/index.ts';
import { checkCapability, requestForHostCall, type GrantSet } from '../src/capability/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { decode } from '../src/gate/decode.ts';
import type { HostCall } from '../src/host-call.ts';
import { runtimeInternals, type InvokeResult } from '../src/runtime.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { tempDir, testRuntime } from './helpers/runtime.ts';

interface PathEntry {
  id: string;
  category: string;
  why: string;
  op: 'read' | 'write' | 'list' | 'stat' | 'remove';
  path: string;
  expect: string;
  content?: string;
  kind?: string;
}
const corpus = JSON.parse(fs.readFileSync(new URL('./fixtures/hostile-paths.json', import.meta.url), 'utf8')) as { entries: PathEntry[] };

type OpResult = { ok: true; content?: string; entries?: string[]; kind?: string; size?: number } | { ok: false; tag: string; code?: string; message: string };
interface Summary {
  op: string;
  path: string;
  counts: Record<string, number>;
  contents: string[];
  names: string[];
}

const OLD = new Date('2020-01-01T00:00:00Z');
const WRITTEN = 'written by the guest';
/** What the files inside the root hold, by path below the root. */
const INSIDE: Record<string, string> = {
  'file.txt': 'inside',
  'caf\u00e9.txt': 'nfc',
  'sub/inner.txt': 'inner',
  '%2e%2e/marker.txt': 'literal',
  '..\\': 'backslash',
};

let ws: ReturnType<typeof tempDir>;
let base: string;
let root: string;
let outside: string;
let rt: Awaited<ReturnType<typeof testRuntime>>;
let grants: string[];
let grantSet: GrantSet;
const canaryContent = new Map<string, string>();
let canaryMarks: Map<string, Mark>;
let atimeObservable = false;

interface Mark {
  kind: string;
  size: number;
  mtimeMs: number;
  atimeMs: number;
  ino: number;
}

/** Every entry under `dir` with what would show a read or a change. */
function marks(dir: string): Map<string, Mark> {
  const out = new Map<string, Mark>();
  const walk = (d: string, rel: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      out.set(path.join(rel, name), {
        kind: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'link' : 'other',
        size: st.size,
        mtimeMs: st.mtimeMs,
        // File atimes only: listing the folder here moves directory atimes by itself.
        atimeMs: atimeObservable && st.isFile() ? st.atimeMs : 0,
        ino: st.ino,
      });
      if (st.isDirectory()) walk(p, path.join(rel, name));
    }
  };
  walk(dir, '');
  return out;
}

function writeCanary(rel: string, content: string): void {
  const p = path.join(outside, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  fs.utimesSync(p, OLD, new Date());
  canaryContent.set(rel, content);
}

function assertCanariesUntouched(label: string): void {
  assert.deepEqual(marks(outside), canaryMarks, `${label}: the canary folder is unchanged (names, kinds, sizes, mtimes, atimes, inodes)`);
}

function assertNoCanaryContent(label: string, text: string): void {
  for (const [rel, content] of canaryContent) assert.ok(!text.includes(content), `${label}: the tool output never holds the content of canary ${rel}`);
}

/** A fresh root for every entry: the corpus fixture, with the guest's /data at `root` and /outside at `outside`. */
function buildRoot(): void {
  const stash = path.join(base, 'fifo-stash');
  if (fs.existsSync(path.join(root, 'fifo'))) fs.renameSync(path.join(root, 'fifo'), stash);
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.mkdirSync(path.join(root, 'empty'));
  fs.mkdirSync(path.join(root, '%2e%2e'));
  for (const [rel, content] of Object.entries(INSIDE)) fs.writeFileSync(path.join(root, rel), content);
  fs.symlinkSync('../../outside', path.join(root, 'sub', 'up'));
  fs.symlinkSync(outside, path.join(root, 'link-out'));
  fs.symlinkSync('../outside', path.join(root, 'link-rel'));
  fs.symlinkSync(path.join(outside, 'canary.txt'), path.join(root, 'link-file'));
  fs.symlinkSync('sub', path.join(root, 'link-in'));
  fs.symlinkSync('.', path.join(root, 'link-dot'));
  fs.symlinkSync('link-loop', path.join(root, 'link-loop'));
  fs.symlinkSync('/', path.join(root, 'link-root'));
  fs.symlinkSync('/proc/self/root', path.join(root, 'link-proc'));
  fs.linkSync(path.join(outside, 'canary.txt'), path.join(root, 'hard-out'));
  if (!fs.existsSync(stash)) execFileSync('mkfifo', [stash]);
  fs.renameSync(stash, path.join(root, 'fifo'));
}

/**
 * The corpus is written for a guest root /data and a canary folder /outside;
 * here they are real folders. Paths that would touch the machine itself
 * (/tmp, /etc/hostname) are pointed at canaries instead.
 */
function hostPath(p: string): string {
  if (p === '/dat') return root.slice(0, -1);
  if (p.startsWith('/DATA')) return path.join(base, 'ROOT') + p.slice(5);
  if (p.startsWith('//data')) return `/${root}${p.slice(6)}`;
  if (p.startsWith('\\data')) return root.replaceAll('/', '\\') + p.slice(5);
  if (p.startsWith('file:///data')) return `file://${root}${p.slice(12)}`;
  if (p.startsWith('data/')) return root.slice(1) + p.slice(4);
  if (p === '/tmp/authority-escape.txt') return path.join(base, 'escape.txt');
  if (p === '/etc/hostname') return path.join(outside, 'hostname');
  if (p.startsWith('/outside')) return outside + p.slice(8);
  if (p.startsWith('/data')) return root + p.slice(5);
  return p;
}

before(async () => {
  ws = tempDir('authority-hostile-paths-');
  base = ws.path;
  root = path.join(base, 'root');
  outside = path.join(base, 'outside');
  const probe = path.join(base, 'probe');
  fs.writeFileSync(probe, 'p');
  fs.utimesSync(probe, OLD, new Date());
  fs.readFileSync(probe);
  atimeObservable = fs.statSync(probe).atimeMs > OLD.getTime();
  fs.rmSync(probe);

  writeCanary('canary.txt', 'CANARY-OUTSIDE-THE-ROOT');
  writeCanary('dir/canary2.txt', 'CANARY-2-DEEPER');
  writeCanary('hostname', 'CANARY-HOSTNAME');
  writeCanary('race/f.txt', 'CANARY-RACE-CONTENT');
  writeCanary('race/victim', 'CANARY-VICTIM');
  writeCanary('race/OUTSIDE-MARKER', 'CANARY-MARKER');
  writeCanary('race/file-target', 'CANARY-FILE-TARGET');
  writeCanary('race/hl-target', 'CANARY-HARD-LINK-TARGET');
  buildRoot();
  canaryMarks = marks(outside);

  rt = await testRuntime({
    audit: { durability: 'none' },
    policy: { version: '1.0', name: 'hostile-paths', fs: { read: [`${root}/**`], write: [`${root}/**`] }, tools: { allow: ['fs-probe'] } },
  });
  await rt.register(await jsFixture('fs-probe'), { limits: { timeoutMs: 120_000 } });
  // A token for every path: the policy's root and the host's confinement are what is under test.
  grants = [rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read', 'list', 'write', 'remove'], ttlMs: 3_600_000 })];
  grantSet = rt.prepareGrants(grants);
});

after(async () => {
  await rt?.cleanup();
  if (canaryMarks !== undefined) {
    assertCanariesUntouched('after every test');
    for (const [rel, content] of canaryContent) assert.equal(fs.readFileSync(path.join(outside, rel), 'utf8'), content, `${rel} content`);
    assert.ok(!fs.existsSync(path.join(base, 'escape.txt')), 'nothing was written outside the root');
  }
  ws?.cleanup();
});

async function probe(ops: { op: string; path: string; data?: string }[], runId: string, repeat?: number): Promise<{ output: string; run: InvokeResult; records: AuditRecord[] }> {
  const run = await rt.invoke('fs-probe', repeat === undefined ? { ops } : { ops, repeat }, { grants, runId });
  const count = run.audit.end - run.audit.start + 1;
  const records = repeat === undefined ? (await tailAuditRecords({ dir: rt.dataDir }, count, { runId })).map((l) => l.record as AuditRecord) : [];
  return { output: run.output, run, records };
}

const TAG_CODES: Record<string, string> = {
  invalid: ErrorCode.INVALID_ARGUMENT,
  'not-found': ErrorCode.NOT_FOUND,
  'too-large': ErrorCode.TOO_LARGE,
  io: ErrorCode.IO,
};
const clip = (reason: string): string => (reason.length > 1024 ? reason.slice(0, 1021) + '...' : reason);

const OPS = { read: 'fs.read', write: 'fs.write', list: 'fs.list', stat: 'fs.stat', remove: 'fs.remove' } as const;

/** Whether the gate must refuse the call (stage 1-3, with that stage's code and reason), or pass it to the host. */
async function gateVerdict(op: keyof typeof OPS, p: string): Promise<{ stage: 'gate'; code: string; reason: string } | { stage: 'host' }> {
  const raw = (op === 'write' ? { op: 'fs.write', path: p, data: new TextEncoder().encode(WRITTEN) } : { op: OPS[op], path: p }) as HostCall;
  let call;
  try {
    call = await decode(raw);
  } catch (e) {
    assert.ok(e instanceof AuthorityError);
    return { stage: 'gate', code: e.code === ErrorCode.IO ? ErrorCode.IO : ErrorCode.INVALID_ARGUMENT, reason: e.message };
  }
  if (call.op === 'http.fetch' || call.op === 'secrets.get') throw new Error('unreachable');
  const cap = checkCapability(grantSet, requestForHostCall(call.op === 'fs.write' ? { op: 'fs.write', path: call.real, data: call.data } : ({ op: call.op, path: call.real } as HostCall)), {
    runId: 'x',
    revocations: runtimeInternals(rt).revocations,
  });
  if (!cap.allow) return { stage: 'gate', code: cap.code, reason: cap.reason };
  const pd = await rt.policy.resolveAndDecide({ op: call.op, path: call.path });
  if (!pd.allow) return { stage: 'gate', code: pd.code, reason: pd.reason };
  return { stage: 'host' };
}

const below = (p: string): string | undefined => (p === root ? '' : p.startsWith(`${root}/`) ? p.slice(root.length + 1) : undefined);

const tally = { tried: 0, refused: 0, allowed: 0, byGate: 0 };

test('the path corpus covers every category with distinct entries', () => {
  assert.ok(corpus.entries.length >= 100, `${corpus.entries.length} entries`);
  assert.equal(new Set(corpus.entries.map((e) => e.id)).size, corpus.entries.length);
  const cats = new Set(corpus.entries.map((e) => e.category));
  for (const c of ['traversal', 'non-canonical', 'nul', 'outside-root', 'long', 'symlink', 'hard-link', 'special-file']) assert.ok(cats.has(c), c);
});

test('the root works: the tool reads, writes, lists, stats and removes inside it (the corpus is not vacuous)', async () => {
  buildRoot();
  const { output } = await probe(
    [
      { op: 'read', path: `${root}/file.txt` },
      { op: 'write', path: `${root}/sub/new.txt` },
      { op: 'list', path: `${root}/sub` },
      { op: 'stat', path: `${root}/sub/new.txt` },
      { op: 'remove', path: `${root}/sub/new.txt` },
      { op: 'read', path: `${outside}/canary.txt` },
    ],
    'paths-control',
  );
  const r = JSON.parse(output) as OpResult[];
  assert.deepEqual(r.slice(0, 5), [
    { ok: true, content: 'inside' },
    { ok: true },
    { ok: true, entries: ['inner.txt', 'new.txt', 'up'] },
    { ok: true, kind: 'file', size: WRITTEN.length },
    { ok: true },
  ]);
  assert.equal(r[5]?.ok, false, 'the canary itself, named directly, is refused');
  assertCanariesUntouched('control');
});

for (const entry of corpus.entries) {
  test(`${entry.op} ${entry.id} (${entry.why}): no canary read or changed`, async () => {
    buildRoot();
    tally.tried++;
    const p = hostPath(entry.path);
    const label = entry.id;
    const verdict = await gateVerdict(entry.op, p);
    const { output, records } = await probe([{ op: entry.op, path: p, ...(entry.op === 'write' ? { data: WRITTEN } : {}) }], `paths-${entry.id}`);
    assertNoCanaryContent(label, output);
    assertCanariesUntouched(label);
    assert.ok(!fs.existsSync(path.join(base, 'escape.txt')), `${label}: nothing was written outside the root`);
    assert.ok(!fs.readdirSync(root).some((n) => n.startsWith('.authority-')), `${label}: no temp file is left behind`);
    const [result] = JSON.parse(output) as OpResult[];
    assert.ok(result !== undefined);
    const calls = records.filter((r) => r.kind.startsWith('call.'));

    if (verdict.stage === 'gate') {
      tally.byGate++;
      tally.refused++;
      assert.equal(result.ok, false, `${label}: refused by the gate (${verdict.reason})`);
      if (result.ok) return;
      assert.equal(result.tag === 'denied' ? result.code : TAG_CODES[result.tag], verdict.code, `${label}: the tool was told the stage's code`);
      assert.equal(result.message, verdict.reason, label);
      assert.deepEqual(
        calls.map((r) => [r.kind, r.op, r.decision, r.code, r.reason]),
        [['call.denied', OPS[entry.op], 'deny', verdict.code, clip(verdict.reason)]],
        `${label}: one call.denied record with the code and reason`,
      );
      return;
    }

    // The policy allowed the (canonical, resolved) path: it lies inside the root, and so does every effect.
    assert.deepEqual(
      calls.map((r) => [r.kind, r.op]),
      [
        ['call.intent', OPS[entry.op]],
        ['call.outcome', OPS[entry.op]],
      ],
      label,
    );
    const real = (calls[0] as AuditRecord).detail?.['path'] as string;
    const rel = below(real);
    assert.ok(rel !== undefined, `${label}: the path the gate allowed (${real}) is inside the root`);
    const outcome = calls[1] as AuditRecord;
    if (!result.ok) {
      tally.refused++;
      assert.equal(outcome.code, result.tag === 'denied' ? result.code : result.tag, `${label}: the outcome record carries the refusal`);
      assert.equal(outcome.reason, clip(result.message), label);
      if (entry.expect !== 'ok') assert.ok(['invalid', 'denied', 'not-found', 'too-large'].includes(result.tag), `${label}: ${result.tag}`);
    } else {
      tally.allowed++;
      assert.equal(outcome.code, 'ok', label);
      switch (entry.op) {
        case 'read':
          assert.equal(result.content, INSIDE[rel], `${label}: read the inside file ${rel} and nothing else`);
          break;
        case 'write':
          assert.equal(fs.readFileSync(real, 'utf8'), WRITTEN, `${label}: the write landed at ${rel}, inside the root`);
          assert.equal(fs.lstatSync(real).nlink, 1, label);
          break;
        case 'list':
          assert.deepEqual(result.entries, fs.readdirSync(real).sort(), `${label}: listed ${rel}`);
          break;
        case 'stat':
          assert.equal(result.kind, entry.kind ?? result.kind, label);
          break;
        case 'remove':
          assert.throws(() => fs.lstatSync(real), `${label}: removed ${rel}`);
          break;
      }
    }
    // What the corpus calls legitimate stays legitimate end to end.
    if (entry.expect === 'ok') {
      assert.equal(result.ok, true, `${label}: a legitimate request is served (${JSON.stringify(result)})`);
      if (entry.content !== undefined) assert.equal((result as { content?: string }).content, entry.content, label);
    }
  });
}

test('every corpus entry was tried and the canaries never moved', (t) => {
  t.diagnostic(`entries ${tally.tried}: refused ${tally.refused} (${tally.byGate} by the gate), served inside the root ${tally.allowed}`);
  assert.equal(tally.tried, corpus.entries.length);
  assert.ok(tally.refused > 0 && tally.allowed > 0 && tally.byGate > 0, JSON.stringify(tally));
  assertCanariesUntouched('after the corpus');
});

// ---------------------------------------------------------------------------
// Races: the tree changes under the tool while it makes thousands of calls.
// ---------------------------------------------------------------------------

const SWAPPER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const flag = new Int32Array(workerData.flag);
const d = workerData.dir;
const parked = workerData.parked;
const hlTarget = workerData.hlTarget;
let swaps = 0;
const mv = (a, b) => { try { fs.renameSync(a, b); } catch {} };
const at = (n) => d + '/' + n;
while (Atomics.load(flag, 0) === 0) {
  // sub: a real folder <-> a symlink to the canary folder.
  mv(at('sub'), at('sub-real')); mv(at('sub-link'), at('sub'));
  // file: a regular file <-> a symlink to a canary file.
  mv(at('file'), at('file-real')); mv(at('file-link'), at('file'));
  // hl: a regular file <-> a hard link to a canary file.
  mv(at('hl'), at('hl-real')); try { fs.linkSync(hlTarget, at('hl')); } catch {}
  // moving: renamed out of the root, then back.
  mv(at('moving'), parked);
  mv(at('sub'), at('sub-link')); mv(at('sub-real'), at('sub'));
  mv(at('file'), at('file-link')); mv(at('file-real'), at('file'));
  try { fs.unlinkSync(at('hl')); } catch {} mv(at('hl-real'), at('hl'));
  mv(parked, at('moving'));
  swaps++;
}
Atomics.store(flag, 1, swaps);
`;

test('a folder swapped for a symlink, a file for a hard link, and a folder renamed out of the root, during thousands of calls, never let one escape', { timeout: 120_000 }, async (t) => {
  buildRoot();
  const race = path.join(root, 'race');
  fs.mkdirSync(path.join(race, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(race, 'sub', 'f.txt'), 'in');
  fs.writeFileSync(path.join(race, 'sub', 'victim'), 'inside victim');
  fs.symlinkSync(path.join(outside, 'race'), path.join(race, 'sub-link'));
  fs.writeFileSync(path.join(race, 'file'), 'in-file');
  fs.symlinkSync(path.join(outside, 'race', 'file-target'), path.join(race, 'file-link'));
  fs.writeFileSync(path.join(race, 'hl'), 'in-hl');
  fs.mkdirSync(path.join(race, 'moving'));
  fs.writeFileSync(path.join(race, 'moving', 'm.txt'), 'in-moving');
  const parked = path.join(base, 'parked');
  const before = marks(outside);

  const sharedFlag = new SharedArrayBuffer(8);
  const flag = new Int32Array(sharedFlag);
  const worker = new Worker(SWAPPER, {
    eval: true,
    workerData: { dir: race, flag: sharedFlag, parked, hlTarget: path.join(outside, 'race', 'hl-target') },
  });
  const ops = [
    { op: 'read', path: `${race}/sub/f.txt` },
    { op: 'list', path: `${race}/sub` },
    { op: 'stat', path: `${race}/sub/victim` },
    { op: 'write', path: `${race}/sub/w.txt`, data: 'guest' },
    { op: 'write', path: `${race}/sub/victim`, data: 'guest victim' },
    { op: 'remove', path: `${race}/sub/victim` },
    { op: 'read', path: `${race}/file` },
    { op: 'read', path: `${race}/hl` },
    { op: 'read', path: `${race}/moving/m.txt` },
    { op: 'write', path: `${race}/moving/w.txt`, data: 'guest moving' },
  ];
  const REPEAT = 250;
  let summary: Summary[];
  let run: InvokeResult;
  try {
    ({ run } = await probe(ops, 'paths-race', REPEAT));
    summary = JSON.parse(run.output) as Summary[];
  } finally {
    Atomics.store(flag, 0, 1);
    await new Promise((r) => worker.once('exit', r));
  }
  const swaps = Atomics.load(flag, 1);
  t.diagnostic(`${swaps} swap rounds; ${summary.map((x) => `${x.op} ${path.relative(race, x.path)} ${JSON.stringify(x.counts)}`).join('; ')}`);
  assert.ok(swaps > 0, 'the swapper ran');
  assert.equal(run.stats.hostCalls, ops.length * REPEAT, 'every call reached the gate');
  assertNoCanaryContent('race', run.output);

  const byPath = (i: number): Summary => summary[i] as Summary;
  assert.deepEqual(byPath(0).contents.filter((c) => c !== 'in'), [], 'a read through the flipping folder only ever returned the inside file');
  assert.deepEqual(
    byPath(1).names.filter((n) => !['f.txt', 'victim', 'w.txt'].includes(n) && !n.startsWith('.authority-')),
    [],
    'a list through the flipping folder never showed the canary folder',
  );
  assert.deepEqual(byPath(6).contents.filter((c) => c !== 'in-file'), [], 'a read of the flipping file only returned the inside file');
  assert.deepEqual(byPath(7).contents.filter((c) => c !== 'in-hl'), [], 'a read of the file flipped to a hard link only returned the inside file');
  assert.deepEqual(byPath(8).contents.filter((c) => c !== 'in-moving'), [], 'a read in the folder renamed out returned only its own file');
  // The race was real: each flipping path was both served and refused.
  for (const i of [0, 6, 7]) {
    const c = byPath(i).counts;
    assert.ok((c['ok'] ?? 0) > 0, `${ops[i]?.path}: some calls were served ${JSON.stringify(c)}`);
    assert.ok(Object.keys(c).some((k) => k !== 'ok'), `${ops[i]?.path}: some calls were refused ${JSON.stringify(c)}`);
  }
  for (const s of summary) for (const k of Object.keys(s.counts)) assert.ok(['ok', ErrorCode.POLICY_DENY, 'not-found', 'invalid', 'io'].includes(k), `${s.op} ${s.path}: outcome ${k}`);

  assert.deepEqual(marks(outside), before, 'nothing in the canary folder changed (names, sizes, mtimes, atimes, inodes)');
  assert.ok(!fs.existsSync(parked), 'the renamed folder came back');
  if ((byPath(9).counts['ok'] ?? 0) > 0) assert.equal(fs.readFileSync(path.join(race, 'moving', 'w.txt'), 'utf8'), 'guest moving', 'writes into the renamed folder are inside the root again');
  const written = fs.readdirSync(path.join(race, 'sub'));
  assert.ok(!fs.readdirSync(path.join(outside, 'race')).some((n) => n === 'w.txt' || n.startsWith('.authority-')), 'no guest write landed in the canary folder');
  assert.ok(written.every((n) => !n.startsWith('.authority-')), 'no temp file was left behind');
});

test('the audit chain verifies after the corpus and the races', async () => {
  const report = await verifyAudit({ dir: rt.dataDir });
  assert.equal(report.ok, true, JSON.stringify(report.firstBad));
});
