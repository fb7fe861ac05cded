/**
 * What each host operation is, in one table: how its arguments decode, what
 * capability and policy rule it needs, what limits count, what the audit log
 * may know of it, what an approver is shown, and its effect. The gate runs
 * the same stages for every operation and asks this table at each; adding an
 * operation is a row here, its effect in host/ and its import in the worker.
 * @module
 */
import { hashRequest, sha256Hex, type AuditDetail } from '../audit/index.ts';
import { checkCapability, type CapabilityRequest } from '../capability/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { HOST_OPS, placeholdersIn, type FsHostOp, type Header, type HostCall, type HostOp } from '../host-call.ts';
import { canonicalisePath, parseGuestUrl, resolvePathSync, type FsScope, type HttpRequest, type HttpResult } from '../host/index.ts';
import type { MeteredCall, Reservation, Usage } from '../limits/index.ts';
import { canonicaliseUrl, type CanonicalUrl, type Policy, type PolicyDecision } from '../policy/index.ts';
import type { GateDeps, RunContext } from './context.ts';

type FsPlain = Exclude<FsHostOp, 'fs.write'>;

/** A host call after stage 1: arguments checked, paths and URLs canonical. */
export type CanonicalCall =
  | {
      op: FsPlain;
      /** Lexically canonical (absolute, normalised, NFC). */
      path: string;
      /** `path` with symlinks resolved: what capability and policy decide on. */
      real: string;
      raw: HostCall;
    }
  | { op: 'fs.write'; path: string; real: string; data: Uint8Array; raw: HostCall }
  | { op: 'http.fetch'; method: string; url: CanonicalUrl; headers: Header[]; body: Uint8Array | undefined; placeholders: string[]; raw: HostCall }
  | { op: 'secrets.get'; name: string; raw: HostCall };

type FsCall = Extract<CanonicalCall, { real: string }>;
type PlainFsCall = Extract<CanonicalCall, { op: FsPlain }>;
type FetchCall = Extract<CanonicalCall, { op: 'http.fetch' }>;

/** What the audit log may know of a request: a hash of all of it, and a short detail that never holds data or a secret. */
export interface Facts {
  readonly hash: string;
  readonly detail: AuditDetail;
}

/** What an effect is given: the run, the call's policy snapshot and decision, its reservation, the host. */
export interface EffectEnv {
  readonly ctx: RunContext;
  readonly policy: Policy;
  readonly decision: PolicyDecision;
  readonly reservation: Reservation;
  readonly deps: GateDeps;
  /** When the call (all its redirects included) must be done. */
  readonly deadline: number;
}

/** What an effect did: the value the guest reads, what it consumed, and what the outcome record says. */
export interface Effect {
  readonly val: unknown;
  readonly used?: Usage | undefined;
  readonly responseHash?: string | undefined;
  readonly detail?: Record<string, AuditDetail[string]> | undefined;
  /** http.fetch: the request and its response, for the redirect stage. */
  readonly hop?: { readonly request: HttpRequest; readonly response: HttpResult } | undefined;
}

/** One row of the table. */
export interface OpSpec<C extends CanonicalCall = CanonicalCall> {
  /** Stage 1: check the shape the worker sent (it should be right; the gate does not rely on it) and canonicalise. */
  decode(call: HostCall): C;
  /** Stage 2: what a capability token must grant. */
  capability(call: C): CapabilityRequest;
  /** Stages 2-3: secrets the call fills into `{{secret:NAME}}` placeholders, and where they would go. */
  uses?(call: C): { readonly names: readonly string[]; readonly url: string };
  /** Stage 3: the policy's decision. */
  decide(policy: Policy, call: C): PolicyDecision;
  /** Stage 3: an allow must name the root the host confines the effect to. */
  readonly confined: boolean;
  /** Stages 4-5: what limits and budgets count. */
  meter(call: C): MeteredCall;
  /** Stages 6 and denials: the request as the audit log may know it. */
  facts(call: C): Facts;
  /** Stage 5b: what an approver is shown. */
  approval(call: C): { target: string; method?: string | undefined; bytes?: number | undefined };
  /** Stage 7. Throws an AuthorityError the guest reads as a WIT error. */
  effect(call: C, env: EffectEnv): Promise<Effect>;
  /** What a call that consumed nothing (a failed effect) settles: zero, or its whole reservation stays spent. */
  idle(call: C): Usage;
}

const OP_NAMES: ReadonlySet<string> = new Set(HOST_OPS);
const MAX_NAME = 256;
const METHOD = /^[A-Za-z]{1,16}$/;

const invalid = (message: string, field: string): AuthorityError => new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: { field } });
const isString = (v: unknown): v is string => typeof v === 'string';

/**
 * At most `n` UTF-16 units of `s`, never ending inside a surrogate pair: the
 * audit log refuses a lone surrogate, and a refused record is a call without one.
 */
export function clip(s: string, n: number): string {
  if (s.length <= n) return s;
  const cut = s.charCodeAt(n - 1) >= 0xd800 && s.charCodeAt(n - 1) <= 0xdbff ? n - 1 : n;
  return s.slice(0, cut);
}

function checkPath(call: HostCall): string {
  const path = (call as { path?: unknown }).path;
  if (!isString(path)) throw invalid('path must be a string', 'path');
  return canonicalisePath(path);
}

/** The fs scope of an allowed call: the rule's root, and the caps (a read capped further by its budget). */
function scopeOf(env: EffectEnv): FsScope {
  const caps = env.policy.caps;
  return {
    roots: [env.decision.root as string],
    limits: { readBytes: env.reservation.allowance.readBytes ?? caps.fsReadBytes, writeBytes: caps.fsWriteBytes, listEntries: caps.fsListEntries },
  };
}

const target = (call: FsCall, env: EffectEnv): string => env.decision.target ?? call.real;
const NOTHING: Usage = Object.freeze({ readBytes: 0, writeBytes: 0 });

/**
 * The row of an fs operation that takes only a path. `follow`: read and list
 * follow a final symlink; stat, remove and mkdir act on the entry itself.
 */
function fsRow(op: FsPlain, method: CapabilityRequest['method'], follow: boolean, effect: (call: FsCall, env: EffectEnv) => Promise<Effect>): OpSpec<PlainFsCall> {
  return {
    decode(raw) {
      const path = checkPath(raw);
      return { op, path, real: resolvePathSync(path, { followFinal: follow }), raw };
    },
    capability: (call) => ({ kind: 'fs', resource: call.real, method }),
    decide: (policy, call) => policy.decideResolved(op, call.path, call.real),
    confined: true,
    meter: () => ({ op }) as MeteredCall,
    facts: (call) => ({ hash: hashRequest({ op, path: call.real }), detail: { path: clip(call.real, 512) } }),
    approval: (call) => ({ target: call.real }),
    effect,
    idle: () => NOTHING,
  };
}

const fetchRow: OpSpec<FetchCall> = {
  decode(raw) {
    const call = raw as Partial<Extract<HostCall, { op: 'http.fetch' }>>;
    if (!isString(call.method) || !METHOD.test(call.method)) throw invalid('method must be an HTTP method token', 'method');
    if (!isString(call.url)) throw invalid('url must be a string', 'url');
    const headers: unknown = call.headers;
    if (!Array.isArray(headers) || !headers.every((h) => Array.isArray(h) && h.length === 2 && isString(h[0]) && isString(h[1]))) {
      throw invalid('headers must be a list of (name, value) strings', 'headers');
    }
    if (call.body !== undefined && !(call.body instanceof Uint8Array)) throw invalid('body must be bytes', 'body');
    // The host refuses what a URL parser would repair (userinfo, backslashes, raw non-ASCII or
    // non-decimal IPv4 hosts, whitespace). Refuse it here, before the checks: otherwise the
    // canonical form below is what the host receives, and the repaired URL goes out.
    parseGuestUrl(call.url);
    return fetchCall(call.method, call.url, headers as Header[], call.body, raw);
  },
  capability: (call) => ({ kind: 'net', resource: call.url.href, method: call.method }),
  uses: (call) => ({ names: call.placeholders, url: call.url.href }),
  decide: (policy, call) => policy.decide({ op: 'http.fetch', url: call.url.href, method: call.method }),
  confined: false,
  meter: (call) => ({ op: 'http.fetch', host: call.url.host, requestBytes: call.body?.length ?? 0 }),
  facts: (call) => ({
    hash: hashRequest({
      op: call.op,
      method: call.method,
      url: call.url.href,
      headers: call.headers.map(([k, v]) => [k.toLowerCase(), sha256Hex(v)]),
      bodySha256: call.body === undefined ? null : sha256Hex(call.body),
    }),
    detail: { method: call.method, url: call.url.href.slice(0, 512), ...(call.placeholders.length ? { secrets: call.placeholders } : {}) },
  }),
  approval: (call) => ({ target: call.url.href, method: call.method }),
  async effect(call, { ctx, policy, reservation, deps, deadline }) {
    const request: HttpRequest = { method: call.method, url: call.url.href, headers: call.headers, body: call.body };
    const url = call.url;
    const result = await deps.http.fetch(request, {
      checkAddress: (address) => policy.decideAddress(url, address),
      mayUse: (name, hopUrl) => {
        const use = checkCapability(ctx.grants, { kind: 'secrets', resource: name, method: 'use' }, { runId: ctx.runId, revocations: deps.revocations });
        if (!use.allow) return use;
        return policy.decide({ op: 'secrets.use', name, url: hopUrl });
      },
      secrets: deps.secrets,
      limits: { requestBodyBytes: policy.caps.httpRequestBytes, responseBodyBytes: reservation.allowance.responseBytes ?? policy.caps.httpResponseBytes },
      timeoutMs: Math.max(1, deadline - Date.now()),
      signal: ctx.signal,
    });
    const detail: Record<string, AuditDetail[string]> = { status: result.status, address: result.address, bytes: result.body.length };
    if (result.secretsUsed.length > 0) detail['secretsUsed'] = result.secretsUsed;
    if (result.redactions.length > 0) {
      detail['redacted'] = result.redactions.map((r) => r.name);
      ctx.stats.redactions += result.redactions.length;
    }
    return {
      val: { status: result.status, headers: result.headers, body: result.body },
      used: { requestBytes: call.body?.length ?? 0, responseBytes: result.body.length },
      responseHash: hashRequest({ status: result.status, headers: result.headers, bodySha256: sha256Hex(result.body) }),
      detail,
      hop: { request, response: result },
    };
  },
  idle: (call) => ({ requestBytes: call.body?.length ?? 0, responseBytes: 0 }),
};

/** An http call, canonical: also how a redirect's next hop enters the checks again. */
export function fetchCall(method: string, url: string, headers: Header[], body: Uint8Array | undefined, raw: HostCall): FetchCall {
  return { op: 'http.fetch', method: method.toUpperCase(), url: canonicaliseUrl(url), headers, body, placeholders: placeholdersIn(headers), raw };
}

/** The table: one row per host operation (the compiler refuses an operation without one). */
export const OPS = {
  'fs.read': fsRow('fs.read', 'read', true, async (call, env) => {
    const bytes = await env.deps.fs.readFile(target(call, env), scopeOf(env));
    return { val: bytes, used: { readBytes: bytes.length }, responseHash: sha256Hex(bytes), detail: { bytes: bytes.length } };
  }),
  'fs.write': {
    decode(raw) {
      const data = (raw as { data?: unknown }).data;
      if (!(data instanceof Uint8Array)) throw invalid('data must be bytes', 'data');
      const path = checkPath(raw);
      return { op: 'fs.write', path, real: resolvePathSync(path, { followFinal: false }), data, raw };
    },
    capability: (call) => ({ kind: 'fs', resource: call.real, method: 'write' }),
    decide: (policy, call) => policy.decideResolved('fs.write', call.path, call.real),
    confined: true,
    meter: (call) => ({ op: 'fs.write', bytes: call.data.length }),
    facts: (call) => ({
      hash: hashRequest({ op: call.op, path: call.real, dataSha256: sha256Hex(call.data), bytes: call.data.length }),
      detail: { path: clip(call.real, 512), bytes: call.data.length },
    }),
    approval: (call) => ({ target: call.real, bytes: call.data.length }),
    async effect(call, env) {
      const scope = scopeOf(env);
      const pre = await env.deps.preImage?.(target(call, env), scope);
      await env.deps.fs.writeFile(target(call, env), call.data, scope);
      const detail = pre === undefined ? undefined : { ...pre, postImage: `sha256:${sha256Hex(call.data)}` };
      return { val: undefined, used: { writeBytes: call.data.length }, detail };
    },
    idle: () => NOTHING,
  } satisfies OpSpec<Extract<CanonicalCall, { op: 'fs.write' }>>,
  'fs.list': fsRow('fs.list', 'list', true, async (call, env) => {
    const entries = await env.deps.fs.listDir(target(call, env), scopeOf(env));
    return { val: entries, responseHash: hashRequest(entries), detail: { entries: entries.length } };
  }),
  'fs.stat': fsRow('fs.stat', 'read', false, async (call, env) => {
    const st = await env.deps.fs.stat(target(call, env), scopeOf(env));
    return { val: st, responseHash: hashRequest({ kind: st.kind, size: String(st.size), modifiedMs: String(st.modifiedMs) }) };
  }),
  'fs.remove': fsRow('fs.remove', 'remove', false, async (call, env) => {
    const scope = scopeOf(env);
    const pre = await env.deps.preImage?.(target(call, env), scope);
    await env.deps.fs.remove(target(call, env), scope);
    return { val: undefined, detail: pre === undefined ? undefined : { ...pre, postImage: 'absent' } };
  }),
  'fs.mkdir': fsRow('fs.mkdir', 'write', false, async (call, env) => {
    await env.deps.fs.mkdir(target(call, env), scopeOf(env));
    return { val: undefined };
  }),
  'http.fetch': fetchRow,
  'secrets.get': {
    decode(raw) {
      const name = (raw as { name?: unknown }).name;
      if (!isString(name) || name.length === 0 || name.length > MAX_NAME) throw invalid('secret name must be 1-256 characters', 'name');
      return { op: 'secrets.get', name, raw };
    },
    capability: (call) => ({ kind: 'secrets', resource: call.name, method: 'get' }),
    decide: (policy, call) => policy.decide({ op: 'secrets.get', name: call.name }),
    confined: false,
    meter: () => ({ op: 'secrets.get' }),
    facts: (call) => ({ hash: hashRequest({ op: call.op, name: call.name }), detail: { name: call.name } }),
    approval: (call) => ({ target: call.name }),
    async effect(call, env) {
      // The value's own hash would let anyone guess a short secret: record only its length.
      const value = env.deps.secrets.get(call.name);
      return { val: value, detail: { bytes: Buffer.byteLength(value) } };
    },
    idle: () => NOTHING,
  } satisfies OpSpec<Extract<CanonicalCall, { op: 'secrets.get' }>>,
} as const satisfies Readonly<Record<HostOp, object>>;

/** Detail for a call that did not decode: the op and a short, safe view of what was asked. */
export function rawFacts(call: HostCall): Facts {
  const c = call as unknown as Record<string, unknown>;
  const shown: Record<string, string> = {};
  if (typeof c['path'] === 'string') shown['path'] = clip(c['path'], 512);
  else if (typeof c['url'] === 'string') shown['url'] = clip(c['url'], 512);
  let hash: string;
  try {
    hash = hashRequest({ op: String(c['op']), ...shown });
  } catch {
    hash = sha256Hex(String(c['op']));
  }
  return { hash, detail: shown };
}

/** The row of a call's operation (one lookup, typed for any call). */
export function opOf(op: HostOp): OpSpec {
  return OPS[op] as unknown as OpSpec;
}

/**
 * Stage 1: decode a call. fs paths are canonicalised and resolved through
 * symlinks (read and list follow a final link; stat, write and remove act on
 * the link itself); URLs are canonicalised (IDNA, IP literals, default
 * ports). Throws E_INVALID_ARGUMENT (or E_IO for a path that cannot be resolved).
 */
export function decode(call: HostCall): CanonicalCall {
  if (typeof call !== 'object' || call === null || !OP_NAMES.has((call as { op: string }).op)) throw invalid('unknown host operation', 'op');
  return opOf(call.op).decode(call);
}
