/**
 * How an invocation ended, as its caller hears it: one row per way a run can
 * end (see RunOutcome), giving the output or an error with a stable code.
 * @module
 */
import { AuthorityError, ErrorCode } from './errors.ts';
import type { SecretStore } from './host/index.ts';
import type { ToolLimits } from './registry/index.ts';
import type { RunEnd, RunOutcome } from './sandbox/index.ts';
import type { Denial } from './gate/index.ts';
import type { InvokeStats } from './runtime-options.ts';

/** What the end of a run needs to say how it ended. */
export interface EndInfo {
  readonly limits: ToolLimits;
  readonly timeoutMs: number;
  /** Why the run was stopped, when something stopped it. */
  readonly stopped: unknown;
}

type RunEndOf<K extends RunOutcome['end']['kind']> = K extends RunEnd['kind'] ? Extract<RunEnd, { kind: K }> : { kind: K; message: string };

/** How each way a run can end reaches the caller: its output, or an error with a stable code. */
const RUN_END: { readonly [K in RunOutcome['end']['kind']]: (end: RunEndOf<K>, run: EndInfo) => { output: string } | { error: AuthorityError } } = {
  ok: (end) => ({ output: end.output }),
  'tool-error': (end) => ({ error: new AuthorityError(ErrorCode.TOOL_FAILED, end.message) }),
  'output-too-large': (end, run) => ({
    error: new AuthorityError(ErrorCode.TOOL_OUTPUT, `the tool's output is ${end.bytes} bytes, over its cap of ${run.limits.maxOutputBytes}`, {
      data: { bytes: end.bytes, cap: run.limits.maxOutputBytes },
    }),
  }),
  timeout: (end, run) => ({ error: new AuthorityError(ErrorCode.TIMEOUT, end.message, { data: { timeoutMs: run.timeoutMs } }) }),
  halted: (end) => ({ error: new AuthorityError(ErrorCode.HALTED, `the runtime was halted: ${end.message}`) }),
  aborted: (end, run) => ({ error: run.stopped instanceof AuthorityError ? run.stopped : new AuthorityError(ErrorCode.HALTED, `the run was stopped: ${end.message}`) }),
  trap: (end) => ({ error: new AuthorityError(ErrorCode.TOOL_TRAPPED, `the tool trapped: ${end.message}`) }),
  crash: (end) => ({ error: new AuthorityError(ErrorCode.TOOL_TRAPPED, end.message) }),
  'load-error': (end) => ({ error: new AuthorityError(ErrorCode.INTERNAL, `the tool could not be instantiated: ${end.message}`) }),
  described: () => ({ error: new AuthorityError(ErrorCode.INTERNAL, 'unexpected describe result') }),
};

export function endMessage(outcome: RunOutcome): string {
  const end = outcome.end as { kind: string; message?: string };
  return end.message ?? end.kind;
}

/** The output (secret values redacted) or the error, and the names of the secrets redacted from the tool's own text. */
export type Ending = ({ output: string } | { error: AuthorityError }) & { redactions: string[] };

/** How the run ended, by the table, with any secret value in the tool's own text redacted. */
export function runEnding(outcome: RunOutcome, info: EndInfo, secrets: SecretStore): Ending {
  const mapped = (RUN_END[outcome.end.kind] as (end: RunOutcome['end'], run: EndInfo) => { output: string } | { error: AuthorityError })(outcome.end, info);
  if ('output' in mapped) {
    const red = secrets.redactText(mapped.output);
    return { output: red.text, redactions: red.redactions.map((r) => r.name) };
  }
  if (outcome.end.kind !== 'tool-error') return { ...mapped, redactions: [] };
  const red = secrets.redactText(mapped.error.message);
  return { error: new AuthorityError(mapped.error.code, red.text), redactions: red.redactions.map((r) => r.name) };
}

/** The caller's figures of a finished run. */
export function invokeStats(durationMs: number, counted: { calls: number; allowed: number; denied: number; redactions: number }, outcome: RunOutcome, outputRedactions: number): InvokeStats {
  const calls = outcome.stats.hostCalls;
  return {
    durationMs,
    hostCalls: counted.calls,
    allowed: counted.allowed,
    denied: counted.denied,
    redactions: counted.redactions + outputRedactions,
    preparedInstance: 'fromReady' in outcome.stats ? outcome.stats.fromReady : false,
    ...(calls === undefined ? {} : { hostCallUs: { p50: calls.p50Us, p99: calls.p99Us } }),
  };
}

/** The error an invocation rejects with: the run's own, with the tool, run, audit range and the gate's denials. */
export function invocationError(error: AuthorityError, run: { tool: string; runId: string; audit: { start: number; end: number }; denials: readonly Denial[] }): AuthorityError {
  const denials = run.denials.length > 0 ? { denials: run.denials } : {};
  return new AuthorityError(error.code, error.message, { data: { ...error.data, tool: run.tool, runId: run.runId, audit: run.audit, ...denials }, cause: error.cause });
}
