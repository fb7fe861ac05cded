import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { AuditLog, merkleRoot, leafHash, sha256Hex, verifyAudit, type AuditReceipt } from '../src/audit/index.ts';
import { parseCheckpointLine } from '../src/audit/checkpoint.ts';
import { publicKeyFrom } from '../src/audit/signing.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { checkpointDir, checkpointFile, CountingIo, logFile, logLines, rewriteChain, sampleEntry, tempDataDir } from './helpers/audit-util.ts';

const isCode = (code: string) => (e: unknown) => e instanceof AuthorityError && e.code === code;

test('appends get consecutive seqs, and the file holds exactly those records in order', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  const first = log.stats.appended;
  const receipts = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(sampleEntry(i))));
  assert.deepEqual(
    receipts.map((r) => r.seq),
    Array.from({ length: 50 }, (_, i) => first + i),
  );
  await log.close();
  const lines = logLines(dir).map((l) => JSON.parse(l.text) as { seq: number; hash: string; kind: string; runId?: string });
  assert.equal(lines[0]?.kind, 'genesis');
  assert.equal(lines[1]?.kind, 'log.open');
  for (const r of receipts) {
    assert.equal(lines[r.seq]?.hash, r.hash);
    assert.equal(lines[r.seq]?.kind, sampleEntry(r.seq - first).kind);
  }
  assert.equal(lines.length, first + 50);
});

test('no acknowledgement precedes the fdatasync that covers its record, under 64 concurrent callers', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const counting = new CountingIo();
  const log = await AuditLog.open({ dir, io: counting.io });
  const acks: Array<{ seq: number; syncedAtAck: number }> = [];
  let n = 0;
  const worker = async (): Promise<void> => {
    for (let i = 0; i < 40; i++) {
      const { seq } = await log.append(sampleEntry(n++));
      // What the file layer had seen synced at the moment this caller learned of its record.
      acks.push({ seq, syncedAtAck: counting.logSynced });
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  await log.close();
  const ends = logLines(dir).map((l) => l.end);
  assert.equal(acks.length, 64 * 40);
  for (const a of acks) {
    const end = ends[a.seq] as number;
    assert.ok(end <= a.syncedAtAck, `record ${a.seq} ends at byte ${end} but only ${a.syncedAtAck} were synced when it was acknowledged`);
  }
  // And the syncs were shared: far fewer than one per record.
  assert.ok(counting.logSyncs < acks.length / 8, `${counting.logSyncs} syncs for ${acks.length} appends`);
  assert.ok(log.stats.maxBatch > 8);
});

test('an fdatasync failure fails every waiting append and every later one, for good', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const counting = new CountingIo();
  const log = await AuditLog.open({ dir, io: counting.io });
  await log.append(sampleEntry(0));
  const queuedDuringSync: Array<Promise<AuditReceipt>> = [];
  counting.failLogSync = {
    at: counting.logSyncs + 1,
    // While the failing sync is in flight, more callers arrive: they must fail too, never be written and acknowledged.
    before: () => {
      for (let i = 0; i < 20; i++) queuedDuringSync.push(log.append(sampleEntry(100 + i)));
    },
  };
  const inFlight = Array.from({ length: 30 }, (_, i) => log.append(sampleEntry(i)));
  const results = await Promise.allSettled(inFlight);
  const late = await Promise.allSettled(queuedDuringSync);
  for (const r of [...results, ...late]) {
    assert.equal(r.status, 'rejected');
    assert.ok(isCode(ErrorCode.AUDIT_WRITE)((r as PromiseRejectedResult).reason));
  }
  assert.equal(late.length, 20);
  await assert.rejects(log.append(sampleEntry(999)), isCode(ErrorCode.AUDIT_WRITE));
  assert.equal(log.stats.failed, true);
  await assert.rejects(log.close(), isCode(ErrorCode.AUDIT_WRITE));
  // No retry happened after the failure.
  assert.equal(counting.logSyncs, counting.failLogSync.at);
});

test('a write failure stops the log the same way', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const counting = new CountingIo();
  const log = await AuditLog.open({ dir, io: counting.io });
  counting.failLogWrite = { at: 1 };
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => log.append(sampleEntry(i))));
  assert.ok(results.every((r) => r.status === 'rejected' && isCode(ErrorCode.AUDIT_WRITE)(r.reason)));
  await assert.rejects(log.append(sampleEntry(11)), (e: unknown) => isCode(ErrorCode.AUDIT_WRITE)(e) && /ENOSPC/.test((e as Error).message));
  await assert.rejects(log.close(), isCode(ErrorCode.AUDIT_WRITE));
});

test('a failed checkpoint stops the log too', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const counting = new CountingIo();
  const log = await AuditLog.open({ dir, io: counting.io, checkpointEvery: { records: 5, ms: 60_000 } });
  counting.failCheckpointSync = true;
  const first = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => log.append(sampleEntry(i))));
  assert.ok(first.every((r) => r.status === 'fulfilled'), 'the records themselves were durable');
  await assert.rejects(log.checkpoint(), isCode(ErrorCode.AUDIT_WRITE));
  await assert.rejects(log.append(sampleEntry(10)), isCode(ErrorCode.AUDIT_WRITE));
  await assert.rejects(log.close(), isCode(ErrorCode.AUDIT_WRITE));
});

test('an invalid entry is refused and the log carries on without using a seq', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  const a = await log.append(sampleEntry(0));
  await assert.rejects(log.append({ kind: 'call.intent', tokenId: 'x'.repeat(200) }), isCode(ErrorCode.INVALID_ARGUMENT));
  const b = await log.append(sampleEntry(1));
  assert.equal(b.seq, a.seq + 1);
  await log.close();
  assert.equal((await verifyAudit({ dir })).ok, true);
});

test("durability 'none' acknowledges after the write without any fdatasync of the log", async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const counting = new CountingIo();
  const log = await AuditLog.open({ dir, io: counting.io, durability: 'none' });
  await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(sampleEntry(i))));
  await log.close();
  assert.equal(counting.logSyncs, 0);
  assert.equal(log.durability, 'none');
  assert.equal((await verifyAudit({ dir })).ok, true);
});

test('checkpoints come every N records, on a timer only when records are new, and at close; each is signed and matches the log', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir, checkpointEvery: { records: 10, ms: 40 } });
  for (let i = 0; i < 25; i++) await log.append(sampleEntry(i));
  await log.checkpoint();
  const afterCount = log.stats.checkpoints;
  assert.ok(afterCount >= 3, `${afterCount} checkpoints for 27 records at every 10`);
  await log.append(sampleEntry(25));
  // The timer, not a record count, must checkpoint the one new record: wait for it however slow the machine.
  while (log.stats.checkpoints === afterCount) await new Promise((r) => setTimeout(r, 10));
  const afterTimer = log.stats.checkpoints;
  assert.equal(afterTimer, afterCount + 1, 'one timer checkpoint for the one new record');
  assert.equal(log.stats.checkpointSize, log.stats.records);
  await new Promise((r) => setTimeout(r, 200)); // several more ticks of the 40 ms timer
  assert.equal(log.stats.checkpoints, afterTimer, 'no checkpoint without new records');
  await log.close();

  const key = publicKeyFrom(fs.readFileSync(path.join(checkpointDir(dir), 'audit-signing-key.pub.pem'), 'utf8'));
  const leaves = logLines(dir).map((l) => leafHash(Buffer.from(l.text)));
  const cps = fs
    .readFileSync(checkpointFile(dir), 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => {
      const parsed = parseCheckpointLine(Buffer.from(l), key.publicKey, key.keyId);
      assert.ok(parsed.ok, l);
      return parsed.checkpoint;
    });
  for (const cp of cps) assert.equal(cp.root, merkleRoot(leaves.slice(0, cp.size)).toString('hex'), `root at ${cp.size}`);
  const last = cps[cps.length - 1];
  assert.equal(last?.final, true);
  assert.equal(last?.size, leaves.length);
});

test('appends after close fail with E_AUDIT_WRITE, and close is idempotent', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  const pending = log.append(sampleEntry(0));
  const closing = log.close();
  await assert.rejects(log.append(sampleEntry(1)), isCode(ErrorCode.AUDIT_WRITE));
  await pending; // queued before close: flushed, not dropped
  await closing;
  await log.close();
  assert.equal(log.stats.closed, true);
});

test('a second writer on the same log gets E_CONFIG naming the holder; after close the log opens again', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  await assert.rejects(AuditLog.open({ dir }), (e: unknown) => isCode(ErrorCode.CONFIG)(e) && /already open by this process/.test((e as Error).message));
  await log.close();
  const again = await AuditLog.open({ dir });
  await again.close();
});

test('a lock left by a dead process is taken over; one from another host is not', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const first = await AuditLog.open({ dir });
  await first.close();
  const lock = path.join(dir, 'audit', 'log.lock');
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  fs.writeFileSync(lock, JSON.stringify({ pid: Number(dead.stdout), host: (await import('node:os')).hostname(), since: 'then', token: 'x' }));
  const log = await AuditLog.open({ dir });
  await log.close();
  fs.writeFileSync(lock, JSON.stringify({ pid: 1, host: 'elsewhere.example', since: 'then', token: 'x' }));
  await assert.rejects(AuditLog.open({ dir }), (e: unknown) => isCode(ErrorCode.CONFIG)(e) && /elsewhere\.example/.test((e as Error).message));
});

for (const [name, torn] of [
  ['an unfinished line', Buffer.from('{"code":"ok","decision":"allow","hash":"12')],
  ['zeros where a write never reached the disk', Buffer.alloc(4096)],
  ['a whole line that is not a record', Buffer.from('{"not":"a record"}\n')],
  ['a valid-looking line followed by an unfinished one', Buffer.from('garbage\n{"kind":')],
] as const) {
  test(`a torn tail (${name}) is cut at open, kept aside, and recorded as a repair saying how many bytes`, async (t) => {
    const { dir, cleanup } = tempDataDir();
    t.after(cleanup);
    const log = await AuditLog.open({ dir });
    for (let i = 0; i < 10; i++) await log.append(sampleEntry(i));
    await log.close();
    const before = fs.readFileSync(logFile(dir));
    fs.appendFileSync(logFile(dir), torn);

    const reopened = await AuditLog.open({ dir });
    assert.equal(reopened.stats.repairedBytes, torn.length);
    await reopened.close();
    const lines = logLines(dir);
    assert.ok(fs.readFileSync(logFile(dir)).subarray(0, before.length).equals(before), 'the whole records are untouched');
    const repair = JSON.parse(lines[before.toString().split('\n').length - 1]?.text ?? '{}') as { kind: string; detail: Record<string, unknown> };
    assert.equal(repair.kind, 'repair');
    assert.equal(repair.detail['cutBytes'], torn.length);
    assert.equal(repair.detail['cutOffset'], before.length);
    assert.equal(repair.detail['cutSha256'], sha256Hex(torn));
    const saved = path.join(dir, 'audit', String(repair.detail['savedAs']));
    assert.ok(fs.readFileSync(saved).equals(torn), 'the cut bytes are kept');
    const report = await verifyAudit({ dir });
    assert.equal(report.ok, true, JSON.stringify(report.problems));
  });
}

test('a repair cut by a crash before its record was written is recorded by the next open', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  await log.append(sampleEntry(0));
  await log.close();
  const size = fs.statSync(logFile(dir)).size;
  const cut = Buffer.from('{"half":');
  fs.writeFileSync(path.join(dir, 'audit', `torn-${size}-${sha256Hex(cut).slice(0, 16)}.pending`), cut);
  const again = await AuditLog.open({ dir });
  await again.close();
  const repair = logLines(dir)
    .map((l) => JSON.parse(l.text) as { kind: string; detail?: Record<string, unknown> })
    .find((r) => r.kind === 'repair');
  assert.equal(repair?.detail?.['cutBytes'], cut.length);
  assert.equal(repair?.detail?.['cutOffset'], size);
  assert.deepEqual(
    fs.readdirSync(path.join(dir, 'audit')).filter((f) => f.startsWith('torn-')),
    [`torn-${size}-${sha256Hex(cut).slice(0, 16)}.bin`],
  );
});

test('open refuses a restored older copy of the log and leaves it untouched', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  for (let i = 0; i < 5; i++) await log.append(sampleEntry(i));
  await log.checkpoint();
  const older = fs.readFileSync(logFile(dir));
  for (let i = 5; i < 10; i++) await log.append(sampleEntry(i));
  await log.close();
  fs.writeFileSync(logFile(dir), older);
  await assert.rejects(AuditLog.open({ dir }), (e: unknown) => isCode(ErrorCode.AUDIT_TAMPERED)(e) && /covers \d+/.test((e as Error).message));
  assert.ok(fs.readFileSync(logFile(dir)).equals(older), 'nothing was cut or appended');
  assert.equal(fs.existsSync(path.join(dir, 'audit', 'log.lock')), false, 'the lock was released');
});

test('a fully rehashing open refuses checkpointed records that were changed, even with the chain rewritten to match', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  for (let i = 0; i < 5; i++) await log.append(sampleEntry(i));
  await log.close();
  const lines = logLines(dir).map((l) => l.text);
  fs.writeFileSync(logFile(dir), rewriteChain(lines, 3, (r) => (r['runId'] = 'run-forged')));
  await assert.rejects(AuditLog.open({ dir, openScan: 'full' }), (e: unknown) => isCode(ErrorCode.AUDIT_TAMPERED)(e) && /do not match the checkpoint/.test((e as Error).message));
  // A resuming open trusts the signed prefix it resumes from and checks only the record at its end: verify is the full check.
  const report = await verifyAudit({ dir });
  assert.equal(report.ok, false);
});

test('open refuses a missing log when checkpoints exist, and missing checkpoints when the log was checkpointed', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  await log.append(sampleEntry(0));
  await log.close();
  const cpf = checkpointFile(dir);
  const moved = `${logFile(dir)}.moved`;
  fs.renameSync(logFile(dir), moved);
  await assert.rejects(AuditLog.open({ dir }), (e: unknown) => isCode(ErrorCode.AUDIT_TAMPERED)(e) && /no audit log/.test((e as Error).message));
  fs.renameSync(moved, logFile(dir));
  fs.rmSync(cpf);
  await assert.rejects(AuditLog.open({ dir }), (e: unknown) => isCode(ErrorCode.AUDIT_TAMPERED)(e) && /checkpoints were removed/.test((e as Error).message));
});

test('reopening from the saved tree state checks only what follows it, and ends where a full rehash ends', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  for (let i = 0; i < 200; i++) await log.append(sampleEntry(i));
  await log.close();
  const resumed = await AuditLog.open({ dir });
  await resumed.close();
  const full = await AuditLog.open({ dir, openScan: 'full' });
  await full.close();
  const opens = logLines(dir)
    .map((l) => JSON.parse(l.text) as { kind: string; detail?: { checkedFrom?: number; checkedRecords?: number } })
    .filter((r) => r.kind === 'log.open');
  assert.equal(opens[1]?.detail?.checkedFrom, 202, 'resumed at the final checkpoint');
  assert.equal(opens[1]?.detail?.checkedRecords, 0);
  assert.equal(opens[2]?.detail?.checkedFrom, 0, 'full rehash from record 0');
  assert.equal((await verifyAudit({ dir })).ok, true);
  // A damaged state file is not trusted, just ignored.
  fs.writeFileSync(path.join(dir, 'audit', 'state.json'), '{"v":1,"checkpoint":{},"nodes":[]}');
  const again = await AuditLog.open({ dir });
  await again.close();
  assert.equal((await verifyAudit({ dir })).ok, true);
});

test('the signing key is created 0600 in the data folder, its public key beside the checkpoints', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const log = await AuditLog.open({ dir });
  await log.close();
  const keyFile = path.join(dir, 'audit-signing-key.pem');
  assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
  assert.match(fs.readFileSync(path.join(checkpointDir(dir), 'audit-signing-key.pub.pem'), 'utf8'), /BEGIN PUBLIC KEY/);
  assert.doesNotMatch(fs.readFileSync(path.join(checkpointDir(dir), 'audit-signing-key.pub.pem'), 'utf8'), /PRIVATE/);
  fs.chmodSync(keyFile, 0o640);
  await assert.rejects(AuditLog.open({ dir }), (e: unknown) => isCode(ErrorCode.CONFIG)(e) && /readable by others/.test((e as Error).message));
  fs.chmodSync(keyFile, 0o600);
  // Another key cannot sign into a folder whose public key is a different one.
  const { privateKey } = generateKeyPairSync('ed25519');
  await assert.rejects(AuditLog.open({ dir, signingKey: privateKey }), (e: unknown) => isCode(ErrorCode.CONFIG)(e) && /one checkpoint folder serves one key/.test((e as Error).message));
  const { privateKey: rsa } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  await assert.rejects(AuditLog.open({ dir, signingKey: rsa }), isCode(ErrorCode.CONFIG));
});

test('an embedder may place the log and checkpoints anywhere and bring its own key', async (t) => {
  const { dir, cleanup } = tempDataDir();
  t.after(cleanup);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const auditDir = path.join(dir, 'elsewhere', 'log');
  const cps = path.join(dir, 'other-disk', 'cps');
  const log = await AuditLog.open({ auditDir, checkpointDir: cps, signingKey: privateKey });
  await log.append(sampleEntry(0));
  await log.close();
  assert.equal(fs.existsSync(path.join(dir, 'audit-signing-key.pem')), false);
  const report = await verifyAudit({ auditDir, checkpointDir: cps, publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() });
  assert.equal(report.ok, true);
  assert.equal(report.records, 3);
});
