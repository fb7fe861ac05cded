/**
 * The fs effects: read-file, write-file, list-dir, stat, remove. Each takes a
 * guest path the gate has canonicalised and the roots its policy decided, and
 * never touches anything outside those roots, even when links or renames
 * change the tree while it runs. See docs/host.md for the algorithm.
 * @module
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { DEFAULT_FS_LIMITS, resolveLimits, type FsLimits } from './limits.ts';
import { scopePath, type FsRoot, type ScopedPath } from './fs-path.ts';
import { ConfinedWalk, confinementSupported, fdPath, fsFailure, symlinkDenied, type WalkHooks } from './fs-confine.ts';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY, O_NOCTTY } = fs.constants;

/** WIT `file-kind`. */
export type FileKind = 'file' | 'directory' | 'symlink' | 'other';

/** WIT `file-stat`: u64 fields are bigints, as jco lowers them. */
export interface FileStat {
  kind: FileKind;
  size: bigint;
  modifiedMs: bigint;
}

/** WIT `dir-entry`. */
export interface DirEntry {
  name: string;
  kind: FileKind;
}

/** What the gate passes with each fs call: the roots the matching policy rule confines it to, and its caps. */
export interface FsScope {
  /** Literal directory prefixes of the matching rules (`/data` for `/data/**`), optionally mapped to host directories. */
  readonly roots: readonly (string | FsRoot)[];
  /** Caps for this call; missing ones fall back to the HostFs defaults. */
  readonly limits?: Partial<FsLimits> | undefined;
}

export interface HostFsOptions {
  /** Default caps (the WIT defaults when omitted). */
  limits?: Partial<FsLimits>;
  /**
   * Read regular files that have more than one hard link. Off by default: a
   * hard link inside a root may name a file outside it, and nothing short of
   * scanning every file system can prove otherwise. See docs/host.md.
   */
  allowHardLinkedReads?: boolean;
  /** Test seam: observe the walk between components. */
  walkHooks?: WalkHooks;
}

/** A source for `writeFile`: bytes, or chunks streamed in (capped as they arrive). */
export type WriteSource = Uint8Array | AsyncIterable<Uint8Array>;

const kindOf = (st: fs.Stats | fs.BigIntStats | fs.Dirent): FileKind | undefined => {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO() || st.isSocket() || st.isCharacterDevice() || st.isBlockDevice()) return 'other';
  return undefined;
};

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    // Nothing useful to do: the descriptor is gone either way.
  }
}

/**
 * The file effects, confined to the roots each call names.
 *
 * @example
 * ```ts
 * const hostFs = new HostFs();
 * const bytes = await hostFs.readFile('/data/in.txt', { roots: [{ guest: '/data', host: '/srv/tool-data' }] });
 * ```
 */
export class HostFs {
  readonly #limits: FsLimits;
  readonly #allowHardLinkedReads: boolean;
  readonly #hooks: WalkHooks | undefined;

  constructor(options: HostFsOptions = {}) {
    if (!confinementSupported()) {
      throw new AuthorityError(ErrorCode.CONFIG, 'file effects need Linux /proc/self/fd and O_PATH to confine opens; this system has neither');
    }
    this.#limits = resolveLimits(DEFAULT_FS_LIMITS, options.limits, 'fs');
    this.#allowHardLinkedReads = options.allowHardLinkedReads === true;
    this.#hooks = options.walkHooks;
  }

  #scope(path: unknown, scope: FsScope): { scoped: ScopedPath; limits: FsLimits } {
    if (scope === null || typeof scope !== 'object') throw new AuthorityError(ErrorCode.POLICY_DENY, 'no file system scope for this call');
    return { scoped: scopePath(path, scope.roots), limits: resolveLimits(this.#limits, scope.limits, 'fs') };
  }

  /** Read a whole regular file, at most `readBytes`; never follows a symlink, never reads past the cap. */
  async readFile(path: string, scope: FsScope): Promise<Uint8Array> {
    const { scoped, limits } = this.#scope(path, scope);
    const { guestPath, components } = scoped;
    if (components.length === 0) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${guestPath} is a directory`, { data: { path: guestPath } });
    const walk = ConfinedWalk.open(scoped, components.slice(0, -1), this.#hooks);
    let pathFd: number | undefined;
    let fh: fsp.FileHandle | undefined;
    try {
      pathFd = walk.openFinal(components.at(-1) as string, guestPath);
      const st = fs.fstatSync(pathFd, { bigint: true });
      if (st.isSymbolicLink()) throw symlinkDenied(guestPath);
      if (st.isDirectory()) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${guestPath} is a directory`, { data: { path: guestPath } });
      if (!st.isFile()) throw new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} is not a regular file`, { data: { path: guestPath } });
      if (st.nlink > 1n && !this.#allowHardLinkedReads) {
        throw new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} has ${st.nlink} hard links; the host cannot prove they all lie inside the root`, {
          data: { path: guestPath },
        });
      }
      // After the link count: a name unlinked before the count shows as deleted here.
      walk.verifyLinkedInside(pathFd, guestPath);
      // Reopening through the O_PATH descriptor's magic link reaches the very inode checked above.
      fh = await fsp.open(fdPath(pathFd), O_RDONLY | O_NOCTTY);
      const rst = await fh.stat({ bigint: true });
      if (rst.dev !== st.dev || rst.ino !== st.ino) throw new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} changed while it was being opened`, { data: { path: guestPath } });
      const bytes = await readBounded(fh, Number(rst.size), limits.readBytes, guestPath);
      // Again after the read. Unlinking a name drops the link count before the
      // kernel marks the name deleted, so a hard link being removed during the
      // checks above could show one link and a live name for an instant; by
      // now the removal has finished and shows, and the bytes are dropped.
      walk.verifyLinkedInside(pathFd, guestPath);
      if ((await fh.stat({ bigint: true })).nlink > 1n && !this.#allowHardLinkedReads) {
        throw new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} gained a hard link while it was being read`, { data: { path: guestPath } });
      }
      return bytes;
    } catch (err) {
      throw fsFailure(err, guestPath);
    } finally {
      await fh?.close().catch(() => undefined);
      closeQuietly(pathFd);
      walk.close();
    }
  }

  /**
   * Replace a file atomically: a temp file created `O_EXCL | O_NOFOLLOW` in the
   * same directory (mode 0600, or the replaced file's permission bits),
   * written, fsynced, renamed over the target, and the directory fsynced. On
   * any failure the temp file is removed; the target is untouched.
   */
  async writeFile(path: string, data: WriteSource, scope: FsScope): Promise<void> {
    const { scoped, limits } = this.#scope(path, scope);
    const { guestPath, components } = scoped;
    if (components.length === 0) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${guestPath} is a directory`, { data: { path: guestPath } });
    if (data instanceof Uint8Array && data.byteLength > limits.writeBytes) throw tooLarge(guestPath, limits.writeBytes, 'write');
    const name = components.at(-1) as string;
    const walk = ConfinedWalk.open(scoped, components.slice(0, -1), this.#hooks);
    let tmp: string | undefined;
    try {
      walk.verifyDir();
      let mode = 0o600;
      try {
        const st = fs.lstatSync(walk.entry(name));
        if (st.isSymbolicLink()) throw symlinkDenied(guestPath);
        if (st.isDirectory()) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${guestPath} is a directory`, { data: { path: guestPath } });
        if (!st.isFile()) throw new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} is not a regular file`, { data: { path: guestPath } });
        // Permission bits only: never carry setuid, setgid or sticky onto a file the guest wrote.
        mode = st.mode & 0o777;
      } catch (err) {
        if (!(err instanceof Error) || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      // A short fixed-length name: the target's own name may already be NAME_MAX long.
      tmp = `.authority-${randomBytes(8).toString('hex')}.tmp`;
      const fh = await fsp.open(walk.entry(tmp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY, 0o600);
      try {
        await fh.chmod(mode);
        await writeBounded(fh, data, limits.writeBytes, guestPath);
        await fh.sync();
      } finally {
        await fh.close();
      }
      walk.verifyDir();
      fs.renameSync(walk.entry(tmp), walk.entry(name));
      tmp = undefined;
      await fsyncDir(walk.dirFd);
    } catch (err) {
      if (tmp !== undefined) {
        try {
          fs.unlinkSync(walk.entry(tmp));
        } catch {
          // Already gone or never created; the error below is the one that matters.
        }
      }
      throw fsFailure(err, guestPath);
    } finally {
      walk.close();
    }
  }

  /** The entries of a directory, sorted by name (UTF-16 code units), at most `listEntries`. */
  async listDir(path: string, scope: FsScope): Promise<DirEntry[]> {
    const { scoped, limits } = this.#scope(path, scope);
    const { guestPath, components } = scoped;
    const walk = ConfinedWalk.open(scoped, components, this.#hooks);
    let dir: fs.Dir | undefined;
    try {
      walk.verifyDir();
      dir = await fsp.opendir(fdPath(walk.dirFd), { bufferSize: 64 });
      const out: DirEntry[] = [];
      for (let d = await dir.read(); d !== null; d = await dir.read()) {
        if (out.length >= limits.listEntries) throw tooLarge(guestPath, limits.listEntries, 'list');
        let kind = kindOf(d);
        if (kind === undefined) {
          // DT_UNKNOWN (some file systems): ask without following.
          try {
            kind = kindOf(fs.lstatSync(walk.entry(d.name))) ?? 'other';
          } catch {
            continue; // removed meanwhile
          }
        }
        out.push({ name: d.name, kind });
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (err) {
      throw fsFailure(err, guestPath);
    } finally {
      await dir?.close().catch(() => undefined);
      walk.close();
    }
  }

  /** Facts about a file or directory; a symlink is reported as itself, never followed. */
  async stat(path: string, scope: FsScope): Promise<FileStat> {
    const { scoped } = this.#scope(path, scope);
    const { guestPath, components } = scoped;
    const walk = ConfinedWalk.open(scoped, components.slice(0, -1), this.#hooks);
    let fd: number | undefined;
    try {
      const target = components.length === 0 ? walk.dirFd : (fd = walk.openFinal(components.at(-1) as string, guestPath));
      walk.verifyInside(target, guestPath);
      const st = fs.fstatSync(target, { bigint: true });
      return { kind: kindOf(st) ?? 'other', size: st.size, modifiedMs: st.mtimeMs };
    } catch (err) {
      throw fsFailure(err, guestPath);
    } finally {
      closeQuietly(fd);
      walk.close();
    }
  }

  /** Remove a file, a symlink (the link itself) or an empty directory. A root itself is never removed. */
  async remove(path: string, scope: FsScope): Promise<void> {
    const { scoped } = this.#scope(path, scope);
    const { guestPath, components } = scoped;
    if (components.length === 0) {
      throw new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} is a confinement root and cannot be removed`, { data: { path: guestPath } });
    }
    const name = components.at(-1) as string;
    const walk = ConfinedWalk.open(scoped, components.slice(0, -1), this.#hooks);
    try {
      walk.verifyDir();
      // unlink and rmdir act on the entry itself; neither follows a final symlink.
      if (fs.lstatSync(walk.entry(name)).isDirectory()) await fsp.rmdir(walk.entry(name));
      else await fsp.unlink(walk.entry(name));
      await fsyncDir(walk.dirFd);
    } catch (err) {
      throw fsFailure(err, guestPath);
    } finally {
      walk.close();
    }
  }

  /**
   * Create a directory (mode 0700, like the 0600 of a file the guest writes).
   * Its parent must exist: nested folders are made one level at a time, each
   * a call the gate decides. A directory already there is success; anything
   * else there is refused, a symlink included (it is never followed).
   */
  async mkdir(path: string, scope: FsScope): Promise<void> {
    const { scoped } = this.#scope(path, scope);
    const { guestPath, components } = scoped;
    if (components.length === 0) return; // a confinement root exists by definition
    const name = components.at(-1) as string;
    const walk = ConfinedWalk.open(scoped, components.slice(0, -1), this.#hooks);
    try {
      walk.verifyDir();
      try {
        // mkdirat never follows a final symlink: a link there is EEXIST, looked at below.
        await fsp.mkdir(walk.entry(name), DIR_MODE);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const st = fs.lstatSync(walk.entry(name));
        if (st.isSymbolicLink()) throw symlinkDenied(guestPath);
        if (!st.isDirectory()) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${guestPath} exists and is not a directory`, { data: { path: guestPath } });
        return;
      }
      await fsyncDir(walk.dirFd);
    } catch (err) {
      throw fsFailure(err, guestPath);
    } finally {
      walk.close();
    }
  }
}

/** @see HostFs.mkdir */
const DIR_MODE = 0o700;

function tooLarge(guestPath: string, cap: number, what: 'read' | 'write' | 'list'): AuthorityError {
  const unit = what === 'list' ? 'entries' : 'bytes';
  return new AuthorityError(ErrorCode.TOO_LARGE, `${guestPath}: ${what} exceeds the cap of ${cap} ${unit}`, { data: { path: guestPath, cap } });
}

/**
 * Read until EOF into as few buffers as possible, starting from the size fstat
 * reported but never trusting it: the file may grow or shrink while read, and
 * reading stops one byte past the cap.
 */
async function readBounded(fh: fsp.FileHandle, sizeHint: number, cap: number, guestPath: string): Promise<Uint8Array> {
  const limit = cap + 1;
  let buf = Buffer.allocUnsafe(Math.max(1, Math.min(limit, sizeHint + 1, 64 * 1024 * 1024)));
  let len = 0;
  for (;;) {
    if (len === buf.length) {
      if (buf.length >= limit) break;
      const next = Buffer.allocUnsafe(Math.min(limit, buf.length * 2));
      buf.copy(next, 0, 0, len);
      buf = next;
    }
    const { bytesRead } = await fh.read(buf, len, buf.length - len, null);
    if (bytesRead === 0) break;
    len += bytesRead;
  }
  if (len > cap) throw tooLarge(guestPath, cap, 'read');
  return buf.subarray(0, len);
}

async function writeBounded(fh: fsp.FileHandle, data: WriteSource, cap: number, guestPath: string): Promise<void> {
  const writeAll = async (chunk: Uint8Array): Promise<void> => {
    let off = 0;
    while (off < chunk.byteLength) {
      const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off);
      off += bytesWritten;
    }
  };
  if (data instanceof Uint8Array) return writeAll(data);
  let total = 0;
  for await (const chunk of data) {
    if (!(chunk instanceof Uint8Array)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'write data must be bytes', { data: { at: 'data' } });
    total += chunk.byteLength;
    if (total > cap) throw tooLarge(guestPath, cap, 'write');
    await writeAll(chunk);
  }
}

/** Make a rename or unlink durable: fsync the directory that holds the entry. */
async function fsyncDir(dirFd: number): Promise<void> {
  const fh = await fsp.open(fdPath(dirFd), O_RDONLY | O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
