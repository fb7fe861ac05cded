/**
 * The gate's checks that host calls and admissions share: stage 2 (the
 * capability, and the run not revoked), stages 4-5 (rate limits, then a
 * budget reservation) and stage 5b (an approval, when the policy asks).
 * Each returns a deny with a stable code, or what the next stage needs.
 * @module
 */
import { checkCapability, type CapabilityRequest, type KeyedRate, type RevocationChecker } from '../capability/index.ts';
import { ErrorCode } from '../errors.ts';
import type { Decision } from '../host-call.ts';
import type { Limiter, MeteredCall, Reservation } from '../limits/index.ts';
import type { Policy } from '../policy/index.ts';
import { approve, type ApprovalAsk } from './approval.ts';
import type { AuditSink, RunSubject } from './context.ts';

export type Denied = { allow: false; code: ErrorCode; reason: string; rule?: string | undefined; retryAfterMs?: number | undefined; tokenId?: string | undefined };

/** Who asks, and the policy and limiter the request is decided under, read once. */
export interface Stage {
  readonly ctx: RunSubject;
  readonly policy: Policy;
  readonly limiter: Limiter;
}

export const denied = (d: Decision, tokenId: string | undefined): Denied => ({ ...(d as Decision & { allow: false }), tokenId });

/** Stage 2: the token that grants `request`, and a `secrets use` grant for each placeholder the call fills. */
export function capabilityStage(
  revocations: RevocationChecker,
  { ctx }: Stage,
  request: CapabilityRequest | undefined,
  placeholders: readonly string[],
): Denied | { allow: true; tokenId: string | undefined; rates: KeyedRate[]; reason: string } {
  if (request === undefined) {
    // Nothing to grant (an invocation when no tool grant is required): the run itself must not be revoked.
    const hit = revocations.findRevoked([], [ctx.runId]);
    if (hit?.type === 'unavailable') return { allow: false, code: ErrorCode.STATE_UNAVAILABLE, reason: `revocations cannot be checked: ${hit.reason ?? ''}` };
    if (hit !== undefined) return { allow: false, code: ErrorCode.CAP_REVOKED, reason: `run ${ctx.runId} is revoked` };
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
export async function limitsStage(
  { ctx, limiter }: Stage,
  m: MeteredCall,
  tokenId: string | undefined,
  rates: readonly KeyedRate[],
): Promise<Denied | { allow: true; reservation: Reservation }> {
  const limitCtx = { runId: ctx.runId, tool: ctx.tool.name, tokenId };
  const rate = await limiter.rate(limitCtx, m, rates);
  if (!rate.allow) return denied(rate, tokenId);
  const { decision: budget, reservation } = await limiter.reserve(limitCtx, m);
  if (!budget.allow || reservation === undefined) {
    return denied(budget.allow ? { allow: false, code: ErrorCode.INTERNAL, reason: 'no reservation' } : budget, tokenId);
  }
  return { allow: true, reservation };
}

/** Stage 5b: ask the run's approver; a refusal (or a failure to ask) gives the reservation back. */
export async function approvalStage(
  sink: AuditSink,
  turn: Stage,
  ask: ApprovalAsk,
  held: { reservation: Reservation; tokenId: string | undefined },
  bound: { deadline?: number | undefined; signal?: AbortSignal | undefined },
): Promise<Denied | (Decision & { allow: true })> {
  let approval: Decision;
  try {
    approval = await approve(sink, turn.policy, turn.ctx.approver, ask, bound);
  } catch (e) {
    await turn.limiter.cancel(held.reservation).catch(() => {});
    throw e;
  }
  if (approval.allow) return approval;
  await turn.limiter.cancel(held.reservation).catch(() => {});
  return denied(approval, held.tokenId);
}
