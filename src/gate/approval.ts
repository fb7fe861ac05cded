/**
 * Stage 5b, approvals: after every other check has allowed an invocation or
 * a host call that the policy's `approvals` section names, ask the run's
 * approver, bounded by the policy's approval timeout (and the run's deadline
 * and signal), and record the answer as an `approval` record before the
 * request goes on. Every failure to get a clear yes is a deny.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { Decision } from '../host-call.ts';
import type { Policy } from '../policy/index.ts';
import type { ApprovalDecision, ApprovalRequest, Approver, AuditSink } from './context.ts';

const APPROVER_NAME_MAX = 128;

/** An approval request before the gate bounds it, with the tool's digest for the record. */
export type ApprovalAsk = Omit<ApprovalRequest, 'deadline' | 'signal'> & { toolDigest: string };

function isApprovalDecision(v: unknown): v is ApprovalDecision {
  if (typeof v !== 'object' || v === null) return false;
  const d = v as Record<string, unknown>;
  return (
    typeof d['approved'] === 'boolean' &&
    typeof d['by'] === 'string' &&
    d['by'].length > 0 &&
    d['by'].length <= APPROVER_NAME_MAX &&
    (d['reason'] === undefined || typeof d['reason'] === 'string')
  );
}

function describe(request: Omit<ApprovalRequest, 'deadline' | 'signal'>): string {
  if (request.op === 'tool.invoke') return `invoking ${request.tool}`;
  const method = request.method === undefined ? '' : ` ${request.method}`;
  return `${request.op}${method} ${request.target.slice(0, 256)} by ${request.tool}`;
}

/** The approver's answer as a decision; no answer, a malformed one or a throw is a deny. */
async function answer(approver: Approver, request: ApprovalRequest, what: string, controller: AbortController): Promise<{ decision: Decision; by: string }> {
  const { deadline, rule } = request;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    const fail = (): void => reject(new AuthorityError(ErrorCode.APPROVAL_REQUIRED, `no answer to the approval request for ${what} in time`));
    if (controller.signal.aborted) return fail();
    controller.signal.addEventListener('abort', fail, { once: true });
    timer = setTimeout(() => controller.abort(new Error('approval timed out')), Math.max(0, deadline - Date.now()));
  });
  expired.catch(() => {});
  try {
    const said: unknown = await Promise.race([Promise.resolve().then(() => approver(request)), expired]);
    if (!isApprovalDecision(said)) {
      throw new AuthorityError(
        ErrorCode.APPROVAL_REQUIRED,
        `the approver gave no valid answer for ${what} (expected { approved: boolean, by: string of 1-${APPROVER_NAME_MAX} characters })`,
      );
    }
    const why = typeof said.reason === 'string' && said.reason.length > 0 ? `: ${said.reason.slice(0, 256)}` : '';
    const decision: Decision = said.approved
      ? { allow: true, reason: `approved by ${said.by}${why}`, rule }
      : { allow: false, code: ErrorCode.APPROVAL_DENIED, reason: `${what} was refused by ${said.by}${why}`, rule };
    return { decision, by: said.by };
  } catch (e) {
    const err = e instanceof AuthorityError && (e.code === ErrorCode.APPROVAL_REQUIRED || e.code === ErrorCode.APPROVAL_DENIED) ? e : undefined;
    const reason = err?.message ?? `the approver failed for ${what}: ${e instanceof Error ? e.message : String(e)}`;
    return { decision: { allow: false, code: err?.code ?? ErrorCode.APPROVAL_REQUIRED, reason, rule }, by: 'none' };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Ask `approver` about `ask` and record its answer (an `approval` record)
 * before returning the decision. Without an approver the request is denied
 * with E_APPROVAL_REQUIRED, and that is recorded too.
 */
export async function approve(
  audit: AuditSink,
  policy: Policy,
  approver: Approver | undefined,
  ask: ApprovalAsk,
  bound: { deadline?: number | undefined; signal?: AbortSignal | undefined } = {},
): Promise<Decision> {
  const { toolDigest, ...request } = ask;
  const what = describe(request);
  const deadline = Math.min(Date.now() + policy.approvalTimeoutMs, bound.deadline ?? Number.POSITIVE_INFINITY);
  let by = 'none';
  let decision: Decision;
  if (approver === undefined) {
    decision = { allow: false, code: ErrorCode.APPROVAL_REQUIRED, reason: `${what} needs approval (${request.reason}), and no approver is configured`, rule: request.rule };
  } else {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(bound.signal?.reason);
    bound.signal?.addEventListener('abort', onAbort, { once: true });
    if (bound.signal?.aborted === true) controller.abort(bound.signal.reason);
    try {
      ({ decision, by } = await answer(approver, { ...request, deadline, signal: controller.signal }, what, controller));
    } finally {
      bound.signal?.removeEventListener('abort', onAbort);
      controller.abort();
    }
  }
  await audit.append({
    kind: 'approval',
    runId: request.runId,
    tool: request.tool,
    toolDigest: `sha256:${toolDigest}`,
    op: request.op,
    decision: decision.allow ? 'allow' : 'deny',
    code: decision.allow ? 'ok' : decision.code,
    reason: decision.reason.slice(0, 1024),
    detail: { by, rule: request.rule, target: request.target.slice(0, 512) },
  });
  return decision;
}
