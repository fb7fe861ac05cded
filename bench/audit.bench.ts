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

const RUN_MS = 1500;
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

/** Appends/s over RUN_MS with `callers` concurrent callers, each awaiting its ack before the next append. */
async function appendRate(dir: string, callers: number, durability: 'fsync' | 'none'): Promise<{ rate: number; perSync: number; lineBytes: number }> {
  const log = await AuditLog.open({ dir, durability });
  const before = log.stats;
  let n = 0;
  let stop = false;
  const t0 = process.hrtime.bigint();
  const caller = async (): Promise<void> => {
    while (!stop) await log.append(entry(n++));
  };
  const timer = setTimeout(() => (stop = true), RUN_MS);
  await Promise.all(Array.from({ length: callers }, caller));
  clearTimeout(timer);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = log.stats;
  await log.close();
  const appended = after.records - before.records;
  const lineBytes = (after.bytes - before.bytes) / appended;
  return { rate: appended / seconds, perSync: after.syncs > before.syncs ? appended / (after.syncs - before.syncs) : Number.NaN, lineBytes };
}

/** One positional write + fdatasync per record, sequentially, with the same I/O calls the log uses. */
async function syncPerRecord(dir: string, lineBytes: number): Promise<number> {
  const file = path.join(dir, 'baseline.jsonl');
  const fd = await nodeAuditIo.open(file, 'w', 0o600);
  const line = Buffer.alloc(Math.round(lineBytes), 0x61);
  line[line.length - 1] = 0x0a;
  let pos = 0;
  let n = 0;
  const t0 = process.hrtime.bigint();
  const budget = BigInt(RUN_MS) * 1_000_000n;
  while (process.hrtime.bigint() - t0 < budget) {
    await nodeAuditIo.write(fd, line, pos);
    await nodeAuditIo.fdatasync(fd);
    pos += line.length;
    n += 1;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await nodeAuditIo.close(fd);
  return n / seconds;
}

export const bench: Bench = async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'authority-audit-bench-'));
  try {
    const onTmpfs = fs.statfsSync(root).type === TMPFS_MAGIC;
    const disk = onTmpfs ? `${os.tmpdir()} is tmpfs: durable figures mean nothing here` : `disk at ${os.tmpdir()}`;
    const rows: BenchRow[] = [];

    // Warm up the code paths and learn the record size, then measure the baseline with that size.
    const warm = await appendRate(path.join(root, 'warm'), 8, 'fsync');
    const baselineRate = await syncPerRecord(root, warm.lineBytes);
    const baseline = { name: 'one fdatasync per record', value: baselineRate };
    rows.push(row('one fdatasync per record (baseline)', baselineRate, 'ops/s', { note: `${Math.round(warm.lineBytes)} B records, ${disk}` }));

    for (const callers of [1, 8, 64]) {
      const r = await appendRate(path.join(root, `fsync-${callers}`), callers, 'fsync');
      rows.push(
        row(`durable appends, ${callers} caller${callers === 1 ? '' : 's'}`, r.rate, 'ops/s', {
          baseline,
          target: callers === 64 ? '>= 50000' : undefined,
          note: `${r.perSync.toFixed(1)} records per fdatasync`,
        }),
      );
    }
    const none = await appendRate(path.join(root, 'none-64'), 64, 'none');
    rows.push(row("appends without sync ('none'), 64 callers", none.rate, 'ops/s', { note: 'the CPU ceiling: hashing, JSON, tree' }));

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
