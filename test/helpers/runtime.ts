/**
 * Runtimes for tests: a fresh data folder in the system temp dir each time,
 * a compile cache shared by every test (transpiling a JS tool takes seconds),
 * and cleanup that cannot be forgotten.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { readAuditRecords, type AuditRecord } from '../../src/audit/index.ts';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../src/runtime.ts';

export const SHARED_CACHE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'cache');

export function tempDir(prefix = 'authority-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A runtime in a temp data folder; `close()` also removes the folder. */
export async function testRuntime(opts: RuntimeOptions = {}): Promise<Runtime & { cleanup: () => Promise<void> }> {
  const dir = opts.dataDir === undefined ? tempDir() : undefined;
  const rt = await createRuntime({
    cacheDir: SHARED_CACHE,
    logger: pino({ level: 'silent' }),
    pool: { size: 2 },
    ...opts,
    dataDir: opts.dataDir ?? dir?.path,
  });
  return Object.assign(rt, {
    cleanup: async () => {
      await rt.close();
      dir?.cleanup();
    },
  });
}

/** Every well-formed record of a data folder's audit log, optionally filtered. */
export async function auditRecords(dataDir: string, keep: (r: AuditRecord) => boolean = () => true): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const { record } of readAuditRecords({ dir: dataDir })) if (record !== null && keep(record)) out.push(record);
  return out;
}
