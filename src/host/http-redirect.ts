/**
 * The next hop of a redirect. The host performs one hop per call and returns
 * a 3xx as it is; the gate loops, re-gating each hop (at most `MAX_REDIRECTS`)
 * with the request this computes.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { Header } from '../host-call.ts';
import { parseGuestUrl } from './http-url.ts';
import { PLACEHOLDER_LIKE } from './http-headers.ts';

/** A request as the guest made it (placeholders unsubstituted). The gate's `http.fetch` HostCall has this shape. */
export interface HttpRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: readonly Header[];
  readonly body?: Uint8Array | undefined;
}

/** Most redirects followed for one guest call. */
export const MAX_REDIRECTS = 5;
/** Statuses the host follows; other 3xx (300, 304, 305, 306) are final responses. */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** Headers that never cross to another origin. */
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'cookie', 'proxy-authorization']);
/** Headers that describe a body, dropped with it. */
const BODY_HEADERS: ReadonlySet<string> = new Set(['content-type', 'content-encoding', 'content-language', 'content-location', 'content-length']);

const invalid = (message: string): AuthorityError => new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: { at: 'location' } });

/**
 * The request for the next hop, or undefined when `response` is final (not a
 * followed status, or no Location). Throws `invalid` for a Location that is
 * ambiguous or not an http(s) URL; the gate ends the call with that error.
 *
 * Rules: Location is resolved against the current URL (fragments dropped);
 * 303 turns any method but HEAD into GET, and 301/302 turn POST into GET,
 * dropping the body and its content-* headers; 307/308 keep method and body.
 * On a hop to another origin (scheme, host or port differ) `authorization`,
 * `cookie`, `proxy-authorization` and every header whose value holds a
 * `{{secret:...}}` placeholder are dropped.
 *
 * @example
 * ```ts
 * let req = call; let res = await http.fetch(req, ctx);
 * for (let hop = 0, next; (next = nextHop(req, res)) !== undefined; hop++) {
 *   if (hop === MAX_REDIRECTS) throw new AuthorityError(ErrorCode.POLICY_DENY, 'too many redirects');
 *   req = next; gateCheck(req); res = await http.fetch(req, ctx);
 * }
 * ```
 */
export function nextHop(request: HttpRequest, response: { readonly status: number; readonly headers: readonly Header[] }): HttpRequest | undefined {
  if (!REDIRECT_STATUSES.has(response.status)) return undefined;
  const locations = response.headers.filter(([k]) => k.toLowerCase() === 'location').map(([, v]) => v);
  if (locations.length === 0) return undefined;
  if (new Set(locations).size > 1) throw invalid('redirect has more than one Location');
  const location = (locations[0] as string).trim();
  if (location === '') throw invalid('redirect has an empty Location');
  for (let i = 0; i < location.length; i++) {
    const c = location.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) throw invalid('redirect Location contains whitespace, a control or a non-ASCII character');
    if (c === 0x5c) throw invalid('redirect Location contains a backslash');
  }
  const current = parseGuestUrl(request.url);
  let target: string;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location)) target = location; // absolute: checked as the guest's own URL would be
  else if (location.startsWith('//')) target = `${current.scheme}:${location}`;
  else {
    try {
      target = new URL(location, current.href).href;
    } catch {
      throw invalid('redirect Location does not parse');
    }
  }
  const next = parseGuestUrl(target);

  let method = request.method.toUpperCase();
  let body = request.body;
  let dropBody = false;
  if (response.status === 303 && method !== 'HEAD') {
    method = 'GET';
    dropBody = true;
  } else if ((response.status === 301 || response.status === 302) && method === 'POST') {
    method = 'GET';
    dropBody = true;
  }
  if (dropBody) body = undefined;
  const crossOrigin = next.origin !== current.origin;
  const headers = request.headers.filter(([k, v]) => {
    const lower = k.toLowerCase();
    if (dropBody && BODY_HEADERS.has(lower)) return false;
    if (crossOrigin && (CREDENTIAL_HEADERS.has(lower) || PLACEHOLDER_LIKE.test(v))) return false;
    return true;
  });
  return { method, url: next.href, headers, body };
}
