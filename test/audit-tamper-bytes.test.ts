/**
 * Every single-byte change to a small real log, and to its checkpoints, must
 * be noticed by verification, at the line that holds the byte.
 */
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { AuditLog, verifyAudit } from '../src/audit/index.ts';
import { checkpointFile, logFile, sampleEntry, tempDataDir } from './helpers/audit-util.ts';

const WORKERS = 4;
let root = '';
let cleanup = (): void => undefined;
const copies: string[] = [];
let pristineLog = Buffer.alloc(0);
let pristineCheckpoints = Buffer.alloc(0);

before(async () => {
  ({ dir: root, cleanup } = tempDataDir('authority-bytes-'));
  const dir = path.join(root, 'original');
  const log = await AuditLog.open({ dir });
  await log.append(sampleEntry(1)); // an allowed call's intent
  await log.append(sampleEntry(3)); // a denial
  await log.close();
  pristineLog = fs.readFileSync(logFile(dir));
  pristineCheckpoints = fs.readFileSync(checkpointFile(dir));
  // Copies let several verifications wait on the disk at once.
  for (let w = 0; w < WORKERS; w++) {
    const copy = path.join(root, `copy-${w}`);
    fs.cpSync(dir, copy, { recursive: true });
    copies.push(copy);
  }
});
after(() => cleanup());

/** Run `check(dir, i)` for every i in [0, n), spread over the copies. */
async function spread(n: number, check: (dir: string, i: number) => Promise<void>): Promise<void> {
  await Promise.all(
    copies.map(async (dir, w) => {
      for (let i = w; i < n; i += WORKERS) await check(dir, i);
    }),
  );
}

test('the untouched small log verifies', async () => {
  const r = await verifyAudit({ dir: copies[0] as string });
  assert.equal(r.ok, true, JSON.stringify(r.problems));
  assert.equal(r.records, 4);
});

test('every single-byte change anywhere in the log is detected, at the line that holds the byte', async () => {
  // Line (1-based) of each byte; a newline belongs to the line it ends.
  const lineOf: number[] = [];
  let ln = 1;
  for (const b of pristineLog) {
    lineOf.push(ln);
    if (b === 0x0a) ln += 1;
  }
  let checked = 0;
  await spread(pristineLog.length, async (dir, i) => {
    const bad = Buffer.from(pristineLog);
    bad.writeUInt8(bad.readUInt8(i) ^ 0x01, i);
    fs.writeFileSync(logFile(dir), bad);
    const r = await verifyAudit({ dir });
    assert.equal(r.ok, false, `flipping bit 0 of byte ${i} went unnoticed`);
    assert.equal(r.firstBad?.line, lineOf[i], `byte ${i}: first bad line ${String(r.firstBad?.line)}, expected ${String(lineOf[i])} (${r.firstBad?.message ?? ''})`);
    checked += 1;
  });
  assert.equal(checked, pristineLog.length);
  for (const dir of copies) fs.writeFileSync(logFile(dir), pristineLog);
});

test('a single-byte change at any of a deterministic sample of checkpoint bytes is detected', async () => {
  const positions = Array.from({ length: pristineCheckpoints.length }, (_, i) => i).filter((i) => i % 3 === 0 || pristineCheckpoints[i] === 0x0a);
  await spread(positions.length, async (dir, n) => {
    const i = positions[n] as number;
    const bad = Buffer.from(pristineCheckpoints);
    bad.writeUInt8(bad.readUInt8(i) ^ 0x01, i);
    fs.writeFileSync(checkpointFile(dir), bad);
    const r = await verifyAudit({ dir });
    assert.equal(r.ok, false, `checkpoint byte ${i} went unnoticed`);
  });
  for (const dir of copies) fs.writeFileSync(checkpointFile(dir), pristineCheckpoints);
});
