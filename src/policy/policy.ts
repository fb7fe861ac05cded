/**
 * A loaded policy: frozen, compiled, and able to decide any request with a
 * reason. Deny by default: what no rule allows is denied, and every denial
 * names the rule that denied it or the rule that is missing.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import { HOST_OPS, type Decision, type FsHostOp, type HostCall, type HostOp } from '../host-call.ts';
import type { BudgetLimits, LimiterConfig, RateLimits } from '../limits/limiter.ts';
import type { CompiledNameGlob } from './glob.ts';
import { PathView, nameGlobMatches } from './glob.ts';
import type { PublicKeyInfo } from '../signing/keys.ts';
import { NO_TRUST, decideTrust, trustedKeys, type ToolTrust, type TrustDecision, type TrustSubject } from './trust.ts';
import { classifyIp, parseIp, sameIp, unmapIp, type AddressInfo } from './ip.ts';
import { METHOD, formatOrigin, hostMatches, namesAddress, originMatches, type NetRule, type SecretHost } from './net-rules.ts';
import type { PathRuleHit, PathRuleSet } from './path-rules.ts';
import { canonicalisePath, resolvePath } from './paths.ts';
import { TOOL_NAME, SECRET_NAME } from './schema.ts';
import { canonicaliseUrl, type CanonicalUrl } from './url.ts';

/** The fs operations: read, list and stat need `fs.read`; every other one (write, remove, mkdir) needs `fs.write`. */
export const FS_OPS: readonly FsHostOp[] = HOST_OPS.filter((op): op is FsHostOp => op.startsWith('fs.'));
export type FsOp = FsHostOp;

/** Every request the policy decides. */
export type PolicyRequest =
  | { readonly op: FsOp; readonly path: string }
  | { readonly op: 'http.fetch'; readonly url: string; readonly method?: string | undefined }
  | { readonly op: 'secrets.get'; readonly name: string }
  | { readonly op: 'secrets.use'; readonly name: string; readonly url: string }
  | { readonly op: 'tool.invoke'; readonly name: string };

export type PolicyOp = PolicyRequest['op'];
/** Every operation the policy decides, as the CLI's `--op` takes them. */
export const POLICY_OPS: readonly PolicyOp[] = [...FS_OPS, 'http.fetch', 'secrets.get', 'secrets.use', 'tool.invoke'];

/**
 * The policy request for a host call as the gate decoded it. Secret
 * placeholders in an http request are separate `secrets.use` requests, one per
 * name, which the gate makes in addition to this one.
 *
 * @example
 * ```ts
 * policy.decide(toPolicyRequest({ op: 'fs.read', path: '/data/a.txt' }));
 * ```
 */
export function toPolicyRequest(call: HostCall): PolicyRequest {
  switch (call.op) {
    case 'http.fetch':
      return { op: 'http.fetch', url: call.url, method: call.method };
    case 'secrets.get':
      return { op: 'secrets.get', name: call.name };
    default:
      return { op: call.op, path: call.path };
  }
}

/** A Decision, plus what the host needs to act on an allowed fs or http call. */
export type PolicyDecision = Decision & {
  /** The canonical path or URL the decision is about: act on this, not on the raw input. */
  readonly target?: string | undefined;
  /** fs allow: the literal root folder of the matched glob; the host confines the open to it. */
  readonly root?: string | undefined;
};

/** Size and time caps for effects. */
export interface PolicyCaps {
  readonly fsReadBytes: number;
  readonly fsWriteBytes: number;
  readonly fsListEntries: number;
  readonly httpRequestBytes: number;
  readonly httpResponseBytes: number;
  readonly httpTimeoutMs: number;
}

/** Defaults from wit/sandbox.wit. */
export const DEFAULT_CAPS: PolicyCaps = Object.freeze({
  fsReadBytes: 8 * 1024 * 1024,
  fsWriteBytes: 8 * 1024 * 1024,
  fsListEntries: 10_000,
  httpRequestBytes: 1024 * 1024,
  httpResponseBytes: 4 * 1024 * 1024,
  httpTimeoutMs: 30_000,
});

/** A located problem in a policy: an error (the policy does not load) or a warning. */
export interface PolicyIssue {
  /** JSON path, e.g. `net.connect[1]`; `(root)` for the document. */
  readonly path: string;
  readonly message: string;
  readonly line?: number | undefined;
  readonly column?: number | undefined;
}

export interface SecretEntry {
  readonly name: string;
  readonly hosts: readonly SecretHost[];
  readonly reveal: boolean;
}

/** What the loader hands to the Policy constructor. */
export interface CompiledPolicy {
  readonly name: string | undefined;
  readonly digest: string;
  readonly document: unknown;
  readonly caps: PolicyCaps;
  readonly fsRead: PathRuleSet;
  readonly fsWrite: PathRuleSet;
  readonly fsDeny: PathRuleSet;
  readonly net: readonly NetRule[];
  readonly secrets: ReadonlyMap<string, SecretEntry>;
  readonly toolsAllow: readonly CompiledNameGlob[];
  readonly toolsDeny: readonly CompiledNameGlob[];
  /** `tools.trust` and `tools.pin`. */
  readonly toolTrust?: ToolTrust | undefined;
  readonly limits: RateLimits;
  readonly runBudgets: BudgetLimits & { readonly wall_time_ms?: number | undefined };
  readonly sharedBudgets: BudgetLimits;
  readonly approvals: PolicyApprovals;
  /** Tools whose runs' file changes may be undone (`undo.tools`). */
  readonly undoTools: readonly CompiledNameGlob[];
  readonly warnings: readonly PolicyIssue[];
}

/** The policy's `approvals` section, compiled. */
export interface PolicyApprovals {
  /** Tools whose every invocation needs an approval. */
  readonly tools: readonly CompiledNameGlob[];
  /** Host operations each call of which needs an approval. */
  readonly ops: readonly HostOp[];
  /** Longest wait for an answer; no answer in time is a deny. */
  readonly timeoutMs: number;
}

/** Why a request needs an approval: the rule that says so. */
export interface ApprovalRule {
  /** e.g. `approvals.tools[0]` or `approvals.ops[1]`. */
  readonly rule: string;
  readonly reason: string;
}

/** What may need an approval: an invocation of a tool, or one host call. */
export type ApprovalSubject = { readonly op: 'tool.invoke'; readonly name: string } | { readonly op: HostOp };

const READ_OPS: ReadonlySet<string> = new Set(['fs.read', 'fs.list', 'fs.stat']);
const TOOL_CACHE_MAX = 4096;

function no(code: ErrorCode, reason: string, extra: { rule?: string | undefined; target?: string | undefined } = {}): PolicyDecision {
  return { allow: false, code, reason, rule: extra.rule, target: extra.target };
}

/** A thrown check is a deny: its own code for an AuthorityError (bad input), else an internal fault. */
function invalid(e: unknown): PolicyDecision {
  if (e instanceof AuthorityError) return no(e.code, e.message);
  return no(ErrorCode.INTERNAL, `policy check failed: ${e instanceof Error ? e.message : String(e)}`);
}

function quote(s: string): string {
  return `'${s}'`;
}

/**
 * The deployment's ceiling. Built by `loadPolicy`/`parsePolicy`; frozen.
 *
 * @example
 * ```ts
 * const { policy } = parsePolicy('{"version":"1.0","fs":{"read":["/data/**"]}}');
 * policy.decide({ op: 'fs.read', path: '/data/a.txt' });   // allow, rule 'fs.read[0]', root '/data'
 * policy.decide({ op: 'fs.read', path: '/etc/passwd' });   // deny: 'no fs.read rule matches /etc/passwd'
 * ```
 */
export class Policy {
  /** Format version of the document. */
  readonly version = '1.0';
  /** The policy's `name`, if it has one. */
  readonly name: string | undefined;
  /** SHA-256 (hex) of the document in canonical JSON: identifies this exact policy in audit records. */
  readonly digest: string;
  /** Prefix for limit and budget keys: the name, else the first 16 hex digits of the digest. */
  readonly namespace: string;
  readonly caps: PolicyCaps;
  readonly limits: RateLimits;
  readonly budgets: { readonly run: CompiledPolicy['runBudgets']; readonly shared: BudgetLimits };
  /** Longest wait for an approval (`approvals.timeout_ms`). */
  readonly approvalTimeoutMs: number;
  /** Problems found at load that do not stop it loading. */
  readonly warnings: readonly PolicyIssue[];
  readonly #c: CompiledPolicy;
  readonly #toolCache = new Map<string, PolicyDecision>();

  constructor(compiled: CompiledPolicy) {
    this.#c = compiled;
    this.name = compiled.name;
    this.digest = compiled.digest;
    this.namespace = compiled.name ?? compiled.digest.slice(0, 16);
    this.caps = compiled.caps;
    this.limits = compiled.limits;
    this.budgets = Object.freeze({ run: compiled.runBudgets, shared: compiled.sharedBudgets });
    this.approvalTimeoutMs = compiled.approvals.timeoutMs;
    this.warnings = compiled.warnings;
    Object.freeze(this);
  }

  /**
   * Whether a request needs an approval before it proceeds, and by which
   * rule. Asked only after every other check has allowed the request.
   *
   * @example
   * ```ts
   * const { policy } = loadPolicy({ version: '1.0', approvals: { tools: ['deploy-*'], ops: ['fs.write'] } });
   * policy.approvalFor({ op: 'tool.invoke', name: 'deploy-prod' }); // { rule: 'approvals.tools[0]', ... }
   * policy.approvalFor({ op: 'fs.read' });                          // undefined
   * ```
   */
  approvalFor(subject: ApprovalSubject): ApprovalRule | undefined {
    const a = this.#c.approvals;
    if (subject.op === 'tool.invoke') {
      const i = a.tools.findIndex((g) => nameGlobMatches(g, subject.name));
      if (i < 0) return undefined;
      return { rule: `approvals.tools[${i}]`, reason: `approvals.tools[${i}] ${quote((a.tools[i] as CompiledNameGlob).source)} matches ${subject.name}` };
    }
    const i = a.ops.indexOf(subject.op);
    if (i < 0) return undefined;
    return { rule: `approvals.ops[${i}]`, reason: `approvals.ops[${i}] names ${subject.op}` };
  }

  /**
   * Decide a request without touching the file system or the network. Paths
   * are canonicalised lexically; use `resolveAndDecide` for fs requests so
   * that symlinks are resolved too. Never throws: a malformed request is a
   * deny with `E_INVALID_ARGUMENT`.
   */
  decide(request: PolicyRequest): PolicyDecision {
    try {
      switch (request.op) {
        case 'fs.read':
        case 'fs.write':
        case 'fs.list':
        case 'fs.stat':
        case 'fs.remove':
        case 'fs.mkdir':
          return this.#decideFs(request.op, canonicalisePath(request.path));
        case 'http.fetch':
          return this.#decideHttp(canonicaliseUrl(request.url), request.method ?? 'GET');
        case 'secrets.get':
          return this.#decideSecretGet(request.name);
        case 'secrets.use':
          return this.#decideSecretUse(request.name, request.url);
        case 'tool.invoke':
          return this.#decideTool(request.name);
        default:
          return no(ErrorCode.INVALID_ARGUMENT, `unknown operation ${JSON.stringify((request as { op: unknown }).op)}`);
      }
    } catch (e) {
      return invalid(e);
    }
  }

  /**
   * Like `decide`, but an fs path is also resolved through symlinks (the
   * last segment too for read and list; only its folder for stat, write and
   * remove, which act on a link itself). An `fs.deny` rule applies to the
   * path as written and to the real path; the allow rules to the real path,
   * which is the decision's `target`. An I/O error is a deny.
   */
  async resolveAndDecide(request: PolicyRequest): Promise<PolicyDecision> {
    if (!(FS_OPS as readonly string[]).includes(request.op)) return this.decide(request);
    const { op, path } = request as { op: FsOp; path: string };
    let lexical: string;
    let real: string;
    try {
      lexical = canonicalisePath(path);
      real = await resolvePath(lexical, { followFinal: op === 'fs.read' || op === 'fs.list' });
    } catch (e) {
      // A bad path is invalid; anything else (a loop, EACCES) is an I/O failure: both deny.
      return no(e instanceof AuthorityError ? e.code : ErrorCode.IO, e instanceof Error ? e.message : String(e));
    }
    return this.decideResolved(op, lexical, real);
  }

  /**
   * Decide an fs request whose symlinks the caller already resolved: `lexical`
   * is the canonical path as written, `real` the path it reaches (as
   * `resolvePathSync` returns it). Same rules as `resolveAndDecide`, no I/O.
   */
  decideResolved(op: FsOp, lexical: string, real: string): PolicyDecision {
    try {
      if (real !== lexical) {
        const d = this.#c.fsDeny.match(new PathView(lexical));
        if (d !== undefined) return this.#denyHit(d, lexical);
      }
      const decision = this.#decideFs(op, real);
      if (real === lexical) return decision;
      return { ...decision, reason: `${decision.reason} (the real path of ${lexical})` };
    } catch (e) {
      return invalid(e);
    }
  }

  /**
   * Decide one address that DNS returned for an allowed URL (the host calls
   * this for every address before it connects, and connects only to allowed
   * ones). A public address is allowed by any rule matching the URL; a
   * non-public one only by a rule that names it: its IP or CIDR host, its
   * `resolves_to`, or a `localhost` host for 127.0.0.0/8 and ::1.
   */
  decideAddress(url: string | CanonicalUrl, ip: string): PolicyDecision {
    let u: CanonicalUrl;
    try {
      u = typeof url === 'string' ? canonicaliseUrl(url) : url;
    } catch (e) {
      return invalid(e);
    }
    const addr = parseIp(ip);
    if (addr === null) return no(ErrorCode.INVALID_ARGUMENT, `not an IP address: ${JSON.stringify(ip)}`);
    const info = classifyIp(addr);
    const shown = u.hostKind === 'ipv6' ? `[${u.host}]` : u.host;
    if (u.ip !== undefined && !sameIp(unmapIp(u.ip), unmapIp(addr))) {
      return no(ErrorCode.POLICY_DENY, `${info.address} is not the address ${shown} names`, { target: u.origin });
    }
    let nearest: NetRule | undefined;
    let nearestIndex = -1;
    for (let i = 0; i < this.#c.net.length; i++) {
      const r = this.#c.net[i] as NetRule;
      if (!originMatches(r, u)) continue;
      if (info.class === 'public') {
        return { allow: true, reason: `${info.address} is public; net.connect[${i}] ${quote(r.text)} matches ${u.origin}`, rule: `net.connect[${i}]`, target: u.origin };
      }
      if (namesAddress(r, addr)) {
        return { allow: true, reason: `${info.address} (${info.class}) is named by net.connect[${i}] ${quote(r.text)}`, rule: `net.connect[${i}]`, target: u.origin };
      }
      if (nearest === undefined) {
        nearest = r;
        nearestIndex = i;
      }
    }
    const what = `${info.address}, which is ${describeClass(info)}`;
    if (nearest === undefined) return no(ErrorCode.POLICY_DENY, `no net.connect rule matches ${u.origin}`, { target: u.origin });
    const fix = nearest.host.kind === 'name' ? "; add it to the rule's resolves_to to allow it" : '; a wildcard host never admits a non-public address';
    return no(ErrorCode.POLICY_DENY, `${shown} resolved to ${what}: net.connect[${nearestIndex}] ${quote(nearest.text)} does not name it${fix}`, {
      rule: `net.connect[${nearestIndex}]`,
      target: u.origin,
    });
  }

  /** The configuration a `Limiter` needs for this policy's limits and budgets. */
  limiterConfig(): LimiterConfig {
    return {
      namespace: this.namespace,
      rates: this.limits,
      run: this.budgets.run,
      shared: this.budgets.shared,
      caps: { fsReadBytes: this.caps.fsReadBytes, httpResponseBytes: this.caps.httpResponseBytes },
    };
  }

  /** The document as loaded (validated, frozen). */
  toJSON(): unknown {
    return this.#c.document;
  }

  // ----------------------------------------------------------------- fs

  #decideFs(op: FsOp, path: string): PolicyDecision {
    const view = new PathView(path);
    const d = this.#c.fsDeny.match(view);
    if (d !== undefined) return this.#denyHit(d, path);
    const reading = READ_OPS.has(op);
    const list = reading ? this.#c.fsRead : this.#c.fsWrite;
    const hit = list.match(view);
    const key = reading ? 'fs.read' : 'fs.write';
    if (hit !== undefined) {
      return {
        allow: true,
        reason: `${key}[${hit.index}] ${quote(hit.source)} allows ${op} of ${path}`,
        rule: `${key}[${hit.index}]`,
        target: path,
        root: hit.alternative.root,
      };
    }
    const needs = op === 'fs.read' || op === 'fs.write' ? '' : ` (${op} needs ${key})`;
    const none = list.size === 0 ? ` (the policy has no ${key} rules)` : '';
    return no(ErrorCode.POLICY_DENY, `no ${key} rule matches ${path}${needs}${none}`, { target: path });
  }

  #denyHit(hit: PathRuleHit, path: string): PolicyDecision {
    return no(ErrorCode.POLICY_DENY, `fs.deny[${hit.index}] ${quote(hit.source)} matches ${path}`, { rule: `fs.deny[${hit.index}]`, target: path });
  }

  // --------------------------------------------------------------- http

  #decideHttp(u: CanonicalUrl, rawMethod: string): PolicyDecision {
    if (!METHOD.test(rawMethod)) return no(ErrorCode.INVALID_ARGUMENT, `${JSON.stringify(rawMethod)} is not an HTTP method`);
    const method = rawMethod.toUpperCase();
    let methodMiss: number | undefined;
    for (let i = 0; i < this.#c.net.length; i++) {
      const r = this.#c.net[i] as NetRule;
      if (!originMatches(r, u)) continue;
      if (r.methods !== null && !r.methods.has(method)) {
        methodMiss ??= i;
        continue;
      }
      return { allow: true, reason: `net.connect[${i}] ${quote(r.text)} allows ${method} ${u.origin}`, rule: `net.connect[${i}]`, target: u.href };
    }
    if (methodMiss !== undefined) {
      const r = this.#c.net[methodMiss] as NetRule;
      return no(ErrorCode.POLICY_DENY, `net.connect[${methodMiss}] ${quote(r.text)} matches ${u.origin} but not method ${method} (it allows ${[...(r.methods ?? [])].join(', ')})`, {
        rule: `net.connect[${methodMiss}]`,
        target: u.href,
      });
    }
    if (u.address !== undefined && u.address.class !== 'public') {
      return no(
        ErrorCode.POLICY_DENY,
        `${u.origin}: ${u.address.address} is ${describeClass(u.address)}, and no net.connect rule names it (a wildcard host never admits a non-public address; name it, e.g. ${formatOrigin({ scheme: u.scheme, host: { kind: 'ip', ip: u.ip as NonNullable<typeof u.ip> }, portLow: u.port, portHigh: u.port })})`,
        { target: u.href },
      );
    }
    if (u.loopbackName) {
      return no(ErrorCode.POLICY_DENY, `${u.origin}: ${u.host} is a loopback name, and no net.connect rule names it (a wildcard host never admits it)`, { target: u.href });
    }
    const none = this.#c.net.length === 0 ? ' (the policy has no net.connect rules)' : '';
    return no(ErrorCode.POLICY_DENY, `no net.connect rule matches ${u.origin}${none}`, { target: u.href });
  }

  // ------------------------------------------------------------ secrets

  #secret(name: string): SecretEntry | PolicyDecision {
    if (typeof name !== 'string' || !SECRET_NAME.test(name)) return no(ErrorCode.INVALID_ARGUMENT, `not a secret name: ${JSON.stringify(String(name).slice(0, 64))}`);
    const s = this.#c.secrets.get(name);
    if (s === undefined) return no(ErrorCode.POLICY_DENY, `no secrets entry is named ${name}`);
    return s;
  }

  #decideSecretGet(name: string): PolicyDecision {
    const s = this.#secret(name);
    if (!('hosts' in s)) return s;
    if (!s.reveal) {
      return no(ErrorCode.POLICY_DENY, `secrets.${name}.reveal is false: a tool may use it only as a {{secret:${name}}} placeholder`, { rule: `secrets.${name}.reveal` });
    }
    return { allow: true, reason: `secrets.${name}.reveal is true`, rule: `secrets.${name}.reveal` };
  }

  #decideSecretUse(name: string, url: string): PolicyDecision {
    const s = this.#secret(name);
    if (!('hosts' in s)) return s;
    const u = canonicaliseUrl(url);
    for (let i = 0; i < s.hosts.length; i++) {
      const h = s.hosts[i] as SecretHost;
      if (h.scheme === u.scheme && u.port >= h.portLow && u.port <= h.portHigh && hostMatches(h.host, u)) {
        return { allow: true, reason: `secrets.${name}.hosts[${i}] ${quote(h.text)} matches ${u.origin}`, rule: `secrets.${name}.hosts[${i}]`, target: u.origin };
      }
    }
    const none = s.hosts.length === 0 ? ' (it has no hosts)' : '';
    return no(ErrorCode.POLICY_DENY, `no secrets.${name}.hosts entry matches ${u.origin}${none}`, { target: u.origin });
  }

  // -------------------------------------------------------------- tools

  /**
   * May this component be registered under this name? Decided on the
   * policy's `tools.pin` and `tools.trust`, given the keys whose signatures
   * over the digest verified (see {@link trustedKeys}).
   *
   * @example
   * ```ts
   * policy.decideTrust({ name: 'echo', digest: 'sha256:...', signers: [] });
   * // deny E_TOOL_UNSIGNED: "tools.trust[0].tools[0] '*' matches echo, so it must be signed by ..."
   * ```
   */
  decideTrust(subject: TrustSubject): TrustDecision {
    return decideTrust(this.#c.toolTrust ?? NO_TRUST, subject);
  }

  /** The public keys `tools.trust` names: tool signatures are verified against these. */
  trustedKeys(): PublicKeyInfo[] {
    return trustedKeys(this.#c.toolTrust ?? NO_TRUST);
  }

  /** Whether the policy says anything about provenance (`tools.trust` or `tools.pin`). */
  get checksProvenance(): boolean {
    const t = this.#c.toolTrust;
    return t !== undefined && (t.rules.length > 0 || t.pins.size > 0);
  }

  #decideTool(name: string): PolicyDecision {
    const cached = this.#toolCache.get(name);
    if (cached !== undefined) return cached;
    if (typeof name !== 'string' || !TOOL_NAME.test(name)) return no(ErrorCode.INVALID_ARGUMENT, `not a tool name: ${JSON.stringify(String(name).slice(0, 80))}`);
    const d = Object.freeze(this.#decideToolUncached(name));
    if (this.#toolCache.size >= TOOL_CACHE_MAX) this.#toolCache.clear();
    this.#toolCache.set(name, d);
    return d;
  }

  /**
   * Whether a run of `tool` may be undone: only when an `undo.tools` glob
   * names it (none by default). Each restore is then decided like any write.
   *
   * @example
   * ```ts
   * const { policy } = loadPolicy({ version: '1.0', undo: { tools: ['write-*'] } });
   * policy.decideUndo('write-file').allow; // true
   * ```
   */
  decideUndo(tool: string): PolicyDecision {
    const i = this.#c.undoTools.findIndex((g) => nameGlobMatches(g, tool));
    if (i >= 0) return { allow: true, reason: `undo.tools[${i}] ${quote((this.#c.undoTools[i] as CompiledNameGlob).source)} matches ${tool}`, rule: `undo.tools[${i}]` };
    const none = this.#c.undoTools.length === 0 ? ' (the policy has no undo.tools rules)' : '';
    return no(ErrorCode.POLICY_DENY, `no undo.tools rule matches ${tool}${none}`);
  }

  #decideToolUncached(name: string): PolicyDecision {
    const denyIdx = this.#c.toolsDeny.findIndex((g) => nameGlobMatches(g, name));
    if (denyIdx >= 0) {
      return no(ErrorCode.POLICY_DENY, `tools.deny[${denyIdx}] ${quote((this.#c.toolsDeny[denyIdx] as CompiledNameGlob).source)} matches ${name}`, { rule: `tools.deny[${denyIdx}]` });
    }
    const allowIdx = this.#c.toolsAllow.findIndex((g) => nameGlobMatches(g, name));
    if (allowIdx >= 0) {
      const g = this.#c.toolsAllow[allowIdx] as CompiledNameGlob;
      return { allow: true, reason: `tools.allow[${allowIdx}] ${quote(g.source)} matches ${name}`, rule: `tools.allow[${allowIdx}]` };
    }
    const none = this.#c.toolsAllow.length === 0 ? ' (the policy has no tools.allow rules)' : '';
    return no(ErrorCode.POLICY_DENY, `no tools.allow rule matches ${name}${none}`);
  }
}

function describeClass(info: AddressInfo): string {
  const names: Record<string, string> = {
    metadata: 'a cloud metadata address',
    unspecified: 'the unspecified address',
    broadcast: 'the broadcast address',
    cgnat: 'carrier-grade NAT',
  };
  const cls = `${names[info.class] ?? info.class} (${info.range})`;
  return info.embedded === undefined ? cls : `${cls}, as the ${info.embedding} form of ${info.embedded}`;
}
