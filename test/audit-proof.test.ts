import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { AuditLog, merkleRoot, leafHash, proveConsistency, proveRecord, verifyAudit, verifyAuditProof } from '../src/audit/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { checkpointDir, logFile, logLines, sampleEntry, tempDataDir } from './helpers/audit-util.ts';

let dir = '';
let cleanup = (): void => undefined;
let pinned = '';

before(async () => {
  ({ dir, cleanup } = tempDataDir('authority-proof-'));
  const log = await AuditLog.open({ dir });
  for (let i = 0; i < 23; i++) await log.append(sampleEntry(i));
  await log.close();
  pinned = fs.readFileSync(path.join(checkpointDir(dir), 'audit-signing-key.pub.pem'), 'utf8');
});
after(() => cleanup());

test('every record of a log has an inclusion proof that checks against the pinned key', async () => {
  const n = logLines(dir).length;
  for (let seq = 0; seq < n; seq++) {
    const proof = await proveRecord({ dir }, seq);
    const check = verifyAuditProof(JSON.parse(JSON.stringify(proof)), { publicKey: pinned });
    assert.ok(check.ok, `seq ${seq}: ${check.problems.join('; ')}`);
    assert.equal(check.keySource, 'given');
    assert.equal(proof.treeSize, n);
  }
});

test('an inclusion proof does not carry over to another record, another key, or a doctored checkpoint', async () => {
  const proof = await proveRecord({ dir }, 7);
  const other = await proveRecord({ dir }, 8);
  const swapped = { ...proof, record: other.record, leafHash: other.leafHash };
  assert.match(verifyAuditProof(swapped, { publicKey: pinned }).problems.join(), /record is seq 8, the proof says 7/);
  const relabelled = { ...other, seq: 7 };
  assert.equal(verifyAuditProof(relabelled, { publicKey: pinned }).ok, false);
  const { publicKey } = generateKeyPairSync('ed25519');
  const foreignKey = verifyAuditProof(proof, { publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() });
  assert.equal(foreignKey.ok, false);
  assert.match(foreignKey.problems.join(), /signed by key/);
  const grown = { ...proof, checkpoint: { ...proof.checkpoint, size: proof.checkpoint.size + 1 }, treeSize: proof.treeSize + 1 };
  assert.match(verifyAuditProof(grown, { publicKey: pinned }).problems.join(), /signature does not verify/);
  const shortPath = { ...proof, path: proof.path.slice(1) };
  assert.match(verifyAuditProof(shortPath, { publicKey: pinned }).problems.join(), /does not lead/);
  assert.equal(verifyAuditProof('not a proof').ok, false);
  assert.equal(verifyAuditProof({ ...proof, type: 'something-else' }).ok, false);
});

test('a proof checked only against the key it carries says so', async () => {
  const proof = await proveRecord({ dir }, 3);
  const check = verifyAuditProof(proof);
  assert.equal(check.ok, true);
  assert.equal(check.keySource, 'embedded');
});

test('consistency proofs from every earlier size to the latest checkpoint check, and fail for a rewritten prefix', async () => {
  const leaves = logLines(dir).map((l) => leafHash(Buffer.from(l.text)));
  for (let m = 0; m <= leaves.length; m++) {
    const doc = await proveConsistency({ dir }, m);
    assert.equal(doc.oldRoot, merkleRoot(leaves.slice(0, m)).toString('hex'), `old root at ${m}`);
    assert.ok(verifyAuditProof(doc, { publicKey: pinned }).ok, `from ${m}`);
    if (m > 0 && m < leaves.length) {
      // A witness holding the root of a different history of size m is told no.
      const forged = { ...doc, oldRoot: merkleRoot([...leaves.slice(0, m - 1), leafHash(Buffer.from('forged'))]).toString('hex') };
      assert.equal(verifyAuditProof(forged, { publicKey: pinned }).ok, false, `forged history at ${m}`);
    }
  }
});

test('proving a record the latest checkpoint does not cover yet is refused, and so is proving from a log that does not match', async (t) => {
  await assert.rejects(proveRecord({ dir }, 10_000), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.NOT_FOUND);
  await assert.rejects(proveRecord({ dir }, -1), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.INVALID_ARGUMENT);
  const original = fs.readFileSync(logFile(dir));
  t.after(() => fs.writeFileSync(logFile(dir), original));
  fs.writeFileSync(logFile(dir), original.toString().replace('"run-1"', '"run-2"'));
  await assert.rejects(proveRecord({ dir }, 1), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.AUDIT_TAMPERED);
});

test('verifying while the writer runs leaves out a write in flight and counts what is not yet anchored', async (t) => {
  const { dir: d2, cleanup: c2 } = tempDataDir('authority-live-');
  t.after(c2);
  const log = await AuditLog.open({ dir: d2, checkpointEvery: { records: 1000, ms: 3_600_000 } });
  for (let i = 0; i < 5; i++) await log.append(sampleEntry(i));
  // What a reader can see mid-write: part of the next line.
  fs.appendFileSync(logFile(d2), '{"code":"ok","deci');
  const live = await verifyAudit({ dir: d2 });
  assert.equal(live.ok, true, JSON.stringify(live.problems));
  assert.equal(live.inProgress, true);
  assert.equal(live.uncovered, 5);
  fs.truncateSync(logFile(d2), fs.statSync(logFile(d2)).size - '{"code":"ok","deci'.length);
  await log.close();
  assert.equal((await verifyAudit({ dir: d2 })).uncovered, 0, 'the final checkpoint anchors everything');
});
