/**
 * Keeping a pre-image just before an fs effect: read through the same
 * confined walk the effect will use (so a pre-image never holds bytes from
 * outside the call's root), and keep the bytes in the store.
 * @module
 */
import type { AuditDetail } from '../audit/index.ts';
import { ErrorCode, toAuthorityError } from '../errors.ts';
import type { FsScope, HostFs } from '../host/index.ts';
import { ABSENT, contentHash, type PreImageStore } from './store.ts';

/**
 * The facts the outcome record carries about the change: `preImage` (a hash,
 * or "absent"), or `preImage: "none"` and `preImageWhy` when none could be
 * kept (too large, a hard-linked or special file): such a change cannot be undone.
 */
export async function capturePreImage(store: PreImageStore, hostFs: HostFs, target: string, scope: FsScope): Promise<{ preImage: string; preImageWhy?: string }> {
  try {
    const bytes = await hostFs.readFile(target, { ...scope, limits: { ...scope.limits, readBytes: store.maxBytes } });
    return { preImage: store.put(bytes) };
  } catch (e) {
    const err = toAuthorityError(e);
    if (err.code === ErrorCode.NOT_FOUND) return { preImage: ABSENT };
    return { preImage: 'none', preImageWhy: err.message.slice(0, 256) };
  }
}

/** The post-image facts of an effect that succeeded. */
export function postImageOf(op: 'fs.write' | 'fs.remove', data?: Uint8Array): AuditDetail {
  return { postImage: op === 'fs.remove' || data === undefined ? ABSENT : contentHash(data) };
}
