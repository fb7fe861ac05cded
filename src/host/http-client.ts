/**
 * The http effect: one hop of an outgoing request, through one undici Agent.
 * Order of a call: arguments (method, URL, headers, body, caps), secrets
 * (placeholders, values that may not leave), DNS and `checkAddress` on every
 * answer, the request pinned to the checked address, the response read up to
 * its caps, decoded, and scrubbed of secret values. Nothing reaches the
 * network before every check has passed. See docs/host.md.
 * @module
 */
import dns from 'node:dns';
import { isIP } from 'node:net';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import type { Agent, buildConnector } from 'undici';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { Decision, Header } from '../host-call.ts';
import { askGate, denialError } from './guest-error.ts';
import { DEFAULT_HTTP_LIMITS, resolveLimits, type HttpLimits } from './limits.ts';
import { parseGuestUrl, type GuestUrl } from './http-url.ts';
import { embeddedIPv4, neverRoutable, type CheckAddress } from './http-address.ts';
import {
  DROPPED_RESPONSE_HEADERS,
  PLACEHOLDER,
  PLACEHOLDER_LIKE,
  checkMethod,
  checkRequestHeaders,
  headerBytes,
  placeholderNames,
} from './http-headers.ts';
import type { HttpRequest } from './http-redirect.ts';
import type { SecretStore } from './secret-store.ts';
import { percentDecodeLenient, type Redaction } from './secret-scan.ts';

/** A DNS resolver with the shape of `dns.promises.lookup(host, { all: true, verbatim: true })`. */
export type LookupFn = (hostname: string, options: { all: true; verbatim: true }) => Promise<readonly { address: string; family: number }[]>;

/** The gate's answer to "may secret `name` go to `url`" (the policy's binding), for placeholders and values found in a request. */
export type MayUse = (name: string, url: string) => Decision | Promise<Decision>;

export interface HttpClientOptions {
  /** Resolver (default `dns.promises.lookup`). */
  lookup?: LookupFn;
  /** TLS and socket options for every connection (for example `ca`). `rejectUnauthorized: false` is refused. */
  connect?: buildConnector.BuildOptions;
  /** Called before every dial with the IP and port; throwing refuses the connection. For audit, metrics and tests. */
  onConnect?: (address: string, port: number) => void;
  /** Default caps; a call's own `limits` override them. */
  limits?: Partial<HttpLimits>;
  /** How long an idle connection is kept for reuse (default 4 s). */
  keepAliveTimeoutMs?: number;
}

/** What the gate passes with each hop. */
export interface HttpCallContext {
  /** Decides every address the destination resolves to (and every IPv4 address embedded in an IPv6 one). */
  checkAddress: CheckAddress;
  /** Decides whether a secret may go to the hop's URL. Without it no placeholder is filled and no value may leave. */
  mayUse?: MayUse | undefined;
  /** The secrets: placeholders are filled from it, and its values are searched for in the request and response. */
  secrets?: SecretStore | undefined;
  /** Caps for this hop. */
  limits?: Partial<HttpLimits> | undefined;
  /** Time left for this hop (the gate passes what remains of the call's deadline); default `limits.timeoutMs`. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** One hop's response, shaped for the WIT `response`, plus what the audit needs. */
export interface HttpResult {
  status: number;
  headers: Header[];
  body: Uint8Array;
  /** The address the connection went to. */
  address: string;
  family: 4 | 6;
  /** Secrets filled into placeholders, by name. */
  secretsUsed: string[];
  /** Secret values found in the response and replaced by `[REDACTED:NAME]`. */
  redactions: Redaction[];
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);
const brotli = promisify(zlib.brotliDecompress);

const NON_ASCII = /[\u0080-\uffff]/;

const leak = (message: string): AuthorityError => new AuthorityError(ErrorCode.SECRET_LEAK, message);

/**
 * The http effect. One instance (one connection pool) serves every call.
 *
 * @example
 * ```ts
 * import { loadPolicy } from '../policy/index.ts';
 * import { HttpClient, SecretStore } from './index.ts';
 * const { policy } = loadPolicy({ version: '1.0', net: { connect: ['https://api.example.com'] }, secrets: { API_KEY: { hosts: ['api.example.com'] } } });
 * const secrets = new SecretStore({ API_KEY: 'a-key-of-at-least-8-bytes' });
 * const url = 'https://api.example.com/v1';
 * const http = new HttpClient();
 * const res = await http.fetch(
 *   { method: 'GET', url, headers: [['authorization', 'Bearer {{secret:API_KEY}}']] },
 *   {
 *     checkAddress: (address) => policy.decideAddress(url, address),
 *     mayUse: (name, hopUrl) => policy.decide({ op: 'secrets.use', name, url: hopUrl }),
 *     secrets,
 *   },
 * );
 * ```
 */
export class HttpClient {
  /** undici loads on the first request: a runtime whose tools never fetch (and every CLI command that runs none) never pays for it. */
  #agent: Promise<Agent> | undefined;
  readonly #makeAgent: () => Promise<Agent>;
  #closed = false;
  readonly #lookup: LookupFn;
  readonly #limits: HttpLimits;

  constructor(options: HttpClientOptions = {}) {
    if ((options.connect as { rejectUnauthorized?: unknown } | undefined)?.rejectUnauthorized === false || options.connect?.socketPath != null) {
      throw new AuthorityError(ErrorCode.CONFIG, 'the http client never turns TLS verification off (pass a `ca` instead) and never dials a unix socket');
    }
    this.#limits = resolveLimits(DEFAULT_HTTP_LIMITS, options.limits, 'http');
    this.#lookup = options.lookup ?? ((host, opts) => dns.promises.lookup(host, opts));
    const limits = this.#limits;
    this.#makeAgent = async () => {
      const { Agent, buildConnector } = await import('undici');
      const base = buildConnector({ ...(options.connect ?? {}), allowH2: false } as buildConnector.BuildOptions);
      const onConnect = options.onConnect;
      // Every origin the agent sees is the checked IP literal; refusing names here means undici can never resolve one itself.
      const connector: buildConnector.connector = (opts, callback) => {
        if (isIP(opts.hostname) === 0) {
          callback(new AuthorityError(ErrorCode.INTERNAL, 'refusing to dial a host name: only checked addresses are dialled'), null);
          return;
        }
        const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
        try {
          onConnect?.(opts.hostname, port);
        } catch (err) {
          callback(err instanceof Error ? err : new Error(String(err)), null);
          return;
        }
        base(opts, callback);
      };
      return new Agent({
        connect: connector,
        allowH2: false,
        // Our own deadline covers connect, headers and body; the parser's cap is a backstop above the largest per-call cap.
        headersTimeout: 0,
        bodyTimeout: 0,
        maxHeaderSize: Math.max(16 * 1024, limits.headerBytes + 4 * limits.headerCount + 1024),
        keepAliveTimeout: options.keepAliveTimeoutMs ?? 4000,
      });
    };
  }

  /**
   * Perform one hop. A 3xx is returned as it is (see `nextHop`). Throws an
   * AuthorityError: `invalid` for bad arguments, `denied` for an address or a
   * secret the gate refused, `too-large`, `timeout`, `io`.
   */
  async fetch(request: HttpRequest, ctx: HttpCallContext): Promise<HttpResult> {
    if (ctx === null || typeof ctx !== 'object' || typeof ctx.checkAddress !== 'function') {
      throw new AuthorityError(ErrorCode.POLICY_DENY, 'no address check for this request');
    }
    const limits = resolveLimits(this.#limits, ctx.limits, 'http');
    const timeoutMs = Math.max(0, Math.min(ctx.timeoutMs ?? limits.timeoutMs, limits.timeoutMs));
    const ac = new AbortController();
    // Built only when needed: an Error captures a stack, which costs more than the rest of a check.
    const timeoutError = (): AuthorityError => new AuthorityError(ErrorCode.TIMEOUT, `no complete response within ${timeoutMs} ms`);
    const timer = setTimeout(() => ac.abort(timeoutError()), timeoutMs);
    const onAbort = (): void => ac.abort(ctx.signal?.reason instanceof AuthorityError ? ctx.signal.reason : timeoutError());
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal?.aborted === true) onAbort();
    try {
      const method = checkMethod(request?.method);
      const target = parseGuestUrl(request.url, limits.urlLength);
      const headers = checkRequestHeaders(request.headers, limits);
      const body = checkBody(request.body, method, limits);
      const { sendHeaders, secretsUsed } = await guardSecrets(target, headers, body, ctx, limits);
      const { address, family } = await abortable(this.#resolve(target, ctx.checkAddress), ac.signal);
      return await this.#send(target, method, sendHeaders, body, address, family, ctx, limits, ac, secretsUsed);
    } catch (err) {
      throw mapError(err, ac.signal);
    } finally {
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The agent, made on first use; one made after close() is closed too, so the call is refused as before. */
  #getAgent(): Promise<Agent> {
    if (this.#agent === undefined) {
      const made = this.#makeAgent();
      this.#agent = this.#closed ? made.then(async (a) => (await a.close(), a)) : made;
    }
    return this.#agent;
  }

  /** Close idle connections and refuse new calls. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#agent !== undefined) await (await this.#agent).close();
  }

  /**
   * Resolve once, ask the gate about every answer (and every embedded IPv4),
   * deny if any is denied, and return the first answer: the only address the
   * connection will use.
   */
  async #resolve(target: GuestUrl, checkAddress: CheckAddress): Promise<{ address: string; family: 4 | 6 }> {
    let answers: readonly { address: string; family: number }[];
    if (target.ipFamily !== 0) {
      answers = [{ address: target.hostname, family: target.ipFamily }];
    } else {
      try {
        answers = await this.#lookup(target.hostname, { all: true, verbatim: true });
      } catch (err) {
        throw new AuthorityError(ErrorCode.IO, `cannot resolve ${target.hostname}`, { data: { host: target.hostname }, cause: err });
      }
      if (!Array.isArray(answers) || answers.length === 0) throw new AuthorityError(ErrorCode.IO, `${target.hostname} has no address`);
    }
    const where = { hostname: target.hostname, port: target.port, scheme: target.scheme } as const;
    for (const answer of answers) {
      const family = isIP(answer?.address ?? '');
      if (family === 0 || family !== answer.family) throw new AuthorityError(ErrorCode.IO, `${target.hostname} resolved to something that is not an address`);
      const checks: [string, 4 | 6][] = [[answer.address, family as 4 | 6]];
      if (family === 6) for (const v4 of embeddedIPv4(answer.address)) checks.push([v4, 4]);
      for (const [address, fam] of checks) {
        const never = neverRoutable(address, fam);
        if (never !== undefined) throw new AuthorityError(ErrorCode.POLICY_DENY, `${target.hostname} resolves to ${never}`, { data: { host: target.hostname } });
        const d = await askGate(() => checkAddress(address, fam, where), 'checkAddress');
        if (!d.allow) throw denialError(d);
      }
    }
    const first = answers[0] as { address: string; family: number };
    return { address: first.address, family: first.family === 6 ? 6 : 4 };
  }

  async #send(
    target: GuestUrl,
    method: string,
    headers: Header[],
    body: Uint8Array | undefined,
    address: string,
    family: 4 | 6,
    ctx: HttpCallContext,
    limits: HttpLimits,
    ac: AbortController,
    secretsUsed: string[],
  ): Promise<HttpResult> {
    // Dial the checked IP; Host (and so TLS SNI and certificate verification) carry the name.
    const ipHost = family === 6 ? `[${address}]` : address;
    const defaultPort = target.scheme === 'https' ? 443 : 80;
    const origin = `${target.scheme}://${ipHost}${target.port === defaultPort ? '' : `:${target.port}`}`;
    const flat: string[] = ['host', target.hostHeader, 'accept-encoding', 'identity'];
    for (const [k, v] of headers) flat.push(k, v);
    const res = await (await this.#getAgent()).request({
      origin,
      path: target.pathAndQuery,
      method: method as 'GET',
      headers: flat,
      body: body === undefined ? null : body,
      signal: ac.signal,
      servername: target.ipFamily === 0 ? target.hostname : undefined,
    } as Parameters<Agent['request']>[0]);

    // Stop reading at once: abort the request, which destroys the socket, so nothing more is buffered.
    const drop = (err: AuthorityError): AuthorityError => {
      res.body.on('error', () => undefined);
      ac.abort(err);
      res.body.destroy(err);
      return err;
    };
    const rawHeaders = flattenHeaders(res.headers);
    if (rawHeaders.length > limits.headerCount) {
      throw drop(new AuthorityError(ErrorCode.TOO_LARGE, `response has ${rawHeaders.length} headers; the cap is ${limits.headerCount}`));
    }
    if (headerBytes(rawHeaders) > limits.headerBytes) {
      throw drop(new AuthorityError(ErrorCode.TOO_LARGE, `response headers exceed the cap of ${limits.headerBytes} bytes`));
    }
    const cap = limits.responseBodyBytes;
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > cap) throw drop(bodyTooLarge(cap));
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > cap) throw drop(bodyTooLarge(cap));
      chunks.push(chunk);
    }
    let bytes: Uint8Array = Buffer.concat(chunks, total);
    let modified = false;
    const encoding = headerValue(rawHeaders, 'content-encoding')?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity' && bytes.length > 0) {
      bytes = await decode(encoding, bytes, cap);
      modified = true;
    }

    const redactions: Redaction[] = [];
    const scanner = ctx.secrets?.scanner;
    if (scanner !== undefined && scanner.size > 0) {
      const r = scanner.redactBytes(bytes, 'body');
      if (r.redactions.length > 0) {
        bytes = r.bytes;
        modified = true;
        redactions.push(...r.redactions);
      }
    }
    const out: Header[] = [];
    for (const [k, v] of rawHeaders) {
      if (DROPPED_RESPONSE_HEADERS.has(k) || k.startsWith('proxy-')) continue;
      if (modified && (k === 'content-length' || k === 'content-encoding')) continue;
      if (scanner !== undefined && scanner.size > 0) {
        const r = scanner.redactText(v, `header:${k}`);
        redactions.push(...r.redactions);
        out.push([k, r.text]);
      } else {
        out.push([k, v]);
      }
    }
    return { status: res.statusCode, headers: out, body: bytes, address, family, secretsUsed, redactions: mergeRedactions(redactions) };
  }
}

function checkBody(body: unknown, method: string, limits: HttpLimits): Uint8Array | undefined {
  if (body === undefined || body === null) return undefined;
  if (!(body instanceof Uint8Array)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'body must be bytes', { data: { at: 'body' } });
  if (method === 'HEAD' && body.byteLength > 0) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'a HEAD request has no body', { data: { at: 'body' } });
  if (body.byteLength > limits.requestBodyBytes) {
    throw new AuthorityError(ErrorCode.TOO_LARGE, `request body exceeds the cap of ${limits.requestBodyBytes} bytes`, { data: { at: 'body' } });
  }
  return body;
}

/**
 * Refuse a placeholder outside a header value and a secret's value going
 * where it is not bound; fill the header placeholders the gate allows for this
 * hop's URL. Runs before any DNS query or connection.
 */
async function guardSecrets(
  target: GuestUrl,
  headers: Header[],
  body: Uint8Array | undefined,
  ctx: HttpCallContext,
  limits: HttpLimits,
): Promise<{ sendHeaders: Header[]; secretsUsed: string[] }> {
  const href = target.href;
  const decodedHrefBytes = percentDecodeLenient(Buffer.from(href, 'latin1'));
  const decodedHref = Buffer.from(decodedHrefBytes).toString('latin1');
  if (PLACEHOLDER_LIKE.test(href) || PLACEHOLDER_LIKE.test(decodedHref)) {
    throw leak('a {{secret:...}} placeholder is filled in only in a header value, never in the URL');
  }
  if (body !== undefined && body.length > 0) {
    const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1');
    if (PLACEHOLDER_LIKE.test(text) || (text.includes('%') && PLACEHOLDER_LIKE.test(Buffer.from(percentDecodeLenient(body)).toString('latin1')))) {
      throw leak('a {{secret:...}} placeholder is filled in only in a header value, never in the body');
    }
  }

  const may = async (name: string): Promise<Decision> =>
    ctx.mayUse === undefined
      ? { allow: false, code: ErrorCode.SECRET_LEAK, reason: 'no secret binding was given for this request' }
      : askGate(() => (ctx.mayUse as MayUse)(name, href), 'mayUse');

  // Values the guest wrote itself (it read them with secrets.get): allowed only where the secret is bound.
  const store = ctx.secrets;
  if (store !== undefined && store.size > 0) {
    const scanner = store.scanner;
    const found = new Set<string>(scanner.findText(href));
    if (decodedHref !== href) for (const n of scanner.findBytes(decodedHrefBytes)) found.add(n);
    for (const [, v] of headers) {
      for (const n of scanner.findText(v)) found.add(n);
      // A header value is latin-1 on the wire: also look at its bytes, which differ from its UTF-8 only beyond ASCII.
      if (NON_ASCII.test(v)) for (const n of scanner.findBytes(Buffer.from(v, 'latin1'))) found.add(n);
    }
    if (body !== undefined && body.length > 0) {
      for (const n of scanner.findBytes(body)) found.add(n);
      const decoded = percentDecodeLenient(body);
      if (decoded !== body) for (const n of scanner.findBytes(decoded)) found.add(n);
    }
    for (const name of found) {
      const d = await may(name);
      if (!d.allow) throw leak(`the request carries the value of secret ${name}, which is not bound to ${target.hostname}`);
    }
  }

  const secretsUsed = new Set<string>();
  const sendHeaders: Header[] = [];
  for (const [k, v] of headers) {
    const names = placeholderNames(v);
    if (names.length === 0) {
      sendHeaders.push([k, v]);
      continue;
    }
    for (const name of names) {
      const d = await may(name);
      if (!d.allow) throw denialError(d, ErrorCode.SECRET_LEAK);
    }
    const filled = v.replace(PLACEHOLDER, (_whole, name: string) => {
      if (store === undefined) throw new AuthorityError(ErrorCode.NOT_FOUND, `secret ${name} is not defined`);
      secretsUsed.add(name);
      return store.get(name);
    });
    if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(filled)) {
      throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `header ${k}: a secret value cannot be carried in a header`, { data: { at: 'headers' } });
    }
    sendHeaders.push([k, filled]);
  }
  if (headerBytes(sendHeaders) > limits.headerBytes) {
    throw new AuthorityError(ErrorCode.TOO_LARGE, `request headers exceed the cap of ${limits.headerBytes} bytes`, { data: { at: 'headers' } });
  }
  return { sendHeaders, secretsUsed: [...secretsUsed] };
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Header[] {
  const out: Header[] = [];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) out.push([k, one]);
    else out.push([k, v]);
  }
  return out;
}

function headerValue(headers: readonly Header[], name: string): string | undefined {
  const values = headers.filter(([k]) => k === name).map(([, v]) => v);
  return values.length === 0 ? undefined : values.join(', ');
}

const bodyTooLarge = (cap: number): AuthorityError => new AuthorityError(ErrorCode.TOO_LARGE, `response body exceeds the cap of ${cap} bytes`);

/** Undo a content coding the server applied anyway, capped like the body itself (a small bomb stays small). */
async function decode(encoding: string, bytes: Uint8Array, cap: number): Promise<Uint8Array> {
  const opts = { maxOutputLength: Math.max(1, cap) };
  try {
    switch (encoding) {
      case 'gzip':
      case 'x-gzip':
        return await gunzip(bytes, opts);
      case 'deflate':
        try {
          return await inflate(bytes, opts);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw err;
          return await inflateRaw(bytes, opts);
        }
      case 'br':
        return await brotli(bytes, opts);
      default:
        throw new AuthorityError(ErrorCode.IO, `response has an unsupported content-encoding "${encoding.slice(0, 40)}"`);
    }
  } catch (err) {
    if (err instanceof AuthorityError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bodyTooLarge(cap);
    throw new AuthorityError(ErrorCode.IO, `response body is not valid ${encoding}`, { cause: err });
  }
}

function mergeRedactions(list: Redaction[]): Redaction[] {
  const m = new Map<string, Redaction>();
  for (const r of list) {
    const key = `${r.name}\0${r.where}`;
    const prev = m.get(key);
    m.set(key, prev === undefined ? r : { ...prev, count: prev.count + r.count });
  }
  return [...m.values()];
}

/** Race a promise with the deadline, so a slow resolver cannot outlive the call. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/;

/** Map whatever undici, DNS or the socket threw to a typed error, preferring the reason the call was aborted for. */
function mapError(err: unknown, signal: AbortSignal): AuthorityError {
  if (signal.aborted && signal.reason instanceof AuthorityError) return signal.reason;
  if (err instanceof AuthorityError) return err;
  const code = (err as { code?: unknown })?.code;
  const c = typeof code === 'string' ? code : '';
  switch (c) {
    case 'UND_ERR_HEADERS_OVERFLOW':
      return new AuthorityError(ErrorCode.TOO_LARGE, 'response headers exceed the cap', { cause: err });
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return new AuthorityError(ErrorCode.TOO_LARGE, 'response body exceeds the cap', { cause: err });
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ETIMEDOUT':
      return new AuthorityError(ErrorCode.TIMEOUT, 'the request timed out', { cause: err });
    case 'ECONNREFUSED':
      return new AuthorityError(ErrorCode.IO, 'connection refused', { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return new AuthorityError(ErrorCode.IO, 'connection closed by the server', { cause: err });
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
      return new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'the request cannot be sent as given', { cause: err });
    default:
      if (TLS_CODES.test(c)) return new AuthorityError(ErrorCode.IO, `TLS verification failed (${c})`, { cause: err });
      return new AuthorityError(ErrorCode.IO, c === '' ? 'the request failed' : `the request failed (${c})`, { cause: err });
  }
}
