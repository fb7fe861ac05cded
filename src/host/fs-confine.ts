/**
 * Confinement of every file system access to a root, at the moment of the
 * access. Node has no `openat(2)`, so this walks `/proc/self/fd/<dirfd>/<name>`:
 * the kernel resolves the magic link to the directory the descriptor holds
 * (wherever it is now) and then looks up one name in it, which is `openat`.
 * Each component is opened `O_PATH | O_NOFOLLOW` (no side effect, no read
 * permission needed, never follows a symlink), the real path of the final
 * descriptor is read back from `/proc/self/fd/N` and must still lie under the
 * root, and only then is the object reopened for reading through its own
 * descriptor. Linux only: elsewhere the host refuses to serve files.
 * @module
 */
import fs from 'node:fs';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { isUnder, type ScopedPath } from './fs-path.ts';

/** Linux `O_PATH` (the same value on every architecture Node supports); Node does not export it. */
export const O_PATH = 0o10000000;
const { O_NOFOLLOW, O_DIRECTORY } = fs.constants;
/** What Linux appends to the `/proc/self/fd` link of a descriptor whose name was unlinked. */
const DELETED = ' (deleted)';

let supported: boolean | undefined;

/** Whether this system offers what confinement needs: Linux with `/proc/self/fd` and `O_PATH`. */
export function confinementSupported(): boolean {
  if (supported !== undefined) return supported;
  supported = false;
  if (process.platform !== 'linux') return supported;
  try {
    const fd = fs.openSync('/', O_PATH | O_DIRECTORY);
    try {
      supported = fs.readlinkSync(fdPath(fd)) === '/' && fs.fstatSync(fd).isDirectory();
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    supported = false;
  }
  return supported;
}

/** The `/proc` path that names descriptor `fd`, or the entry `name` inside the directory it holds. */
export function fdPath(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** Observation points for tests that move things around in the middle of a walk. */
export interface WalkHooks {
  /** Called after the directory component `index` (0-based, below the root) is open. */
  afterStep?: (index: number, name: string) => void;
}

type Errno = NodeJS.ErrnoException;
const errno = (e: unknown): string | undefined => (e instanceof Error ? (e as Errno).code : undefined);

/**
 * Turn a system error into the typed error the guest reads. Messages name the
 * guest path only, never the host path the system error carries (kept as cause).
 */
export function fsFailure(err: unknown, guestPath: string): AuthorityError {
  if (err instanceof AuthorityError) return err;
  const data = { path: guestPath };
  switch (errno(err)) {
    case 'ENOENT':
      return new AuthorityError(ErrorCode.NOT_FOUND, `${guestPath} does not exist`, { data, cause: err });
    case 'ENOTDIR':
      return new AuthorityError(ErrorCode.NOT_FOUND, `${guestPath}: a component of the path is not a directory`, { data, cause: err });
    case 'EISDIR':
      return new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${guestPath} is a directory`, { data, cause: err });
    case 'ENAMETOOLONG':
      return new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${guestPath}: a name is too long`, { data, cause: err });
    case 'ENOTEMPTY':
    case 'EEXIST':
      return new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${guestPath} is a directory that is not empty`, { data, cause: err });
    case 'ELOOP':
      return symlinkDenied(guestPath);
    case 'EACCES':
    case 'EPERM':
      return new AuthorityError(ErrorCode.IO, `${guestPath}: permission denied by the host file system`, { data, cause: err });
    case 'ENOSPC':
    case 'EDQUOT':
      return new AuthorityError(ErrorCode.IO, `${guestPath}: no space left on the host file system`, { data, cause: err });
    case 'EROFS':
      return new AuthorityError(ErrorCode.IO, `${guestPath}: the host file system is read-only`, { data, cause: err });
    default:
      return new AuthorityError(ErrorCode.IO, `${guestPath}: input/output error${errno(err) ? ` (${errno(err)})` : ''}`, { data, cause: err });
  }
}

export function symlinkDenied(guestPath: string): AuthorityError {
  return new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} is or passes through a symbolic link, which the host never follows`, {
    data: { path: guestPath },
  });
}

function escapeDenied(guestPath: string): AuthorityError {
  return new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} left its confinement root while it was being opened`, { data: { path: guestPath } });
}

/**
 * An open chain of directory descriptors from the root down to the parent of
 * the target. Everything the effects do goes through `dirFd`: entries are
 * named relative to it, never by a host path.
 */
export class ConfinedWalk {
  readonly rootReal: string;
  readonly scoped: ScopedPath;
  #fds: number[] = [];
  #dirFd: number;

  private constructor(scoped: ScopedPath, rootFd: number, rootReal: string) {
    this.scoped = scoped;
    this.rootReal = rootReal;
    this.#fds.push(rootFd);
    this.#dirFd = rootFd;
  }

  /**
   * Open the root (configuration, so it may itself be reached through
   * symlinks) and then each of `dirs` below it without following anything.
   * The caller owns the walk and must `close()` it.
   */
  static open(scoped: ScopedPath, dirs: readonly string[], hooks?: WalkHooks): ConfinedWalk {
    let rootFd: number;
    try {
      rootFd = fs.openSync(scoped.hostRoot, O_PATH | O_DIRECTORY);
    } catch (err) {
      // The root is configuration: its host path stays out of the message.
      const code = errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR' ? ErrorCode.NOT_FOUND : ErrorCode.IO;
      throw new AuthorityError(code, `${scoped.guestRoot} is not available`, { data: { path: scoped.guestRoot }, cause: err });
    }
    let walk: ConfinedWalk;
    try {
      walk = new ConfinedWalk(scoped, rootFd, fs.readlinkSync(fdPath(rootFd)));
    } catch (err) {
      fs.closeSync(rootFd);
      throw new AuthorityError(ErrorCode.IO, `${scoped.guestRoot} is not available`, { data: { path: scoped.guestRoot }, cause: err });
    }
    try {
      for (let i = 0; i < dirs.length; i++) {
        const name = dirs[i] as string;
        walk.#dirFd = walk.#openDir(name, walk.guestPathOf(i));
        walk.#fds.push(walk.#dirFd);
        hooks?.afterStep?.(i, name);
      }
    } catch (err) {
      walk.close();
      throw err;
    }
    return walk;
  }

  /** The descriptor (O_PATH) of the deepest directory opened. */
  get dirFd(): number {
    return this.#dirFd;
  }

  /** The guest path of component `index` below the root. */
  guestPathOf(index: number): string {
    const { guestRoot, components } = this.scoped;
    const below = components.slice(0, index + 1).join('/');
    if (below === '') return guestRoot;
    return guestRoot === '/' ? `/${below}` : `${guestRoot}/${below}`;
  }

  /** The `/proc` path of `name` inside the current directory: the argument every effect passes to the system. */
  entry(name: string): string {
    return fdPath(this.#dirFd, name);
  }

  #openDir(name: string, guestPath: string): number {
    try {
      return fs.openSync(this.entry(name), O_PATH | O_NOFOLLOW | O_DIRECTORY);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOTDIR' || code === 'ELOOP') throw this.#classify(name, guestPath, err);
      throw fsFailure(err, guestPath);
    }
  }

  /** Tell "is a symlink" (denied) from "is not a directory" (not found) after an open refused a name. */
  #classify(name: string, guestPath: string, err: unknown): AuthorityError {
    try {
      if (fs.lstatSync(this.entry(name)).isSymbolicLink()) return symlinkDenied(guestPath);
    } catch (lerr) {
      return fsFailure(lerr, guestPath);
    }
    return fsFailure(err, guestPath);
  }

  /**
   * Open the final component `name` as `O_PATH | O_NOFOLLOW` (plus `extra`):
   * a symlink yields a descriptor of the link itself, never its target. The
   * caller owns the descriptor (it is not closed with the walk).
   */
  openFinal(name: string, guestPath: string, extra = 0): number {
    try {
      return fs.openSync(this.entry(name), O_PATH | O_NOFOLLOW | extra);
    } catch (err) {
      const code = errno(err);
      if ((extra & O_DIRECTORY) !== 0 && (code === 'ENOTDIR' || code === 'ELOOP')) throw this.#classify(name, guestPath, err);
      throw fsFailure(err, guestPath);
    }
  }

  /**
   * The real path of `fd`, read back from the kernel, must lie under the real
   * path of the root. This is what makes a directory renamed out of the root
   * in the middle of the walk harmless.
   */
  verifyInside(fd: number, guestPath: string): string {
    let real: string;
    try {
      real = fs.readlinkSync(fdPath(fd));
    } catch (err) {
      throw fsFailure(err, guestPath);
    }
    if (!isUnder(real, this.rootReal)) throw escapeDenied(guestPath);
    return real;
  }

  /**
   * `verifyInside`, and the name `fd` was opened through must still exist.
   * Once it is unlinked the kernel shows the path as "... (deleted)" for good,
   * and a link count read after the unlink no longer counts it: a hard link
   * removed between the open and the count would pass for the only name of a
   * file whose other name lies outside the root.
   */
  verifyLinkedInside(fd: number, guestPath: string): void {
    if (this.verifyInside(fd, guestPath).endsWith(DELETED)) {
      throw new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} was removed while it was being opened`, { data: { path: guestPath } });
    }
  }

  /** Verify the current directory itself is still under the root. */
  verifyDir(): void {
    this.verifyInside(this.#dirFd, this.guestPathOf(this.#fds.length - 2));
  }

  close(): void {
    for (const fd of this.#fds.splice(0)) {
      try {
        fs.closeSync(fd);
      } catch {
        // Closing an O_PATH descriptor cannot lose data; nothing to report.
      }
    }
  }
}
