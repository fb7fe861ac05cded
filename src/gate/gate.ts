/**
 * The gate: the only function that answers a guest's host call.
 *
 *   1 decode + canonicalise            -> invalid
 *   2 capability (a granted token)     -> E_CAP_*
 *   3 policy (the deployment ceiling)  -> E_POLICY_DENY
 *   4 rate limits                      -> E_RATE_LIMITED
 *   5 budgets: reserve                 -> E_BUDGET_EXCEEDED
 *   5b approval, if the policy asks    -> E_APPROVAL_REQUIRED / _DENIED
 *   6 audit: intent, durable before the effect
 *   7 effect (src/host)
 *   8 audit: outcome, durable before the reply
 *
 * A denial at any stage is recorded (durably) before the guest hears of it.
 * Any fault inside a check is a deny: nothing thrown here ever reaches the
 * guest as anything but a typed error.
 */
import type { Logger } from 'pino';
import { hashRequest, sha256Hex, type AuditDetail, type AuditEntry, type AuditReceipt } from '../audit/index.ts';
import { checkCapability, requestForHostCall, type CapabilityDecision, type GrantSet, type KeyedRate, type RevocationChecker } from '../capability/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { MAX_REDIRECTS, nextHop, percentDecodeLenient, toGuestError, type FsScope, type HostFs, type HttpClient, type HttpRequest, type SecretStore } from '../host/index.ts';
import type { Limiter, MeteredCall, Reservation } from '../limits/index.ts';
import { canonicaliseUrl, type Policy, type PolicyDecision } from '../policy/index.ts';
import { decode, placeholdersIn, type CanonicalCall } from './decode.ts';
import type { Decision, GuestError, HostCall, HostReply } from './types.ts';

/** Where the gate writes: the audit log (or anything with its append). */
export interface AuditSink {
  append(entry: AuditEntry): Promise<AuditReceipt>;
}

export interface GateDeps {
  revocations: RevocationChecker;
  /** The policy in force (a function, so it can be replaced while running). */
  policy: () => Policy;
  limiter: () => Limiter;
  audit: AuditSink;
  fs: HostFs;
  http: HttpClient;
  secrets: SecretStore;
  logger: Logger;
  /** Called when the audit log fails: nothing can be recorded, so nothing may run. */
  onAuditFailure?: (error: AuthorityError) => void;
  /**
   * Stage 5b, approvals: asked after every check has allowed a call (and
   * before its intent record). `undefined` when the call needs no approval;
   * else a promise of the decision, which the function has audited itself.
   */
  approve?: ((ctx: RunContext, call: CanonicalCall) => Promise<Decision> | undefined) | undefined;
  /**
   * Keeps what a path holds before fs.write or fs.remove changes it, so the
   * run can be undone; returns the facts for the outcome record. Absent: no
   * pre-images (nothing is reversible).
   */
  preImage?: ((target: string, scope: FsScope) => Promise<AuditDetail>) | undefined;
}

/** What the gate knows about the run a call belongs to. */
export interface RunContext {
  readonly runId: string;
  readonly tool: { readonly name: string; readonly digest: string };
  readonly grants: GrantSet;
  /** Epoch ms after which effects are cut short (the run's deadline). */
  readonly deadline: number;
  /** Aborted when the run ends early (timeout, halt): effects in flight stop. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Counters for the run's end record. */
  stats: { calls: number; allowed: number; denied: number; failed: number; redactions: number };
  /** The first denials of the run (at most 16), so callers see the gate's own codes. */
  denials: Denial[];
  /** Host calls the run may make, allowed or denied, before it is stopped. */
  readonly maxHostCalls: number;
  /** Stop the run now (its worker is terminated); the invocation fails with this error. */
  readonly stop: (error: AuthorityError) => void;
}

/** A host call the gate refused, as the caller of the invocation sees it. */
export interface Denial {
  op: string;
  code: ErrorCode;
  reason: string;
}

const MAX_DENIALS = 16;

type Denied = { allow: false; code: ErrorCode; reason: string; rule?: string | undefined; retryAfterMs?: number | undefined; tokenId?: string | undefined };

const DENIAL_TAG: Partial<Record<ErrorCode, GuestError['tag']>> = {
  [ErrorCode.INVALID_ARGUMENT]: 'invalid',
  [ErrorCode.NOT_FOUND]: 'not-found',
  [ErrorCode.TOO_LARGE]: 'too-large',
  [ErrorCode.IO]: 'io',
  [ErrorCode.TIMEOUT]: 'timeout',
};

/** The guest's view of a denial. */
export function denialToGuest(d: { code: ErrorCode; reason: string; retryAfterMs?: number | undefined }): GuestError {
  if (d.code === ErrorCode.RATE_LIMITED) return { tag: 'rate-limited', val: BigInt(Math.max(0, Math.ceil(d.retryAfterMs ?? 0))) };
  if (d.code === ErrorCode.BUDGET_EXCEEDED) return { tag: 'budget-exhausted', val: d.reason };
  const tag = DENIAL_TAG[d.code];
  if (tag !== undefined) return { tag, val: d.reason } as GuestError;
  return { tag: 'denied', val: { code: d.code, message: d.reason } };
}

function metered(call: CanonicalCall): MeteredCall {
  switch (call.op) {
    case 'fs.write':
      return { op: 'fs.write', bytes: call.data.length };
    case 'http.fetch':
      return { op: 'http.fetch', host: call.url.host, requestBytes: call.body?.length ?? 0 };
    case 'secrets.get':
      return { op: 'secrets.get' };
    default:
      return { op: call.op };
  }
}

/**
 * At most `n` UTF-16 units of `s`, never ending inside a surrogate pair: the
 * audit log refuses a lone surrogate, and a refused record is a call without one.
 */
function clip(s: string, n: number): string {
  if (s.length <= n) return s;
  const cut = s.charCodeAt(n - 1) >= 0xd800 && s.charCodeAt(n - 1) <= 0xdbff ? n - 1 : n;
  return s.slice(0, cut);
}

/** What the audit log may know of a request: never data, never a secret. Paths and URLs are cut to 512 units (a record holds at most 4 KiB of detail). */
function requestFacts(call: CanonicalCall): { hash: string; detail: AuditDetail } {
  switch (call.op) {
    case 'fs.write':
      return {
        hash: hashRequest({ op: call.op, path: call.real, dataSha256: sha256Hex(call.data), bytes: call.data.length }),
        detail: { path: clip(call.real, 512), bytes: call.data.length },
      };
    case 'http.fetch':
      return {
        hash: hashRequest({
          op: call.op,
          method: call.method,
          url: call.url.href,
          headers: call.headers.map(([k, v]) => [k.toLowerCase(), sha256Hex(v)]),
          bodySha256: call.body === undefined ? null : sha256Hex(call.body),
        }),
        detail: { method: call.method, url: call.url.href.slice(0, 512), ...(call.placeholders.length ? { secrets: call.placeholders } : {}) },
      };
    case 'secrets.get':
      return { hash: hashRequest({ op: call.op, name: call.name }), detail: { name: call.name } };
    default:
      return { hash: hashRequest({ op: call.op, path: call.real }), detail: { path: clip(call.real, 512) } };
  }
}

/** Detail for a call that did not decode: the op and a short, safe view of what was asked. */
function rawFacts(call: HostCall): { hash: string; detail: AuditDetail } {
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

/**
 * The gate. One per runtime; stateless between calls except through its
 * dependencies (limits, audit, revocations).
 */
export class Gate {
  readonly #d: GateDeps;

  constructor(deps: GateDeps) {
    this.#d = deps;
  }

  /** Answer one host call. Never throws, never rejects. */
  async handle(ctx: RunContext, call: HostCall): Promise<HostReply> {
    ctx.stats.calls++;
    if (ctx.stats.calls > ctx.maxHostCalls) return this.#flood(ctx, call);
    try {
      return await this.#handle(ctx, call);
    } catch (e) {
      // An audit write failure, or a bug: deny, and say as little as is safe.
      ctx.stats.failed++;
      const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INTERNAL, 'the gate failed', { cause: e });
      ctx.log.error({ err, op: (call as { op?: unknown }).op }, 'host call failed inside the gate');
      if (err.code === ErrorCode.AUDIT_WRITE) this.#d.onAuditFailure?.(err);
      return { tag: 'err', val: { tag: 'denied', val: { code: err.code, message: err.code === ErrorCode.AUDIT_WRITE ? 'the audit log is unavailable' : 'the host failed to decide this call' } } };
    }
  }

  /** A run past its host-call limit: one record, then the run is stopped (a flood must not fill the log). */
  async #flood(ctx: RunContext, call: HostCall): Promise<HostReply> {
    const reason = `the run made more than ${ctx.maxHostCalls} host calls and was stopped`;
    const reply: HostReply = { tag: 'err', val: { tag: 'budget-exhausted', val: reason } };
    if (ctx.signal.aborted) return reply;
    const err = new AuthorityError(ErrorCode.BUDGET_EXCEEDED, reason, { data: { maxHostCalls: ctx.maxHostCalls } });
    try {
      await this.#deny(ctx, (call as { op?: string }).op ?? 'unknown', rawFacts(call), { allow: false, code: ErrorCode.BUDGET_EXCEEDED, reason, rule: 'limits.maxHostCalls' });
    } finally {
      ctx.stop(err);
    }
    return reply;
  }

  async #handle(ctx: RunContext, raw: HostCall): Promise<HostReply> {
    // 1 decode
    let call: CanonicalCall;
    try {
      call = decode(raw);
    } catch (e) {
      const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'malformed host call', { cause: e });
      const code = err.code === ErrorCode.IO ? ErrorCode.IO : ErrorCode.INVALID_ARGUMENT;
      return this.#deny(ctx, (raw as { op?: string }).op ?? 'unknown', rawFacts(raw), { allow: false, code, reason: err.message });
    }
    const facts = requestFacts(call);

    // 2-5 checks; then 6-8
    const checked = await this.#check(ctx, call);
    if (!checked.allow) return this.#deny(ctx, call.op, facts, checked);

    if (call.op === 'http.fetch') return this.#fetch(ctx, call, facts, checked);
    return this.#act(ctx, call, facts, checked);
  }

  /** Stages 2-5 for one call (or one redirect hop). */
  async #check(ctx: RunContext, call: CanonicalCall): Promise<Denied | { allow: true; tokenId: string | undefined; policy: PolicyDecision; reservation: Reservation; reason: string }> {
    const revocations = this.#d.revocations;
    // 2 capability
    const capRequest = requestForHostCall(
      call.op === 'http.fetch'
        ? { op: 'http.fetch', method: call.method, url: call.url.href, headers: [] }
        : call.op === 'secrets.get'
          ? { op: 'secrets.get', name: call.name }
          : call.op === 'fs.write'
            ? { op: 'fs.write', path: call.real, data: call.data }
            : { op: call.op, path: call.real },
    );
    const cap: CapabilityDecision = checkCapability(ctx.grants, capRequest, { runId: ctx.runId, revocations });
    if (!cap.allow) return { ...(cap as Decision & { allow: false }), tokenId: cap.tokenId };
    const rates: KeyedRate[] = [...(cap.rates ?? [])];
    if (call.op === 'http.fetch') {
      for (const name of call.placeholders) {
        const use = checkCapability(ctx.grants, { kind: 'secrets', resource: name, method: 'use' }, { runId: ctx.runId, revocations });
        if (!use.allow) return { ...(use as Decision & { allow: false }), reason: `secret placeholder {{secret:${name}}}: ${use.reason}`, tokenId: use.tokenId };
        rates.push(...(use.rates ?? []));
      }
    }

    // 3 policy
    const policy = this.#d.policy();
    const pd: PolicyDecision =
      call.op === 'http.fetch'
        ? policy.decide({ op: 'http.fetch', url: call.url.href, method: call.method })
        : call.op === 'secrets.get'
          ? policy.decide({ op: 'secrets.get', name: call.name })
          : policy.decideResolved(call.op, call.path, call.real);
    if (!pd.allow) return { ...(pd as Decision & { allow: false }), tokenId: cap.tokenId };
    if (call.op === 'http.fetch') {
      for (const name of call.placeholders) {
        const use = policy.decide({ op: 'secrets.use', name, url: call.url.href });
        if (!use.allow) return { ...(use as Decision & { allow: false }), tokenId: cap.tokenId };
      }
    }
    if (call.op !== 'http.fetch' && call.op !== 'secrets.get' && pd.root === undefined) {
      return { allow: false, code: ErrorCode.INTERNAL, reason: 'the policy allowed a path without naming its root', tokenId: cap.tokenId };
    }

    // 4 rate, 5 budget
    const limiter = this.#d.limiter();
    const limitCtx = { runId: ctx.runId, tool: ctx.tool.name, tokenId: cap.tokenId };
    const m = metered(call);
    const rate = await limiter.rate(limitCtx, m, rates);
    if (!rate.allow) return { ...(rate as Decision & { allow: false }), tokenId: cap.tokenId };
    const { decision: budget, reservation } = await limiter.reserve(limitCtx, m);
    if (!budget.allow || reservation === undefined) {
      return { ...((budget.allow ? { allow: false, code: ErrorCode.INTERNAL, reason: 'no reservation' } : budget) as Denied), tokenId: cap.tokenId };
    }

    // 5b approval (only for calls the policy marks as needing one; no await otherwise, this is the hot path)
    let approval: Decision | undefined;
    try {
      const pending = this.#d.approve?.(ctx, call);
      if (pending !== undefined) approval = await pending;
    } catch (e) {
      await limiter.cancel(reservation).catch(() => {});
      throw e;
    }
    if (approval !== undefined && !approval.allow) {
      await limiter.cancel(reservation).catch(() => {});
      return { ...approval, tokenId: cap.tokenId };
    }
    const approved = approval === undefined ? '' : `; ${approval.reason}`;
    return { allow: true, tokenId: cap.tokenId, policy: pd, reservation, reason: `${cap.reason}; ${pd.reason}${approved}` };
  }

  async #deny(ctx: RunContext, op: string, facts: { hash: string; detail: AuditDetail }, denied: Denied): Promise<HostReply> {
    // A reason can quote the guest's URL or path, which may carry a secret's value.
    const d = { ...denied, reason: this.#redact(denied.reason) };
    ctx.stats.denied++;
    if (ctx.denials.length < MAX_DENIALS) ctx.denials.push({ op, code: d.code, reason: d.reason });
    await this.#audit(ctx, {
      kind: 'call.denied',
      op,
      decision: 'deny',
      code: d.code,
      tokenId: d.tokenId,
      requestHash: facts.hash as never,
      reason: d.reason,
      detail: d.rule === undefined ? facts.detail : { ...facts.detail, rule: d.rule },
    });
    ctx.log.debug({ op, code: d.code, reason: this.#scrub(d.reason) }, 'host call denied');
    return { tag: 'err', val: denialToGuest(d) };
  }

  /** Secret values replaced by `[REDACTED:NAME]` (also percent-encoded ones). */
  #redact(text: string): string {
    return this.#scrub(text);
  }

  /** Append a record of this run; the log never holds a secret's value, whatever the guest put in a path or URL. */
  #audit(ctx: RunContext, entry: Omit<AuditEntry, 'runId' | 'tool' | 'toolDigest'>): Promise<AuditReceipt> {
    // A tool that read a secret may put it in a URL or a path: the record shows where the call went, never the value.
    const scrubbed = entry.reason === undefined ? undefined : this.#scrub(entry.reason);
    const reason = scrubbed !== undefined && scrubbed.length > 1024 ? clip(scrubbed, 1021) + '...' : scrubbed;
    // With no secrets there is nothing to scrub: the detail goes as it is, not copied.
    const detail = entry.detail === undefined || this.#d.secrets.size === 0 ? entry.detail : (this.#scrubValue(entry.detail) as AuditDetail);
    return this.#d.audit.append({ ...entry, reason, detail, runId: ctx.runId, tool: ctx.tool.name, toolDigest: `sha256:${ctx.tool.digest}` });
  }

  /** `text` with every secret value replaced by `[REDACTED:NAME]`, also a value written percent-encoded. */
  #scrub(text: string): string {
    const secrets = this.#d.secrets;
    if (secrets.size === 0) return text;
    let out = secrets.redactText(text, 'audit').text;
    if (out.includes('%')) {
      const decoded = Buffer.from(percentDecodeLenient(Buffer.from(out, 'utf8'))).toString('utf8');
      if (secrets.findText(decoded).length > 0) out = secrets.redactText(decoded, 'audit').text;
    }
    return out;
  }

  #scrubValue(v: AuditDetail[string]): AuditDetail[string] {
    if (typeof v === 'string') return this.#d.secrets.size === 0 ? v : clip(this.#scrub(v), 1024);
    if (Array.isArray(v)) return v.map((x: AuditDetail[string]) => this.#scrubValue(x));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.#scrubValue(x)]));
    return v;
  }

  /** Stages 6-8 for fs and secrets. */
  async #act(
    ctx: RunContext,
    call: Exclude<CanonicalCall, { op: 'http.fetch' }>,
    facts: { hash: string; detail: AuditDetail },
    ok: { tokenId: string | undefined; policy: PolicyDecision; reservation: Reservation; reason: string },
  ): Promise<HostReply> {
    const limiter = this.#d.limiter();
    // 6 intent
    try {
      await this.#audit(ctx, { kind: 'call.intent', op: call.op, decision: 'allow', tokenId: ok.tokenId, requestHash: facts.hash as never, reason: ok.reason, detail: facts.detail });
    } catch (e) {
      await limiter.cancel(ok.reservation).catch(() => {});
      throw e;
    }
    ctx.stats.allowed++;
    // 7 effect
    let reply: HostReply;
    let responseHash: string | undefined;
    // A failed effect read or wrote nothing: settle it as zero bytes, or its whole reservation stays spent.
    let used: { readBytes?: number; writeBytes?: number } = { readBytes: 0, writeBytes: 0 };
    const detail: Record<string, AuditDetail[string]> = {};
    try {
      const scope =
        call.op === 'secrets.get'
          ? undefined
          : { roots: [ok.policy.root as string], limits: { readBytes: ok.reservation.allowance.readBytes ?? this.#d.policy().caps.fsReadBytes, writeBytes: this.#d.policy().caps.fsWriteBytes, listEntries: this.#d.policy().caps.fsListEntries } };
      const target = ok.policy.target ?? (call.op === 'secrets.get' ? '' : call.real);
      switch (call.op) {
        case 'fs.read': {
          const bytes = await this.#d.fs.readFile(target, scope!);
          used = { readBytes: bytes.length };
          responseHash = sha256Hex(bytes);
          detail['bytes'] = bytes.length;
          reply = { tag: 'ok', val: bytes };
          break;
        }
        case 'fs.write': {
          const pre = await this.#d.preImage?.(target, scope!);
          await this.#d.fs.writeFile(target, call.data, scope!);
          used = { writeBytes: call.data.length };
          if (pre !== undefined) Object.assign(detail, pre, { postImage: `sha256:${sha256Hex(call.data)}` });
          reply = { tag: 'ok', val: undefined };
          break;
        }
        case 'fs.list': {
          const entries = await this.#d.fs.listDir(target, scope!);
          responseHash = hashRequest(entries);
          detail['entries'] = entries.length;
          reply = { tag: 'ok', val: entries };
          break;
        }
        case 'fs.stat': {
          const st = await this.#d.fs.stat(target, scope!);
          responseHash = hashRequest({ kind: st.kind, size: String(st.size), modifiedMs: String(st.modifiedMs) });
          reply = { tag: 'ok', val: st };
          break;
        }
        case 'fs.remove': {
          const pre = await this.#d.preImage?.(target, scope!);
          await this.#d.fs.remove(target, scope!);
          if (pre !== undefined) Object.assign(detail, pre, { postImage: 'absent' });
          reply = { tag: 'ok', val: undefined };
          break;
        }
        case 'secrets.get': {
          // The value's own hash would let anyone guess a short secret: record only its length.
          const value = this.#d.secrets.get(call.name);
          detail['bytes'] = Buffer.byteLength(value);
          reply = { tag: 'ok', val: value };
          break;
        }
      }
    } catch (e) {
      reply = { tag: 'err', val: toGuestError(e, (t) => this.#d.secrets.redactText(t).text) };
    }
    await limiter.settle(ok.reservation, used).catch((e: unknown) => ctx.log.warn({ err: e }, 'budget settle failed'));
    // 8 outcome
    return this.#outcome(ctx, call.op, ok.tokenId, reply, responseHash, detail);
  }

  async #outcome(ctx: RunContext, op: string, tokenId: string | undefined, reply: HostReply, responseHash: string | undefined, detail: AuditDetail): Promise<HostReply> {
    const code = reply.tag === 'ok' ? 'ok' : reply.val.tag === 'denied' ? reply.val.val.code : reply.val.tag;
    const reason = reply.tag === 'ok' ? undefined : reply.val.tag === 'denied' ? reply.val.val.message : reply.val.tag === 'rate-limited' ? `retry after ${reply.val.val} ms` : reply.val.val;
    await this.#audit(ctx, { kind: 'call.outcome', op, decision: 'allow', code, tokenId, responseHash: responseHash as never, reason, detail });
    // The host refused at the effect (an address DNS gave, a secret on its way out): the caller sees it with the gate's own denials.
    if (reply.tag === 'err' && reply.val.tag === 'denied' && ctx.denials.length < MAX_DENIALS) {
      ctx.denials.push({ op, code: reply.val.val.code as ErrorCode, reason: this.#redact(reply.val.val.message) });
    }
    return reply;
  }

  /** http.fetch: stages 6-8 per hop, following redirects through stages 2-5 again. */
  async #fetch(
    ctx: RunContext,
    first: Extract<CanonicalCall, { op: 'http.fetch' }>,
    firstFacts: { hash: string; detail: AuditDetail },
    firstOk: { tokenId: string | undefined; policy: PolicyDecision; reservation: Reservation; reason: string },
  ): Promise<HostReply> {
    const policyAtStart = this.#d.policy();
    const caps = policyAtStart.caps;
    const callDeadline = Math.min(ctx.deadline, Date.now() + caps.httpTimeoutMs);
    let call = first;
    let facts = firstFacts;
    let ok = firstOk;
    for (let hop = 0; ; hop++) {
      const limiter = this.#d.limiter();
      try {
        await this.#audit(ctx, {
          kind: 'call.intent',
          op: call.op,
          decision: 'allow',
          tokenId: ok.tokenId,
          requestHash: facts.hash as never,
          reason: ok.reason,
          detail: hop === 0 ? facts.detail : { ...facts.detail, hop },
        });
      } catch (e) {
        await limiter.cancel(ok.reservation).catch(() => {});
        throw e;
      }
      ctx.stats.allowed++;
      const request: HttpRequest = { method: call.method, url: call.url.href, headers: call.headers, body: call.body };
      const url = call.url;
      const policy = this.#d.policy();
      const grants = ctx.grants;
      let result;
      let reply: HostReply;
      const detail: Record<string, AuditDetail[string]> = hop === 0 ? {} : { hop };
      try {
        result = await this.#d.http.fetch(request, {
          checkAddress: (address) => policy.decideAddress(url, address),
          mayUse: (name, hopUrl) => {
            const use = checkCapability(grants, { kind: 'secrets', resource: name, method: 'use' }, { runId: ctx.runId, revocations: this.#d.revocations });
            if (!use.allow) return use;
            return policy.decide({ op: 'secrets.use', name, url: hopUrl });
          },
          secrets: this.#d.secrets,
          limits: {
            requestBodyBytes: caps.httpRequestBytes,
            responseBodyBytes: ok.reservation.allowance.responseBytes ?? caps.httpResponseBytes,
          },
          timeoutMs: Math.max(1, callDeadline - Date.now()),
          signal: ctx.signal,
        });
        detail['status'] = result.status;
        detail['address'] = result.address;
        detail['bytes'] = result.body.length;
        if (result.secretsUsed.length > 0) detail['secretsUsed'] = result.secretsUsed;
        if (result.redactions.length > 0) {
          detail['redacted'] = result.redactions.map((r) => r.name);
          ctx.stats.redactions += result.redactions.length;
        }
        reply = { tag: 'ok', val: { status: result.status, headers: result.headers, body: result.body } };
      } catch (e) {
        reply = { tag: 'err', val: toGuestError(e, (t) => this.#d.secrets.redactText(t).text) };
      }
      await limiter
        .settle(ok.reservation, { requestBytes: call.body?.length ?? 0, responseBytes: result?.body.length ?? 0 })
        .catch((e: unknown) => ctx.log.warn({ err: e }, 'budget settle failed'));
      const responseHash = result === undefined ? undefined : hashRequest({ status: result.status, headers: result.headers, bodySha256: sha256Hex(result.body) });
      await this.#outcome(ctx, call.op, ok.tokenId, reply, responseHash, detail);
      if (reply.tag === 'err' || result === undefined) return reply;

      // Redirects: each hop is a new request the gate checks from stage 2.
      let next: HttpRequest | undefined;
      try {
        next = nextHop(request, result);
      } catch (e) {
        // A Location the host refuses ends the call: that refusal is a denied hop, recorded like any other.
        const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'bad redirect', { cause: e });
        const location = (result.headers.find(([k]) => k.toLowerCase() === 'location')?.[1] ?? '').slice(0, 2048);
        return this.#deny(ctx, 'http.fetch', { hash: hashRequest({ op: 'http.fetch', location }), detail: { location: location.slice(0, 512), hop: hop + 1 } }, {
          allow: false,
          code: err.code,
          reason: `redirect hop ${hop + 1}: ${err.message}`,
        });
      }
      if (next === undefined) return reply;
      if (hop + 1 > MAX_REDIRECTS) {
        return this.#deny(ctx, 'http.fetch', { hash: hashRequest({ op: 'http.fetch', url: next.url }), detail: { url: next.url.slice(0, 512), hop: hop + 1 } }, {
          allow: false,
          code: ErrorCode.POLICY_DENY,
          reason: `more than ${MAX_REDIRECTS} redirects`,
        });
      }
      let nextCall: Extract<CanonicalCall, { op: 'http.fetch' }>;
      try {
        nextCall = {
          op: 'http.fetch',
          method: next.method.toUpperCase(),
          url: canonicaliseUrl(next.url),
          headers: [...next.headers],
          body: next.body,
          placeholders: placeholdersIn(next.headers),
          raw: { op: 'http.fetch', method: next.method, url: next.url, headers: [...next.headers], body: next.body },
        };
      } catch (e) {
        const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'bad redirect', { cause: e });
        return this.#deny(ctx, 'http.fetch', { hash: hashRequest({ op: 'http.fetch', url: next.url.slice(0, 2048) }), detail: { url: next.url.slice(0, 512), hop: hop + 1 } }, {
          allow: false,
          code: ErrorCode.INVALID_ARGUMENT,
          reason: `redirect to an invalid URL: ${err.message}`,
        });
      }
      const nextFacts = requestFacts(nextCall);
      const nextDetail = { ...nextFacts.detail, hop: hop + 1 };
      const checked = await this.#check(ctx, nextCall);
      if (!checked.allow) return this.#deny(ctx, 'http.fetch', { hash: nextFacts.hash, detail: nextDetail }, { ...checked, reason: `redirect hop ${hop + 1}: ${checked.reason}` });
      call = nextCall;
      facts = { hash: nextFacts.hash, detail: nextFacts.detail };
      ok = checked;
    }
  }
}
