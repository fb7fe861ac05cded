/**
 * Pre-images: the bytes a file had before a run changed it, kept under the
 * data folder (`undo/objects/<sha256>`), content-addressed so one copy serves
 * every run that saw the same bytes. Written like the host writes a file
 * (temp file, fsync, rename, fsync of the folder), read back only when the
 * bytes still hash to their name. An object's mtime is the last time a run
 * kept it: retention by age and total size goes by it.
 * @module
 */
import fs from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';

/** The pre-image of a path that did not exist. */
export const ABSENT = 'absent';
/** Bytes larger than this are not kept: such a change is recorded as irreversible. */
export const DEFAULT_MAX_PRE_IMAGE_BYTES = 64 * 1024 * 1024;

const HASH_RE = /^sha256:([0-9a-f]{64})$/;

export function contentHash(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export interface PruneReport {
  removed: number;
  removedBytes: number;
  kept: number;
  keptBytes: number;
}

export class PreImageStore {
  readonly dir: string;
  readonly maxBytes: number;

  /** `dir` is the store's own folder (`<data>/undo`), created 0700 on first write. */
  constructor(dir: string, options: { maxBytes?: number | undefined } = {}) {
    this.dir = dir;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_PRE_IMAGE_BYTES;
  }

  get objectsDir(): string {
    return join(this.dir, 'objects');
  }

  #path(hash: string): string {
    const m = HASH_RE.exec(hash);
    if (m === null) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `not a pre-image hash: ${JSON.stringify(hash.slice(0, 80))}`);
    return join(this.objectsDir, m[1] as string);
  }

  /** Keep `bytes`; returns their hash. Durable when it returns. */
  put(bytes: Uint8Array): string {
    const hash = contentHash(bytes);
    const file = this.#path(hash);
    if (fs.existsSync(file)) {
      // Kept again: retention counts from now.
      const now = new Date();
      fs.utimesSync(file, now, now);
      return hash;
    }
    fs.mkdirSync(this.objectsDir, { recursive: true, mode: 0o700 });
    const tmp = join(this.objectsDir, `.${randomBytes(8).toString('hex')}.tmp`);
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      let off = 0;
      while (off < bytes.byteLength) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
      fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
    fsyncDir(this.objectsDir);
    return hash;
  }

  /** The bytes named `hash`, or null when pruned. E_AUDIT_TAMPERED when they no longer hash to their name. */
  get(hash: string): Buffer | null {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(this.#path(hash));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    if (contentHash(bytes) !== hash) throw new AuthorityError(ErrorCode.AUDIT_TAMPERED, `the pre-image ${hash} was changed on disk`, { data: { hash } });
    return bytes;
  }

  has(hash: string): boolean {
    return fs.existsSync(this.#path(hash));
  }

  /** Every kept object with its size and last use, oldest first. */
  list(): { hash: string; bytes: number; mtimeMs: number }[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.objectsDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: { hash: string; bytes: number; mtimeMs: number }[] = [];
    for (const n of names) {
      if (!/^[0-9a-f]{64}$/.test(n)) continue;
      try {
        const st = fs.statSync(join(this.objectsDir, n));
        out.push({ hash: `sha256:${n}`, bytes: st.size, mtimeMs: st.mtimeMs });
      } catch {
        // Removed meanwhile.
      }
    }
    return out.sort((a, b) => a.mtimeMs - b.mtimeMs);
  }

  /**
   * Retention: remove objects last kept more than `maxAgeMs` ago, then the
   * oldest until the rest total at most `maxTotalBytes`. A run whose
   * pre-images are gone can no longer be undone (undo says so per file).
   */
  prune(options: { maxAgeMs?: number | undefined; maxTotalBytes?: number | undefined; now?: number | undefined; dryRun?: boolean | undefined }): PruneReport {
    const now = options.now ?? Date.now();
    const objects = this.list();
    let total = objects.reduce((s, o) => s + o.bytes, 0);
    const report: PruneReport = { removed: 0, removedBytes: 0, kept: objects.length, keptBytes: total };
    for (const o of objects) {
      const old = options.maxAgeMs !== undefined && now - o.mtimeMs > options.maxAgeMs;
      const over = options.maxTotalBytes !== undefined && total > options.maxTotalBytes;
      if (!old && !over) continue;
      if (options.dryRun !== true) fs.rmSync(this.#path(o.hash), { force: true });
      total -= o.bytes;
      report.removed++;
      report.removedBytes += o.bytes;
      report.kept--;
      report.keptBytes -= o.bytes;
    }
    return report;
  }
}
