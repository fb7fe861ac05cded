/**
 * Request methods and headers a guest may send, header caps, and the
 * `{{secret:NAME}}` placeholder syntax.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import { SECRET_PLACEHOLDER, SECRET_PLACEHOLDER_LIKE, type Header } from '../host-call.ts';
import type { HttpLimits } from './limits.ts';
import { SECRET_NAME } from './secret-store.ts';

/** The methods a tool may use (WIT `request.method`). CONNECT, TRACE and anything else are refused. */
export const ALLOWED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * Headers a guest may not set: the host writes `host` and `content-length`
 * itself, hop-by-hop headers describe a connection the guest does not own, and
 * `expect` would stall the one-shot request. Any of them is `invalid`.
 */
export const FORBIDDEN_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'expect',
]);

/** Headers the host sets itself; a guest's value is dropped (the host reads bodies it can scan). */
export const HOST_MANAGED_REQUEST_HEADERS: ReadonlySet<string> = new Set(['accept-encoding']);

/**
 * Response headers never handed to the guest: cookies (session credentials
 * the server may mint from a secret the guest must not hold) and hop-by-hop
 * headers (they describe the host's connection, not the resource).
 */
export const DROPPED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'set-cookie',
  'set-cookie2',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'proxy-authenticate',
]);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, space, tab and obs-text (latin-1). No CR, LF, NUL or other controls.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A placeholder, and anything that looks like the start of one (one spelling, in host-call.ts). */
export const PLACEHOLDER = SECRET_PLACEHOLDER;
export const PLACEHOLDER_LIKE = SECRET_PLACEHOLDER_LIKE;

const invalid = (message: string, at: string): AuthorityError => new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: { at } });

/** A method token from the allowed set; lower case is accepted and normalised. */
export function checkMethod(method: unknown): string {
  if (typeof method !== 'string' || !TOKEN.test(method)) throw invalid('method is not an HTTP token', 'method');
  const upper = method.toUpperCase();
  if (!ALLOWED_METHODS.has(upper)) throw invalid(`method ${method.slice(0, 32)} is not allowed (${[...ALLOWED_METHODS].join(', ')})`, 'method');
  return upper;
}

/** Bytes a header list takes against the `headerBytes` cap: names plus values. */
export function headerBytes(headers: readonly Header[]): number {
  let n = 0;
  for (const [k, v] of headers) n += Buffer.byteLength(k, 'latin1') + Buffer.byteLength(v, 'latin1');
  return n;
}

/**
 * Validate the guest's headers: shape, token names, values without CR/LF/NUL
 * (header injection), forbidden names, well-formed placeholders, caps.
 * Returns the headers to send, host-managed ones removed.
 */
export function checkRequestHeaders(headers: unknown, limits: HttpLimits): Header[] {
  if (!Array.isArray(headers)) throw invalid('headers must be a list of [name, value]', 'headers');
  if (headers.length > limits.headerCount) {
    throw new AuthorityError(ErrorCode.TOO_LARGE, `request has ${headers.length} headers; the cap is ${limits.headerCount}`, { data: { at: 'headers' } });
  }
  const out: Header[] = [];
  headers.forEach((h: unknown, i) => {
    const at = `headers[${i}]`;
    if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string' || typeof h[1] !== 'string') throw invalid('a header must be [name, value] strings', at);
    const [name, value] = h as [string, string];
    if (!TOKEN.test(name)) throw invalid('header name is not an HTTP token', at);
    if (!FIELD_VALUE.test(value)) throw invalid(`header ${name} has a value with CR, LF, NUL or another control character`, at);
    const lower = name.toLowerCase();
    if (FORBIDDEN_REQUEST_HEADERS.has(lower) || lower.startsWith('proxy-')) throw invalid(`header ${name} may not be set by a tool`, at);
    checkPlaceholders(value, at);
    if (!HOST_MANAGED_REQUEST_HEADERS.has(lower)) out.push([name, value]);
  });
  if (headerBytes(out) > limits.headerBytes) {
    throw new AuthorityError(ErrorCode.TOO_LARGE, `request headers exceed the cap of ${limits.headerBytes} bytes`, { data: { at: 'headers' } });
  }
  return out;
}

/** Every placeholder-like sequence in a header value must be exactly `{{secret:NAME}}` with a valid name. */
function checkPlaceholders(value: string, at: string): void {
  if (!PLACEHOLDER_LIKE.test(value)) return;
  const rest = value.replace(PLACEHOLDER, (whole, name: string) => (SECRET_NAME.test(name) ? '' : whole));
  if (PLACEHOLDER_LIKE.test(rest)) throw invalid('malformed secret placeholder; the form is {{secret:NAME}}', at);
}

/** Names of the placeholders in a header value, in order. */
export function placeholderNames(value: string): string[] {
  return [...value.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
}
