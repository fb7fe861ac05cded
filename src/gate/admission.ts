/**
 * Admission: an invocation passes the gate's stages in the order a host call
 * does (decode: its input schema; capability: a tool grant when one is
 * required, and the run not revoked; policy; rate; budget; approval), and is
 * recorded the same way: a refusal as a denied `invoke.start`, an admission as
 * an allowed `invoke.start` (its intent), the run's end as `invoke.end` (its
 * outcome).
 * @module
 */
import { hashRequest, type AuditEntry } from '../audit/index.ts';
import type { RevocationChecker } from '../capability/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { Decision } from '../host-call.ts';
import type { MeteredCall, Reservation } from '../limits/index.ts';
import type { ApprovalAsk } from './approval.ts';
import { approvalStage, capabilityStage, limitsStage, type Stage } from './checks.ts';
import type { RunSubject } from './context.ts';
import type { Recorder } from './record.ts';

/** The name of the policy in force when none was given: it denies everything. */
export const DEFAULT_POLICY_NAME = 'default-deny';

/** What admission needs to know of an invocation. */
export interface AdmissionRequest {
  readonly ctx: RunSubject;
  readonly input: unknown;
  /** The input as JSON text (what the tool receives). */
  readonly inputText: string;
  /** The tool's input schema: undefined when `input` matches, else where and why it does not. */
  readonly validate: (input: unknown) => { reason: string; rule?: string | undefined } | undefined;
  /** Whether an invocation needs a `tool` grant with method `invoke`. */
  readonly requireToolGrant: boolean;
}

/** An admitted invocation (its start record is still to be written), or a refused one (already recorded). */
export type Admission =
  | {
      readonly allow: true;
      readonly tokenId: string | undefined;
      readonly reason: string;
      readonly reservation: Reservation;
      readonly requestHash: string;
      readonly grantIds: readonly string[];
    }
  | { readonly allow: false; readonly error: AuthorityError };

type Denied = Decision & { allow: false; tokenId?: string | undefined };

/** What admission needs of the gate besides its stages: revocations, its recorder, the runtime's stop signal. */
export interface AdmissionDeps {
  readonly revocations: RevocationChecker;
  readonly recorder: Recorder;
  readonly stopping?: AbortSignal | undefined;
}

const TOOL_INVOKE: MeteredCall = Object.freeze({ op: 'tool.invoke' });

/** The subject fields of every record of a run. */
export function runBase(ctx: RunSubject): Pick<AuditEntry, 'runId' | 'tool' | 'toolDigest'> {
  return { runId: ctx.runId, tool: ctx.tool.name, toolDigest: `sha256:${ctx.tool.digest}` };
}

/** Stages 1-5b for an invocation; a refusal is recorded before it is returned. */
export async function admitChecks(req: AdmissionRequest, turn: Stage, deps: AdmissionDeps): Promise<Admission> {
  const { ctx } = req;
  const name = ctx.tool.name;
  const requestHash = hashRequest({ tool: name, digest: ctx.tool.digest, input: req.inputText });
  const grantIds = ctx.grants.summary().map((g) => g.tokenId ?? `#${g.index}:invalid`);
  const decided = await decideAdmission(req, turn, deps);
  if (decided.allow) return { ...decided, requestHash, grantIds };
  const receipt = await deps.recorder.appendRaw({
    ...runBase(ctx),
    kind: 'invoke.start',
    decision: 'deny',
    code: decided.code,
    reason: decided.reason.slice(0, 1024),
    tokenId: decided.tokenId,
    requestHash: requestHash as never,
    detail: { grants: grantIds },
  });
  const retry = decided.retryAfterMs === undefined ? {} : { retryAfterMs: decided.retryAfterMs };
  const data = { tool: name, runId: ctx.runId, audit: { start: receipt.seq, end: receipt.seq }, ...retry };
  return { allow: false, error: new AuthorityError(decided.code, decided.reason, { data }) };
}

async function decideAdmission(
  req: AdmissionRequest,
  turn: Stage,
  deps: AdmissionDeps,
): Promise<Denied | { allow: true; tokenId: string | undefined; reason: string; reservation: Reservation }> {
  const { ctx } = req;
  const { policy } = turn;
  const name = ctx.tool.name;
  // 1 decode: the input schema
  const bad = req.validate(req.input);
  if (bad !== undefined) return { allow: false, code: ErrorCode.INVALID_ARGUMENT, reason: bad.reason, rule: bad.rule };
  // 2 capability
  const cap = capabilityStage(deps.revocations, turn, req.requireToolGrant ? { kind: 'tool', resource: name, method: 'invoke' } : undefined, []);
  if (!cap.allow) return cap;
  // 3 policy
  const pd = policy.decide({ op: 'tool.invoke', name });
  if (!pd.allow) {
    const hint = '; no policy was given, so everything is denied (pass one: RuntimeOptions.policy, --policy FILE, or <data-dir>/policy.json)';
    return { ...pd, reason: policy.name === DEFAULT_POLICY_NAME ? `${pd.reason}${hint}` : pd.reason, tokenId: cap.tokenId };
  }
  // 4-5 rate and budget
  const limits = await limitsStage(turn, TOOL_INVOKE, cap.tokenId, []);
  if (!limits.allow) return limits;
  // 5b approval
  const needs = policy.approvalFor({ op: 'tool.invoke', name });
  if (needs === undefined) return { allow: true, tokenId: cap.tokenId, reason: pd.reason, reservation: limits.reservation };
  const ask: ApprovalAsk = { op: 'tool.invoke', tool: name, toolDigest: ctx.tool.digest, runId: ctx.runId, target: name, input: req.input, ...needs };
  const approval = await approvalStage(deps.recorder.sink, turn, ask, { reservation: limits.reservation, tokenId: cap.tokenId }, { signal: deps.stopping });
  if (!approval.allow) return approval;
  return { allow: true, tokenId: cap.tokenId, reason: `${pd.reason}; ${approval.reason}`, reservation: limits.reservation };
}

type Admitted = Extract<Admission, { allow: true }>;

/** The allowed `invoke.start` record: the invocation's intent, before the run. */
export function startRecord(subject: RunSubject, admission: Admitted, inputBytes: number): AuditEntry {
  const { tokenId, requestHash, reason, grantIds } = admission;
  const detail = { grants: [...grantIds], inputBytes };
  return { ...runBase(subject), kind: 'invoke.start', decision: 'allow', code: 'ok', tokenId, requestHash: requestHash as never, reason, detail };
}

/** A denied `invoke.start` after admission (no slot for the run): the same shape as a refusal at a stage. */
export function refusalRecord(subject: RunSubject, admission: Admitted, err: AuthorityError): AuditEntry {
  const detail = { grants: [...admission.grantIds] };
  return { ...runBase(subject), kind: 'invoke.start', decision: 'deny', code: err.code, reason: err.message, requestHash: admission.requestHash as never, detail };
}

/** The `invoke.end` record: the invocation's outcome (its output's hash, never the output). */
export function endRecord(
  subject: RunSubject,
  ended: { output?: string | undefined; error?: AuthorityError | undefined; redactions: readonly string[] },
  stats: { durationMs: number; hostCalls: number; allowed: number; denied: number },
): AuditEntry {
  const { error, output } = ended;
  return {
    ...runBase(subject),
    kind: 'invoke.end',
    decision: error === undefined ? 'allow' : 'deny',
    code: error === undefined ? 'ok' : error.code,
    reason: error?.message.slice(0, 1024),
    responseHash: output === undefined ? undefined : (hashRequest({ output }) as never),
    detail: {
      durationMs: Math.round(stats.durationMs),
      hostCalls: stats.hostCalls,
      allowed: stats.allowed,
      denied: stats.denied,
      ...(ended.redactions.length ? { redacted: [...ended.redactions] } : {}),
      ...(output === undefined ? {} : { outputBytes: Buffer.byteLength(output) }),
    },
  };
}
