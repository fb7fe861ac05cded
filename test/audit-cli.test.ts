import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { main } from '../src/cli/main.ts';
import type { CliIO } from '../src/cli/types.ts';
import { AuditLog, followAuditRecords } from '../src/audit/index.ts';
import { logFile, sampleEntry, tempDataDir } from './helpers/audit-util.ts';

let dir = '';
let cleanup = (): void => undefined;
let pristine = Buffer.alloc(0);

before(async () => {
  ({ dir, cleanup } = tempDataDir('authority-cli-'));
  const log = await AuditLog.open({ dir });
  for (let i = 0; i < 20; i++) await log.append(sampleEntry(i));
  await log.close();
  pristine = fs.readFileSync(logFile(dir));
});
after(() => cleanup());

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    log: pino({ level: 'silent' }),
    env: {},
    cwd: dir,
  };
  const code = await main(argv, io);
  return { code, out, err };
}

test('audit verify exits 0 on an intact log and says so', async () => {
  const r = await cli('audit', 'verify', '--data-dir', dir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /OK: every record is whole and chained/);
  assert.match(r.out, /records +22 /);
});

test('audit verify --json prints exactly one JSON document', async () => {
  const r = await cli('audit', 'verify', '--data-dir', dir, '--json');
  assert.equal(r.code, 0);
  const doc = JSON.parse(r.out) as { ok: boolean; records: number; problems: unknown[] };
  assert.equal(doc.ok, true);
  assert.equal(doc.records, 22);
  assert.deepEqual(doc.problems, []);
});

test('audit verify exits 1 on a changed record, naming its seq and line', async (t) => {
  t.after(() => fs.writeFileSync(logFile(dir), pristine));
  const lines = pristine.toString().split('\n');
  lines[7] = (lines[7] as string).replace('"tok_', '"tik_');
  fs.writeFileSync(logFile(dir), lines.join('\n'));
  const r = await cli('audit', 'verify', '--data-dir', dir);
  assert.equal(r.code, 1);
  assert.match(r.out, /FAILED: record 7 \(line 8\): record hash does not match/);
  const j = await cli('audit', 'verify', '--data-dir', dir, '--json');
  assert.equal(j.code, 1);
  const doc = JSON.parse(j.out) as { firstBad: { seq: number; line: number; code: string } };
  assert.deepEqual([doc.firstBad.seq, doc.firstBad.line, doc.firstBad.code], [7, 8, 'record-hash']);
});

test('audit verify exits 1 on a cut tail, saying how many records are missing', async (t) => {
  t.after(() => fs.writeFileSync(logFile(dir), pristine));
  const lines = pristine.toString().split('\n');
  fs.writeFileSync(logFile(dir), lines.slice(0, 19).join('\n') + '\n');
  const r = await cli('audit', 'verify', '--data-dir', dir);
  assert.equal(r.code, 1);
  assert.match(r.out, /3 records \(seq 19 to 21\) are missing/);
});

test('audit verify on two swapped records says they are out of order (swapped), not missing', async (t) => {
  t.after(() => fs.writeFileSync(logFile(dir), pristine));
  const lines = pristine.toString().split('\n');
  [lines[5], lines[6]] = [lines[6] as string, lines[5] as string];
  fs.writeFileSync(logFile(dir), lines.join('\n'));
  const r = await cli('audit', 'verify', '--data-dir', dir);
  assert.equal(r.code, 1);
  assert.match(r.out, /record 5 \(line 6\): records are out of order, not missing: line 6 holds seq 6, and seq 5 comes later, at line 7 \(records 5 and 6 were swapped\)/);
  assert.doesNotMatch(r.out, /records are missing/);
});

test('audit verify exits 2 when there is no log at all', async () => {
  const r = await cli('audit', 'verify', '--data-dir', path.join(dir, 'nothing-here'));
  assert.equal(r.code, 2);
  assert.match(r.err, /E_CONFIG: there is no audit log/);
});

test('audit show prints one readable line per record and filters by decision and kind', async () => {
  const all = await cli('audit', 'show', '--data-dir', dir);
  assert.equal(all.code, 0);
  assert.equal(all.out.trimEnd().split('\n').length, 22);
  const denied = await cli('audit', 'show', '--data-dir', dir, '--decision', 'deny');
  const lines = denied.out.trimEnd().split('\n');
  assert.equal(lines.length, 4);
  for (const l of lines) assert.match(l, /^#\d+ {2}\S+ {2}call\.denied +deny E_POLICY_DENY {2}run=run-\d {2}tool=\S+ {2}op=fs\.read/);
  const calls = await cli('audit', 'show', '--data-dir', dir, '--kind', 'call.*', '--json');
  const doc = JSON.parse(calls.out) as { records: Array<{ record: { kind: string } }> };
  assert.equal(doc.records.length, 12);
  assert.ok(doc.records.every((r) => r.record.kind.startsWith('call.')));
  const byRun = await cli('audit', 'show', '--data-dir', dir, '--run', 'run-1', '--tool', 'fetcher', '--json');
  const runDoc = JSON.parse(byRun.out) as { records: Array<{ record: { runId: string; tool: string } }> };
  assert.ok(runDoc.records.length > 0);
  assert.ok(runDoc.records.every((r) => r.record.runId === 'run-1' && r.record.tool === 'fetcher'));
});

test('audit show marks an unreadable line instead of skipping it', async (t) => {
  t.after(() => fs.writeFileSync(logFile(dir), pristine));
  fs.writeFileSync(logFile(dir), Buffer.concat([pristine, Buffer.from('not json\n')]));
  const r = await cli('audit', 'show', '--data-dir', dir, '--from', '21');
  assert.match(r.out, /^#21 /m);
  assert.match(r.out, /^!! line 23 \(byte \d+\): line is not JSON text$/m);
});

test('audit tail prints the last N matching records, oldest first', async () => {
  const r = await cli('audit', 'tail', '-n', '3', '--data-dir', dir, '--json');
  const doc = JSON.parse(r.out) as { records: Array<{ record: { seq: number } }> };
  assert.deepEqual(
    doc.records.map((x) => x.record.seq),
    [19, 20, 21],
  );
  const denied = await cli('audit', 'tail', '-n', '2', '--decision', 'deny', '--data-dir', dir, '--json');
  const d = JSON.parse(denied.out) as { records: Array<{ record: { seq: number; decision: string } }> };
  assert.equal(d.records.length, 2);
  assert.ok(d.records.every((x) => x.record.decision === 'deny'));
  assert.ok((d.records[0]?.record.seq ?? 0) < (d.records[1]?.record.seq ?? 0));
});

test('audit prove writes a proof that verify-proof accepts, and a doctored one that it refuses', async (t) => {
  const file = path.join(dir, 'proof.json');
  t.after(() => fs.rmSync(file, { force: true }));
  // Record 5 is a denial: the doctored proof below claims it was allowed.
  const p = await cli('audit', 'prove', '5', '--data-dir', dir, '--out', file);
  assert.equal(p.code, 0, p.err);
  assert.match(p.out, /record 5 is in the log .* proof verified/);
  const ok = await cli('audit', 'verify-proof', file, '--data-dir', dir);
  assert.equal(ok.code, 0);
  assert.match(ok.out, /OK: inclusion proof/);
  const same = await cli('audit', 'verify', '--proof', file, '--data-dir', dir, '--json');
  assert.equal((JSON.parse(same.out) as { ok: boolean; keySource: string }).keySource, 'given');

  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { record: string };
  assert.match(doc.record, /"decision":"deny"/);
  doc.record = doc.record.replace('"deny"', '"allow"');
  fs.writeFileSync(file, JSON.stringify(doc));
  const bad = await cli('audit', 'verify-proof', file, '--data-dir', dir);
  assert.equal(bad.code, 1);
  assert.match(bad.out, /INVALID proof/);
});

test('audit prove --json prints the proof itself; prove --from-size proves consistency', async () => {
  const r = await cli('audit', 'prove', '0', '--data-dir', dir, '--json');
  const doc = JSON.parse(r.out) as { type: string; seq: number; treeSize: number };
  assert.deepEqual([doc.type, doc.seq, doc.treeSize], ['authority-audit/inclusion-proof', 0, 22]);
  const c = await cli('audit', 'prove', '--from-size', '5', '--data-dir', dir, '--json');
  assert.equal(c.code, 0);
  assert.equal((JSON.parse(c.out) as { type: string }).type, 'authority-audit/consistency-proof');
  const beyond = await cli('audit', 'prove', '99', '--data-dir', dir);
  assert.equal(beyond.code, 1);
  assert.match(beyond.err, /E_NOT_FOUND: record 99 is not covered/);
});

test('bad usage exits 2 with a clear message', async () => {
  for (const [argv, message] of [
    [['audit', 'frobnicate'], /unknown audit subcommand "frobnicate"/],
    [['audit', 'tail', '--decision', 'maybe', '--data-dir', dir], /--decision takes allow or deny/],
    [['audit', 'tail', '-n', 'many', '--data-dir', dir], /-n takes a non-negative integer/],
    [['audit', 'prove', '--data-dir', dir], /usage: authority audit prove SEQ/],
    [['audit', 'verify', '--bogus'], /Unknown option '--bogus'/],
    [['audit', 'tail', '--follow', '--json', '--data-dir', dir], /use --jsonl/],
  ] as const) {
    const r = await cli(...argv);
    assert.equal(r.code, 2, argv.join(' '));
    // With --json the error is the one JSON document on stdout; otherwise it goes to stderr.
    assert.match((argv as readonly string[]).includes('--json') ? r.out : r.err, message);
  }
});

test('following the log yields records as they are appended, until stopped', { timeout: 30_000 }, async (t) => {
  const { dir: d2, cleanup: c2 } = tempDataDir('authority-follow-');
  t.after(c2);
  const log = await AuditLog.open({ dir: d2 });
  const stop = new AbortController();
  const seen: number[] = [];
  // From where the log stands now: left to itself, the follower starts at the size it first sees,
  // which may already include the first appends below.
  const fromOffset = log.stats.bytes;
  const following = (async () => {
    for await (const l of followAuditRecords({ dir: d2 }, { signal: stop.signal, pollMs: 10, fromOffset })) {
      if (l.record !== null) seen.push(l.record.seq);
      if (seen.length === 5) stop.abort();
    }
  })();
  for (let i = 0; i < 5; i++) await log.append(sampleEntry(i));
  await following;
  await log.close();
  assert.deepEqual(seen, [2, 3, 4, 5, 6]);
});
