/**
 * Paths as the gate and the policy decide on them. Every fs decision is made on a canonical
 * path, so `/data/../etc/passwd`, `/data//x/`, an NFD file name and a
 * symlink out of an allowed folder cannot slip past a rule.
 *
 * Two steps, exported separately: `canonicalisePath` is pure and lexical
 * (no I/O); `resolvePath` then resolves symlinks on the real file system.
 * @module
 */
import { lstatSync, readlinkSync, realpathSync } from 'node:fs';
import { AuthorityError, ErrorCode } from '../errors.ts';

/** Longest path accepted, in UTF-8 bytes (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/** Symlinks followed while resolving one path before giving up (Linux MAXSYMLINKS). */
export const MAX_SYMLINK_HOPS = 40;

/**
 * Whether a path needs work: `//`, a `.` or `..` segment, a trailing slash,
 * or anything outside printable ASCII (NUL, or Unicode that may need NFC).
 * A loop, because this runs on every fs decision.
 */
function needsWork(path: string): boolean {
  const n = path.length;
  for (let i = 0; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return true;
    if (c !== 47 /* / */) continue;
    const next = path.charCodeAt(i + 1);
    if (next === 47 || (i === n - 1 && n > 1)) return true;
    if (next === 46 /* . */) {
      const after = path.charCodeAt(i + 2);
      if (i + 2 === n || after === 47) return true;
      if (after === 46 && (i + 3 === n || path.charCodeAt(i + 3) === 47)) return true;
    }
  }
  return false;
}

function invalid(message: string, path: string): AuthorityError {
  return new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: { path: path.length > 256 ? path.slice(0, 256) + '...' : path } });
}

/**
 * The lexical canonical form of an absolute POSIX path: NUL refused,
 * Unicode NFC, `.` and empty segments removed, `..` applied (it stops at
 * `/`), no trailing slash. Throws `AuthorityError(E_INVALID_ARGUMENT)`.
 *
 * @example
 * ```ts
 * canonicalisePath('/data//in/../out/./a.txt/'); // '/data/out/a.txt'
 * canonicalisePath('/../etc');                    // '/etc'
 * ```
 */
export function canonicalisePath(path: string): string {
  if (typeof path !== 'string') throw invalid('path must be a string', String(path));
  if (path.charCodeAt(0) !== 47 /* / */) throw invalid(`path must be absolute (start with /): ${JSON.stringify(truncate(path))}`, path);
  if (!needsWork(path)) {
    if (path.length > MAX_PATH_BYTES) throw invalid(`path is longer than ${MAX_PATH_BYTES} bytes`, path);
    return path;
  }
  if (path.includes('\0')) throw invalid('path contains a NUL byte', path);
  const nfc = path.normalize('NFC');
  if (Buffer.byteLength(nfc, 'utf8') > MAX_PATH_BYTES) throw invalid(`path is longer than ${MAX_PATH_BYTES} bytes`, path);
  const out: string[] = [];
  for (const seg of nfc.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return '/' + out.join('/');
}

export interface ResolveOptions {
  /**
   * Follow a symlink in the last segment (true for read and list). False for
   * stat, write and remove, which act on the link itself: stat does not
   * follow it, remove unlinks it, and an atomic write renames over it.
   */
  followFinal: boolean;
}

/**
 * The path a request would really reach: canonicalised, then every symlink
 * resolved, following links in the longest prefix that exists and keeping
 * the rest (which does not exist yet, e.g. a file about to be written) as
 * written. A dangling symlink is followed to where it points. Throws
 * `E_INVALID_ARGUMENT` for a bad path, `E_IO` for a loop or an I/O error
 * (both are denies: fail closed).
 *
 * This decides; it does not make the later open safe. The host confines the
 * open to the matched rule's root so a symlink swapped in afterwards cannot
 * lead out.
 *
 * @example
 * ```ts
 * // with /data/link -> /etc
 * await resolvePath('/data/link/passwd', { followFinal: true }); // '/etc/passwd'
 * ```
 */
export async function resolvePath(path: string, options: ResolveOptions): Promise<string> {
  return resolvePathSync(path, options);
}

/**
 * `resolvePath` without the promise. The gate uses this on every fs call, on
 * the main thread, because it is the faster safe choice: measured on this
 * project's 2-core VM (Node 20), a path that exists resolves in ~11 us p50
 * here against ~30 us for `fs.promises.realpath`, and a path with a missing
 * tail in ~45 us against 180-300 us for an awaited lstat per segment. Only
 * lstat, readlink and realpath run, at most 40 links deep, on local disks:
 * a few lstat/readlink system calls on a local disk cost microseconds, and a
 * round trip through the libuv thread pool per path segment costs tens.
 */
export function resolvePathSync(path: string, options: ResolveOptions): string {
  const lexical = canonicalisePath(path);
  if (lexical === '/') return '/';
  const slash = lexical.lastIndexOf('/');
  const parent = slash === 0 ? '/' : lexical.slice(0, slash);
  const last = lexical.slice(slash + 1);
  if (options.followFinal) return walk(lexical);
  const realParent = walk(parent);
  return realParent === '/' ? '/' + last : `${realParent}/${last}`;
}

function walk(lexical: string): string {
  // Fast path: the whole path exists; the kernel resolves it in one call.
  try {
    return canonicalisePath(realpathSync.native(lexical));
  } catch (e) {
    if (!isMissing(e)) throw ioError(e, lexical);
  }
  const todo = lexical.split('/').filter((s) => s !== '');
  const done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const seg = todo.shift() as string;
    if (seg === '.') continue;
    if (seg === '..') {
      done.pop();
      continue;
    }
    const here = '/' + [...done, seg].join('/');
    let isLink: boolean;
    try {
      isLink = lstatSync(here).isSymbolicLink();
    } catch (e) {
      if (!isMissing(e)) throw ioError(e, lexical);
      // The rest does not exist: it can only be created as written.
      return canonicalisePath('/' + [...done, seg, ...todo].join('/'));
    }
    if (!isLink) {
      done.push(seg);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw new AuthorityError(ErrorCode.IO, `too many symlinks resolving ${truncate(lexical)}`, { data: { path: lexical } });
    let target: string;
    try {
      target = readlinkSync(here);
    } catch (e) {
      throw ioError(e, lexical);
    }
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/').filter((s) => s !== ''));
  }
  return canonicalisePath('/' + done.join('/'));
}

function isMissing(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function ioError(e: unknown, path: string): AuthorityError {
  const code = (e as { code?: unknown }).code;
  return new AuthorityError(ErrorCode.IO, `cannot resolve ${truncate(path)}: ${typeof code === 'string' ? code : 'error'}`, { cause: e, data: { path } });
}

function truncate(s: string): string {
  return s.length > 200 ? s.slice(0, 200) + '...' : s;
}
