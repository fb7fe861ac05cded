/**
 * What the writer does before it takes its first append: create a log
 * atomically, find where the saved state and the latest checkpoint let it
 * resume, check the log against that checkpoint, and set a torn tail aside.
 * @module
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { sha256Hex } from './canonical-json.ts';
import { ChainCursor } from './chain.ts';
import { checkpointLine, parseCheckpointLine, type Checkpoint } from './checkpoint.ts';
import { syncDir, writeFully, type AuditIo } from './io.ts';
import { readLines, readLinesBackward } from './lines.ts';
import { CompactRange } from './merkle.ts';
import { CHECKPOINT_FILE_SUFFIX, type AuditPaths } from './paths.ts';
import { buildRecord, GENESIS_KIND, GENESIS_PREV, parseRecordLine } from './record.ts';
import type { AuditSigner } from './signing.ts';

export function checkpointFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(CHECKPOINT_FILE_SUFFIX))
    .sort();
}

export function pendingRepairs(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^torn-\d+-[0-9a-f]{16}\.pending$/.test(f))
    .sort((a, b) => Number(/^torn-(\d+)/.exec(a)?.[1]) - Number(/^torn-(\d+)/.exec(b)?.[1]));
}

export async function fsyncFile(path: string): Promise<void> {
  const h = await fs.promises.open(path, 'r+');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Create a log holding only its genesis record, atomically: the file either does not exist or is whole. */
export async function createLog(paths: AuditPaths, io: AuditIo, now: () => Date): Promise<void> {
  const origin = `authority-audit/${randomBytes(16).toString('hex')}`;
  const { text } = buildRecord({ kind: GENESIS_KIND, reason: 'audit log created' }, 0, now().toISOString(), GENESIS_PREV, origin);
  const line = Buffer.from(text + '\n', 'utf8');
  const tmp = `${paths.logFile}.creating`;
  const fd = await io.open(tmp, 'w', 0o600);
  try {
    await writeFully(io, fd, line, 0);
    await io.fdatasync(fd);
  } finally {
    await io.close(fd);
  }
  await fs.promises.rename(tmp, paths.logFile);
  await syncDir(paths.auditDir);
}

export async function readOrigin(logFile: string): Promise<string> {
  for await (const line of readLines(logFile, 0, undefined, 64 * 1024)) {
    const parsed = line.complete ? parseRecordLine(line.bytes) : null;
    if (parsed?.ok === true && parsed.record.seq === 0 && parsed.record.kind === GENESIS_KIND && parsed.record.origin !== undefined) {
      return parsed.record.origin;
    }
    break;
  }
  throw new AuthorityError(ErrorCode.AUDIT_TAMPERED, `${logFile} does not start with a valid genesis record; the log's origin is unknown`, { data: { logFile } });
}

export function checkAgainst(cursor: ChainCursor, cp: Checkpoint, logFile: string): void {
  const root = cursor.tree.root().toString('hex');
  if (root !== cp.root || cursor.offset !== cp.offset || cursor.prev !== cp.last) {
    throw new AuthorityError(
      ErrorCode.AUDIT_TAMPERED,
      `the first ${cp.size} records of the audit log do not match the checkpoint of ${cp.time} (records were changed or rewritten). ` +
        'Run `authority audit verify` for details.',
      { data: { logFile, checkpointSize: cp.size } },
    );
  }
}

export interface SavedState {
  checkpoint: Checkpoint;
  tree: CompactRange;
}

/** The tree state saved at a clean close, if it is whole and signed by our key for this log. */
export async function readState(paths: AuditPaths, signer: AuditSigner, origin: string): Promise<SavedState | null> {
  let doc: { v?: unknown; checkpoint?: unknown; nodes?: unknown };
  try {
    doc = JSON.parse(await fs.promises.readFile(paths.stateFile, 'utf8')) as typeof doc;
  } catch {
    return null;
  }
  if (doc.v !== 1 || !Array.isArray(doc.nodes) || typeof doc.checkpoint !== 'object' || doc.checkpoint === null) return null;
  let line: Buffer;
  try {
    line = checkpointLine(doc.checkpoint as Checkpoint);
  } catch {
    return null;
  }
  const parsed = parseCheckpointLine(line.subarray(0, -1), signer.publicKey, signer.keyId);
  if (!parsed.ok || parsed.checkpoint.origin !== origin) return null;
  const cp = parsed.checkpoint;
  let tree: CompactRange;
  try {
    tree = new CompactRange(cp.size, (doc.nodes as unknown[]).map((n) => Buffer.from(String(n), 'hex')));
  } catch {
    return null;
  }
  if (tree.root().toString('hex') !== cp.root) return null;
  return { checkpoint: cp, tree };
}

/**
 * A cursor at the saved state, if its checkpoint is no newer than the latest
 * one and the log still ends a record where it says. Anything off means a full
 * rehash, never a failure: the scan that follows checks the latest checkpoint.
 */
export async function resumeFrom(paths: AuditPaths, saved: SavedState, latest: Checkpoint, origin: string): Promise<ChainCursor | null> {
  const cp = saved.checkpoint;
  // Past the latest, or at its size with another root: not the history the checkpoints hold.
  if (cp.size > latest.size || (cp.size === latest.size && (cp.root !== latest.root || cp.offset !== latest.offset))) return null;
  for await (const { bytes, offset } of readLinesBackward(paths.logFile, cp.offset)) {
    const r = parseRecordLine(bytes);
    if (!r.ok || r.record.seq !== cp.size - 1 || r.record.hash !== cp.last || offset + bytes.length + 1 !== cp.offset) return null;
    return new ChainCursor({ seq: cp.size, prev: cp.last, offset: cp.offset, tree: saved.tree.clone(), origin });
  }
  return null;
}

/**
 * Save the torn tail [from, to) beside the log and cut it. The copy is named
 * `.pending` until its `repair` record is durable, so an open that crashes in
 * between still records it next time.
 */
export async function quarantineTail(paths: AuditPaths, from: number, to: number): Promise<void> {
  const handle = await fs.promises.open(paths.logFile, 'r+');
  try {
    const bytes = Buffer.alloc(to - from);
    await handle.read(bytes, 0, bytes.length, from);
    const name = `torn-${from}-${sha256Hex(bytes).slice(0, 16)}.pending`;
    const file = join(paths.auditDir, name);
    await fs.promises.writeFile(file, bytes, { mode: 0o600 });
    await fsyncFile(file);
    await syncDir(paths.auditDir);
    await handle.truncate(from);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
