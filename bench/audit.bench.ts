/**
 * Durable audit appends per second with 1, 8 and 64 concurrent callers,
 * against one fdatasync per record on the same disk with the same record
 * size, measured in the same run. Also: the CPU ceiling (no sync), and how
 * fast a log is rehashed at open and verified.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuditLog, hashRequest, nodeAuditIo, verifyAudit, type AuditEntry } from '../src/audit/index.ts';
import { row, type Bench, type BenchRow } from './harness.ts';

const SLICE_MS = 150;
const ROUNDS = 8;
const TMPFS_MAGIC = 0x01021994;

function entry(n: number): AuditEntry {
  return {
    kind: 'call.intent',
    runId: `run-${n >> 4}`,
    tool: 'fetcher',
    toolDigest: 'sha256:' + 'c0ffee'.repeat(10) + 'abcd',
    op: 'http.fetch',
    decision: 'allow',
    code: 'ok',
    tokenId: `tok_${n % 7}`,
    requestHash: hashRequest({ url: `https://api.example.com/items/${n}` }),
    reason: 'rule net.allow[0]: api.example.com',
  };
}

interface Tally {
  ops: number;
  seconds: number;
  syncs: number;
}

/** Appends for `ms` with `callers` concurrent callers, each awaiting its acknowledgement before its next append. */
async function appendSlice(log: AuditLog, callers: number, ms: number, t: Tally): Promise<void> {
  const before = log.stats;
  let n = before.appended;
  let stop = false;
  const timer = setTimeout(() => (stop = true), ms);
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (!stop) await log.append(entry(n++));
    }),
  );
  clearTimeout(timer);
  t.seconds += Number(process.hrtime.bigint() - t0) / 1e9;
  t.ops += log.stats.records - before.records;
  t.syncs += log.stats.syncs - before.syncs;
}

/** One positional write + fdatasync per record, sequentially, with the I/O calls the log uses. */
async function syncSlice(fd: number, line: Buffer, state: { pos: number }, ms: number, t: Tally): Promise<void> {
  const t0 = process.hrtime.bigint();
  const budget = BigInt(ms) * 1_000_000n;
  while (process.hrtime.bigint() - t0 < budget) {
    await nodeAuditIo.write(fd, line, state.pos);
    await nodeAuditIo.fdatasync(fd);
    state.pos += line.length;
    t.ops += 1;
  }
  t.seconds += Number(process.hrtime.bigint() - t0) / 1e9;
}

const rate = (t: Tally): number => t.ops / t.seconds;

export const bench: Bench = async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'authority-audit-bench-'));
  try {
    const onTmpfs = fs.statfsSync(root).type === TMPFS_MAGIC;
    const disk = onTmpfs ? `${os.tmpdir()} is tmpfs: durable figures mean nothing here` : `disk at ${os.tmpdir()}`;
    const rows: BenchRow[] = [];

    // One log per concurrency level, and the baseline file, measured in interleaved slices:
    // the disk is shared, so its speed drifts, and interleaving spreads the drift over all figures alike.
    const levels = [1, 8, 64] as const;
    const logs = await Promise.all(levels.map((c) => AuditLog.open({ dir: path.join(root, `fsync-${c}`) })));
    const tallies = levels.map(() => ({ ops: 0, seconds: 0, syncs: 0 }));
    for (const [i, log] of logs.entries()) await appendSlice(log, levels[i] as number, 100, { ops: 0, seconds: 0, syncs: 0 }); // warm up
    const lineBytes = (logs[2] as AuditLog).stats.bytes / (logs[2] as AuditLog).stats.records;
    const line = Buffer.alloc(Math.round(lineBytes), 0x61);
    line[line.length - 1] = 0x0a;
    const fd = await nodeAuditIo.open(path.join(root, 'baseline.jsonl'), 'w', 0o600);
    const base: Tally = { ops: 0, seconds: 0, syncs: 0 };
    const pos = { pos: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, log] of logs.entries()) {
        await syncSlice(fd, line, pos, SLICE_MS, base);
        await appendSlice(log, levels[i] as number, SLICE_MS, tallies[i] as Tally);
      }
    }
    await nodeAuditIo.close(fd);
    for (const log of logs) await log.close();

    const baseline = { name: 'one fdatasync per record', value: rate(base) };
    rows.push(row('one fdatasync per record (baseline)', rate(base), 'ops/s', { note: `${line.length} B records, ${disk}` }));
    levels.forEach((callers, i) => {
      const t = tallies[i] as Tally;
      rows.push(
        row(`durable appends, ${callers} caller${callers === 1 ? '' : 's'}`, rate(t), 'ops/s', {
          baseline,
          target: callers === 64 ? '>= 50000' : undefined,
          note: `${(t.ops / t.syncs).toFixed(1)} records per fdatasync`,
        }),
      );
    });
    const noneLog = await AuditLog.open({ dir: path.join(root, 'none-64'), durability: 'none' });
    const none: Tally = { ops: 0, seconds: 0, syncs: 0 };
    await appendSlice(noneLog, 64, 1500, none);
    await noneLog.close();
    rows.push(row("appends without sync ('none'), 64 callers", rate(none), 'ops/s', { note: 'the CPU ceiling: validation, JSON, hashing, tree' }));

    // Rehash and verify the largest log made above.
    const big = path.join(root, 'none-64');
    const t0 = process.hrtime.bigint();
    const report = await verifyAudit({ dir: big });
    const verifySeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    rows.push(row('verify', report.records / verifySeconds, 'records/s', { note: `${report.records} records, ${report.checkpoints} checkpoints, ok=${String(report.ok)}` }));
    const t1 = process.hrtime.bigint();
    const full = await AuditLog.open({ dir: big, openScan: 'full', durability: 'none' });
    const fullSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
    await full.close();
    rows.push(row('open, full rehash', report.records / fullSeconds, 'records/s', { note: `${(fullSeconds * 1000).toFixed(0)} ms for ${report.records} records` }));
    const t2 = process.hrtime.bigint();
    const resumed = await AuditLog.open({ dir: big, durability: 'none' });
    const resumeMs = Number(process.hrtime.bigint() - t2) / 1e6;
    await resumed.close();
    rows.push(row('open, resumed from saved state', resumeMs, 'ms', { note: `same ${report.records}-record log` }));
    return rows;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
};
