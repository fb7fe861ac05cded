/**
 * The words every layer shares, below all of them: a host call as the guest
 * made it, the reply it reads, the decision of each check, the one spelling of
 * each name pattern, and the one table from an error code to the WIT `error`
 * case. This file imports nothing but the error codes, so every folder
 * (host, policy, capability, limits, sandbox, gate) may use it without an
 * import running back up a floor.
 * @module
 */
import { ErrorCode } from './errors.ts';

/** Every host operation, named `<interface>.<verb>`; the CLI and policy tests use these names. */
export const HOST_OPS = [
  'fs.read',
  'fs.write',
  'fs.list',
  'fs.stat',
  'fs.remove',
  'fs.mkdir',
  'http.fetch',
  'secrets.get',
] as const;
export type HostOp = (typeof HOST_OPS)[number];

/** The fs operations, in the order of HOST_OPS. */
export type FsHostOp = Extract<HostOp, `fs.${string}`>;

export type Header = [name: string, value: string];

/** A host call, decoded from the guest's arguments. Paths and URLs are still raw. */
export type HostCall =
  | { op: 'fs.read'; path: string }
  | { op: 'fs.write'; path: string; data: Uint8Array }
  | { op: 'fs.list'; path: string }
  | { op: 'fs.stat'; path: string }
  | { op: 'fs.remove'; path: string }
  | { op: 'fs.mkdir'; path: string }
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

// ------------------------------------------------------------------ names

/** A tool's name: what a component's describe() may call itself, and what policies and tokens name. */
export const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * A secret's name: what the secrets store holds, what a policy's `secrets`
 * section names, and what `{{secret:NAME}}` and `secrets.get(NAME)` accept.
 * One pattern, so every name that can be stored can also be named in a policy.
 */
export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
/** A secret placeholder in a request header: `{{secret:NAME}}`; NAME must then match SECRET_NAME. */
export const SECRET_PLACEHOLDER = /\{\{secret:([^{}]*)\}\}/g;
/** Anything that looks like the start of a placeholder, however spelled: where none may be, it is refused. */
export const SECRET_PLACEHOLDER_LIKE = /\{\{\s*secret\s*:/i;

/** The names of the well-formed `{{secret:NAME}}` placeholders in header values, each once, sorted. */
export function placeholdersIn(headers: readonly Header[]): string[] {
  const names = new Set<string>();
  for (const [, value] of headers) {
    if (!value.includes('{{')) continue;
    for (const m of value.matchAll(SECRET_PLACEHOLDER)) if (SECRET_NAME.test(m[1] as string)) names.add(m[1] as string);
  }
  return [...names].sort();
}

// ------------------------------------------------------------------ errors

/**
 * The WIT `error` case each error code travels as. Every code not named here
 * is `denied`, carrying the code and the message.
 */
export const GUEST_ERROR_CASE: Readonly<Partial<Record<ErrorCode, Exclude<GuestError['tag'], 'denied'>>>> = Object.freeze({
  [ErrorCode.NOT_FOUND]: 'not-found',
  [ErrorCode.INVALID_ARGUMENT]: 'invalid',
  [ErrorCode.TOO_LARGE]: 'too-large',
  [ErrorCode.IO]: 'io',
  [ErrorCode.TIMEOUT]: 'timeout',
  [ErrorCode.RATE_LIMITED]: 'rate-limited',
  [ErrorCode.BUDGET_EXCEEDED]: 'budget-exhausted',
});

/** The cases whose payload is a message (every case but `denied` and `rate-limited`). */
export const GUEST_ERROR_MESSAGE_CASES: ReadonlySet<string> = new Set(
  Object.values(GUEST_ERROR_CASE).filter((tag) => tag !== 'rate-limited'),
);

/**
 * The guest's view of an error: the case its code travels as, with the
 * message (or, for `rate-limited`, the milliseconds to wait: a whole number,
 * 0 when unknown).
 */
export function guestError(code: ErrorCode, message: string, retryAfterMs?: number): GuestError {
  const tag = GUEST_ERROR_CASE[code];
  if (tag === undefined) return { tag: 'denied', val: { code, message } };
  if (tag === 'rate-limited') {
    const ms = typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? Math.ceil(retryAfterMs) : 0;
    return { tag, val: BigInt(ms) };
  }
  return { tag, val: message };
}
