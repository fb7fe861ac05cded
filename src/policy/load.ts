/**
 * Loading a policy: JSON text (duplicate keys refused, positions kept),
 * schema validation with every problem located, compilation of globs and
 * rules, warnings for rules that can never take effect, and a frozen Policy.
 * @module
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { z } from 'zod';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { RateSpec } from '../limits/rate.ts';
import type { BudgetLimits, RateLimits } from '../limits/limiter.ts';
import { PathView, nameGlobCovers, type CompiledNameGlob, type CompiledPathGlob } from './glob.ts';
import { formatIp } from './ip.ts';
import { JsonSyntaxError, formatPath, parseJsonSource, type JsonPath, type Position } from './json-source.ts';
import { formatOrigin, hostMatches, parseHostPattern } from './net-rules.ts';
import { PathRuleSet, type PathRuleHit } from './path-rules.ts';
import { DEFAULT_CAPS, Policy, type PolicyIssue, type SecretEntry } from './policy.ts';
import { DEFAULT_APPROVAL_TIMEOUT_MS, PolicySchema, type Parsed, type ParsedPolicy } from './schema.ts';
import type { ToolTrust } from './trust.ts';
import { canonicaliseUrl } from './url.ts';

/** Largest policy file read. */
export const MAX_POLICY_BYTES = 1024 * 1024;

export interface LoadOptions {
  /** Where the policy came from (a file name), for messages. */
  source?: string | undefined;
}

/** A loaded policy and the warnings found while loading it. */
export interface LoadedPolicy {
  readonly policy: Policy;
  readonly warnings: readonly PolicyIssue[];
}

/**
 * Parse and load a policy from JSON text. Throws
 * `AuthorityError(E_POLICY_INVALID)` whose message lists every problem with
 * its JSON path (and line), and whose `data.issues` holds them as values.
 *
 * @example
 * ```ts
 * const { policy, warnings } = parsePolicy(text, { source: 'policy.json' });
 * ```
 */
export function parsePolicy(text: string, options: LoadOptions = {}): LoadedPolicy {
  let parsed: ReturnType<typeof parseJsonSource>;
  try {
    parsed = parseJsonSource(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) {
      throw invalidPolicy([{ path: e.path || '(root)', message: e.message, line: e.position.line, column: e.position.column }], options.source);
    }
    throw e;
  }
  return build(parsed.value, options.source, parsed);
}

/**
 * Load a policy from a value already parsed (e.g. built in code). Duplicate
 * keys cannot be detected here; prefer `parsePolicy` for text.
 */
export function loadPolicy(document: unknown, options: LoadOptions = {}): LoadedPolicy {
  return build(document, options.source, undefined);
}

interface Located {
  readonly positions: ReadonlyMap<string, Position>;
  readonly keyPositions: ReadonlyMap<string, Position>;
}

/** Read and load a policy file (at most 1 MiB). A missing file is `E_CONFIG`. */
export async function loadPolicyFile(path: string): Promise<LoadedPolicy> {
  let text: string;
  try {
    const st = await stat(path);
    if (st.size > MAX_POLICY_BYTES) throw invalidPolicy([{ path: '(root)', message: `the file is larger than ${MAX_POLICY_BYTES} bytes` }], path);
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof AuthorityError) throw e;
    const code = (e as { code?: unknown }).code;
    throw new AuthorityError(ErrorCode.CONFIG, `cannot read policy file ${path}: ${typeof code === 'string' ? code : (e as Error).message}`, { cause: e, data: { file: path } });
  }
  return parsePolicy(text, { source: path });
}

// --------------------------------------------------------------- errors

function invalidPolicy(issues: PolicyIssue[], source: string | undefined): AuthorityError {
  const where = source === undefined ? '' : ` ${source}`;
  const lines = issues.map((i) => `  ${formatIssue(i)}`);
  const n = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
  return new AuthorityError(ErrorCode.POLICY_INVALID, `invalid policy${where} (${n}):\n${lines.join('\n')}`, {
    data: { issues, ...(source === undefined ? {} : { source }) },
  });
}

/** `net.connect[1]: port must be 1-65535 or * (line 5, column 7)`. */
export function formatIssue(i: PolicyIssue): string {
  const at = i.line === undefined ? '' : ` (line ${i.line}, column ${i.column})`;
  return `${i.path}: ${i.message}${at}`;
}

const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': Object.keys(PolicySchema.shape),
  fs: Object.keys(PolicySchema.shape.fs.unwrap().shape),
  net: Object.keys(PolicySchema.shape.net.unwrap().shape),
  'net.connect[]': ['url', 'methods', 'resolves_to'],
  'secrets.*': ['hosts', 'reveal'],
  'tools.trust[]': ['tools', 'keys'],
  tools: Object.keys(PolicySchema.shape.tools.unwrap().shape),
  limits: Object.keys(PolicySchema.shape.limits.unwrap().shape),
  'limits.*': ['rate', 'burst'],
  budgets: Object.keys(PolicySchema.shape.budgets.unwrap().shape),
  approvals: Object.keys(PolicySchema.shape.approvals.unwrap().shape),
  undo: Object.keys(PolicySchema.shape.undo.unwrap().shape),
  'budgets.shared': Object.keys(PolicySchema.shape.budgets.unwrap().shape.shared.unwrap().shape),
};

function keysAt(path: JsonPath): readonly string[] | undefined {
  const [a, b, c] = path;
  if (path.length === 0) return KNOWN_KEYS[''];
  if (a === 'net' && b === 'connect' && path.length === 3) return KNOWN_KEYS['net.connect[]'];
  if (a === 'secrets' && path.length === 2) return KNOWN_KEYS['secrets.*'];
  if (a === 'tools' && b === 'trust' && path.length === 3) return KNOWN_KEYS['tools.trust[]'];
  if (a === 'limits' && b === 'hosts' && c !== undefined && path.length === 3) return KNOWN_KEYS['limits.*'];
  if (a === 'limits' && path.length === 2) return KNOWN_KEYS['limits.*'];
  if (a === 'budgets' && b === 'shared' && path.length === 2) return KNOWN_KEYS['budgets.shared'];
  if (path.length === 1 && typeof a === 'string') return KNOWN_KEYS[a];
  return undefined;
}

function distance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0] as number;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j] as number;
      d[j] = Math.min((d[j] as number) + 1, (d[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length] as number;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return typeof v === 'string' ? 'a string' : typeof v === 'number' ? 'a number' : typeof v === 'boolean' ? 'a boolean' : String(typeof v);
}

function toIssues(error: z.ZodError, located: Located | undefined): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  const at = (path: JsonPath, message: string, key = false): void => {
    // An unknown key is shown at the key; a missing field at its nearest located ancestor.
    let pos: Position | undefined = key ? located?.keyPositions.get(formatPath(path)) : undefined;
    for (let n = path.length; n >= 0 && pos === undefined; n--) pos = located?.positions.get(formatPath(path.slice(0, n)));
    out.push({ path: formatPath(path) || '(root)', message, line: pos?.line, column: pos?.column });
  };
  for (const iss of error.issues) {
    const path = iss.path.filter((p): p is string | number => typeof p !== 'symbol');
    switch (iss.code) {
      case 'unrecognized_keys': {
        const known = keysAt(path) ?? [];
        for (const key of iss.keys) {
          const close = known.filter((k) => distance(k, key) <= 2).sort((x, y) => distance(x, key) - distance(y, key))[0];
          const hint = close !== undefined ? `; did you mean ${close}?` : known.length > 0 ? ` (known: ${known.join(', ')})` : '';
          at([...path, key], `unknown field${hint}`, true);
        }
        break;
      }
      case 'invalid_type': {
        const input = (iss as { input?: unknown }).input;
        if (input === undefined) at(path, `required: expected ${iss.expected}`);
        else at(path, `expected ${iss.expected === 'object' ? 'an object' : iss.expected === 'array' ? 'a list' : iss.expected}, got ${typeName(input)}`);
        break;
      }
      case 'invalid_key': {
        const inner = iss.issues[0]?.message ?? 'invalid key';
        at(path, inner);
        break;
      }
      default:
        at(path, iss.message);
    }
  }
  return out;
}

// -------------------------------------------------------------- compile

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    // A key set to undefined is the same as an absent key (JSON has no undefined).
    const keys = Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

function build(document: unknown, source: string | undefined, located: Located | undefined): LoadedPolicy {
  const result = PolicySchema.safeParse(document, { reportInput: true });
  if (!result.success) throw invalidPolicy(toIssues(result.error, located), source);
  const positions = located?.positions;
  const doc = result.data;
  const warnings: PolicyIssue[] = [];
  const warn = (path: JsonPath, message: string): void => {
    const pos = positions?.get(formatPath(path));
    warnings.push({ path: formatPath(path) || '(root)', message, line: pos?.line, column: pos?.column });
  };
  const globs = <T>(key: JsonPath, list: readonly Parsed<T>[] | undefined): T[] =>
    (list ?? []).map((p, i) => {
      for (const w of p.warnings) warn([...key, i], `${JSON.stringify((p.value as { source: string }).source)} ${w}`);
      return p.value;
    });

  const fsRead = globs(['fs', 'read'], doc.fs?.read);
  const fsWrite = globs(['fs', 'write'], doc.fs?.write);
  const fsDeny = globs(['fs', 'deny'], doc.fs?.deny);
  const toolsAllow = globs(['tools', 'allow'], doc.tools?.allow);
  const toolsDeny = globs(['tools', 'deny'], doc.tools?.deny);
  const approvalTools = globs(['approvals', 'tools'], doc.approvals?.tools);
  const undoTools = globs(['undo', 'tools'], doc.undo?.tools);
  const toolTrust: ToolTrust = Object.freeze({
    rules: Object.freeze((doc.tools?.trust ?? []).map((r, i) => Object.freeze({ tools: Object.freeze(globs(['tools', 'trust', i, 'tools'], r.tools)), keys: Object.freeze([...r.keys]) }))),
    pins: lockMap(new Map(Object.entries(doc.tools?.pin ?? {}))),
  });
  const readSet = new PathRuleSet(fsRead, true);
  const writeSet = new PathRuleSet(fsWrite, false);
  const denySet = new PathRuleSet(fsDeny, true);

  checkFsShadows('read', fsRead, true, fsDeny, denySet, warn);
  checkFsShadows('write', fsWrite, false, fsDeny, denySet, warn);
  checkToolShadows(toolsAllow, toolsDeny, warn);

  const net = doc.net?.connect ?? [];
  const seen = new Map<string, number>();
  net.forEach((r, i) => {
    const key = `${formatOrigin(r)} ${[...(r.methods ?? ['*'])].sort().join(',')}`;
    const first = seen.get(key);
    if (first !== undefined) warn(['net', 'connect', i], `same destination and methods as net.connect[${first}]; one of them is enough`);
    else seen.set(key, i);
  });

  const secrets = new Map<string, SecretEntry>();
  for (const [name, entry] of Object.entries(doc.secrets ?? {})) {
    const hosts = entry.hosts ?? [];
    const reveal = entry.reveal ?? false;
    secrets.set(name, Object.freeze({ name, hosts: Object.freeze([...hosts]), reveal }));
    if (hosts.length === 0 && !reveal) warn(['secrets', name], 'can never be used: it has no hosts and reveal is false');
    hosts.forEach((h, i) => {
      if (h.host.kind === 'any') warn(['secrets', name, 'hosts', i], `'*' sends the secret to any ${h.scheme} host`);
      if (h.host.kind !== 'name' && h.host.kind !== 'ip') return;
      const hostText = h.host.kind === 'name' ? h.host.name : h.host.ip.version === 6 ? `[${formatIp(h.host.ip)}]` : formatIp(h.host.ip);
      const port = h.portLow === h.portHigh ? `:${h.portLow}` : '';
      const u = canonicaliseUrl(`${h.scheme}://${hostText}${port}/`);
      const reachable = net.some((r) => r.scheme === h.scheme && hostMatches(r.host, u) && r.portLow <= h.portHigh && h.portLow <= r.portHigh);
      if (!reachable) warn(['secrets', name, 'hosts', i], `no net.connect rule allows ${h.scheme}://${hostText}${port}, so the secret can never be sent there`);
    });
  }

  const limits = buildLimits(doc.limits);
  const { shared, wall_time_ms, ...runBudgets } = doc.budgets ?? {};
  const caps = Object.freeze({
    fsReadBytes: doc.fs?.max_read_bytes ?? DEFAULT_CAPS.fsReadBytes,
    fsWriteBytes: doc.fs?.max_write_bytes ?? DEFAULT_CAPS.fsWriteBytes,
    fsListEntries: doc.fs?.max_list_entries ?? DEFAULT_CAPS.fsListEntries,
    httpRequestBytes: doc.net?.max_request_bytes ?? DEFAULT_CAPS.httpRequestBytes,
    httpResponseBytes: doc.net?.max_response_bytes ?? DEFAULT_CAPS.httpResponseBytes,
    httpTimeoutMs: doc.net?.timeout_ms ?? DEFAULT_CAPS.httpTimeoutMs,
  });

  const frozenDoc = deepFreeze(structuredClone(document));
  const digest = createHash('sha256').update(canonicalJson(frozenDoc)).digest('hex');
  const frozenWarnings = Object.freeze(warnings.map((w) => Object.freeze(w)));
  const policy = new Policy({
    name: doc.name,
    digest,
    document: frozenDoc,
    caps,
    fsRead: readSet,
    fsWrite: writeSet,
    fsDeny: denySet,
    net: Object.freeze([...net]),
    secrets,
    toolsAllow: Object.freeze(toolsAllow),
    toolsDeny: Object.freeze(toolsDeny),
    toolTrust,
    limits,
    runBudgets: Object.freeze({ ...runBudgets, wall_time_ms }) as BudgetLimits & { wall_time_ms?: number },
    sharedBudgets: Object.freeze({ ...(shared ?? {}) }),
    approvals: Object.freeze({
      tools: Object.freeze(approvalTools),
      ops: Object.freeze([...(doc.approvals?.ops ?? [])]),
      timeoutMs: doc.approvals?.timeout_ms ?? DEFAULT_APPROVAL_TIMEOUT_MS,
    }),
    undoTools: Object.freeze(undoTools),
    warnings: frozenWarnings,
  });
  return Object.freeze({ policy, warnings: frozenWarnings });
}

function buildLimits(l: ParsedPolicy['limits']): RateLimits {
  if (l === undefined) return Object.freeze({});
  let hosts: Map<string, RateSpec> | undefined;
  if (l.hosts !== undefined) {
    hosts = new Map();
    for (const [key, spec] of Object.entries(l.hosts)) {
      const p = parseHostPattern(key);
      // The schema admitted only exact names and IP literals.
      if (typeof p === 'string') continue;
      if (p.kind === 'name') hosts.set(p.name, spec);
      else if (p.kind === 'ip') hosts.set(formatIp(p.ip), spec);
    }
  }
  return Object.freeze({ http: l.http, fs: l.fs, secrets: l.secrets, invocations: l.invocations, per_token: l.per_token, hosts: hosts && lockMap(hosts) });
}

/** A Map that refuses changes: freezing a Map does not stop `set`. */
function lockMap<K, V>(map: Map<K, V>): ReadonlyMap<K, V> {
  const refuse = (): never => {
    throw new TypeError('a loaded policy cannot be changed');
  };
  Object.defineProperties(map, { set: { value: refuse }, delete: { value: refuse }, clear: { value: refuse } });
  return Object.freeze(map);
}

type Warn = (path: JsonPath, message: string) => void;

/** Whether a deny alternative covers every path an allow alternative can match. */
function covers(deny: PathRuleHit, allow: PathRuleHit['alternative']): boolean {
  const d = deny.alternative;
  if (d.pattern === allow.pattern) return true;
  if (d.literal !== undefined) return allow.literal === d.literal;
  // `D/**` with D literal covers D and everything under it.
  if (d.pattern.endsWith('/**') && (d.pattern.slice(0, -3) || '/') === d.root) {
    return d.root === '/' || allow.root === d.root || allow.root.startsWith(d.root + '/');
  }
  return false;
}

function checkFsShadows(key: 'read' | 'write', allows: readonly CompiledPathGlob[], includeSelf: boolean, denies: readonly CompiledPathGlob[], denySet: PathRuleSet, warn: Warn): void {
  if (denies.length === 0 || allows.length === 0) return;
  const denyHits = [...denySet.alternatives()];
  let dead = 0;
  allows.forEach((g, i) => {
    const alts = g.alternatives.filter((a) => includeSelf || !a.self);
    let by: PathRuleHit | undefined;
    const allCovered =
      alts.length > 0 &&
      alts.every((a) => {
        const hit = a.literal !== undefined ? denySet.match(new PathView(a.literal)) : denyHits.find((d) => covers(d, a));
        by ??= hit;
        return hit !== undefined;
      });
    if (allCovered && by !== undefined) {
      dead++;
      warn(['fs', key, i], `'${g.source}' can never allow anything: fs.deny[${by.index}] '${by.source}' covers it`);
    }
  });
  if (dead === allows.length) warn(['fs', 'deny'], `fs.deny covers every fs.${key} rule: nothing can be ${key === 'read' ? 'read' : 'written'}`);
}

function checkToolShadows(allows: readonly CompiledNameGlob[], denies: readonly CompiledNameGlob[], warn: Warn): void {
  if (denies.length === 0 || allows.length === 0) return;
  let dead = 0;
  allows.forEach((a, i) => {
    const j = denies.findIndex((d) => nameGlobCovers(d, a));
    if (j >= 0) {
      dead++;
      warn(['tools', 'allow', i], `'${a.source}' can never allow anything: tools.deny[${j}] '${(denies[j] as CompiledNameGlob).source}' covers it`);
    }
  });
  if (dead === allows.length) warn(['tools', 'deny'], 'tools.deny covers every tools.allow rule: no tool can be invoked');
}
