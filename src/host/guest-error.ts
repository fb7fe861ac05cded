/**
 * How an effect's failure reaches the guest: every failure is an
 * AuthorityError with a stable code, and exactly one function turns it into
 * the WIT `error` variant.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import { guestError, type Decision, type GuestError } from '../host-call.ts';

/** Longest message a guest reads; longer ones are cut (they only ever carry guest-supplied text). */
const MAX_MESSAGE = 1024;

/**
 * Map anything an effect (or the gate) threw to the WIT `error` variant.
 *
 * Codes map to their own case, by the one table in host-call.ts (`E_NOT_FOUND` -> `not-found`, `E_INVALID_ARGUMENT`
 * -> `invalid`, `E_TOO_LARGE` -> `too-large`, `E_IO` -> `io`, `E_TIMEOUT` ->
 * `timeout`, `E_RATE_LIMITED` -> `rate-limited`, `E_BUDGET_EXCEEDED` ->
 * `budget-exhausted`); every other AuthorityError is a `denied` carrying its
 * code. Anything that is not an AuthorityError is a fault of the host: the guest
 * reads `denied(E_INTERNAL)` and never the original message, which may name
 * host paths. `redact` (for example `store.redactText`) scrubs secret values
 * from the message as a last line of defence.
 *
 * @example
 * ```ts
 * try { return { tag: 'ok', val: await fs.readFile(path, scope) }; }
 * catch (e) { return { tag: 'err', val: toGuestError(e, (t) => secrets.redactText(t).text) }; }
 * ```
 */
export function toGuestError(err: unknown, redact?: (text: string) => string): GuestError {
  if (!(err instanceof AuthorityError)) {
    return { tag: 'denied', val: { code: ErrorCode.INTERNAL, message: 'internal error in the host' } };
  }
  let message = err.message.length > MAX_MESSAGE ? `${err.message.slice(0, MAX_MESSAGE)}...` : err.message;
  if (redact !== undefined) message = redact(message);
  const after = err.data?.['retryAfterMs'];
  return guestError(err.code, message, typeof after === 'number' ? after : undefined);
}

/** Throw the AuthorityError a deny decision stands for; `fallback` when the decision names no code. */
export function denialError(decision: Decision, fallback: ErrorCode = ErrorCode.POLICY_DENY): AuthorityError {
  if (decision.allow) return new AuthorityError(ErrorCode.INTERNAL, 'denialError called with an allow decision');
  return new AuthorityError(decision.code ?? fallback, decision.reason, {
    data: decision.rule === undefined ? undefined : { rule: decision.rule },
  });
}

/**
 * Ask a gate callback, failing closed: a throw, a rejected promise or a value
 * that is not a Decision is a deny.
 */
export async function askGate(fn: () => Decision | Promise<Decision>, what: string): Promise<Decision> {
  try {
    const d = await fn();
    if (d !== null && typeof d === 'object' && (d.allow === true || d.allow === false)) return d;
    return { allow: false, code: ErrorCode.INTERNAL, reason: `${what} returned no decision` };
  } catch {
    return { allow: false, code: ErrorCode.INTERNAL, reason: `${what} failed` };
  }
}
