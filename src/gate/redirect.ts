/**
 * A redirect's next hop, as the gate sees it: a new http call that passes
 * every stage from the capability on, or a refusal that ends the call (the
 * host refused the Location, too many hops, a URL that does not decode).
 * @module
 */
import { hashRequest } from '../audit/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { HostCall } from '../host-call.ts';
import { MAX_REDIRECTS, nextHop, type HttpRequest, type HttpResult } from '../host/index.ts';
import { fetchCall, type CanonicalCall, type Facts } from './ops.ts';

export type NextHop = { call: CanonicalCall } | { refused: { facts: Facts; code: ErrorCode; reason: string } } | undefined;

const asError = (e: unknown): AuthorityError => (e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'bad redirect', { cause: e }));

/** The call hop number `hop` makes, if the last response redirects; undefined when it does not. */
export function redirectHop(last: { request: HttpRequest; response: HttpResult }, hop: number): NextHop {
  let next: HttpRequest | undefined;
  try {
    next = nextHop(last.request, last.response);
  } catch (e) {
    // A Location the host refuses ends the call: that refusal is a denied hop.
    const err = asError(e);
    const location = (last.response.headers.find(([k]) => k.toLowerCase() === 'location')?.[1] ?? '').slice(0, 2048);
    const facts = { hash: hashRequest({ op: 'http.fetch', location }), detail: { location: location.slice(0, 512), hop } };
    return { refused: { facts, code: err.code, reason: `redirect hop ${hop}: ${err.message}` } };
  }
  if (next === undefined) return undefined;
  if (hop > MAX_REDIRECTS) {
    const facts = { hash: hashRequest({ op: 'http.fetch', url: next.url }), detail: { url: next.url.slice(0, 512), hop } };
    return { refused: { facts, code: ErrorCode.POLICY_DENY, reason: `more than ${MAX_REDIRECTS} redirects` } };
  }
  try {
    const raw: HostCall = { op: 'http.fetch', method: next.method, url: next.url, headers: [...next.headers], body: next.body };
    return { call: fetchCall(next.method, next.url, [...next.headers], next.body, raw) };
  } catch (e) {
    const facts = { hash: hashRequest({ op: 'http.fetch', url: next.url.slice(0, 2048) }), detail: { url: next.url.slice(0, 512), hop } };
    return { refused: { facts, code: ErrorCode.INVALID_ARGUMENT, reason: `redirect to an invalid URL: ${asError(e).message}` } };
  }
}
