/**
 * Paths as the policy sees them: the lexical canonical form and the symlink
 * walk live behind host/ (the only code that touches the file system for a
 * guest); the policy re-exports them under their old names.
 * @module
 */
export { canonicalisePath, resolvePath, resolvePathSync, MAX_PATH_BYTES, MAX_SYMLINK_HOPS, type ResolveOptions } from '../host/fs-resolve.ts';
