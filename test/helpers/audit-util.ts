/**
 * Shared pieces of the audit tests: temp data folders, realistic entries, an
 * instrumented file layer, and raw access to the log's lines.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canonicalJson, hashRequest, nodeAuditIo, sha256Hex, type AuditEntry, type AuditIo } from '../../src/audit/index.ts';

/** A fresh data folder on the real disk, removed by the returned cleanup. */
export function tempDataDir(prefix = 'authority-audit-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

const TOOLS = ['fetcher', 'word-count', 'notes'] as const;
const DIGEST = 'sha256:' + 'c0ffee'.repeat(10) + 'abcd';

/** The n-th entry of a plausible run: intents, outcomes, denials, invocations. */
export function sampleEntry(n: number): AuditEntry {
  const runId = `run-${Math.floor(n / 8)}`;
  const tool = TOOLS[n % TOOLS.length] as string;
  const request = { op: 'http.fetch', url: `https://api.example.com/items/${n}`, method: 'GET' };
  switch (n % 5) {
    case 0:
      return { kind: 'invoke.start', runId, tool, toolDigest: DIGEST, tokenId: `tok_${n % 7}`, requestHash: hashRequest({ input: n }), reason: 'invoked by the agent' };
    case 1:
      return {
        kind: 'call.intent',
        runId,
        tool,
        toolDigest: DIGEST,
        op: 'http.fetch',
        decision: 'allow',
        code: 'ok',
        tokenId: `tok_${n % 7}`,
        requestHash: hashRequest(request),
        reason: 'rule net.allow[0]: api.example.com',
      };
    case 2:
      return {
        kind: 'call.outcome',
        runId,
        tool,
        op: 'http.fetch',
        code: 'ok',
        tokenId: `tok_${n % 7}`,
        requestHash: hashRequest(request),
        responseHash: hashRequest({ status: 200, n }),
        detail: { status: 200, bytes: 512 + n },
      };
    case 3:
      return {
        kind: 'call.denied',
        runId,
        tool,
        op: 'fs.read',
        decision: 'deny',
        code: 'E_POLICY_DENY',
        tokenId: `tok_${n % 7}`,
        requestHash: hashRequest({ op: 'fs.read', path: '/etc/passwd' }),
        reason: 'no rule allows fs.read of /etc/passwd',
      };
    default:
      return { kind: 'invoke.end', runId, tool, code: 'ok', responseHash: hashRequest({ output: n }), detail: { calls: 3, ms: n % 100 } };
  }
}

/** The log's raw lines (without newlines) and the byte offset each ends at (after its newline). */
export function logLines(dir: string): Array<{ text: string; end: number }> {
  const buf = fs.readFileSync(path.join(dir, 'audit', 'log.jsonl'));
  const out: Array<{ text: string; end: number }> = [];
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(0x0a, start);
    if (nl === -1) break;
    out.push({ text: buf.subarray(start, nl).toString('utf8'), end: nl + 1 });
    start = nl + 1;
  }
  return out;
}

export const logFile = (dir: string): string => path.join(dir, 'audit', 'log.jsonl');
export const checkpointDir = (dir: string): string => path.join(dir, 'checkpoints');
export function checkpointFile(dir: string): string {
  const f = fs.readdirSync(checkpointDir(dir)).find((n) => n.endsWith('.checkpoints.jsonl'));
  if (f === undefined) throw new Error('no checkpoint file');
  return path.join(checkpointDir(dir), f);
}

/**
 * A file layer that counts, per file, the bytes written and the bytes covered
 * by completed fdatasyncs (what was written before the sync started), and can
 * fail a chosen sync or write of the log file.
 */
export class CountingIo {
  readonly written = new Map<string, number>();
  readonly synced = new Map<string, number>();
  readonly syncCalls = new Map<string, number>();
  #paths = new Map<number, string>();
  /** Fail the n-th fdatasync (1-based) of the log file; `before` runs just before it fails. */
  failLogSync: { at: number; before?: () => Promise<void> | void } | null = null;
  failLogWrite: { at: number } | null = null;
  failCheckpointSync = false;
  #logWrites = 0;

  readonly io: AuditIo = {
    open: async (p, flags, mode) => {
      const fd = await nodeAuditIo.open(p, flags, mode);
      this.#paths.set(fd, path.basename(p));
      return fd;
    },
    write: async (fd, buffer, position) => {
      const name = this.#paths.get(fd) ?? '?';
      if (name === 'log.jsonl' && this.failLogWrite !== null && ++this.#logWrites === this.failLogWrite.at) {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
      const n = await nodeAuditIo.write(fd, buffer, position);
      this.written.set(name, Math.max(this.written.get(name) ?? 0, position + n));
      return n;
    },
    fdatasync: async (fd) => {
      const name = this.#paths.get(fd) ?? '?';
      const covers = this.written.get(name) ?? 0;
      const calls = (this.syncCalls.get(name) ?? 0) + 1;
      this.syncCalls.set(name, calls);
      if (name === 'log.jsonl' && this.failLogSync !== null && calls === this.failLogSync.at) {
        await this.failLogSync.before?.();
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      }
      if (name.endsWith('.checkpoints.jsonl') && this.failCheckpointSync) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      await nodeAuditIo.fdatasync(fd);
      this.synced.set(name, Math.max(this.synced.get(name) ?? 0, covers));
    },
    close: (fd) => nodeAuditIo.close(fd),
  };

  get logSynced(): number {
    return this.synced.get('log.jsonl') ?? 0;
  }
  get logSyncs(): number {
    return this.syncCalls.get('log.jsonl') ?? 0;
  }
}

/**
 * What a careful forger does: change record `at` with `mutate`, then recompute
 * its hash and every later record's prev and hash, so that the chain alone
 * looks intact. Returns the new log text.
 */
export function rewriteChain(lines: readonly string[], at: number, mutate: (r: Record<string, unknown>) => void): string {
  const out: string[] = [];
  let prev: string | null = null;
  lines.forEach((text, i) => {
    const r = JSON.parse(text) as Record<string, unknown>;
    if (i === at) mutate(r);
    if (i >= at) {
      if (prev !== null) r['prev'] = prev;
      delete r['hash'];
      r['hash'] = sha256Hex(canonicalJson(r));
    }
    prev = r['hash'] as string;
    out.push(canonicalJson(r));
  });
  return out.join('\n') + '\n';
}
