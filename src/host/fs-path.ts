/**
 * Guest paths and confinement roots: the defensive re-check of what the gate
 * canonicalised, and the choice of the root a path is confined to.
 * @module
 */
import { isAbsolute } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';

/** Longest guest path, in UTF-8 bytes (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/** Longest path component, in UTF-8 bytes (Linux NAME_MAX). */
export const MAX_NAME_BYTES = 255;

/**
 * A confinement root: the directory prefix the policy rule allows, as the guest
 * names it (`/data` for a rule `/data/**`), and optionally the host directory
 * that prefix stands for. Without `host` the guest sees host paths as they are.
 */
export interface FsRoot {
  readonly guest: string;
  readonly host?: string | undefined;
}

/** The root a path was matched to, and the components below it. */
export interface ScopedPath {
  readonly guestPath: string;
  readonly guestRoot: string;
  readonly hostRoot: string;
  /** Components below the root; empty when the path is the root itself. */
  readonly components: readonly string[];
}

// With the `u` flag a surrogate pair is one code point, so this matches only halves of a pair.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

const invalid = (message: string, path?: string): AuthorityError =>
  new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: path === undefined ? { at: 'path' } : { at: 'path', path } });

/**
 * Refuse a path that is not already canonical: relative, NUL, `.`/`..`, empty
 * components, a trailing slash, not NFC, too long. The gate canonicalises
 * before its policy check; a path that still needs work here means the two
 * disagree, and disagreement is refused rather than repaired.
 */
export function checkGuestPath(path: unknown): string {
  if (typeof path !== 'string') throw invalid('path must be a string');
  if (path.includes('\0')) throw invalid('path contains a NUL byte');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) throw invalid(`path is longer than ${MAX_PATH_BYTES} bytes`);
  if (!path.startsWith('/')) throw invalid('path must be absolute', path);
  if (LONE_SURROGATE.test(path)) throw invalid('path is not well-formed Unicode');
  if (path.normalize('NFC') !== path) throw invalid('path is not in Unicode NFC form', path);
  if (path === '/') return path;
  if (path.endsWith('/')) throw invalid('path has a trailing slash', path);
  const parts = path.split('/');
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i] as string;
    if (part === '') throw invalid('path has an empty component', path);
    if (part === '.' || part === '..') throw invalid(`path has a "${part}" component`, path);
    if (Buffer.byteLength(part, 'utf8') > MAX_NAME_BYTES) throw invalid(`a path component is longer than ${MAX_NAME_BYTES} bytes`, path);
  }
  return path;
}

/** Normalise the roots a policy decided, refusing any that is not canonical (a configuration fault). */
export function checkRoots(roots: readonly (string | FsRoot)[]): FsRoot[] {
  if (!Array.isArray(roots) || roots.length === 0) {
    throw new AuthorityError(ErrorCode.POLICY_DENY, 'no file system root is allowed for this call');
  }
  return roots.map((r, i) => {
    const root: FsRoot = typeof r === 'string' ? { guest: r } : r;
    try {
      checkGuestPath(root.guest);
    } catch (cause) {
      throw new AuthorityError(ErrorCode.CONFIG, `confinement root ${i} is not a canonical absolute path`, { data: { at: `roots[${i}]` }, cause });
    }
    if (root.host !== undefined && (typeof root.host !== 'string' || !isAbsolute(root.host) || root.host.includes('\0'))) {
      throw new AuthorityError(ErrorCode.CONFIG, `confinement root ${i} has a host directory that is not absolute`, { data: { at: `roots[${i}].host` } });
    }
    return root;
  });
}

/** Whether `path` is `root` or below it (both canonical). */
export function isUnder(path: string, root: string): boolean {
  if (root === '/') return path.startsWith('/');
  return path === root || path.startsWith(`${root}/`);
}

/**
 * Match a checked guest path to the most specific root that contains it. A
 * path under no root is a policy deny: the gate allowed a rule whose prefix
 * does not contain the path, which must never turn into an effect.
 */
export function scopePath(rawPath: unknown, roots: readonly (string | FsRoot)[]): ScopedPath {
  const guestPath = checkGuestPath(rawPath);
  let best: FsRoot | undefined;
  for (const root of checkRoots(roots)) {
    if (isUnder(guestPath, root.guest) && (best === undefined || root.guest.length > best.guest.length)) best = root;
  }
  if (best === undefined) {
    throw new AuthorityError(ErrorCode.POLICY_DENY, `${guestPath} is outside the directories the policy allows`, { data: { path: guestPath } });
  }
  const rest = best.guest === '/' ? guestPath.slice(1) : guestPath.slice(best.guest.length + 1);
  return {
    guestPath,
    guestRoot: best.guest,
    hostRoot: best.host ?? best.guest,
    components: rest === '' ? [] : rest.split('/'),
  };
}
