/**
 * The reference model: what the gate should decide for a host call, written
 * from the documentation (docs/policy.md, docs/capabilities.md, the WIT and
 * ARCHITECTURE.md) and independently of src/policy, src/capability and
 * src/limits. It is plain and slow on purpose: globs match by backtracking
 * over segments, IP addresses are BigInts, rates are the GCRA's definition
 * with integer microseconds, budgets are counters in a Map.
 *
 * The differential check compares, for every generated call, the gate's
 * decision (from the audit record it wrote) with `decide()`. Where the real
 * implementation is deliberately stricter than a literal reading of the
 * documents, the model encodes the stricter rule and says so in
 * `STRICTER` (and docs/fuzzing.md), so a difference is always a finding.
 * @module
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { compileGlob, compileNameGlob, globMatch, nameMatches, type GlobAlt, type ModelGlob } from './model-glob.ts';
import {
  cidrHas,
  classify,
  isLoopback,
  guestUrlRefusal,
  modelUrl,
  originAdmits,
  parseModelCidr,
  parseModelIp,
  parseModelOrigin,
  unmap,
  sameIp,
  modelHostMatches,
  type ModelCidr,
  type ModelIp,
  type ModelOrigin,
  type ModelUrl,
} from './model-net.ts';

/**
 * Places where the implementation is intentionally stricter than (or more
 * specific than) the plain reading of the documents, encoded in the model.
 */
export const STRICTER: readonly string[] = [
  'A capability resource with a control character (U+0000-U+001F, U+007F-U+009F) is refused as E_INVALID_ARGUMENT before any token is matched, even for an fs path the path rules accept.',
  'A net capability matches the URL host exactly as WHATWG serialises it, so `example.com.` (trailing dot) is not covered by a token for `example.com`, although the policy treats both as the same host.',
  'A wildcard (`*`, `?`, a class) never matches `.` or `..` as a whole name (minimatch\'s rule, whatever `dot` says): a secrets token for `*` does not cover a secret named `.`.',
  'A `{{secret:NAME}}` placeholder whose NAME is not a secret name (`[A-Za-z_][A-Za-z0-9_.-]{0,127}`) asks for no secret at the checks: the host refuses the header as a malformed placeholder (`invalid`) at the effect.',
  'The host refuses an allowed request whose header names are not HTTP tokens, whose values hold CR, LF, NUL or characters beyond Latin-1, or that names a hop-by-hop, host or proxy-* header (`invalid`), before any secret is filled or any address resolved.',
  'A tool\'s own URL is refused at decode (E_INVALID_ARGUMENT, before any token or rule) when the host\'s strict parser refuses it: the gate never repairs a URL and sends the repaired form.',
  'The host dials only the address it checked; every name resolves (through the fuzzer\'s resolver) to loopback, so an allowed request to a name needs a rule that names loopback (resolves_to, an IP rule, localhost) or it ends with E_POLICY_DENY at the address check.',
];

// ----------------------------------------------------------------- policy

export type BudgetDim = 'tool_calls' | 'host_calls' | 'http_bytes' | 'fs_read_bytes' | 'fs_write_bytes';
const BYTE_DIMS: readonly BudgetDim[] = ['http_bytes', 'fs_read_bytes', 'fs_write_bytes'];

export interface ModelRate {
  readonly text: string;
  readonly intervalUs: number;
  readonly burst: number;
}

export interface ModelNetRule {
  readonly index: number;
  readonly text: string;
  readonly origin: ModelOrigin;
  readonly methods: ReadonlySet<string> | null;
  readonly resolvesTo: readonly ModelCidr[];
}

export interface ModelSecret {
  readonly hosts: readonly ModelOrigin[];
  readonly reveal: boolean;
}

export interface ModelCaps {
  readonly fsReadBytes: number;
  readonly fsWriteBytes: number;
  readonly fsListEntries: number;
  readonly httpRequestBytes: number;
  readonly httpResponseBytes: number;
  readonly httpTimeoutMs: number;
}

export interface ModelPolicy {
  readonly fsRead: readonly ModelGlob[];
  readonly fsWrite: readonly ModelGlob[];
  readonly fsDeny: readonly ModelGlob[];
  readonly caps: ModelCaps;
  readonly net: readonly ModelNetRule[];
  readonly secrets: ReadonlyMap<string, ModelSecret>;
  readonly rates: {
    readonly fs?: ModelRate | undefined;
    readonly http?: ModelRate | undefined;
    readonly secrets?: ModelRate | undefined;
    readonly per_token?: ModelRate | undefined;
    readonly invocations?: ModelRate | undefined;
    readonly hosts: ReadonlyMap<string, ModelRate>;
  };
  readonly budgets: {
    readonly run: Partial<Record<BudgetDim, number>>;
    readonly shared: Partial<Record<BudgetDim, number>>;
    readonly wallMs?: number | undefined;
  };
  /** Rules the model cannot reproduce (`fs.read[2]: extglob syntax`). */
  readonly opaque: readonly string[];
}

const MiB = 1024 * 1024;
const SIZE_UNITS: Readonly<Record<string, number>> = { B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: MiB, GB: 1e9, GiB: 1024 ** 3 };
const RATE_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function bytes(v: unknown, fallback: number): number {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return fallback;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)?\s*$/.exec(v);
  return m === null ? fallback : Number(m[1]) * (SIZE_UNITS[m[2] ?? 'B'] ?? NaN);
}

function rate(v: unknown): ModelRate | undefined {
  let text: unknown = v;
  let burst: number | undefined;
  if (typeof v === 'object' && v !== null) {
    text = (v as { rate?: unknown }).rate;
    burst = (v as { burst?: number }).burst;
  }
  if (typeof text !== 'string') return undefined;
  const m = /^\s*(\d+)\s*\/\s*(\d+)?\s*(ms|s|m|h|d)\s*$/.exec(text);
  if (m === null) return undefined;
  const count = Number(m[1]);
  const periodMs = Number(m[2] ?? 1) * (RATE_UNITS[m[3] as string] as number);
  // Never looser than written: the interval is rounded up to a whole microsecond.
  return { text, intervalUs: Math.max(1, Math.ceil((periodMs * 1000) / count)), burst: burst ?? count };
}

function globs(list: unknown, where: string, opaque: string[]): ModelGlob[] {
  if (!Array.isArray(list)) return [];
  return list.map((g, i) => {
    const c = compileGlob(String(g), { nfc: true });
    if (c.opaque !== undefined) opaque.push(`${where}[${i}]: ${c.opaque}`);
    return c;
  });
}

/** Read a policy document (already accepted by the real loader) into the model's terms. */
export function parseModelPolicy(doc: Record<string, unknown>): ModelPolicy {
  const opaque: string[] = [];
  const fs = (doc['fs'] ?? {}) as Record<string, unknown>;
  const net = (doc['net'] ?? {}) as Record<string, unknown>;
  const caps: ModelCaps = {
    fsReadBytes: bytes(fs['max_read_bytes'], 8 * MiB),
    fsWriteBytes: bytes(fs['max_write_bytes'], 8 * MiB),
    fsListEntries: typeof fs['max_list_entries'] === 'number' ? fs['max_list_entries'] : 10_000,
    httpRequestBytes: bytes(net['max_request_bytes'], MiB),
    httpResponseBytes: bytes(net['max_response_bytes'], 4 * MiB),
    httpTimeoutMs: typeof net['timeout_ms'] === 'number' ? net['timeout_ms'] : 30_000,
  };
  const rules: ModelNetRule[] = [];
  const connect = Array.isArray(net['connect']) ? net['connect'] : [];
  connect.forEach((r: unknown, index) => {
    const o = typeof r === 'string' ? { url: r } : (r as { url: string; methods?: string[]; resolves_to?: string[] });
    const origin = parseModelOrigin(o.url);
    if (origin === undefined) {
      opaque.push(`net.connect[${index}]: a rule the model cannot read`);
      return;
    }
    rules.push({
      index,
      text: o.url,
      origin,
      methods: o.methods === undefined ? null : new Set(o.methods.map((m) => m.toUpperCase())),
      resolvesTo: (o.resolves_to ?? []).map((c) => parseModelCidr(c)).filter((c): c is ModelCidr => c !== undefined),
    });
  });
  const secrets = new Map<string, ModelSecret>();
  for (const [name, entry] of Object.entries((doc['secrets'] ?? {}) as Record<string, { hosts?: string[]; reveal?: boolean }>)) {
    const hosts: ModelOrigin[] = [];
    (entry.hosts ?? []).forEach((h, i) => {
      // A bare host means https on any port; `scheme://host[:port]` means that.
      const o = h.includes('://') ? parseModelOrigin(h) : parseBareSecretHost(h);
      if (o === undefined) opaque.push(`secrets.${name}.hosts[${i}]: a host the model cannot read`);
      else hosts.push(o);
    });
    secrets.set(name, { hosts, reveal: entry.reveal === true });
  }
  const limits = (doc['limits'] ?? {}) as Record<string, unknown>;
  const hosts = new Map<string, ModelRate>();
  for (const [h, r] of Object.entries((limits['hosts'] ?? {}) as Record<string, unknown>)) {
    const spec = rate(r);
    const key = canonicalLimitHost(h);
    if (spec !== undefined && key !== undefined) hosts.set(key, spec);
  }
  const b = (doc['budgets'] ?? {}) as Record<string, unknown>;
  const dims = (o: Record<string, unknown>): Partial<Record<BudgetDim, number>> => {
    const out: Partial<Record<BudgetDim, number>> = {};
    for (const d of ['tool_calls', 'host_calls'] as const) if (typeof o[d] === 'number') out[d] = o[d];
    for (const d of BYTE_DIMS) if (o[d] !== undefined) out[d] = bytes(o[d], NaN);
    return out;
  };
  return {
    fsRead: globs(fs['read'], 'fs.read', opaque),
    fsWrite: globs(fs['write'], 'fs.write', opaque),
    fsDeny: globs(fs['deny'], 'fs.deny', opaque),
    caps,
    net: rules,
    secrets,
    rates: { fs: rate(limits['fs']), http: rate(limits['http']), secrets: rate(limits['secrets']), per_token: rate(limits['per_token']), invocations: rate(limits['invocations']), hosts },
    budgets: { run: dims(b), shared: dims((b['shared'] ?? {}) as Record<string, unknown>), wallMs: typeof b['wall_time_ms'] === 'number' ? b['wall_time_ms'] : undefined },
    opaque,
  };
}

function parseBareSecretHost(text: string): ModelOrigin | undefined {
  const o = parseModelOrigin(`https://${text}:*`);
  return o === undefined ? undefined : { ...o, portLow: 1, portHigh: 65535 };
}

function canonicalLimitHost(h: string): string | undefined {
  const u = modelUrl(`http://${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}/`);
  return typeof u === 'string' ? undefined : u.host;
}

// ------------------------------------------------------------------ paths

export type PathResult = { ok: true; path: string } | { ok: false; code: 'E_INVALID_ARGUMENT' | 'E_IO' };

/** Lexical canonical form: absolute, no NUL, NFC, at most 4096 UTF-8 bytes, no `.`/`..`/empty segments. */
export function canonicalPath(raw: string): PathResult {
  if (!raw.startsWith('/')) return { ok: false, code: 'E_INVALID_ARGUMENT' };
  if (raw.includes('\0')) return { ok: false, code: 'E_INVALID_ARGUMENT' };
  const nfc = raw.normalize('NFC');
  if (Buffer.byteLength(nfc, 'utf8') > 4096) return { ok: false, code: 'E_INVALID_ARGUMENT' };
  const out: string[] = [];
  for (const seg of nfc.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return { ok: true, path: '/' + out.join('/') };
}

/**
 * Where a canonical path really leads: links in the longest existing prefix
 * are followed (a dangling link too), what does not exist is kept as written;
 * more than 40 links or another I/O error is E_IO.
 */
export function realPath(lexical: string, followFinal: boolean): PathResult {
  if (lexical === '/') return { ok: true, path: '/' };
  const slash = lexical.lastIndexOf('/');
  if (!followFinal) {
    const parent = walk(slash === 0 ? '/' : lexical.slice(0, slash));
    if (!parent.ok) return parent;
    const last = lexical.slice(slash + 1);
    return { ok: true, path: parent.path === '/' ? `/${last}` : `${parent.path}/${last}` };
  }
  return walk(lexical);
}

function walk(lexical: string): PathResult {
  const todo = lexical.split('/').filter((s) => s !== '');
  const done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const seg = todo.shift() as string;
    if (seg === '.') continue;
    if (seg === '..') {
      done.pop();
      continue;
    }
    const here = '/' + [...done, seg].join('/');
    let link: string | undefined;
    try {
      const st = lstatSync(here);
      if (st.isSymbolicLink()) link = readlinkSync(here);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        const rest = canonicalPath('/' + [...done, seg, ...todo].join('/'));
        return rest;
      }
      return { ok: false, code: 'E_IO' };
    }
    if (link === undefined) {
      done.push(seg);
      continue;
    }
    if (++hops > 40) return { ok: false, code: 'E_IO' };
    if (link.startsWith('/')) done.length = 0;
    todo.unshift(...link.split('/').filter((s) => s !== ''));
  }
  return canonicalPath('/' + done.join('/'));
}

// ------------------------------------------------------------- decisions

export type Verdict = { allow: true; rule?: string | undefined; root?: string | undefined } | { allow: false; codes: readonly string[]; rule?: string | undefined };

const allow = (rule?: string, root?: string): Verdict => ({ allow: true, rule, root });
const deny = (code: string | readonly string[], rule?: string): Verdict => ({ allow: false, codes: typeof code === 'string' ? [code] : code, rule });

export const READ_OPS: ReadonlySet<string> = new Set(['fs.read', 'fs.list', 'fs.stat']);

function firstGlob(list: readonly ModelGlob[], path: string, self: boolean): { index: number; alt: GlobAlt; root: string } | undefined {
  for (let i = 0; i < list.length; i++) {
    const g = list[i] as ModelGlob;
    const hits: { alt: GlobAlt; root: string; literal: boolean }[] = [];
    for (const alt of g.alts) {
      if (globMatch({ ...g, alts: [alt] }, path) !== undefined) hits.push({ alt, root: alt.root, literal: alt.literal });
      // `D/**` also matches the folder D itself (for reading, and in deny lists).
      if (self && alt.source.endsWith('/**')) {
        const folder = alt.source.slice(0, -3) || '/';
        const f = compileGlob(folder, { nfc: false });
        if (f.alts.some((a) => globMatch({ ...f, alts: [a] }, path) !== undefined)) hits.push({ alt, root: folder, literal: true });
      }
    }
    if (hits.length > 0) return { index: i, alt: (hits[0] as { alt: GlobAlt }).alt, root: (hits[0] as { root: string }).root };
  }
  return undefined;
}

/** Whether any glob the decision would consult is opaque to the model. */
function touchesOpaque(lists: readonly (readonly ModelGlob[])[]): boolean {
  return lists.some((l) => l.some((g) => g.opaque !== undefined));
}

/** fs policy on the lexical and real paths (docs/policy.md "Paths"). */
export function decideFs(p: ModelPolicy, op: string, lexical: string, real: string): Verdict & { opaque?: boolean } {
  const reading = READ_OPS.has(op);
  const opaque = touchesOpaque([p.fsDeny, reading ? p.fsRead : p.fsWrite]);
  if (real !== lexical) {
    const d = firstGlob(p.fsDeny, lexical, true);
    if (d !== undefined) return { ...deny('E_POLICY_DENY', `fs.deny[${d.index}]`), opaque };
  }
  const d = firstGlob(p.fsDeny, real, true);
  if (d !== undefined) return { ...deny('E_POLICY_DENY', `fs.deny[${d.index}]`), opaque };
  const key = reading ? 'fs.read' : 'fs.write';
  const hit = firstGlob(reading ? p.fsRead : p.fsWrite, real, reading);
  if (hit === undefined) return { ...deny('E_POLICY_DENY'), opaque };
  return { ...allow(`${key}[${hit.index}]`, hit.root), opaque };
}

const HTTP_METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;

export function decideHttp(p: ModelPolicy, u: ModelUrl, method: string): Verdict {
  if (!HTTP_METHOD.test(method)) return deny('E_INVALID_ARGUMENT');
  const m = method.toUpperCase();
  for (const r of p.net) {
    if (!originAdmits(r.origin, u)) continue;
    if (r.methods !== null && !r.methods.has(m)) continue;
    return allow(`net.connect[${r.index}]`);
  }
  return deny('E_POLICY_DENY');
}

// The store, the policy and placeholders share one secret-name pattern.
const POLICY_SECRET = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

export function decideSecretGet(p: ModelPolicy, name: string): Verdict {
  if (!POLICY_SECRET.test(name)) return deny('E_INVALID_ARGUMENT');
  const s = p.secrets.get(name);
  if (s === undefined || !s.reveal) return deny('E_POLICY_DENY');
  return allow(`secrets.${name}.reveal`);
}

export function decideSecretUse(p: ModelPolicy, name: string, u: ModelUrl): Verdict {
  if (!POLICY_SECRET.test(name)) return deny('E_INVALID_ARGUMENT');
  const s = p.secrets.get(name);
  if (s === undefined) return deny('E_POLICY_DENY');
  return s.hosts.some((h) => originAdmits(h, u)) ? allow() : deny('E_POLICY_DENY');
}

/** docs/policy.md "The rule": a public address by any matching rule, another only by one that names it. */
export function decideAddress(p: ModelPolicy, u: ModelUrl, ip: ModelIp): boolean {
  if (u.ip !== undefined && !sameIp(unmap(u.ip), unmap(ip))) return false;
  const a = unmap(ip);
  const pub = classify(ip) === 'public';
  for (const r of p.net) {
    if (!originAdmits(r.origin, u)) continue;
    if (pub) return true;
    const h = r.origin.host;
    if (h.kind === 'ip' && sameIp(h.ip, a)) return true;
    if (h.kind === 'cidr' && cidrHas(h.cidr, a)) return true;
    if (h.kind === 'name' && (h.name === 'localhost' || h.name.endsWith('.localhost')) && isLoopback(a)) return true;
    if (h.kind === 'suffix' && h.suffix === '.localhost' && isLoopback(a)) return true;
    if (r.resolvesTo.some((c) => cidrHas(c, a))) return true;
  }
  return false;
}

// ----------------------------------------------------------- capability

export const CAP_METHODS = {
  fs: ['read', 'list', 'write', 'remove'],
  net: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'],
  secrets: ['get', 'use'],
  tool: ['invoke'],
} as const;
export type CapKind = keyof typeof CAP_METHODS;

/** One link of a token's chain, as the fuzzer minted it. */
export interface ModelLink {
  readonly id: string;
  readonly resource?: string | undefined;
  readonly methods?: readonly string[] | undefined;
  readonly notBefore?: number | undefined;
  readonly expiresAt?: number | undefined;
  readonly rate?: { readonly count: number; readonly periodMs: number } | undefined;
  readonly runId?: string | undefined;
}

/** A granted token, as the fuzzer knows it: what it minted, and how its MAC check must come out. */
export interface ModelGrant {
  readonly kind: CapKind;
  /** `mutated`: bytes changed after signing; the model predicts only that it cannot allow. */
  readonly mac: 'ok' | 'unknown-key' | 'bad-mac' | 'mutated';
  readonly issuedAt: number;
  /** Root first. */
  readonly links: readonly ModelLink[];
}

export interface CapContext {
  readonly now: number;
  readonly runId: string;
  readonly revokedTokens: ReadonlySet<string>;
  readonly revokedRuns: ReadonlySet<string>;
}

export type CapVerdict = (Verdict & { allow: true; tokenId: string; rates: { key: string; count: number; periodMs: number }[] }) | (Verdict & { allow: false });

// eslint-disable-next-line no-control-regex -- control characters are what a capability resource may not hold
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function netPatternMatches(pattern: string, href: string): boolean {
  const m = /^(https?):\/\/(\*|\*\.[^/:[\]]+|[^*/:[\]]+|\[[0-9a-f:.]+\])(?::(\*|\d+))?(\/[^#]*)?$/.exec(pattern);
  if (m === null) return false;
  let u: URL;
  try {
    u = new URL(href);
  } catch {
    return false;
  }
  const scheme = u.protocol.slice(0, -1);
  if (scheme !== m[1]) return false;
  const port = u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port);
  const want = m[3] === undefined ? (scheme === 'https' ? 443 : 80) : m[3] === '*' ? undefined : Number(m[3]);
  if (want !== undefined && want !== port) return false;
  const host = m[2] as string;
  if (host !== '*') {
    if (host.startsWith('*.')) {
      const d = host.slice(1);
      if (!(u.hostname.length > d.length && u.hostname.endsWith(d))) return false;
    } else if (u.hostname !== host) return false;
  }
  if (m[4] === undefined) return true;
  return urlPathMatches(m[4], u.pathname);
}

/** A URL path glob: like an fs glob, but empty segments and a trailing `/` are ordinary. */
function urlPathMatches(glob: string, path: string): boolean {
  const g = compileGlob(glob.replace(/\/(?=\/|$)/g, '/\u0000'), { nfc: false });
  const p = path.replace(/\/(?=\/|$)/g, '/\u0000');
  return globMatch(g, p) !== undefined;
}

function linkCovers(kind: CapKind, link: ModelLink, resource: string, method: string): boolean {
  if (link.methods !== undefined && !link.methods.includes(method)) return false;
  if (link.resource === undefined) return true;
  switch (kind) {
    case 'fs':
      return globMatch(compileGlob(link.resource, { nfc: false }), resource) !== undefined;
    case 'net':
      return netPatternMatches(link.resource, resource);
    case 'secrets':
    case 'tool':
      return nameMatches(compileNameGlob(link.resource), resource);
  }
}

const STEP_CODES = ['E_CAP_UNKNOWN_KEY', 'E_CAP_INVALID', 'E_CAP_NOT_YET_VALID', 'E_CAP_EXPIRED', 'E_CAP_RUN_MISMATCH', 'E_CAP_REVOKED'] as const;

/** The failure step of a covering token (1 unknown key ... 6 revoked), or 0 when it is valid now. */
function failureStep(g: ModelGrant, ctx: CapContext): number {
  if (g.mac === 'unknown-key') return 1;
  if (g.mac === 'bad-mac') return 2;
  const notBefore = Math.max(...g.links.map((l) => l.notBefore ?? -Infinity));
  const expiresAt = Math.min(...g.links.map((l) => l.expiresAt ?? Infinity));
  if (g.issuedAt > ctx.now + 60_000 || ctx.now < notBefore) return 3;
  if (ctx.now >= expiresAt) return 4;
  if (g.links.some((l) => l.runId !== undefined && l.runId !== ctx.runId)) return 5;
  if (g.links.some((l) => ctx.revokedTokens.has(l.id)) || ctx.revokedRuns.has(ctx.runId)) return 6;
  return 0;
}

/** docs/capabilities.md "The capability stage". */
export function checkCap(grants: readonly ModelGrant[], kind: CapKind, resource: string, method: string, ctx: CapContext): CapVerdict {
  const mutated = grants.some((g) => g.mac === 'mutated');
  // A changed token can parse as any kind, cover anything and fail only at its key or MAC: it never allows.
  const maybe = mutated ? ['E_CAP_INVALID', 'E_CAP_UNKNOWN_KEY', 'E_CAP_SCOPE', 'E_CAP_MISSING', 'E_INVALID_ARGUMENT'] : [];
  const cands = grants.filter((g) => g.mac !== 'mutated' && g.kind === kind);
  if (cands.length === 0) return deny(mutated ? maybe : 'E_CAP_MISSING') as CapVerdict;
  const bad = resource.length === 0 || resource.length > 8192 || CONTROL.test(resource) || (kind === 'secrets' && (resource.length > 256 || resource.includes('/') || /\s/.test(resource)));
  if (bad) return deny(['E_INVALID_ARGUMENT']) as CapVerdict;
  const methodKnown = (CAP_METHODS[kind] as readonly string[]).includes(method);
  let best = 0;
  for (const g of cands) {
    if (!methodKnown) break;
    if (!g.links.every((l) => linkCovers(kind, l, resource, method))) continue;
    const step = failureStep(g, ctx);
    if (step === 0) {
      const leaf = g.links[g.links.length - 1] as ModelLink;
      const rates = g.links.filter((l) => l.rate !== undefined).map((l) => ({ key: l.id, count: (l.rate as { count: number }).count, periodMs: (l.rate as { periodMs: number }).periodMs }));
      return { allow: true, tokenId: leaf.id, rates };
    }
    best = Math.max(best, step);
  }
  if (best > 0) {
    const code = STEP_CODES[best - 1] as string;
    return deny(best <= 2 && mutated ? [code, ...maybe] : [code]) as CapVerdict;
  }
  return deny(mutated ? ['E_CAP_SCOPE', ...maybe] : 'E_CAP_SCOPE') as CapVerdict;
}

// --------------------------------------------------------------- limits

/** Rate buckets (GCRA by its definition) and budget counters, with the fuzzer's clock. */
export class ModelLimits {
  readonly tat = new Map<string, number>();
  readonly used = new Map<string, number>();
  wallStart: number | undefined;

  clone(): ModelLimits {
    const c = new ModelLimits();
    for (const [k, v] of this.tat) c.tat.set(k, v);
    for (const [k, v] of this.used) c.used.set(k, v);
    c.wallStart = this.wallStart;
    return c;
  }

  /** Admit one call in every bucket, or in none. */
  acquire(buckets: readonly { key: string; intervalUs: number; burst: number }[], nowMs: number): boolean {
    const now = nowMs * 1000;
    const next: number[] = [];
    for (const b of buckets) {
      // The call conforms when it is no earlier than TAT minus the burst tolerance.
      const tat = Math.max(this.tat.get(b.key) ?? now, now);
      if (now < tat + b.intervalUs - b.burst * b.intervalUs) return false;
      next.push(tat + b.intervalUs);
    }
    buckets.forEach((b, i) => this.tat.set(b.key, next[i] as number));
    return true;
  }
}

// ------------------------------------------------------------- the call

/** A host call as the gate receives it. */
export type ModelCall =
  | { op: 'fs.read' | 'fs.list' | 'fs.stat' | 'fs.remove' | 'fs.mkdir'; path: string }
  | { op: 'fs.write'; path: string; data: Uint8Array }
  | { op: 'http.fetch'; method: string; url: string; headers: [string, string][]; body?: Uint8Array | undefined }
  | { op: 'secrets.get'; name: string };

const GATE_PLACEHOLDER = /\{\{secret:([^{}]*)\}\}/g;

/** The secrets an http call asks for: each well-formed placeholder whose name is a secret name. */
export function gatePlaceholders(headers: readonly [string, string][]): string[] {
  const names = new Set<string>();
  for (const [, v] of headers) for (const m of v.matchAll(GATE_PLACEHOLDER)) if (POLICY_SECRET.test(m[1] as string)) names.add(m[1] as string);
  return [...names].sort();
}

/** Stage 1 for an fs call: the lexical and the real path, or the decode error. */
export function decodeFs(op: string, path: string): { lexical: string; real: string } | { code: string } {
  const lex = canonicalPath(path);
  if (!lex.ok) return { code: lex.code };
  const real = realPath(lex.path, op === 'fs.read' || op === 'fs.list');
  if (!real.ok) return { code: real.code };
  return { lexical: lex.path, real: real.path };
}

/** What the gate should decide at stages 1-3 (decode, capability, policy). */
export type GateModel =
  | { stage: 'decode' | 'capability' | 'policy'; verdict: Verdict & { allow: false }; opaque?: boolean | undefined }
  | {
      stage: 'checked';
      opaque?: boolean | undefined;
      tokenId: string;
      rates: { key: string; count: number; periodMs: number }[];
      rule?: string | undefined;
      /** fs: the real path decided on; http: the canonical href. */
      target: string;
      url?: ModelUrl | undefined;
      placeholders: string[];
    };

// docs/capabilities.md: making a folder is a write.
const METHOD_OF: Record<string, string> = { 'fs.read': 'read', 'fs.stat': 'read', 'fs.list': 'list', 'fs.write': 'write', 'fs.remove': 'remove', 'fs.mkdir': 'write' };

/** Stages 1-3 of the gate for one call (or one redirect hop). `decoded`: the fs paths, resolved before the call ran. */
export function gateModel(p: ModelPolicy, grants: readonly ModelGrant[], call: ModelCall, ctx: CapContext, decoded?: ReturnType<typeof decodeFs>): GateModel {
  switch (call.op) {
    case 'secrets.get': {
      if (call.name.length === 0 || call.name.length > 256) return { stage: 'decode', verdict: deny('E_INVALID_ARGUMENT') as Verdict & { allow: false } };
      const cap = checkCap(grants, 'secrets', call.name, 'get', ctx);
      if (!cap.allow) return { stage: 'capability', verdict: cap };
      const pol = decideSecretGet(p, call.name);
      if (!pol.allow) return { stage: 'policy', verdict: pol };
      return { stage: 'checked', tokenId: cap.tokenId, rates: cap.rates, rule: pol.rule, target: call.name, placeholders: [] };
    }
    case 'http.fetch': {
      if (!/^[A-Za-z]{1,16}$/.test(call.method)) return { stage: 'decode', verdict: deny('E_INVALID_ARGUMENT') as Verdict & { allow: false } };
      const u = guestUrlRefusal(call.url) === undefined ? modelUrl(call.url) : 'refused by the host parser';
      if (typeof u === 'string') return { stage: 'decode', verdict: deny('E_INVALID_ARGUMENT') as Verdict & { allow: false } };
      const method = call.method.toUpperCase();
      const placeholders = gatePlaceholders(call.headers);
      const cap = checkCap(grants, 'net', u.href, method, ctx);
      if (!cap.allow) return { stage: 'capability', verdict: cap };
      const rates = [...cap.rates];
      for (const name of placeholders) {
        const use = checkCap(grants, 'secrets', name, 'use', ctx);
        if (!use.allow) return { stage: 'capability', verdict: use };
        rates.push(...use.rates);
      }
      const pol = decideHttp(p, u, method);
      if (!pol.allow) return { stage: 'policy', verdict: pol };
      for (const name of placeholders) {
        const use = decideSecretUse(p, name, u);
        if (!use.allow) return { stage: 'policy', verdict: use };
      }
      return { stage: 'checked', tokenId: cap.tokenId, rates, rule: pol.rule, target: u.href, url: u, placeholders };
    }
    default: {
      const d = decoded ?? decodeFs(call.op, call.path);
      if ('code' in d) return { stage: 'decode', verdict: deny(d.code) as Verdict & { allow: false } };
      const cap = checkCap(grants, 'fs', d.real, METHOD_OF[call.op] as string, ctx);
      if (!cap.allow) return { stage: 'capability', verdict: cap };
      const pol = decideFs(p, call.op, d.lexical, d.real);
      if (!pol.allow) return { stage: 'policy', verdict: pol, opaque: pol.opaque };
      return { stage: 'checked', tokenId: cap.tokenId, rates: cap.rates, rule: pol.rule, target: d.real, placeholders: [], opaque: pol.opaque };
    }
  }
}

/** The rate buckets a checked call must pass (docs/policy.md "limits", docs/capabilities.md "Rates"). */
export function rateBuckets(p: ModelPolicy, call: ModelCall, g: Extract<GateModel, { stage: 'checked' }>, tool: string): { key: string; intervalUs: number; burst: number }[] {
  const out: { key: string; intervalUs: number; burst: number }[] = [];
  const add = (key: string, r: ModelRate | undefined): void => {
    if (r !== undefined) out.push({ key, intervalUs: r.intervalUs, burst: r.burst });
  };
  if (call.op === 'http.fetch') {
    const host = (g.url as ModelUrl).host;
    add(`http:${host}`, p.rates.hosts.get(host) ?? p.rates.http);
  } else if (call.op === 'secrets.get') add(`secrets:${tool}`, p.rates.secrets);
  else add(`fs:${tool}`, p.rates.fs);
  add(`token:${g.tokenId}`, p.rates.per_token);
  for (const r of g.rates) out.push({ key: `cap:${r.key}`, intervalUs: Math.max(1, Math.ceil((r.periodMs * 1000) / r.count)), burst: r.count });
  return out;
}

/** A budget reservation: what each counter got, and the read allowance. */
export interface ModelReservation {
  readonly entries: { key: string; dim: BudgetDim; granted: number }[];
  readonly allowance: number | undefined;
  readonly requestBytes: number;
}

/**
 * Reserve every budget that applies (all or nothing). Reads reserve the cap,
 * or what is left if that is less but at least one byte; a write reserves its
 * size; a fetch its request body plus the response cap.
 */
export function reserve(p: ModelPolicy, limits: ModelLimits, call: ModelCall, runId: string, nowMs: number): ModelReservation | undefined {
  const wall = p.budgets.wallMs;
  if (wall !== undefined && limits.wallStart !== undefined && nowMs - limits.wallStart > wall) return undefined;
  type Want = { key: string; dim: BudgetDim; amount: number; min: number; limit: number; flexible: boolean };
  const wants: Want[] = [];
  const add = (dim: BudgetDim, amount: number, flexibleMin?: number): void => {
    for (const [scope, lim] of [['run', p.budgets.run[dim]], ['shared', p.budgets.shared[dim]]] as const) {
      if (lim === undefined) continue;
      wants.push({ key: scope === 'run' ? `run:${runId}:${dim}` : `shared:${dim}`, dim, amount, min: flexibleMin ?? amount, limit: lim, flexible: flexibleMin !== undefined });
    }
  };
  add('host_calls', 1);
  let readBase: number | undefined;
  let readCap = 0;
  let requestBytes = 0;
  if (call.op === 'fs.read') {
    readCap = p.caps.fsReadBytes;
    readBase = 0;
    add('fs_read_bytes', readCap, Math.min(1, readCap));
  } else if (call.op === 'fs.write') add('fs_write_bytes', call.data.length);
  else if (call.op === 'http.fetch') {
    requestBytes = call.body?.length ?? 0;
    readCap = p.caps.httpResponseBytes;
    readBase = requestBytes;
    add('http_bytes', requestBytes + readCap, requestBytes + Math.min(1, readCap));
  }
  // Flexible counters of one dimension all get the least any of them can take.
  const group = new Map<BudgetDim, number>();
  for (const w of wants) {
    if (!w.flexible) continue;
    const left = Math.max(0, w.limit - (limits.used.get(w.key) ?? 0));
    group.set(w.dim, Math.min(group.get(w.dim) ?? w.amount, left, w.amount));
  }
  const entries: { key: string; dim: BudgetDim; granted: number }[] = [];
  for (const w of wants) {
    const used = limits.used.get(w.key) ?? 0;
    const want = w.flexible ? (group.get(w.dim) as number) : w.amount;
    if (want < w.min || used + want > w.limit) return undefined;
    entries.push({ key: w.key, dim: w.dim, granted: want });
  }
  for (const e of entries) limits.used.set(e.key, (limits.used.get(e.key) ?? 0) + e.granted);
  if (wall !== undefined && limits.wallStart === undefined) limits.wallStart = nowMs;
  let allowance: number | undefined;
  if (readBase !== undefined) {
    const flex = entries.find((e) => e.dim === (call.op === 'fs.read' ? 'fs_read_bytes' : 'http_bytes'));
    allowance = flex === undefined ? readCap : flex.granted - readBase;
  }
  return { entries, allowance, requestBytes };
}

/**
 * Admission of one invocation (docs/policy.md: `invocations` per tool,
 * `tool_calls` per run and shared): the code that refuses it, or undefined.
 * The run's wall-time window starts with it.
 */
export function admitInvocation(p: ModelPolicy, limits: ModelLimits, runId: string, tool: string, nowMs: number): string | undefined {
  const rate = p.rates.invocations;
  const buckets = [...(rate === undefined ? [] : [{ key: `invoke:${tool}`, intervalUs: rate.intervalUs, burst: rate.burst }])];
  if (buckets.length > 0 && !limits.acquire(buckets, nowMs)) return 'E_RATE_LIMITED';
  const wall = p.budgets.wallMs;
  if (wall !== undefined && limits.wallStart !== undefined && nowMs - limits.wallStart > wall) return 'E_BUDGET_EXCEEDED';
  const wants: { key: string; limit: number }[] = [];
  if (p.budgets.run.tool_calls !== undefined) wants.push({ key: `run:${runId}:tool_calls`, limit: p.budgets.run.tool_calls });
  if (p.budgets.shared.tool_calls !== undefined) wants.push({ key: 'shared:tool_calls', limit: p.budgets.shared.tool_calls });
  if (wants.some((w) => (limits.used.get(w.key) ?? 0) + 1 > w.limit)) return 'E_BUDGET_EXCEEDED';
  for (const w of wants) limits.used.set(w.key, (limits.used.get(w.key) ?? 0) + 1);
  if (wall !== undefined && limits.wallStart === undefined) limits.wallStart = nowMs;
  return undefined;
}

/**
 * Give back what a call reserved but did not use. Budgets count what was
 * consumed: bytes read or written, request and response bytes; a call that
 * failed consumed no bytes. Counts of calls stay spent.
 */
export function settle(limits: ModelLimits, r: ModelReservation, used: { readBytes?: number; writeBytes?: number; responseBytes?: number }): void {
  for (const e of r.entries) {
    let actual: number;
    switch (e.dim) {
      case 'fs_read_bytes':
        actual = used.readBytes ?? 0;
        break;
      case 'fs_write_bytes':
        actual = used.writeBytes ?? 0;
        break;
      case 'http_bytes':
        actual = r.requestBytes + (used.responseBytes ?? 0);
        break;
      default:
        continue;
    }
    const back = e.granted - Math.min(Math.max(0, actual), e.granted);
    if (back > 0) limits.used.set(e.key, Math.max(0, (limits.used.get(e.key) ?? 0) - back));
  }
}

// ----------------------------------------------------------- fs effects

/** What an fs effect should do to an allowed call, from a look at the real file system before it. */
export type FsEffect =
  | { expect: 'ok'; check: (val: unknown) => string | undefined }
  | { expect: 'error'; tags: readonly string[] }
  | { expect: 'any' };

/** The state of a target before the call: kind, links, size, content (small files), entries (folders), its parent. */
export interface FsLook {
  readonly kind: 'missing' | 'file' | 'directory' | 'symlink' | 'other';
  readonly nlink: number;
  readonly size: number;
  readonly content?: Buffer | undefined;
  readonly entries?: readonly string[] | undefined;
  readonly parentIsDir: boolean;
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
}

/** Look at `target` before the call changes anything. */
export function fsLook(target: string): FsLook {
  const st = lstatOrUndefined(target);
  const parent = target.slice(0, target.lastIndexOf('/')) || '/';
  const pst = lstatOrUndefined(parent);
  const parentIsDir = pst !== undefined && pst.isDirectory();
  if (st === undefined) return { kind: 'missing', nlink: 0, size: 0, parentIsDir };
  const kind = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other';
  let content: Buffer | undefined;
  let entries: string[] | undefined;
  try {
    if (kind === 'file' && st.size <= 1 << 20) content = readFileSync(target);
    if (kind === 'directory') entries = readdirSync(target).sort();
  } catch {
    // unreadable: the expectation stays loose
  }
  return { kind, nlink: st.nlink, size: st.size, content, entries, parentIsDir };
}

/** The effect of an allowed fs call on its target (the real path the gate decided on), from the look before it. */
export function fsEffect(op: string, target: string, look: FsLook, caps: ModelCaps, allowance: number | undefined, data?: Uint8Array): FsEffect {
  // The host re-checks the path: a component over NAME_MAX (255 bytes) is invalid.
  if (target.split('/').some((c) => Buffer.byteLength(c, 'utf8') > 255)) return { expect: 'error', tags: ['invalid'] };
  switch (op) {
    case 'fs.read': {
      if (look.kind === 'missing') return { expect: 'error', tags: ['not-found', 'io'] };
      if (look.kind === 'directory') return { expect: 'error', tags: ['invalid'] };
      if (look.kind !== 'file' || look.nlink > 1) return { expect: 'error', tags: ['denied'] };
      const limit = Math.min(caps.fsReadBytes, allowance ?? Infinity);
      if (look.size > limit) return { expect: 'error', tags: ['too-large'] };
      const content = look.content;
      if (content === undefined) return { expect: 'any' };
      return { expect: 'ok', check: (v) => (v instanceof Uint8Array && sameBytes(v, content) ? undefined : 'read returned other bytes than the file the gate decided on holds') };
    }
    case 'fs.stat': {
      if (look.kind === 'missing') return { expect: 'error', tags: ['not-found', 'io'] };
      return {
        expect: 'ok',
        check: (v) => {
          const s = v as { kind?: unknown; size?: unknown };
          if (s?.kind !== look.kind) return `stat says ${String(s?.kind)}, the file system says ${look.kind}`;
          if (look.kind === 'file' && BigInt(look.size) !== s.size) return 'stat size differs from the file';
          return undefined;
        },
      };
    }
    case 'fs.list': {
      if (look.kind === 'missing') return { expect: 'error', tags: ['not-found', 'io'] };
      if (look.kind !== 'directory') return { expect: 'error', tags: ['invalid', 'io', 'not-found', 'denied'] };
      const names = look.entries;
      if (names === undefined) return { expect: 'any' };
      if (names.length > caps.fsListEntries) return { expect: 'error', tags: ['too-large'] };
      return {
        expect: 'ok',
        check: (v) => {
          const got = Array.isArray(v) ? (v as { name: string }[]).map((e) => e.name) : [];
          return JSON.stringify(got) === JSON.stringify(names) ? undefined : 'list-dir returned other entries than the folder holds';
        },
      };
    }
    case 'fs.write': {
      const size = data?.length ?? 0;
      if (size > caps.fsWriteBytes) return { expect: 'error', tags: ['too-large'] };
      if (look.kind === 'directory') return { expect: 'error', tags: ['invalid', 'io', 'denied'] };
      if (!look.parentIsDir) return { expect: 'error', tags: ['not-found', 'io', 'invalid', 'denied'] };
      return { expect: 'any' };
    }
    case 'fs.remove': {
      if (look.kind === 'missing') return { expect: 'error', tags: ['not-found', 'io'] };
      return { expect: 'any' };
    }
    case 'fs.mkdir': {
      // wit/sandbox.wit make-dir: a folder already there is success, a link is never followed, anything else there is refused.
      if (look.kind === 'directory') return { expect: 'ok', check: (v) => (v === undefined ? undefined : 'make-dir ok with a value') };
      if (look.kind === 'symlink') return { expect: 'error', tags: ['denied'] };
      if (look.kind !== 'missing') return { expect: 'error', tags: ['invalid'] };
      if (!look.parentIsDir) return { expect: 'error', tags: ['not-found', 'io', 'invalid', 'denied'] };
      return { expect: 'any' };
    }
  }
  return { expect: 'any' };
}

/** After an fs effect reported ok: did the world change as the call said, at the decided target? `after` is a look taken right after the call. */
export function fsPostcondition(op: string, after: FsLook, data?: Uint8Array): string | undefined {
  if (op === 'fs.write') {
    if (after.kind === 'missing') return 'write-file reported ok but the decided target does not exist';
    if (after.kind !== 'file') return 'write-file reported ok but the target is not a file';
    if (after.content !== undefined && !sameBytes(after.content, data ?? new Uint8Array())) return 'write-file reported ok but the target holds other bytes';
    return undefined;
  }
  if (op === 'fs.remove') return after.kind === 'missing' ? undefined : 'remove reported ok but the decided target still exists';
  if (op === 'fs.mkdir') return after.kind === 'directory' ? undefined : 'make-dir reported ok but the decided target is not a directory';
  return undefined;
}

export { parseModelIp, modelUrl, modelHostMatches };
export type { ModelUrl, ModelIp };
