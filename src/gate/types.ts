/**
 * The values that cross the gate: a host call as the guest made it, the
 * decision of each check, and the reply the guest reads.
 * @module
 */
import type { ErrorCode } from '../errors.ts';

/** Every host operation, named `<interface>.<verb>`; the CLI and policy tests use these names. */
export const HOST_OPS = [
  'fs.read',
  'fs.write',
  'fs.list',
  'fs.stat',
  'fs.remove',
  'http.fetch',
  'secrets.get',
] as const;
export type HostOp = (typeof HOST_OPS)[number];

export type Header = [name: string, value: string];

/** A host call, decoded from the guest's arguments. Paths and URLs are still raw. */
export type HostCall =
  | { op: 'fs.read'; path: string }
  | { op: 'fs.write'; path: string; data: Uint8Array }
  | { op: 'fs.list'; path: string }
  | { op: 'fs.stat'; path: string }
  | { op: 'fs.remove'; path: string }
  | { op: 'http.fetch'; method: string; url: string; headers: Header[]; body?: Uint8Array | undefined }
  | { op: 'secrets.get'; name: string };

/** Capability kinds: what a token can grant. */
export type CapabilityKind = 'fs' | 'net' | 'secrets' | 'tool';

/** The WIT `error` variant, as jco lifts and lowers it. */
export type GuestError =
  | { tag: 'denied'; val: { code: string; message: string } }
  | { tag: 'not-found'; val: string }
  | { tag: 'invalid'; val: string }
  | { tag: 'too-large'; val: string }
  | { tag: 'rate-limited'; val: bigint }
  | { tag: 'budget-exhausted'; val: string }
  | { tag: 'io'; val: string }
  | { tag: 'timeout'; val: string };

/** What a host import returns to jco: always a tagged result, never a throw. */
export type HostReply = { tag: 'ok'; val: unknown } | { tag: 'err'; val: GuestError };

/** The outcome of one check. A deny always has a stable code and a reason naming the rule. */
export type Decision =
  | { allow: true; reason: string; rule?: string | undefined }
  | {
      allow: false;
      code: ErrorCode;
      reason: string;
      rule?: string | undefined;
      retryAfterMs?: number | undefined;
    };

export const allow = (reason: string, rule?: string): Decision => ({ allow: true, reason, rule });
export const deny = (code: ErrorCode, reason: string, extra: { rule?: string; retryAfterMs?: number } = {}): Decision => ({
  allow: false,
  code,
  reason,
  ...extra,
});
