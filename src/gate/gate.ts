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
import type { AuditDetail } from '../audit/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { guestError, type GuestError, type HostCall, type HostReply } from '../host-call.ts';
import { toGuestError } from '../host/index.ts';
import type { Reservation } from '../limits/index.ts';
import type { PolicyDecision } from '../policy/index.ts';
import { admitChecks, type Admission, type AdmissionRequest } from './admission.ts';
import { approvalStage, capabilityStage, denied, limitsStage, type Denied, type Stage } from './checks.ts';
import type { GateDeps, RunContext } from './context.ts';
import { decode, opOf, rawFacts, type CanonicalCall, type Effect, type Facts, type OpSpec } from './ops.ts';
import { Recorder, outcomeOf } from './record.ts';
import { redirectHop } from './redirect.ts';

const MAX_DENIALS = 16;

type Allowed = { allow: true; tokenId: string | undefined; policy: PolicyDecision; reservation: Reservation; reason: string };

/** A host call's stage: its run has a deadline, a signal and counters. */
interface Turn extends Stage {
  readonly ctx: RunContext;
}

/** The guest's view of a denial. */
export function denialToGuest(d: { code: ErrorCode; reason: string; retryAfterMs?: number | undefined }): GuestError {
  return guestError(d.code, d.reason, d.retryAfterMs);
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
    return admitChecks(req, turn, { revocations: this.#d.revocations, recorder: this.#rec, stopping: this.#d.stopping });
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
      const next = redirectHop(effect.hop, hop + 1);
      if (next === undefined) return reply;
      if ('refused' in next) return this.#deny(turn.ctx, 'http.fetch', next.refused.facts, { allow: false, ...next.refused });
      call = next.call;
    }
  }

  /** Stages 2-5b for one call (or one redirect hop). */
  async #check(turn: Turn, op: OpSpec, call: CanonicalCall): Promise<Denied | Allowed> {
    const uses = op.uses?.(call);
    const cap = capabilityStage(this.#d.revocations, turn, op.capability(call), uses?.names ?? []);
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
    const limits = await limitsStage(turn, op.meter(call), cap.tokenId, cap.rates);
    if (!limits.allow) return limits;
    const needs = turn.policy.approvalFor({ op: call.op });
    // No await unless the policy asks for an approval: this is the hot path.
    let approved = '';
    if (needs !== undefined) {
      const { ctx } = turn;
      const ask = { op: call.op, tool: ctx.tool.name, toolDigest: ctx.tool.digest, runId: ctx.runId, ...op.approval(call), ...needs };
      const approval = await approvalStage(this.#rec.sink, turn, ask, { reservation: limits.reservation, tokenId: cap.tokenId }, ctx);
      if (!approval.allow) return approval;
      approved = `; ${approval.reason}`;
    }
    return { allow: true, tokenId: cap.tokenId, policy: pd, reservation: limits.reservation, reason: `${cap.reason}; ${pd.reason}${approved}` };
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
    const { code, reason } = outcomeOf(reply);
    await this.#rec.append(ctx, { kind: 'call.outcome', op, decision: 'allow', code, tokenId, responseHash: responseHash as never, reason, detail });
    // The host refused at the effect (an address DNS gave, a secret on its way out): the caller sees it with the gate's own denials.
    if (reply.tag === 'err' && reply.val.tag === 'denied' && ctx.denials.length < MAX_DENIALS) {
      ctx.denials.push({ op, code: reply.val.val.code as ErrorCode, reason: this.#rec.scrub(reply.val.val.message) });
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
