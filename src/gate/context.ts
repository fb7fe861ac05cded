/**
 * What the gate is given: its dependencies, and the context of the run each
 * call belongs to.
 * @module
 */
import type { Logger } from 'pino';
import type { AuditDetail, AuditEntry, AuditReceipt } from '../audit/index.ts';
import type { GrantSet, RevocationChecker } from '../capability/index.ts';
import type { AuthorityError, ErrorCode } from '../errors.ts';
import type { HostOp } from '../host-call.ts';
import type { FsScope, HostFs, HttpClient, SecretStore } from '../host/index.ts';
import type { Limiter } from '../limits/index.ts';
import type { Policy } from '../policy/index.ts';

/** Where the gate writes: the audit log (or anything with its append). */
export interface AuditSink {
  append(entry: AuditEntry): Promise<AuditReceipt>;
}

export interface GateDeps {
  revocations: RevocationChecker;
  /** The policy in force (a function, so it can be replaced while running; each call reads it once). */
  policy: () => Policy;
  /** The limiter of that policy (read once per call, with it). */
  limiter: () => Limiter;
  audit: AuditSink;
  fs: HostFs;
  http: HttpClient;
  secrets: SecretStore;
  logger: Logger;
  /** Called when the audit log fails: nothing can be recorded, so nothing may run. */
  onAuditFailure?: (error: AuthorityError) => void;
  /** Aborted when the runtime halts or closes: approvals still waited for at admission stop. */
  stopping?: AbortSignal | undefined;
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
  /** Who approves what the policy's `approvals` section names, for this run; none: such calls are denied. */
  readonly approver?: Approver | undefined;
}

/** Who is asking, as admission knows it before the run has a deadline of its own. */
export type RunSubject = Pick<RunContext, 'runId' | 'tool' | 'grants' | 'approver'>;

/** A host call the gate refused, as the caller of the invocation sees it. */
export interface Denial {
  op: string;
  code: ErrorCode;
  reason: string;
}

/**
 * A request for a person (or a program acting for one) to approve one
 * invocation or one host call, because the policy's `approvals` section
 * names it. Asked only after every other check has allowed it.
 */
export interface ApprovalRequest {
  /** `tool.invoke` for an invocation; else the host operation, e.g. `fs.write`. */
  op: 'tool.invoke' | HostOp;
  tool: string;
  runId: string;
  /** The tool's name (tool.invoke), the canonical real path (fs), the URL (http.fetch) or the secret's name. */
  target: string;
  /** http.fetch: the method. */
  method?: string | undefined;
  /** fs.write: the number of bytes to write. */
  bytes?: number | undefined;
  /** tool.invoke: the input the tool would run on. */
  input?: unknown;
  /** The rule that asks for approval, e.g. `approvals.ops[0]`. */
  rule: string;
  /** Why, in words: `approvals.tools[0] 'deploy-*' matches deploy-prod`. */
  reason: string;
  /** Epoch ms after which an answer no longer counts (the policy's `approvals.timeout_ms`, or the run's deadline). */
  deadline: number;
  /** Aborted when the answer is no longer wanted (deadline passed, run ended, runtime halted). */
  signal: AbortSignal;
}

/** An approver's answer. `by` names who decided; it is written to the audit log (at most 128 characters, never a secret). */
export interface ApprovalDecision {
  approved: boolean;
  by: string;
  reason?: string | undefined;
}

/**
 * Decides approval requests. Resolve `{ approved: false }` to refuse
 * (`E_APPROVAL_DENIED`); throw `AuthorityError(E_APPROVAL_REQUIRED, why)` when
 * nobody can be asked. Anything else thrown, a malformed answer, or no answer
 * before the deadline is a deny (fail closed).
 *
 * @example
 * ```ts
 * import { createRuntime } from 'authority-sandbox';
 * declare function askOnSlack(question: string): Promise<boolean>;
 * const rt = await createRuntime({
 *   policy: { version: '1.0', tools: { allow: ['*'] }, approvals: { tools: ['deploy-*'] } },
 *   approve: async (req) => ({ approved: await askOnSlack(req.reason), by: 'oncall@example.com' }),
 * });
 * ```
 */
export type Approver = (request: ApprovalRequest) => ApprovalDecision | Promise<ApprovalDecision>;
