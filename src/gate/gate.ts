/**
 * The gate: the only function that answers a guest's host call, and the one
 * that admits an invocation. Both pass the same stages, in this order:
 *
 *   1 decode + canonicalise            -> invalid        (an invocation: its input schema)
 *   2 capability (a granted token)     -> E_CAP_*        (and the run not revoked)
 *   3 policy (the deployment ceiling)  -> E_POLICY_DENY
 *   4 rate limits                      -> E_RATE_LIMITED
 *   5 budgets: reserve                 -> E_BUDGET_EXCEEDED
 *   5b approval, if the policy asks    -> E_APPROVAL_REQUIRED / _DENIED
 *   6 audit: intent, durable before the effect          (an invocation: invoke.start)
 *   7 effect (src/host)                                  (an invocation: the run)
 *   8 audit: outcome, durable before the reply          (an invocation: invoke.end)
 *
 * What each host operation means at each stage is its row in ops.ts. A
 * denial at any stage is recorded (durably) before anyone hears of it. Any
 * fault inside a check is a deny: nothing thrown here ever reaches the guest
 * as anything but a typed error.
 */
import { hashRequest, sha256Hex, type AuditDetail } from '../audit/index.ts';
import { checkCapability, type CapabilityRequest, type KeyedRate } from '../capability/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { guestError, type Decision, type GuestError, type HostCall, type HostReply } from '../host-call.ts';
import { MAX_REDIRECTS, nextHop, toGuestError, type HttpRequest, type HttpResult } from '../host/index.ts';
import type { Limiter, MeteredCall, Reservation } from '../limits/index.ts';
import type { Policy, PolicyDecision } from '../policy/index.ts';
import { admitChecks, type Admission, type AdmissionRequest } from './admission.ts';
import { approve } from './approval.ts';
import type { GateDeps, RunContext, RunSubject } from './context.ts';
import { clip, decode, fetchCall, opOf, type CanonicalCall, type Effect, type Facts, type OpSpec } from './ops.ts';
import { Recorder } from './record.ts';

const MAX_DENIALS = 16;

type Denied = { allow: false; code: ErrorCode; reason: string; rule?: string | undefined; retryAfterMs?: number | undefined; tokenId?: string | undefined };
type Allowed = { allow: true; tokenId: string | undefined; policy: PolicyDecision; reservation: Reservation; reason: string };

/** One call (or one admission) as the gate sees it: who asks, and the policy and limiter it is decided under, read once. */
interface Stage {
  readonly ctx: RunSubject;
  readonly policy: Policy;
  readonly limiter: Limiter;
}
/** A host call's stage: its run has a deadline, a signal and counters. */
interface Turn extends Stage {
  readonly ctx: RunContext;
}

/** The guest's view of a denial. */
export function denialToGuest(d: { code: ErrorCode; reason: string; retryAfterMs?: number | undefined }): GuestError {
  return guestError(d.code, d.reason, d.retryAfterMs);
}

const denied = (d: Decision, tokenId: string | undefined): Denied => ({ ...(d as Decision & { allow: false }), tokenId });

/** Detail for a call that did not decode: the op and a short, safe view of what was asked. */
function rawFacts(call: HostCall): Facts {
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
  readonly #rec: Recorder;

  constructor(deps: GateDeps) {
    this.#d = deps;
    this.#rec = new Recorder(deps);
  }

  /** Answer one host call. Never throws, never rejects. */
  async handle(ctx: RunContext, call: HostCall): Promise<HostReply> {
    ctx.stats.calls++;
    if (ctx.stats.calls > ctx.maxHostCalls) return this.#flood(ctx, call);
    try {
      return await this.#handle({ ctx, policy: this.#d.policy(), limiter: this.#d.limiter() }, call);
    } catch (e) {
      // An audit write failure, or a bug: deny, and say as little as is safe.
      ctx.stats.failed++;
      const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INTERNAL, 'the gate failed', { cause: e });
      ctx.log.error({ err, op: (call as { op?: unknown }).op }, 'host call failed inside the gate');
      if (err.code === ErrorCode.AUDIT_WRITE) this.#d.onAuditFailure?.(err);
      const message = err.code === ErrorCode.AUDIT_WRITE ? 'the audit log is unavailable' : 'the host failed to decide this call';
      return { tag: 'err', val: { tag: 'denied', val: { code: err.code, message } } };
    }
  }

  /**
   * Admit an invocation: stages 1-5b, then its `invoke.start` record. A
   * refusal is recorded before it is returned. The policy and limiter are read
   * once, and the run's host calls read them again each.
   */
  admit(req: AdmissionRequest): Promise<Admission> {
    const turn: Stage = { ctx: req.ctx, policy: this.#d.policy(), limiter: this.#d.limiter() };
    return admitChecks(req, turn, {
      revocations: this.#d.revocations,
      record: (entry) => this.#rec.appendRaw(entry),
      capability: (request) => this.#capability(turn, request, []),
      limits: (m, tokenId) => this.#limits(turn, m, tokenId, []),
      approval: (ask, reservation, tokenId) => this.#approval(turn, ask, reservation, tokenId, { signal: this.#d.stopping }),
    });
  }

  /** A run past its host-call limit: one record, then the run is stopped (a flood must not fill the log). */
  async #flood(ctx: RunContext, call: HostCall): Promise<HostReply> {
    const reason = `the run made more than ${ctx.maxHostCalls} host calls and was stopped`;
    const reply: HostReply = { tag: 'err', val: { tag: 'budget-exhausted', val: reason } };
    if (ctx.signal.aborted) return reply;
    const err = new AuthorityError(ErrorCode.BUDGET_EXCEEDED, reason, { data: { maxHostCalls: ctx.maxHostCalls } });
    try {
      const op = (call as { op?: string }).op ?? 'unknown';
      await this.#deny(ctx, op, rawFacts(call), { allow: false, code: ErrorCode.BUDGET_EXCEEDED, reason, rule: 'limits.maxHostCalls' });
    } finally {
      ctx.stop(err);
    }
    return reply;
  }

  /** The stages in order; an http call loops from stage 2 for each redirect it follows. */
  async #handle(turn: Turn, raw: HostCall): Promise<HostReply> {
    let call: CanonicalCall;
    try {
      call = decode(raw);
    } catch (e) {
      const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'malformed host call', { cause: e });
      const code = err.code === ErrorCode.IO ? ErrorCode.IO : ErrorCode.INVALID_ARGUMENT;
      return this.#deny(turn.ctx, (raw as { op?: string }).op ?? 'unknown', rawFacts(raw), { allow: false, code, reason: err.message });
    }
    // One deadline covers a call and all its redirects.
    const deadline = Math.min(turn.ctx.deadline, Date.now() + turn.policy.caps.httpTimeoutMs);
    for (let hop = 0; ; hop++) {
      const op = opOf(call.op);
      const facts = op.facts(call);
      const checked = await this.#check(turn, op, call);
      if (!checked.allow) {
        if (hop === 0) return this.#deny(turn.ctx, call.op, facts, checked);
        const at = { hash: facts.hash, detail: { ...facts.detail, hop } };
        return this.#deny(turn.ctx, call.op, at, { ...checked, reason: `redirect hop ${hop}: ${checked.reason}` });
      }
      const { reply, effect } = await this.#perform(turn, op, call, facts, checked, hop, deadline);
      if (reply.tag === 'err' || effect?.hop === undefined) return reply;
      const next = await this.#redirect(turn, effect.hop, hop + 1);
      if (next === undefined) return reply;
      if (!('call' in next)) return next.reply;
      call = next.call;
    }
  }

  /** Stages 2-5b for one call (or one redirect hop). */
  async #check(turn: Turn, op: OpSpec, call: CanonicalCall): Promise<Denied | Allowed> {
    const uses = op.uses?.(call);
    const cap = this.#capability(turn, op.capability(call), uses?.names ?? []);
    if (!cap.allow) return cap;
    const pd = op.decide(turn.policy, call);
    if (!pd.allow) return denied(pd, cap.tokenId);
    for (const name of uses?.names ?? []) {
      const use = turn.policy.decide({ op: 'secrets.use', name, url: uses?.url ?? '' });
      if (!use.allow) return denied(use, cap.tokenId);
    }
    if (op.confined && pd.root === undefined) {
      return { allow: false, code: ErrorCode.INTERNAL, reason: 'the policy allowed a path without naming its root', tokenId: cap.tokenId };
    }
    const limits = await this.#limits(turn, op.meter(call), cap.tokenId, cap.rates);
    if (!limits.allow) return limits;
    const needs = turn.policy.approvalFor({ op: call.op });
    // No await unless the policy asks for an approval: this is the hot path.
    const approval = needs === undefined ? undefined : await this.#approval(turn, { ...this.#ask(turn.ctx, call.op, op.approval(call)), ...needs }, limits.reservation, cap.tokenId, turn.ctx);
    if (approval !== undefined && !approval.allow) return approval;
    const approved = approval === undefined ? '' : `; ${approval.reason}`;
    return { allow: true, tokenId: cap.tokenId, policy: pd, reservation: limits.reservation, reason: `${cap.reason}; ${pd.reason}${approved}` };
  }

  /** Stage 2: the token that grants `request`, and a `secrets use` grant for each placeholder the call fills. */
  #capability(turn: Stage, request: CapabilityRequest | undefined, placeholders: readonly string[]): Denied | { allow: true; tokenId: string | undefined; rates: KeyedRate[]; reason: string } {
    const { ctx } = turn;
    const revocations = this.#d.revocations;
    if (request === undefined) {
      // Nothing to grant (an invocation when no tool grant is required): the run itself must not be revoked.
      if (revocations.findRevoked([], [ctx.runId]) !== undefined) return { allow: false, code: ErrorCode.CAP_REVOKED, reason: `run ${ctx.runId} is revoked` };
      return { allow: true, tokenId: undefined, rates: [], reason: '' };
    }
    const cap = checkCapability(ctx.grants, request, { runId: ctx.runId, revocations });
    if (!cap.allow) return denied(cap, cap.tokenId);
    const rates: KeyedRate[] = [...(cap.rates ?? [])];
    for (const name of placeholders) {
      const use = checkCapability(ctx.grants, { kind: 'secrets', resource: name, method: 'use' }, { runId: ctx.runId, revocations });
      if (!use.allow) return { ...denied(use, use.tokenId), reason: `secret placeholder {{secret:${name}}}: ${use.reason}` };
      rates.push(...(use.rates ?? []));
    }
    return { allow: true, tokenId: cap.tokenId, rates, reason: cap.reason };
  }

  /** Stages 4 and 5: rate limits, then a budget reservation. */
  async #limits(turn: Stage, m: MeteredCall, tokenId: string | undefined, rates: readonly KeyedRate[]): Promise<Denied | { allow: true; reservation: Reservation }> {
    const limitCtx = { runId: turn.ctx.runId, tool: turn.ctx.tool.name, tokenId };
    const rate = await turn.limiter.rate(limitCtx, m, rates);
    if (!rate.allow) return denied(rate, tokenId);
    const { decision: budget, reservation } = await turn.limiter.reserve(limitCtx, m);
    if (!budget.allow || reservation === undefined) {
      return denied(budget.allow ? { allow: false, code: ErrorCode.INTERNAL, reason: 'no reservation' } : budget, tokenId);
    }
    return { allow: true, reservation };
  }

  /** Stage 5b: ask the run's approver; a refusal (or a failure to ask) gives the reservation back. */
  async #approval(
    turn: Stage,
    ask: Parameters<typeof approve>[3],
    reservation: Reservation,
    tokenId: string | undefined,
    bound: { deadline?: number | undefined; signal?: AbortSignal | undefined },
  ): Promise<Denied | (Decision & { allow: true })> {
    let approval: Decision;
    try {
      approval = await approve(this.#rec.sink, turn.policy, turn.ctx.approver, ask, bound);
    } catch (e) {
      await turn.limiter.cancel(reservation).catch(() => {});
      throw e;
    }
    if (approval.allow) return approval;
    await turn.limiter.cancel(reservation).catch(() => {});
    return denied(approval, tokenId);
  }

  #ask(ctx: RunSubject, op: CanonicalCall['op'], shown: ReturnType<OpSpec['approval']>) {
    return { op, tool: ctx.tool.name, toolDigest: ctx.tool.digest, runId: ctx.runId, ...shown };
  }

  /** Stages 6-8: the intent record, the effect, the outcome record. */
  async #perform(turn: Turn, op: OpSpec, call: CanonicalCall, facts: Facts, ok: Allowed, hop: number, deadline: number): Promise<{ reply: HostReply; effect?: Effect | undefined }> {
    const { ctx, limiter } = turn;
    try {
      const detail = hop === 0 ? facts.detail : { ...facts.detail, hop };
      await this.#rec.append(ctx, { kind: 'call.intent', op: call.op, decision: 'allow', tokenId: ok.tokenId, requestHash: facts.hash as never, reason: ok.reason, detail });
    } catch (e) {
      await limiter.cancel(ok.reservation).catch(() => {});
      throw e;
    }
    ctx.stats.allowed++;
    let reply: HostReply;
    let effect: Effect | undefined;
    try {
      effect = await op.effect(call, { ctx, policy: turn.policy, decision: ok.policy, reservation: ok.reservation, deps: this.#d, deadline });
      reply = { tag: 'ok', val: effect.val };
    } catch (e) {
      reply = { tag: 'err', val: toGuestError(e, (t) => this.#d.secrets.redactText(t).text) };
    }
    await limiter.settle(ok.reservation, effect?.used ?? op.idle(call)).catch((e: unknown) => ctx.log.warn({ err: e }, 'budget settle failed'));
    const detail = hop === 0 ? { ...effect?.detail } : { hop, ...effect?.detail };
    await this.#outcome(ctx, call.op, ok.tokenId, reply, effect?.responseHash, detail);
    return { reply, effect };
  }

  async #outcome(ctx: RunContext, op: string, tokenId: string | undefined, reply: HostReply, responseHash: string | undefined, detail: AuditDetail): Promise<void> {
    const code = reply.tag === 'ok' ? 'ok' : reply.val.tag === 'denied' ? reply.val.val.code : reply.val.tag;
    const reason =
      reply.tag === 'ok' ? undefined : reply.val.tag === 'denied' ? reply.val.val.message : reply.val.tag === 'rate-limited' ? `retry after ${reply.val.val} ms` : reply.val.val;
    await this.#rec.append(ctx, { kind: 'call.outcome', op, decision: 'allow', code, tokenId, responseHash: responseHash as never, reason, detail });
    // The host refused at the effect (an address DNS gave, a secret on its way out): the caller sees it with the gate's own denials.
    if (reply.tag === 'err' && reply.val.tag === 'denied' && ctx.denials.length < MAX_DENIALS) {
      ctx.denials.push({ op, code: reply.val.val.code as ErrorCode, reason: this.#rec.scrub(reply.val.val.message) });
    }
  }

  /** The next hop of a redirect, decoded, or the denial that ends the call (recorded like any other). */
  async #redirect(turn: Turn, last: { request: HttpRequest; response: HttpResult }, hop: number): Promise<{ call: CanonicalCall } | { reply: HostReply } | undefined> {
    const refuse = async (facts: Facts, code: ErrorCode, reason: string) => ({ reply: await this.#deny(turn.ctx, 'http.fetch', facts, { allow: false, code, reason }) });
    let next: HttpRequest | undefined;
    try {
      next = nextHop(last.request, last.response);
    } catch (e) {
      // A Location the host refuses ends the call: that refusal is a denied hop.
      const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'bad redirect', { cause: e });
      const location = (last.response.headers.find(([k]) => k.toLowerCase() === 'location')?.[1] ?? '').slice(0, 2048);
      return refuse({ hash: hashRequest({ op: 'http.fetch', location }), detail: { location: location.slice(0, 512), hop } }, err.code, `redirect hop ${hop}: ${err.message}`);
    }
    if (next === undefined) return undefined;
    if (hop > MAX_REDIRECTS) {
      return refuse({ hash: hashRequest({ op: 'http.fetch', url: next.url }), detail: { url: next.url.slice(0, 512), hop } }, ErrorCode.POLICY_DENY, `more than ${MAX_REDIRECTS} redirects`);
    }
    try {
      const raw: HostCall = { op: 'http.fetch', method: next.method, url: next.url, headers: [...next.headers], body: next.body };
      return { call: fetchCall(next.method, next.url, [...next.headers], next.body, raw) };
    } catch (e) {
      const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'bad redirect', { cause: e });
      const facts = { hash: hashRequest({ op: 'http.fetch', url: next.url.slice(0, 2048) }), detail: { url: next.url.slice(0, 512), hop } };
      return refuse(facts, ErrorCode.INVALID_ARGUMENT, `redirect to an invalid URL: ${err.message}`);
    }
  }

  /** A denial: recorded (durably), counted, and turned into the guest's error. */
  async #deny(ctx: RunContext, op: string, facts: Facts, d: Denied): Promise<HostReply> {
    // A reason can quote the guest's URL or path, which may carry a secret's value.
    const reason = this.#rec.scrub(d.reason);
    ctx.stats.denied++;
    if (ctx.denials.length < MAX_DENIALS) ctx.denials.push({ op, code: d.code, reason });
    const detail = d.rule === undefined ? facts.detail : { ...facts.detail, rule: d.rule };
    await this.#rec.append(ctx, { kind: 'call.denied', op, decision: 'deny', code: d.code, tokenId: d.tokenId, requestHash: facts.hash as never, reason, detail });
    ctx.log.debug({ op, code: d.code, reason: this.#rec.scrub(reason) }, 'host call denied');
    return { tag: 'err', val: denialToGuest({ ...d, reason }) };
  }
}
