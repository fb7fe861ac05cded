import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog, nodeAuditIo, verifyAudit, type AuditIo } from '../src/audit/index.ts';
import type { RegressionCase } from '../src/fuzz/cases.ts';
import { replayRegressions } from '../src/fuzz/run.ts';
import { sampleEntry, tempDataDir } from './helpers/audit-util.ts';
import { FIXTURES } from './helpers/fixtures.ts';
import { SHARED_CACHE } from './helpers/runtime.ts';

// Cases the fuzzer found, each named after what broke; `authority fuzz` prints new ones as they are found.
const cases = JSON.parse(readFileSync(join(FIXTURES, 'fuzz', 'regressions.json'), 'utf8')) as RegressionCase[];

describe('fuzz regressions', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const failures = await replayRegressions([c], { cacheDir: SHARED_CACHE });
      assert.deepEqual(failures, []);
    });
  }
});

describe('fuzz regressions outside a replayable case', () => {
  // Found by a long fuzz run (seed 424242): verifyAudit, run every 2,000 cases on the live log, reported
  // "checkpoints were removed" when the writer checkpointed and saved its state while the log was being read.
  it('verifying a live log while its writer checkpoints and saves its state reports no removed checkpoints', async () => {
    const { dir, cleanup } = tempDataDir('authority-fuzz-live-verify-');
    try {
      const fds = new Map<number, string>();
      let hold: { reached: () => void; release: Promise<void> } | undefined;
      // The real file operations; the checkpoint file's next write waits for the test to let it go.
      const io: AuditIo = {
        open: async (p, flags, mode) => {
          const fd = await nodeAuditIo.open(p, flags, mode);
          fds.set(fd, p);
          return fd;
        },
        write: async (fd, buffer, position) => {
          const h = hold;
          if (h !== undefined && (fds.get(fd) ?? '').endsWith('.checkpoints.jsonl')) {
            hold = undefined;
            h.reached();
            await h.release;
          }
          return nodeAuditIo.write(fd, buffer, position);
        },
        fdatasync: (fd) => nodeAuditIo.fdatasync(fd),
        close: (fd) => nodeAuditIo.close(fd),
      };
      const log = await AuditLog.open({ dir, durability: 'none', io, checkpointEvery: { records: 10_000_000, ms: 10_000_000 } });
      const appends: Promise<unknown>[] = [];
      for (let i = 0; i < 40_000; i++) appends.push(log.append(sampleEntry(i)));
      await Promise.all(appends);
      await log.checkpoint(); // the first checkpoint, and the saved state that names it
      for (let i = 0; i < 100; i++) await log.append(sampleEntry(i));
      let reached!: () => void;
      let release!: () => void;
      const atFinalCheckpoint = new Promise<void>((r) => (reached = r));
      hold = { reached, release: new Promise<void>((r) => (release = r)) };
      const closing = log.close();
      await atFinalCheckpoint; // the writer is about to write its final checkpoint, then save its state
      const verifying = verifyAudit({ dir });
      await new Promise((r) => setTimeout(r, 50)); // the verifier has read the checkpoint file and is reading the log
      release();
      await closing;
      const report = await verifying;
      assert.deepEqual(report.problems.filter((p) => p.code === 'checkpoints-removed'), []);
    } finally {
      cleanup();
    }
  });
});
