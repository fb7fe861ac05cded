/**
 * Tries to alter a real log every way an intruder or a bad restore could, and
 * checks that verification notices each time and names the right place.
 */
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { AuditLog, canonicalJson, sha256Hex, verifyAudit, type AuditVerifyReport } from '../src/audit/index.ts';
import { checkpointDir, checkpointFile, logFile, logLines, rewriteChain, sampleEntry, tempDataDir } from './helpers/audit-util.ts';

let dir = '';
let cleanup = (): void => undefined;
let pristineLog = Buffer.alloc(0);
let pristineCheckpoints = Buffer.alloc(0);
let cpFile = '';
let lines: string[] = [];

before(async () => {
  ({ dir, cleanup } = tempDataDir('authority-tamper-'));
  const log = await AuditLog.open({ dir, checkpointEvery: { records: 4, ms: 60_000 } });
  // Realistic records, some appended concurrently (they share syncs and checkpoints).
  for (let i = 0; i < 4; i++) await log.append(sampleEntry(i));
  await Promise.all([4, 5, 6, 7].map((i) => log.append(sampleEntry(i))));
  for (let i = 8; i < 11; i++) await log.append(sampleEntry(i));
  await log.close();
  pristineLog = fs.readFileSync(logFile(dir));
  cpFile = checkpointFile(dir);
  pristineCheckpoints = fs.readFileSync(cpFile);
  lines = logLines(dir).map((l) => l.text);
});
after(() => cleanup());

/** Put `log` (and optionally checkpoints) in place, verify, and restore the pristine files. */
async function verifyWith(log: Buffer | string, checkpoints: Buffer | string = pristineCheckpoints): Promise<AuditVerifyReport> {
  fs.writeFileSync(logFile(dir), log);
  fs.writeFileSync(cpFile, checkpoints);
  try {
    return await verifyAudit({ dir });
  } finally {
    fs.writeFileSync(logFile(dir), pristineLog);
    fs.writeFileSync(cpFile, pristineCheckpoints);
  }
}

const joined = (ls: readonly string[]): string => ls.map((l) => l + '\n').join('');

test('the untouched log verifies, every record covered by a checkpoint', async () => {
  const r = await verifyWith(pristineLog);
  assert.equal(r.ok, true, JSON.stringify(r.problems));
  assert.equal(r.records, 13);
  assert.equal(r.uncovered, 0);
  assert.ok(r.checkpoints >= 3);
  assert.ok(r.consistencyChecked >= 2);
});

test('a large deterministic sample of single-byte changes to a longer log is detected', async () => {
  let seed = 12345;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  for (let n = 0; n < 400; n++) {
    const i = rand() % pristineLog.length;
    const bad = Buffer.from(pristineLog);
    let v = rand() % 256;
    if (v === bad.readUInt8(i)) v = (v + 1) % 256;
    bad.writeUInt8(v, i);
    const r = await verifyWith(bad);
    assert.equal(r.ok, false, `byte ${i} set to ${v} went unnoticed`);
  }
});

test('deleting any one record is detected, naming its seq', async () => {
  for (let k = 0; k < lines.length; k++) {
    const r = await verifyWith(joined(lines.filter((_, i) => i !== k)));
    assert.equal(r.ok, false, `deleting record ${k}`);
    assert.equal(r.firstBad?.seq, k, `deleting record ${k}: ${r.firstBad?.message ?? ''}`);
    assert.ok(r.firstBad?.code === 'seq' || r.firstBad?.code === 'truncated');
  }
});

test('swapping any two neighbouring records is detected at the first of them', async () => {
  for (let k = 0; k + 1 < lines.length; k++) {
    const swapped = lines.slice();
    [swapped[k], swapped[k + 1]] = [swapped[k + 1] as string, swapped[k] as string];
    const r = await verifyWith(joined(swapped));
    assert.equal(r.ok, false, `swapping ${k} and ${k + 1}`);
    assert.equal(r.firstBad?.line, k + 1, `swapping ${k} and ${k + 1}: ${r.firstBad?.message ?? ''}`);
  }
});

test('two swapped records are reported as out of order (swapped), not as missing', async () => {
  for (let k = 1; k + 1 < lines.length; k++) {
    const swapped = lines.slice();
    [swapped[k], swapped[k + 1]] = [swapped[k + 1] as string, swapped[k] as string];
    const r = await verifyWith(joined(swapped));
    const seqProblems = r.problems.filter((p) => p.code === 'seq');
    assert.equal(seqProblems.length, 2, `swapping ${k} and ${k + 1}: ${JSON.stringify(seqProblems)}`);
    assert.match(r.firstBad?.message ?? '', new RegExp(`out of order, not missing.*records ${k} and ${k + 1} were swapped`), `swapping ${k} and ${k + 1}`);
    assert.match(seqProblems[1]?.message ?? '', new RegExp(`record ${k} \\(line ${k + 2}\\) is out of order: it belongs at line ${k + 1}`));
    for (const p of r.problems) assert.doesNotMatch(p.message, /records are missing|skips ahead/, `swapping ${k} and ${k + 1}: ${p.message}`);
  }
});

test('a record moved further down is reported as moved; a removed one still as missing', async () => {
  const moved = lines.slice();
  const [taken] = moved.splice(3, 1);
  moved.splice(6, 0, taken as string);
  const r = await verifyWith(joined(moved));
  assert.match(r.firstBad?.message ?? '', /out of order, not missing: line 4 holds seq 4, and seq 3 comes later, at line 7 \(record 3 was moved\)/);
  const removed = lines.slice();
  removed.splice(3, 1);
  const gone = await verifyWith(joined(removed));
  assert.match(gone.firstBad?.message ?? '', /records are missing before it/);
});

test('inserting a copy of any record anywhere is detected where it lands', async () => {
  for (let from = 0; from < lines.length; from += 3) {
    for (let at = 1; at <= lines.length; at += 2) {
      const ls = lines.slice();
      ls.splice(at, 0, lines[from] as string);
      const r = await verifyWith(joined(ls));
      assert.equal(r.ok, false, `copy of ${from} at ${at}`);
      // A copy placed right before its original is the original as far as order goes: the original is then out of place.
      const expected = at === from ? at + 2 : at + 1;
      assert.equal(r.firstBad?.line, expected, `copy of ${from} at ${at}: ${r.firstBad?.message ?? ''}`);
    }
  }
});

test('inserting a forged record that links correctly is detected at the record it displaces', async () => {
  for (let at = 2; at < lines.length; at++) {
    const prevRecord = JSON.parse(lines[at - 1] as string) as Record<string, unknown>;
    const forged: Record<string, unknown> = {
      kind: 'call.outcome',
      code: 'ok',
      runId: 'run-0',
      op: 'http.fetch',
      prev: prevRecord['hash'],
      seq: at,
      time: prevRecord['time'],
      v: 1,
    };
    forged['hash'] = sha256Hex(canonicalJson(forged));
    const ls = lines.slice();
    ls.splice(at, 0, canonicalJson(forged));
    const r = await verifyWith(joined(ls));
    assert.equal(r.ok, false, `forged record at ${at}`);
    assert.equal(r.firstBad?.line, at + 2, `forged record at ${at}: ${r.firstBad?.message ?? ''}`);
  }
});

test('rewriting a record and re-hashing the whole chain after it is caught by the checkpoints', async () => {
  for (const at of [1, 5, 12]) {
    const r = await verifyWith(rewriteChain(lines, at, (rec) => (rec['reason'] = 'nothing to see here')));
    assert.equal(r.ok, false, `rewrite from ${at}`);
    assert.equal(r.firstBad?.code, 'root-mismatch');
    assert.ok((r.firstBad?.seq ?? Infinity) <= at, `the reported range starts at or before ${at}: ${r.firstBad?.message ?? ''}`);
  }
});

test('cutting 1 to 10 records off the tail is detected, naming the first missing seq', async () => {
  for (let cut = 1; cut <= 10; cut++) {
    const r = await verifyWith(joined(lines.slice(0, lines.length - cut)));
    assert.equal(r.ok, false, `cutting ${cut}`);
    assert.equal(r.firstBad?.code, 'truncated');
    assert.equal(r.firstBad?.seq, lines.length - cut);
    assert.match(r.firstBad?.message ?? '', new RegExp(`${cut} records`));
  }
});

test('cutting the tail mid-record is detected', async () => {
  const r = await verifyWith(pristineLog.subarray(0, pristineLog.length - 40));
  assert.equal(r.ok, false);
  assert.equal(r.firstBad?.code, 'torn-tail');
});

test('appending a forged, correctly chained record after a clean close is detected', async () => {
  const last = JSON.parse(lines[lines.length - 1] as string) as Record<string, unknown>;
  const forged: Record<string, unknown> = { kind: 'approval', decision: 'allow', code: 'ok', reason: 'approved by admin', prev: last['hash'], seq: lines.length, time: last['time'], v: 1 };
  forged['hash'] = sha256Hex(canonicalJson(forged));
  const r = await verifyWith(joined([...lines, canonicalJson(forged)]));
  assert.equal(r.ok, false);
  assert.equal(r.firstBad?.code, 'after-close');
  assert.equal(r.firstBad?.seq, lines.length);
});

test('restoring an older copy of the log is detected; so is restoring older checkpoints with it', async (t) => {
  const { dir: d2, cleanup: c2 } = tempDataDir('authority-restore-');
  t.after(c2);
  const log = await AuditLog.open({ dir: d2 });
  for (let i = 0; i < 6; i++) await log.append(sampleEntry(i));
  await log.checkpoint();
  const olderLog = fs.readFileSync(logFile(d2));
  const olderCps = fs.readFileSync(checkpointFile(d2));
  for (let i = 6; i < 12; i++) await log.append(sampleEntry(i));
  await log.close();

  fs.writeFileSync(logFile(d2), olderLog);
  const r = await verifyAudit({ dir: d2 });
  assert.equal(r.ok, false);
  assert.equal(r.firstBad?.code, 'truncated');
  assert.equal(r.firstBad?.seq, olderLog.toString().split('\n').length - 1);

  // Rolling the checkpoints back too leaves the writer's saved state newer than any checkpoint.
  fs.writeFileSync(checkpointFile(d2), olderCps);
  const both = await verifyAudit({ dir: d2 });
  assert.equal(both.ok, false);
  assert.ok(both.problems.some((p) => p.code === 'checkpoints-removed'), JSON.stringify(both.problems));
});

test('checkpoints signed by another key are not accepted', async () => {
  const pub = path.join(checkpointDir(dir), 'audit-signing-key.pub.pem');
  const original = fs.readFileSync(pub);
  const { publicKey } = generateKeyPairSync('ed25519');
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  try {
    const r = await verifyAudit({ dir });
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => p.code === 'checkpoint-invalid'));
    assert.ok(r.problems.some((p) => p.code === 'no-checkpoint'));
  } finally {
    fs.writeFileSync(pub, original);
  }
});

test('replacing the whole log with a fresh one is detected by the checkpoints the old log left', async (t) => {
  const { dir: d2, cleanup: c2 } = tempDataDir('authority-replace-');
  t.after(c2);
  const log = await AuditLog.open({ dir: d2 });
  await log.append(sampleEntry(0));
  await log.close();
  // Move the log away and let a new one start (the writer itself refuses; an intruder would not ask it).
  fs.rmSync(logFile(d2));
  const oldCps = fs.readdirSync(checkpointDir(d2)).filter((f) => f.endsWith('.checkpoints.jsonl'));
  fs.mkdirSync(path.join(d2, 'stash'));
  for (const f of oldCps) fs.renameSync(path.join(checkpointDir(d2), f), path.join(d2, 'stash', f));
  fs.rmSync(path.join(d2, 'audit', 'state.json'));
  const fresh = await AuditLog.open({ dir: d2 });
  await fresh.close();
  for (const f of oldCps) fs.renameSync(path.join(d2, 'stash', f), path.join(checkpointDir(d2), f));
  const r = await verifyAudit({ dir: d2 });
  assert.equal(r.ok, false);
  assert.ok(r.problems.some((p) => p.code === 'foreign-checkpoints'));
});
