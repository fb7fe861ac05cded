/**
 * The one description of a runtime's tools that every adapter (MCP, the
 * Vercel AI SDK, LangChain.js, OpenAI) is built on: a name, a description and
 * a JSON Schema per tool, and a `call` that runs it through `runtime.invoke`
 * with the embedder's grants and run id, and answers in words a model can read.
 *
 * A call never throws for something the model can act on (a denial, a bad
 * argument, a tool's own failure, a timeout): it resolves `{ ok: false }`
 * with the code, the reason and the audit ids. It throws only for host
 * faults (the runtime is halted or closed, the audit log failed, an internal
 * error), which the embedder, not the model, must handle.
 *
 * @example
 * ```ts
 * import { toolSession } from 'authority-sandbox/openai'; // every adapter re-exports it
 * const session = toolSession(runtime, { grants: [token] });
 * const r = await session.call('read-file', { path: '/etc/passwd' });
 * if (!r.ok) console.log(r.text); // denied: E_POLICY_DENY: no fs.read rule matches /etc/passwd (audit #41-#43)
 * ```
 * @module
 */
import { randomBytes } from 'node:crypto';
import { AuthorityError, ErrorCode, toAuthorityError } from '../errors.ts';
import type { Denial } from '../gate/index.ts';
import { TOOL_NAME } from '../host-call.ts';
import type { ToolInfo } from '../registry/index.ts';
import type { Approver, Runtime } from '../runtime.ts';

/** A JSON Schema object, as tools describe their input. */
export type JsonSchema = Record<string, unknown>;

/** Sequence numbers of an invocation's first and last audit records. */
export interface AuditRange {
  start: number;
  end: number;
}

/** How the embedder's calls run: whose capabilities, in which run. */
export interface ToolSessionOptions {
  /**
   * Capability tokens (text form) every call carries, or a function that
   * returns them for each call (to renew or narrow them). Without grants a
   * tool can touch nothing: pure tools still work.
   */
  grants?: readonly string[] | (() => readonly string[]) | undefined;
  /**
   * The run every call belongs to (one agent session: run budgets and
   * `revokeRun` apply to it; run-bound tokens must name it). Default: a fresh
   * id per session.
   */
  runId?: string | undefined;
  /** Who approves what the policy's `approvals` section marks. Default: the runtime's approver. */
  approve?: Approver | undefined;
  /** Lower every call's deadline below the tool's own. */
  timeoutMs?: number | undefined;
  /** Which tools to expose: names, or a predicate. Default: every registered tool. */
  tools?: readonly string[] | ((tool: ToolInfo) => boolean) | undefined;
}

/** A call that ran and succeeded. `text` is what a model should read. */
export interface ToolCallSuccess {
  ok: true;
  tool: string;
  /** The tool's output: the text for the model. */
  text: string;
  /** The same output (kept under its runtime name). */
  output: string;
  runId: string;
  audit: AuditRange;
  /** Host calls the gate refused during the run, though the tool went on. */
  denials: Denial[];
}

/** A call that was refused or failed, in a form a model can adapt to. */
export interface ToolCallFailure {
  ok: false;
  tool: string;
  code: ErrorCode;
  message: string;
  /** One line for the model: `denied: E_POLICY_DENY: no fs.read rule matches /etc/passwd (audit #41-#43)`. */
  text: string;
  /** The gate's denials during the run, with their own codes. */
  denials: Denial[];
  runId: string | undefined;
  /** The invocation's audit records, when it got that far. */
  audit: AuditRange | undefined;
  /** E_RATE_LIMITED: when to try again. */
  retryAfterMs?: number | undefined;
  /** When the tool trapped after a denial: `code` is the denial's, and this is the trap it led to. */
  consequence?: { code: ErrorCode; message: string } | undefined;
}

export type ToolCallResult = ToolCallSuccess | ToolCallFailure;

/** One tool, ready to hand to a framework. */
export interface ToolDescriptor {
  /** Valid in every framework: `[A-Za-z0-9_-]{1,64}`. */
  name: string;
  description: string;
  /** The tool's input JSON Schema (an object schema). */
  inputSchema: JsonSchema;
  /** sha-256 of the component. */
  digest: string;
  /** The sandbox interfaces the tool imports (`fs`, `http`, `secrets`); none for a pure tool. */
  imports: readonly string[];
  call(input: unknown): Promise<ToolCallResult>;
}

/**
 * Codes that are the host's fault, not something a model can fix: a call
 * throws these instead of resolving `{ ok: false }`.
 */
export const HOST_FAULT_CODES: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.HALTED,
  ErrorCode.INTERNAL,
  ErrorCode.AUDIT_WRITE,
  ErrorCode.AUDIT_TAMPERED,
  ErrorCode.CONFIG,
  ErrorCode.USAGE,
  ErrorCode.POLICY_INVALID,
]);

/** Codes that mean "not allowed" (shown to the model as `denied:`); others are `error:`. */
const DENIAL_CODES: ReadonlySet<string> = new Set([
  ErrorCode.CAP_MISSING,
  ErrorCode.CAP_INVALID,
  ErrorCode.CAP_EXPIRED,
  ErrorCode.CAP_NOT_YET_VALID,
  ErrorCode.CAP_REVOKED,
  ErrorCode.CAP_SCOPE,
  ErrorCode.CAP_RUN_MISMATCH,
  ErrorCode.CAP_UNKNOWN_KEY,
  ErrorCode.CAP_WIDENING,
  ErrorCode.POLICY_DENY,
  ErrorCode.APPROVAL_REQUIRED,
  ErrorCode.APPROVAL_DENIED,
  ErrorCode.RATE_LIMITED,
  ErrorCode.BUDGET_EXCEEDED,
  ErrorCode.SECRET_LEAK,
]);

const MAX_TEXT = 2048;

function auditText(audit: AuditRange | undefined): string {
  if (audit === undefined) return '';
  return audit.start === audit.end ? ` (audit #${audit.start})` : ` (audit #${audit.start}-#${audit.end})`;
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 3)}...`;
}

/**
 * The line a model reads for a failed call. A tool that failed after the
 * gate refused one of its host calls is shown as that denial, since the
 * denial is what the model can change.
 *
 * @example
 * ```ts
 * failureText({ code: 'E_TOOL_FAILED', message: '...', denials: [{ op: 'fs.read', code: 'E_POLICY_DENY', reason: 'no fs.read rule matches /etc/passwd' }], audit: { start: 41, end: 43 } });
 * // 'denied: E_POLICY_DENY: no fs.read rule matches /etc/passwd (audit #41-#43)'
 * ```
 */
export function failureText(f: Pick<ToolCallFailure, 'code' | 'message' | 'denials' | 'audit'> & { retryAfterMs?: number | undefined }): string {
  const ids = auditText(f.audit);
  const first = f.denials[0];
  if ((f.code === ErrorCode.TOOL_FAILED || f.code === ErrorCode.TOOL_TRAPPED) && first !== undefined) {
    const more = f.denials.length > 1 ? ` (and ${f.denials.length - 1} more denied call${f.denials.length > 2 ? 's' : ''})` : '';
    const then = f.code === ErrorCode.TOOL_TRAPPED ? 'trapped' : 'failed';
    const said = f.message.includes(first.reason) ? '' : `; the tool then ${then}: ${clip(f.message, 512)}`;
    return clip(`denied: ${first.code}: ${first.reason}${more}${said}`, MAX_TEXT) + ids;
  }
  const retry = f.retryAfterMs === undefined ? '' : ` (retry after ${Math.ceil(f.retryAfterMs)} ms)`;
  const kind = DENIAL_CODES.has(f.code) ? 'denied' : 'error';
  return clip(`${kind}: ${f.code}: ${f.message}${retry}`, MAX_TEXT) + ids;
}

function isAuditRange(v: unknown): v is AuditRange {
  return typeof v === 'object' && v !== null && typeof (v as AuditRange).start === 'number' && typeof (v as AuditRange).end === 'number';
}

/**
 * A tool that does not catch a host error traps on it, which is the natural
 * way to write one; the trap is then only the consequence of the denial, and
 * the denial is what the caller can act on. For such a failure this returns
 * an error with the first denial's code and reason, the trap (or failure)
 * kept as `data.consequence` and as `cause`; any other error comes back as
 * it is.
 *
 * @example
 * ```ts
 * const shown = denialFirst(new AuthorityError(ErrorCode.TOOL_TRAPPED, 'the tool trapped: unreachable', { data: { denials: [{ op: 'fs.read', code: ErrorCode.CAP_SCOPE, reason: 'no granted token covers fs.read /etc/passwd' }] } }));
 * // shown.code === 'E_CAP_SCOPE'; shown.data.consequence.code === 'E_TOOL_TRAPPED'
 * ```
 */
export function denialFirst(error: AuthorityError): AuthorityError {
  const denials = error.data?.['denials'];
  if (error.code !== ErrorCode.TOOL_TRAPPED || !Array.isArray(denials) || denials.length === 0) return error;
  const first = denials[0] as Denial;
  const more = denials.length > 1 ? ` (and ${denials.length - 1} more denied call${denials.length > 2 ? 's' : ''})` : '';
  return new AuthorityError(first.code, `${first.op} denied: ${first.reason}${more}; the tool then trapped (${error.message})`, {
    data: { ...error.data, consequence: { code: error.code, message: error.message } },
    cause: error,
  });
}

/** A failure result from an error `runtime.invoke` threw; host faults are rethrown. */
export function toFailure(tool: string, error: unknown): ToolCallFailure {
  const err = toAuthorityError(error);
  if (HOST_FAULT_CODES.has(err.code) || !(error instanceof AuthorityError)) throw err;
  const data = err.data ?? {};
  const denials = Array.isArray(data['denials']) ? (data['denials'] as Denial[]) : [];
  const audit = isAuditRange(data['audit']) ? { start: data['audit'].start, end: data['audit'].end } : undefined;
  const retryAfterMs = typeof data['retryAfterMs'] === 'number' ? data['retryAfterMs'] : undefined;
  const runId = typeof data['runId'] === 'string' ? data['runId'] : undefined;
  const failure: ToolCallFailure = { ok: false, tool, code: err.code, message: err.message, text: '', denials, runId, audit };
  if (retryAfterMs !== undefined) failure.retryAfterMs = retryAfterMs;
  failure.text = failureText(failure);
  // A trap after a denial is reported as the denial (its text says so above), the trap as its consequence.
  const shown = denialFirst(err);
  if (shown !== err) {
    failure.consequence = { code: err.code, message: err.message };
    failure.code = shown.code;
  }
  return failure;
}

/** Whether a schema takes a JSON object (what every framework passes as arguments). */
function isObjectSchema(schema: JsonSchema): boolean {
  return schema['type'] === 'object';
}

/**
 * The embedder's side of one run: the grants, the run id and the approver
 * every call carries, and the runtime's tools as descriptors. Adapters take
 * a session (or make one from a runtime), so several frameworks can share a
 * run.
 */
export class ToolSession {
  readonly runtime: Runtime;
  readonly runId: string;
  readonly #opts: ToolSessionOptions;
  readonly #skipped = new Set<string>();

  constructor(runtime: Runtime, opts: ToolSessionOptions = {}) {
    this.runtime = runtime;
    this.runId = opts.runId ?? `run-${randomBytes(9).toString('base64url')}`;
    this.#opts = opts;
  }

  #included(tool: ToolInfo): boolean {
    const f = this.#opts.tools;
    if (f === undefined) return true;
    return typeof f === 'function' ? f(tool) : f.includes(tool.name);
  }

  /**
   * The tools this session exposes, as registered now. A tool whose input is
   * not a JSON object, or whose name is not valid everywhere, is left out
   * (with a warning in the runtime's log): no framework can pass it input.
   */
  tools(): ToolDescriptor[] {
    const out: ToolDescriptor[] = [];
    for (const t of this.runtime.tools()) {
      if (!this.#included(t)) continue;
      if (!TOOL_NAME.test(t.name) || !isObjectSchema(t.inputSchema)) {
        if (!this.#skipped.has(t.digest)) {
          this.#skipped.add(t.digest);
          this.runtime.logger.warn({ tool: t.name }, 'tool left out of the embedding: its input schema is not a JSON object schema');
        }
        continue;
      }
      out.push(this.#descriptor(t));
    }
    return out;
  }

  /** The approver calls of this session use, if it has one of its own. */
  get approver(): Approver | undefined {
    return this.#opts.approve;
  }

  /** One tool by name, if this session exposes it. */
  tool(name: string): ToolDescriptor | undefined {
    return this.tools().find((d) => d.name === name);
  }

  #descriptor(t: ToolInfo): ToolDescriptor {
    return {
      name: t.name,
      description: t.description,
      inputSchema: t.inputSchema,
      digest: t.digest,
      imports: t.imports,
      call: (input) => this.call(t.name, input),
    };
  }

  /**
   * Run a tool by name. Resolves `{ ok: true, text }` or `{ ok: false, code,
   * text }` (an unknown or hidden tool is `E_TOOL_NOT_FOUND`); throws an
   * AuthorityError only for host faults (see HOST_FAULT_CODES).
   */
  async call(name: string, input: unknown, extra: { approve?: Approver | undefined } = {}): Promise<ToolCallResult> {
    const info = this.runtime.tool(name);
    if (info === undefined || !this.#included(info)) {
      const message = `no tool named ${JSON.stringify(clip(String(name), 80))} is available`;
      return { ok: false, tool: String(name), code: ErrorCode.TOOL_NOT_FOUND, message, text: `error: ${ErrorCode.TOOL_NOT_FOUND}: ${message}`, denials: [], runId: this.runId, audit: undefined };
    }
    const grants = typeof this.#opts.grants === 'function' ? this.#opts.grants() : (this.#opts.grants ?? []);
    try {
      const r = await this.runtime.invoke(name, input, { grants, runId: this.runId, timeoutMs: this.#opts.timeoutMs, approve: extra.approve ?? this.#opts.approve });
      return { ok: true, tool: name, text: r.output, output: r.output, runId: r.runId, audit: r.audit, denials: r.denials };
    } catch (e) {
      return toFailure(name, e);
    }
  }
}

/**
 * A session over a runtime's tools (see {@link ToolSession}).
 *
 * @example
 * ```ts
 * const session = toolSession(runtime, { grants: [runtime.issueToken({ kind: 'fs', resource: '/data/**', methods: ['read'], ttlMs: 3_600_000 })] });
 * for (const t of session.tools()) console.log(t.name, t.description);
 * ```
 */
export function toolSession(runtime: Runtime, opts: ToolSessionOptions = {}): ToolSession {
  return new ToolSession(runtime, opts);
}

/** A session, or a runtime to make one from with `opts`. */
export function sessionOf(target: Runtime | ToolSession, opts: ToolSessionOptions = {}): ToolSession {
  return target instanceof ToolSession ? target : new ToolSession(target, opts);
}

/** The JSON value of a tool's output, when it is one (tools often answer in JSON). */
export function parseOutput(text: string): unknown {
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
