/**
 * The reference model of one http hop's effect, from docs/host.md, the WIT
 * and the header rules it promises: what the host must refuse before it
 * dials (method, URL, headers, body, placeholders, secret values), the
 * address check on what the name resolves to, the dial guard, and what it
 * hands the guest back from the canary (caps, decoding, cookies, redaction,
 * redirects).
 * @module
 */
import { gunzipSync } from 'node:zlib';
import type { CanaryRequest, CanaryResponse, Header } from './canary.ts';
import { decideAddress, type ModelPolicy } from './model.ts';
import { guestUrlRefusal, parseModelIp, type ModelUrl } from './model-net.ts';

export interface HttpEnv {
  /** Secret values the store holds, by name. */
  readonly secrets: Readonly<Record<string, string>>;
  /** The fuzzer's resolver: addresses for a name, or `fail`. */
  resolve(host: string): readonly string[] | 'fail';
  /** The dial guard: only the canary's address and port go through. */
  dialable(address: string, port: number): boolean;
  /** The canary's answer to a request. */
  respond(req: CanaryRequest): CanaryResponse;
}

/** Whether a secret may go to a URL: the capability stage (secrets `use`) and the policy binding. */
export type MayUse = (name: string, href: string) => { allow: true } | { allow: false; code: string };

export type HopOutcome =
  | { kind: 'error'; tag: string; code?: string | undefined; why: string; sent?: CanaryRequest | undefined }
  | { kind: 'response'; status: number; headers: Header[]; body: Buffer; sent: CanaryRequest; address: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const FORBIDDEN = new Set(['host', 'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length', 'expect']);
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const HOST_SECRET = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const PLACEHOLDER = /\{\{secret:([^{}]*)\}\}/g;
const PLACEHOLDER_LIKE = /\{\{\s*secret\s*:/i;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const DROPPED = new Set(['set-cookie', 'set-cookie2', 'connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'proxy-authenticate']);
const HEADER_COUNT = 64;
const HEADER_BYTES = 16 * 1024;

const err = (tag: string, why: string, code?: string, sent?: CanaryRequest): HopOutcome => ({ kind: 'error', tag, code, why, sent });

/** Decode `%XX` and keep everything else (latin-1 in, bytes out). */
function percentDecode(bytes: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (b === 0x25 && i + 2 < bytes.length) {
      const h = parseInt(String.fromCharCode(bytes[i + 1] as number, bytes[i + 2] as number), 16);
      if (/^[0-9a-fA-F]{2}$/.test(String.fromCharCode(bytes[i + 1] as number, bytes[i + 2] as number))) {
        out.push(h);
        i += 2;
        continue;
      }
    }
    out.push(b);
  }
  return Buffer.from(out);
}

const latin1Len = (s: string): number => Buffer.byteLength(s, 'latin1');
const headerBytes = (h: readonly Header[]): number => h.reduce((n, [k, v]) => n + latin1Len(k) + latin1Len(v), 0);

/** A value as it is written raw, and as it is written inside a JSON string. */
function spellings(value: string): string[] {
  const escaped = JSON.stringify(value).slice(1, -1);
  return escaped === value ? [value] : [value, escaped];
}

/** Names of the secrets whose values occur in `bytes` (raw or JSON-escaped). */
function found(env: HttpEnv, bytes: Buffer): string[] {
  return Object.entries(env.secrets)
    .filter(([, v]) => spellings(v).some((sp) => bytes.includes(Buffer.from(sp, 'utf8'))))
    .map(([k]) => k);
}

/** The URL checks the host makes on the href it is handed. */
function hostUrl(href: string): { ok: true; hostname: string; family: 0 | 4 | 6; port: number; path: string; origin: string } | { ok: false } {
  for (let i = 0; i < href.length; i++) {
    const c = href.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c === 0x5c) return { ok: false };
  }
  let u: URL;
  try {
    u = new URL(href);
  } catch {
    return { ok: false };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { ok: false };
  const authority = href.slice(u.protocol.length + 2).split(/[/?#]/, 1)[0] as string;
  if (authority === '' || authority.includes('@') || authority.includes('%') || /[^\x21-\x7e]/.test(authority)) return { ok: false };
  let hostname = u.hostname;
  let family: 0 | 4 | 6 = 0;
  if (hostname.startsWith('[')) {
    hostname = hostname.slice(1, -1);
    family = 6;
  } else if (/^\d+\.\d+\.\d+\.\d+$/.test(hostname)) family = 4;
  else if (hostname.endsWith('.') || hostname.length > 253 || !hostname.split('.').every((l) => LABEL.test(l))) return { ok: false };
  const port = u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
  if (port < 1 || port > 65535) return { ok: false };
  const hostText = family === 6 ? `[${hostname}]` : hostname;
  return { ok: true, hostname, family, port, path: `${u.pathname}${u.search}`, origin: `${u.protocol}//${hostText}${u.port === '' ? '' : `:${port}`}` };
}

/** IPv4 addresses an IPv6 one carries (mapped, compatible, SIIT, NAT64, 6to4, Teredo), which are checked too. */
function embeddedV4(address: string): string[] {
  const ip = parseModelIp(address);
  if (ip === undefined || ip.v !== 6) return [];
  const n = ip.n;
  const h = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zero = (a: number, b: number): boolean => h.slice(a, b).every((x) => x === 0);
  const out: string[] = [];
  if (zero(0, 5) && h[5] === 0xffff) out.push(v4(h[6] as number, h[7] as number));
  if (zero(0, 6) && !(h[6] === 0 && (h[7] === 0 || h[7] === 1))) out.push(v4(h[6] as number, h[7] as number));
  if (zero(0, 4) && h[4] === 0xffff && h[5] === 0) out.push(v4(h[6] as number, h[7] as number));
  if (h[0] === 0x64 && h[1] === 0xff9b && (zero(2, 6) || (h[2] === 1 && zero(3, 6)))) out.push(v4(h[6] as number, h[7] as number));
  if (h[0] === 0x2002) out.push(v4(h[1] as number, h[2] as number));
  if (h[0] === 0x2001 && h[1] === 0) out.push(v4(h[2] as number, h[3] as number), v4((h[6] as number) ^ 0xffff, (h[7] as number) ^ 0xffff));
  return [...new Set(out)];
}

function neverRoutable(address: string): boolean {
  const ip = parseModelIp(address);
  if (ip === undefined) return true;
  if (ip.v === 4) {
    const a = Number(ip.n >> 24n);
    return a === 0 || a >= 224;
  }
  return ip.n === 0n || ip.n >> 120n === 0xffn;
}

/** A hop's request as the guest (or the previous hop) made it; `url` is the gate's canonical href. */
export interface HopRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: readonly Header[];
  readonly body?: Uint8Array | undefined;
}

/**
 * One hop, in the host's order: arguments, secrets, address, dial, response.
 * `u` is the model's view of the same URL (for the address rule).
 */
export function predictHop(p: ModelPolicy, env: HttpEnv, mayUse: MayUse, req: HopRequest, u: ModelUrl, responseCap: number): HopOutcome {
  const method = req.method.toUpperCase();
  if (!TOKEN.test(req.method) || !METHODS.has(method)) return err('invalid', 'method');
  const url = hostUrl(req.url);
  if (!url.ok) return err('invalid', 'url');
  if (req.headers.length > HEADER_COUNT) return err('too-large', 'header count');
  const kept: Header[] = [];
  for (const [name, value] of req.headers) {
    if (!TOKEN.test(name)) return err('invalid', 'header name');
    if (!FIELD_VALUE.test(value)) return err('invalid', 'header value');
    const lower = name.toLowerCase();
    if (FORBIDDEN.has(lower) || lower.startsWith('proxy-')) return err('invalid', 'forbidden header');
    if (PLACEHOLDER_LIKE.test(value) && PLACEHOLDER_LIKE.test(value.replace(PLACEHOLDER, (whole, n: string) => (HOST_SECRET.test(n) ? '' : whole)))) {
      return err('invalid', 'malformed placeholder');
    }
    if (lower !== 'accept-encoding') kept.push([name, value]);
  }
  if (headerBytes(kept) > HEADER_BYTES) return err('too-large', 'header bytes');
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  if (body !== undefined) {
    if (method === 'HEAD' && body.length > 0) return err('invalid', 'HEAD with a body');
    if (body.length > p.caps.httpRequestBytes) return err('too-large', 'request body');
  }

  // Secrets: placeholders only in header values; values only where bound. The host drops the fragment first.
  const noFragment = new URL(req.url);
  if (noFragment.hash !== '' || noFragment.href.endsWith('#')) noFragment.hash = '';
  const href = noFragment.href;
  const decodedHref = percentDecode(Buffer.from(href, 'latin1'));
  if (PLACEHOLDER_LIKE.test(href) || PLACEHOLDER_LIKE.test(decodedHref.toString('latin1'))) return err('denied', 'placeholder in url', 'E_SECRET_LEAK');
  if (body !== undefined && body.length > 0) {
    const t = body.toString('latin1');
    if (PLACEHOLDER_LIKE.test(t) || (t.includes('%') && PLACEHOLDER_LIKE.test(percentDecode(body).toString('latin1')))) return err('denied', 'placeholder in body', 'E_SECRET_LEAK');
  }
  const seen = new Set<string>();
  for (const n of found(env, Buffer.from(href, 'utf8'))) seen.add(n);
  for (const n of found(env, decodedHref)) seen.add(n);
  for (const [, v] of kept) {
    for (const n of found(env, Buffer.from(v, 'utf8'))) seen.add(n);
    if (/[\u0080-\uffff]/.test(v)) for (const n of found(env, Buffer.from(v, 'latin1'))) seen.add(n);
  }
  if (body !== undefined && body.length > 0) {
    for (const n of found(env, body)) seen.add(n);
    for (const n of found(env, percentDecode(body))) seen.add(n);
  }
  for (const name of seen) if (!mayUse(name, href).allow) return err('denied', `value of ${name} unbound`, 'E_SECRET_LEAK');
  const send: Header[] = [];
  for (const [k, v] of kept) {
    const names = [...v.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
    for (const name of names) {
      const d = mayUse(name, href);
      if (!d.allow) return d.code === 'E_INVALID_ARGUMENT' ? err('invalid', `placeholder ${name}`) : err('denied', `placeholder ${name}`, d.code);
    }
    let missing = false;
    const filled = v.replace(PLACEHOLDER, (_w, name: string) => {
      const value = env.secrets[name];
      if (value === undefined) missing = true;
      return value ?? '';
    });
    if (missing) return err('not-found', 'secret not defined');
    if (!FIELD_VALUE.test(filled)) return err('invalid', 'secret value not a header value');
    send.push([k, filled]);
  }
  if (headerBytes(send) > HEADER_BYTES) return err('too-large', 'filled header bytes');

  // Address: every answer (and every IPv4 address an IPv6 one carries) must pass.
  let answers: readonly string[];
  if (url.family !== 0) answers = [url.hostname];
  else {
    const r = env.resolve(url.hostname);
    if (r === 'fail' || r.length === 0) return err('io', 'resolve');
    answers = r;
  }
  for (const a of answers) {
    for (const addr of [a, ...embeddedV4(a)]) {
      if (neverRoutable(addr)) return err('denied', 'never routable', 'E_POLICY_DENY');
      const ip = parseModelIp(addr);
      if (ip === undefined || !decideAddress(p, u, ip)) return err('denied', `address ${addr}`, 'E_POLICY_DENY');
    }
  }
  const address = answers[0] as string;
  if (!env.dialable(address, url.port)) return err('io', 'dial refused');

  const sent: CanaryRequest = {
    method,
    path: url.path,
    headers: [
      ['host', url.origin.slice(url.origin.indexOf('//') + 2)],
      ['accept-encoding', 'identity'],
      // The server's parser drops a value's leading and trailing spaces and tabs (HTTP's optional whitespace).
      ...send.map(([k, v]): Header => [k.toLowerCase(), v.replace(/^[ \t]+|[ \t]+$/g, '')]),
    ],
    body: body ?? Buffer.alloc(0),
  };
  let res = env.respond(sent);
  // What the HTTP stack adds to every canary answer: content-length, connection, keep-alive.
  const received: Header[] = [...res.headers, ['content-length', String(res.body.length)], ['connection', 'keep-alive'], ['keep-alive', 'timeout=2']];
  if (received.length > HEADER_COUNT) return err('too-large', 'response header count', undefined, sent);
  if (headerBytes(received) > HEADER_BYTES) return err('too-large', 'response header bytes', undefined, sent);
  if (res.body.length > responseCap) return err('too-large', 'response body', undefined, sent);
  // A HEAD answer carries no body (its content-length still counts against the cap, above).
  if (method === 'HEAD') res = { ...res, body: Buffer.alloc(0) };
  let out = res.body;
  let modified = false;
  const encoding = received.filter(([k]) => k === 'content-encoding').map(([, v]) => v).join(', ').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity' && out.length > 0) {
    if (encoding !== 'gzip') return err('io', 'encoding', undefined, sent);
    try {
      out = gunzipSync(out, { maxOutputLength: Math.max(1, responseCap) });
    } catch {
      return err('too-large', 'decoded body', undefined, sent);
    }
    modified = true;
  }
  const redacted = redact(env, out);
  if (!redacted.equals(out)) modified = true;
  const headers: Header[] = [];
  for (const [k, v] of received) {
    if (DROPPED.has(k) || k.startsWith('proxy-')) continue;
    if (modified && (k === 'content-length' || k === 'content-encoding')) continue;
    headers.push([k, redactText(env, v)]);
  }
  return { kind: 'response', status: res.status, headers, body: redacted, sent, address };
}

/** Every secret value (raw or JSON-escaped) replaced by `[REDACTED:NAME]`. */
export function redact(env: HttpEnv, bytes: Buffer): Buffer {
  let text = bytes.toString('latin1');
  for (const [name, value] of Object.entries(env.secrets)) {
    for (const sp of spellings(value)) text = text.split(Buffer.from(sp, 'utf8').toString('latin1')).join(`[REDACTED:${name}]`);
  }
  return Buffer.from(text, 'latin1');
}

function redactText(env: HttpEnv, s: string): string {
  return redact(env, Buffer.from(s, 'utf8')).toString('utf8');
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const CREDENTIALS = new Set(['authorization', 'cookie', 'proxy-authorization']);
const BODY_HEADERS = new Set(['content-type', 'content-encoding', 'content-language', 'content-location', 'content-length']);

/** The next hop of a redirect (docs/host.md), `undefined` for a final response, or `invalid`. */
export function nextHop(req: HopRequest, status: number, headers: readonly Header[]): HopRequest | undefined | 'invalid' {
  if (!REDIRECTS.has(status)) return undefined;
  const locations = headers.filter(([k]) => k.toLowerCase() === 'location').map(([, v]) => v);
  if (locations.length === 0) return undefined;
  if (new Set(locations).size > 1) return 'invalid';
  const location = (locations[0] as string).trim();
  if (location === '' || /[^\x21-\x7e]|\\/.test(location)) return 'invalid';
  const current = hostUrl(req.url);
  if (!current.ok) return 'invalid';
  let target: string;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location)) target = location;
  else if (location.startsWith('//')) target = `${new URL(req.url).protocol}${location}`;
  else {
    try {
      target = new URL(location, req.url).href;
    } catch {
      return 'invalid';
    }
  }
  // The host checks a redirect's target as it checks a guest's own URL.
  if (guestUrlRefusal(target) !== undefined) return 'invalid';
  const u = new URL(target);
  if (u.hash !== '' || u.href.endsWith('#')) u.hash = '';
  const next = hostUrl(u.href);
  if (!next.ok) return 'invalid';
  let method = req.method.toUpperCase();
  let body = req.body;
  let dropBody = false;
  if (status === 303 && method !== 'HEAD') {
    method = 'GET';
    dropBody = true;
  } else if ((status === 301 || status === 302) && method === 'POST') {
    method = 'GET';
    dropBody = true;
  }
  if (dropBody) body = undefined;
  const cross = next.origin !== current.origin;
  const kept = req.headers.filter(([k, v]) => {
    const lower = k.toLowerCase();
    if (dropBody && BODY_HEADERS.has(lower)) return false;
    if (cross && (CREDENTIALS.has(lower) || PLACEHOLDER_LIKE.test(v))) return false;
    return true;
  });
  return { method, url: u.href, headers: kept, body };
}
