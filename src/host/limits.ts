/**
 * Size, count and time caps of the host effects. The defaults are the ones
 * `wit/sandbox.wit` promises tools; a deployment policy lowers or raises them,
 * and the gate passes the resolved figures with each call.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';

const MiB = 1024 * 1024;

/** Caps of the fs effects, in bytes or entries. */
export interface FsLimits {
  /** Largest file `read-file` returns. */
  readonly readBytes: number;
  /** Largest content `write-file` accepts. */
  readonly writeBytes: number;
  /** Most entries `list-dir` returns. */
  readonly listEntries: number;
}

/** Caps of one http hop. */
export interface HttpLimits {
  /** Largest request body the guest may send. */
  readonly requestBodyBytes: number;
  /** Largest response body read (after content decoding); reading stops there. */
  readonly responseBodyBytes: number;
  /** Most header fields in the request, and separately in the response. */
  readonly headerCount: number;
  /** Most bytes of header names plus values in the request, and separately in the response. */
  readonly headerBytes: number;
  /** Longest URL accepted, in characters. */
  readonly urlLength: number;
  /** One deadline for DNS, connect, headers and body of the hop. */
  readonly timeoutMs: number;
}

export const DEFAULT_FS_LIMITS: FsLimits = Object.freeze({
  readBytes: 8 * MiB,
  writeBytes: 8 * MiB,
  listEntries: 10_000,
});

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  requestBodyBytes: 1 * MiB,
  responseBodyBytes: 4 * MiB,
  headerCount: 64,
  headerBytes: 16 * 1024,
  urlLength: 8 * 1024,
  timeoutMs: 30_000,
});

/**
 * Merge `overrides` into `base`, refusing unknown keys and anything that is
 * not a non-negative safe integer (fail closed: a typo must not lift a cap).
 *
 * @example
 * ```ts
 * const caps = resolveLimits(DEFAULT_FS_LIMITS, { readBytes: 1024 }, 'fs');
 * ```
 */
export function resolveLimits<T extends object>(base: T, overrides: Partial<T> | undefined, where: string): T {
  if (overrides === undefined) return base;
  if (overrides === null || typeof overrides !== 'object') {
    throw new AuthorityError(ErrorCode.CONFIG, `${where} limits must be an object`, { data: { at: where } });
  }
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(overrides)) {
    if (!Object.hasOwn(base, key)) {
      throw new AuthorityError(ErrorCode.CONFIG, `unknown ${where} limit "${key}"`, { data: { at: `${where}.${key}` } });
    }
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new AuthorityError(ErrorCode.CONFIG, `${where} limit "${key}" must be a non-negative integer`, {
        data: { at: `${where}.${key}` },
      });
    }
    out[key] = value;
  }
  return Object.freeze(out) as T;
}
