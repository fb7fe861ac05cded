/**
 * A content-addressed store of what was pulled: `<dir>/blobs/sha256/<hex>`.
 * Only bytes whose digest was checked go in; each read checks it again, so a
 * file changed on disk is a miss (and is removed), never a wrong tool.
 * @module
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';

const DIGEST = /^sha256:([0-9a-f]{64})$/;

export class BlobCache {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Where a digest's bytes live. */
  path(digest: string): string {
    const m = DIGEST.exec(digest);
    if (m === null) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `not a sha256 digest: ${JSON.stringify(digest.slice(0, 80))}`);
    return join(this.dir, 'blobs', 'sha256', m[1] as string);
  }

  get(digest: string): Buffer | undefined {
    const file = this.path(digest);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch {
      return undefined;
    }
    if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` === digest) return bytes;
    rmSync(file, { force: true });
    return undefined;
  }

  /** Store bytes under their digest; the caller has checked them, and this checks again. */
  put(digest: string, bytes: Uint8Array): string {
    const file = this.path(digest);
    if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== digest) {
      throw new AuthorityError(ErrorCode.DIGEST_MISMATCH, `refusing to cache bytes under ${digest}: they hash differently`, { data: { expected: digest } });
    }
    mkdirSync(join(this.dir, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(tmp, bytes, { mode: 0o600 });
    renameSync(tmp, file);
    return file;
  }
}
