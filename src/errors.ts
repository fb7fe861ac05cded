/**
 * The one error class of Authority, and its stable codes.
 *
 * Codes are part of the public contract: tools see them in `denied` errors,
 * the CLI prints them, adapters hand them to models. Never rename one.
 *
 * @example
 * ```ts
 * import { AuthorityError, ErrorCode } from 'authority-sandbox';
 * try { await runtime.invoke('word-count', { text: 'hi' }); }
 * catch (e) { if (e instanceof AuthorityError && e.code === ErrorCode.TIMEOUT) retry(); }
 * ```
 * @module
 */

export const ErrorCode = Object.freeze({
  // capability stage
  CAP_MISSING: 'E_CAP_MISSING',
  CAP_INVALID: 'E_CAP_INVALID',
  CAP_EXPIRED: 'E_CAP_EXPIRED',
  CAP_NOT_YET_VALID: 'E_CAP_NOT_YET_VALID',
  CAP_REVOKED: 'E_CAP_REVOKED',
  CAP_SCOPE: 'E_CAP_SCOPE',
  CAP_RUN_MISMATCH: 'E_CAP_RUN_MISMATCH',
  CAP_UNKNOWN_KEY: 'E_CAP_UNKNOWN_KEY',
  CAP_WIDENING: 'E_CAP_WIDENING',
  // policy, limits, budgets
  POLICY_DENY: 'E_POLICY_DENY',
  POLICY_INVALID: 'E_POLICY_INVALID',
  APPROVAL_REQUIRED: 'E_APPROVAL_REQUIRED',
  APPROVAL_DENIED: 'E_APPROVAL_DENIED',
  RATE_LIMITED: 'E_RATE_LIMITED',
  BUDGET_EXCEEDED: 'E_BUDGET_EXCEEDED',
  SECRET_LEAK: 'E_SECRET_LEAK',
  // arguments and effects
  INVALID_ARGUMENT: 'E_INVALID_ARGUMENT',
  NOT_FOUND: 'E_NOT_FOUND',
  TOO_LARGE: 'E_TOO_LARGE',
  IO: 'E_IO',
  // tools and the sandbox
  TOOL_NOT_FOUND: 'E_TOOL_NOT_FOUND',
  TOOL_FAILED: 'E_TOOL_FAILED',
  TOOL_TRAPPED: 'E_TOOL_TRAPPED',
  TOOL_OUTPUT: 'E_TOOL_OUTPUT',
  COMPONENT_INVALID: 'E_COMPONENT_INVALID',
  COMPONENT_IMPORT: 'E_COMPONENT_IMPORT',
  TIMEOUT: 'E_TIMEOUT',
  OVERLOADED: 'E_OVERLOADED',
  HALTED: 'E_HALTED',
  // shared state (Redis) of a fleet: unreachable or unknown for longer than its grace, so every check fails closed
  STATE_UNAVAILABLE: 'E_STATE_UNAVAILABLE',
  // tool provenance: registries, signatures, trust
  REGISTRY_NOT_FOUND: 'E_REGISTRY_NOT_FOUND',
  REGISTRY_UNAUTHORIZED: 'E_REGISTRY_UNAUTHORIZED',
  REGISTRY_PROTOCOL: 'E_REGISTRY_PROTOCOL',
  REGISTRY_UNREACHABLE: 'E_REGISTRY_UNREACHABLE',
  DIGEST_MISMATCH: 'E_DIGEST_MISMATCH',
  SIGNATURE_INVALID: 'E_SIGNATURE_INVALID',
  TOOL_UNSIGNED: 'E_TOOL_UNSIGNED',
  TOOL_UNTRUSTED: 'E_TOOL_UNTRUSTED',
  TOOL_PIN_MISMATCH: 'E_TOOL_PIN_MISMATCH',
  // audit
  AUDIT_WRITE: 'E_AUDIT_WRITE',
  AUDIT_TAMPERED: 'E_AUDIT_TAMPERED',
  // configuration and internal faults
  CONFIG: 'E_CONFIG',
  USAGE: 'E_USAGE',
  INTERNAL: 'E_INTERNAL',
} as const);

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Whether `code` is one of Authority's stable error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && KNOWN_CODES.has(code);
}

export interface AuthorityErrorOptions {
  /** Machine-readable details: a JSON path, an import name, a retry-after. Never a secret. */
  data?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * The brand of an AuthorityError, shared by every copy of this package in a
 * process (a registered symbol): `instanceof` then holds for an error made by
 * another copy, e.g. `dist/` and `src/` both loaded, or two installed versions.
 */
const BRAND = Symbol.for('authority-sandbox.AuthorityError');

/**
 * Every error Authority raises on purpose. `code` is stable; `message` is for
 * people; `data` carries the location of the problem when there is one.
 */
export class AuthorityError extends Error {
  readonly code: ErrorCode;
  readonly data: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options: AuthorityErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AuthorityError';
    this.code = code;
    this.data = options.data === undefined ? undefined : Object.freeze({ ...options.data });
  }

  /** True for an AuthorityError from any copy of the package; subclasses keep the usual prototype check. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== AuthorityError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }

  /** A plain object for `--json` output and adapters. */
  toJSON(): { code: ErrorCode; message: string; data?: Readonly<Record<string, unknown>> } {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

Object.defineProperty(AuthorityError.prototype, BRAND, { value: true });

/** Wrap anything thrown into an AuthorityError, keeping the original as `cause`. */
export function toAuthorityError(err: unknown, fallback: ErrorCode = ErrorCode.INTERNAL): AuthorityError {
  if (err instanceof AuthorityError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new AuthorityError(fallback, message, { cause: err });
}
