/**
 * createRuntime(): wires the registry, the sandbox pool, the gate and its
 * checks (capabilities, policy, limits), the audit log and the host effects.
 * The CLI, the MCP server and every adapter use exactly this. What an
 * invocation passes (admission, approvals, host calls) is the gate's; this
 * file holds the parts together and maps how a run ended.
 *
 * @example
 * ```ts
 * import { createRuntime } from 'authority-sandbox';
 * const rt = await createRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } } });
 * await rt.register('build/tools/word-count.wasm');
 * const { output } = await rt.invoke('word-count', { text: 'hello sandboxed world' });
 * await rt.close();
 * ```
 * @module
 */
import { existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { Logger } from 'pino';
import { AuditLog, verifyAudit, type AuditReceipt, type AuditVerifyReport } from './audit/index.ts';
import {
  Keyring,
  RevocationList,
  attenuateToken,
  inspectToken,
  issueToken,
  prepareGrants,
  type CaveatInput,
  type GrantSet,
  type IssueClaims,
  type TokenInfo,
} from './capability/index.ts';
import { dataPaths, ensurePrivateDir, haltReason, resolveDataDir } from './data-dir.ts';
import { AuthorityError, ErrorCode, toAuthorityError } from './errors.ts';
import { DEFAULT_POLICY_NAME, Gate, endRecord, refusalRecord, startRecord, type Admission, type Approver, type RunContext } from './gate/index.ts';
import type { HostCall, HostReply } from './host-call.ts';
import { HostFs, HttpClient, SecretStore } from './host/index.ts';
import { Limiter, MemoryLimitStore, type LimitStore } from './limits/index.ts';
import type { Policy } from './policy/index.ts';
import { DEFAULT_LIMITS, Registry, toInfo, validLimits, type RegisterOptions, type ToolInfo, type ToolLimits } from './registry/index.ts';
import { defaultLogger, invocationInput, resolvePolicy, validateRuntimeOptions, type InvokeOptions, type InvokeResult, type InvokeStats, type RuntimeOptions } from './runtime-options.ts';
import { endMessage, runEnding, type Ending } from './run-end.ts';
import { Slots, WorkerPool, type RunOutcome } from './sandbox/index.ts';
import { checkProvenance, readSidecar, type Provenance, type ProvenanceResult } from './signing/index.ts';

export { DEFAULT_POLICY_NAME };
export type { ApprovalDecision, ApprovalRequest, Approver } from './gate/index.ts';
export type { InvokeOptions, InvokeResult, InvokeStats, RuntimeOptions } from './runtime-options.ts';

/** How often a runtime looks for the data folder's HALT file. */
const HALT_POLL_MS = 250;
export interface RuntimeEvents {
  'tools-changed': [{ added?: string; removed?: string; replaced?: string }];
  halted: [{ reason: string }];
}

/** The parts a runtime holds privately; the package's own harnesses reach them through `runtimeInternals`. */
interface Internals {
  readonly keyring: Keyring;
  readonly revocations: RevocationList;
  readonly secrets: SecretStore;
  readonly audit: AuditLog;
}
const internals = new WeakMap<Runtime, Internals>();

/**
 * @internal The runtime's keyring, revocation list, secrets and audit log, for
 * this package's own test and fuzz harnesses. Not exported from the package:
 * an embedder uses the narrow methods (issueToken, revokeRun, verifyAudit, ...).
 */
export function runtimeInternals(rt: Runtime): Internals {
  return internals.get(rt) as Internals;
}

/**
 * A runtime: tools registered in it run in fresh sandbox instances, and every
 * host call they make passes the gate. Create it with {@link createRuntime}.
 */
export class Runtime extends EventEmitter<RuntimeEvents> {
  readonly dataDir: string;
  readonly logger: Logger;
  readonly #keyring: Keyring;
  readonly #revocations: RevocationList;
  readonly #secrets: SecretStore;
  readonly #audit: AuditLog;
  #policy: Policy;
  #limiter: Limiter;
  readonly #store: LimitStore;
  readonly #pool: WorkerPool;
  readonly #registry: Registry;
  readonly #gate: Gate;
  readonly #http: HttpClient;
  readonly #validators = new Map<string, ValidateFunction>();
  readonly #ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: false });
  readonly #slots = new Map<string, Slots>();
  readonly #running = new Set<AbortController>();
  /** Aborted by halt() and close(): approvals still waited for at admission stop. */
  readonly #stopping = new AbortController();
  readonly #opts: RuntimeOptions;
  #halted: string | undefined;
  #closed = false;
  readonly #haltWatch: NodeJS.Timeout;

  /** @internal use createRuntime() */
  constructor(parts: { opts: RuntimeOptions; dataDir: string; policy: Policy; store: LimitStore; logger: Logger } & Internals) {
    super();
    this.#opts = parts.opts;
    this.dataDir = parts.dataDir;
    this.#keyring = parts.keyring;
    this.#revocations = parts.revocations;
    this.#secrets = parts.secrets;
    this.#audit = parts.audit;
    internals.set(this, { keyring: parts.keyring, revocations: parts.revocations, secrets: parts.secrets, audit: parts.audit });
    this.logger = parts.logger;
    this.#policy = parts.policy;
    this.#store = parts.store;
    this.#limiter = new Limiter(parts.policy.limiterConfig(), parts.store);
    this.#pool = new WorkerPool(parts.opts.pool);
    this.#http = new HttpClient(parts.opts.http);
    this.#gate = new Gate({
      revocations: parts.revocations,
      policy: () => this.#policy,
      limiter: () => this.#limiter,
      audit: parts.audit,
      fs: new HostFs(),
      http: this.#http,
      secrets: parts.secrets,
      logger: parts.logger,
      onAuditFailure: (err) => this.#onAuditFailure(err),
      stopping: this.#stopping.signal,
    });
    this.#registry = new Registry({
      cacheDir: parts.opts.cacheDir ?? dataPaths(parts.dataDir).cacheDir,
      describe: (compiled, limits) => this.#describe(compiled, limits),
    });
    this.#registry.on('changed', (change) => this.emit('tools-changed', change));
    // The cross-process stop switch: `authority halt` writes this file.
    this.#haltWatch = setInterval(() => this.#checkHaltFile(), HALT_POLL_MS);
    this.#haltWatch.unref();
    // A runtime opened while the switch is on starts halted.
    this.#checkHaltFile();
  }

  /** Append to the audit log; a failed log halts the runtime. */
  async #record(entry: Parameters<AuditLog['append']>[0]): Promise<AuditReceipt> {
    try {
      return await this.#audit.append(entry);
    } catch (e) {
      if (e instanceof AuthorityError && e.code === ErrorCode.AUDIT_WRITE) this.#onAuditFailure(e);
      throw e;
    }
  }

  /** The audit log stopped: nothing more can be recorded, so nothing more may run. */
  #onAuditFailure(err: AuthorityError): void {
    this.logger.fatal({ err }, 'the audit log failed; halting');
    void this.halt(`the audit log failed: ${err.message}`);
  }

  /** Halt if the data folder's HALT file exists (written by `authority halt` in any process). */
  #checkHaltFile(): boolean {
    if (this.#halted !== undefined) return true;
    const file = dataPaths(this.dataDir).haltFile;
    if (!existsSync(file)) return false;
    const said = haltReason(file);
    void this.halt(`halt file ${file}${said ? `: ${said}` : ''}`);
    return true;
  }

  /** The policy in force. */
  get policy(): Policy {
    return this.#policy;
  }

  /** Replace the policy; calls already past the policy stage finish under the old one. */
  setPolicy(policy: Policy): void {
    this.#policy = policy;
    this.#limiter = new Limiter(policy.limiterConfig(), this.#store);
  }

  /** The approver given at creation (`RuntimeOptions.approve`), if any. */
  get approver(): Approver | undefined {
    return this.#opts.approve;
  }

  /** Whether `halt()` was called, and why. */
  get halted(): string | undefined {
    return this.#halted;
  }

  /** Pool load: runs in progress and queued. */
  get load(): { running: number; queued: number; workers: number } {
    return this.#pool.load;
  }

  /** Resolves once every sandbox worker has started. */
  warmUp(): Promise<void> {
    return this.#pool.warmUp();
  }

  async #describe(compiled: Parameters<ConstructorParameters<typeof Registry>[0]['describe']>[0], limits: ToolLimits) {
    this.#assertOpen();
    let calledHost = false;
    const outcome = await this.#pool.run({
      tool: compiled,
      entry: 'describe',
      input: '',
      timeoutMs: limits.describeTimeoutMs,
      maxOutputBytes: limits.maxOutputBytes,
      onHostCall: async (): Promise<HostReply> => {
        calledHost = true;
        return { tag: 'err', val: { tag: 'denied', val: { code: ErrorCode.POLICY_DENY, message: 'describe() may not call host functions' } } };
      },
    });
    if (calledHost) throw new AuthorityError(ErrorCode.COMPONENT_INVALID, "the component's describe() called a host function; it must only describe the tool");
    if (outcome.end.kind === 'described') return outcome.end.description;
    if (outcome.end.kind === 'halted') throw new AuthorityError(ErrorCode.HALTED, `the runtime was halted: ${outcome.end.message}`);
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `describe() did not complete: ${endMessage(outcome)}`, { data: { end: outcome.end.kind } });
  }

  /**
   * Register a component (a path or its bytes). It is refused, naming the
   * import, if it imports anything outside authority:sandbox; its
   * self-description is read in the sandbox.
   */
  async register(component: string | Uint8Array, opts: RegisterOptions & Provenance = {}): Promise<ToolInfo> {
    this.#assertOpen();
    const limits = { ...this.#opts.limits, ...opts.limits };
    const source = typeof component === 'string' ? component : opts.source;
    try {
      // Signatures beside a file travel with it; bytes bring their own.
      const bundles = opts.signatures ?? (typeof component === 'string' ? readSidecar(component) : []);
      let provenance: ProvenanceResult | undefined;
      const tool = await this.#registry.register(component, {
        ...opts,
        limits,
        admit: (t) => {
          provenance = checkProvenance(this.#policy, t, bundles, source);
        },
      });
      this.#validators.delete(tool.digest);
      this.#slots.set(tool.name, new Slots(tool.limits.maxConcurrency, tool.limits.maxQueued));
      const signer = provenance?.decision.signer;
      await this.#record({
        kind: 'tool.register',
        tool: tool.name,
        toolDigest: `sha256:${tool.digest}`,
        decision: 'allow',
        code: 'ok',
        reason: provenance?.decision.reason.slice(0, 1024),
        detail: {
          imports: tool.imports,
          bytes: tool.size,
          ...(source === undefined ? {} : { source: source.slice(0, 512) }),
          ...(opts.reference === undefined ? {} : { reference: opts.reference.slice(0, 512) }),
          signatures: bundles.length,
          ...(signer === undefined ? {} : { signer }),
        },
      });
      this.#pool.prepare(tool.compiled, 1);
      return toInfo(tool);
    } catch (e) {
      const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.COMPONENT_INVALID, (e as Error).message, { cause: e });
      const named = typeof err.data?.['tool'] === 'string' ? { tool: err.data['tool'] } : {};
      const digest = typeof err.data?.['digest'] === 'string' ? { toolDigest: err.data['digest'] } : {};
      await this.#audit
        .append({
          kind: 'tool.register',
          ...named,
          ...digest,
          decision: 'deny',
          code: err.code,
          reason: err.message.slice(0, 1024),
          detail: { ...(source === undefined ? {} : { source: source.slice(0, 512) }), ...(opts.reference === undefined ? {} : { reference: opts.reference.slice(0, 512) }) },
        })
        .catch(() => {});
      throw err;
    }
  }

  /** Remove a tool; running invocations of it finish. */
  unregister(name: string): boolean {
    return this.#registry.remove(name);
  }

  /** Registered tools, by name. */
  tools(): ToolInfo[] {
    return this.#registry.list();
  }

  tool(name: string): ToolInfo | undefined {
    const t = this.#registry.get(name);
    return t === undefined ? undefined : toInfo(t);
  }

  /** Issue a capability token signed with the active key. */
  issueToken(claims: IssueClaims): string {
    return issueToken(this.#keyring, claims);
  }

  /** Derive a narrower token (no key needed). */
  attenuateToken(token: string, caveat: CaveatInput): string {
    return attenuateToken(token, caveat);
  }

  inspectToken(token: string): TokenInfo {
    return inspectToken(token);
  }

  /** Verify capability tokens against this runtime's keys, as an invocation would (e.g. to check them before a run). */
  prepareGrants(tokens: readonly string[]): GrantSet {
    return prepareGrants(this.#keyring, tokens);
  }

  /** Revoke a token (and every token derived from it) from the next host call on. */
  revokeToken(tokenId: string, reason?: string): void {
    this.#revocations.revokeToken(tokenId, { reason });
  }

  /** Revoke a run: its next host call, and any new invocation in it, is refused. */
  revokeRun(runId: string, reason?: string): void {
    this.#revocations.revokeRun(runId, { reason });
  }

  /** Verify this runtime's audit log: the chain, every checkpoint's root and signature (see `verifyAudit`). */
  async verifyAudit(): Promise<AuditVerifyReport> {
    await this.#audit.flushed();
    return verifyAudit({ dir: this.dataDir, auditDir: this.#opts.audit?.dir, checkpointDir: this.#opts.audit?.checkpointDir });
  }

  /** Where the tool's input schema says `input` is wrong, or undefined when it is right. */
  #validate(tool: ToolInfo, input: unknown): { reason: string; rule?: string | undefined } | undefined {
    let v = this.#validators.get(tool.digest);
    if (v === undefined) {
      try {
        v = this.#ajv.compile(tool.inputSchema);
      } catch (e) {
        throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the input schema of ${tool.name} does not compile: ${(e as Error).message}`, { cause: e });
      }
      this.#validators.set(tool.digest, v);
    }
    if (v(input)) return undefined;
    const first = v.errors?.[0];
    const where = first?.instancePath ? `input${first.instancePath.replaceAll('/', '.')}` : 'input';
    return { reason: `${where}: ${first?.message ?? 'does not match the input schema'}`, rule: first?.schemaPath };
  }

  /**
   * Run a tool once, in a fresh instance, on `input` (any JSON value matching
   * its input schema). Resolves with the output; rejects with an
   * AuthorityError whose code says why (`E_TOOL_FAILED` with the tool's own
   * message, `E_TIMEOUT`, `E_POLICY_DENY`, ...). Either way the invocation is
   * in the audit log before this returns.
   */
  async invoke(name: string, input: unknown, opts: InvokeOptions = {}): Promise<InvokeResult> {
    this.#assertOpen();
    const started = performance.now();
    const registered = this.#registry.get(name);
    if (registered === undefined) throw new AuthorityError(ErrorCode.TOOL_NOT_FOUND, `no tool named ${JSON.stringify(name)} is registered`, { data: { tool: name } });
    const tool = toInfo(registered);
    const { runId, grants, text } = invocationInput(input, opts, this.#opts.maxGrants);
    const subject = { runId, tool: { name, digest: tool.digest }, grants: prepareGrants(this.#keyring, grants), approver: opts.approve ?? this.#opts.approve };
    const validate = (v: unknown) => this.#validate(tool, v);
    const admission = await this.#gate.admit({ ctx: subject, input: input ?? {}, inputText: text, validate, requireToolGrant: this.#opts.requireToolGrant === true });
    if (!admission.allow) throw admission.error;
    const slots = this.#slots.get(name) ?? new Slots(Number.POSITIVE_INFINITY, 0);
    try {
      await slots.take(name);
    } catch (e) {
      await this.#limiter.cancel(admission.reservation).catch(() => {});
      const err = e as AuthorityError;
      const receipt = await this.#record(refusalRecord(subject, admission, err));
      throw new AuthorityError(err.code, err.message, { data: { ...err.data, runId, audit: { start: receipt.seq, end: receipt.seq } } });
    }
    const controller = new AbortController();
    const timeoutMs = Math.max(1, Math.min(tool.limits.timeoutMs, opts.timeoutMs ?? Number.POSITIVE_INFINITY));
    const ctx: RunContext = {
      ...subject,
      deadline: Date.now() + timeoutMs,
      signal: controller.signal,
      log: this.logger.child({ tool: name, runId }),
      stats: { calls: 0, allowed: 0, denied: 0, failed: 0, redactions: 0 },
      denials: [],
      maxHostCalls: tool.limits.maxHostCalls,
      stop: (err) => controller.abort(err),
    };
    const run = { tool: registered.compiled, input: text, timeoutMs, maxOutputBytes: tool.limits.maxOutputBytes };
    const { outcome, start } = await this.#run(ctx, run, admission, controller, slots);
    const ended = runEnding(outcome, { limits: tool.limits, timeoutMs, stopped: controller.signal.reason }, this.#secrets);
    await this.#limiter.settle(admission.reservation).catch(() => {});
    const durationMs = performance.now() - started;
    const stats: InvokeStats = {
      durationMs,
      hostCalls: ctx.stats.calls,
      allowed: ctx.stats.allowed,
      denied: ctx.stats.denied,
      redactions: ctx.stats.redactions + ended.redactions.length,
      preparedInstance: 'fromReady' in outcome.stats ? outcome.stats.fromReady : false,
      ...(outcome.stats.hostCalls === undefined ? {} : { hostCallUs: { p50: outcome.stats.hostCalls.p50Us, p99: outcome.stats.hostCalls.p99Us } }),
    };
    const end = await this.#end(ctx, ended, stats);
    const audit = { start: start.seq, end: end.seq };
    if ('error' in ended) {
      const { error } = ended;
      ctx.log.info({ code: error.code }, 'invocation failed');
      const denials = ctx.denials.length > 0 ? { denials: ctx.denials } : {};
      throw new AuthorityError(error.code, error.message, { data: { ...error.data, tool: name, runId, audit, ...denials }, cause: error.cause });
    }
    return { ok: true, tool: name, runId, output: ended.output, audit, stats, denials: ctx.denials };
  }

  /**
   * The run itself: its start record (the gate's intent record for the
   * invocation) and the instance in the pool, every host call through the gate.
   */
  async #run(
    ctx: RunContext,
    run: Pick<Parameters<WorkerPool['run']>[0], 'tool' | 'input' | 'timeoutMs' | 'maxOutputBytes'>,
    admission: Extract<Admission, { allow: true }>,
    controller: AbortController,
    slots: Slots,
  ): Promise<{ outcome: RunOutcome; start: AuditReceipt }> {
    this.#running.add(controller);
    const inFlight = new Set<Promise<HostReply>>();
    try {
      // The start record takes its place in the log now, before any record of the run's host calls; the run
      // starts while it syncs. The guest can do nothing but compute until its first host call, whose intent
      // record is durable only once everything before it is. The caller hears of the run only after both.
      const starting = this.#record(startRecord(ctx, admission, run.input.length));
      starting.catch((e: unknown) => controller.abort(e));
      const onHostCall = (call: HostCall): Promise<HostReply> => {
        const p = this.#gate.handle(ctx, call);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        return p;
      };
      const outcome = await this.#pool.run({ ...run, entry: 'run', signal: controller.signal, onHostCall });
      return { outcome, start: await starting };
    } catch (e) {
      controller.abort();
      throw e;
    } finally {
      // Calls still in the gate (an http request when the deadline hit) stop now; their records come before the end record.
      if (inFlight.size > 0) {
        controller.abort();
        await Promise.allSettled([...inFlight]);
      }
      this.#running.delete(controller);
      slots.release();
    }
  }

  /** The invocation's end record (its outcome record); without fsync, also waits until its records reached the OS. */
  async #end(ctx: RunContext, ended: Ending, stats: InvokeStats): Promise<AuditReceipt> {
    const receipt = await this.#record(endRecord(ctx, ended, stats));
    // Without fsync, appends do not wait for their writes: the caller still sees the result only once its records reached the OS.
    if (this.#audit.durability === 'none') {
      try {
        await this.#audit.flushed();
      } catch (e) {
        const err = toAuthorityError(e, ErrorCode.AUDIT_WRITE);
        this.#onAuditFailure(err);
        throw err;
      }
    }
    return receipt;
  }

  /**
   * The stop switch: stop every running invocation now, refuse new ones, and
   * record why in the audit log. The runtime cannot be resumed; close it.
   */
  async halt(reason: string): Promise<void> {
    if (this.#halted !== undefined) return;
    this.#halted = reason;
    await this.#audit.append({ kind: 'halt', decision: 'deny', code: ErrorCode.HALTED, reason: reason.slice(0, 1024), detail: this.#pool.load }).catch((e: unknown) => {
      this.logger.error({ err: e }, 'could not record the halt');
    });
    this.#stopping.abort();
    for (const c of this.#running) c.abort(new AuthorityError(ErrorCode.HALTED, `the runtime was halted: ${reason}`));
    await this.#pool.close(reason);
    this.emit('halted', { reason });
  }

  /** Stop the workers, write the final checkpoint, release the log. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#haltWatch);
    this.#stopping.abort();
    for (const c of this.#running) c.abort();
    await this.#pool.close(this.#halted ?? 'closed');
    await this.#http.close();
    await this.#audit.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new AuthorityError(ErrorCode.HALTED, 'the runtime is closed');
    if (this.#halted !== undefined) throw new AuthorityError(ErrorCode.HALTED, `the runtime is halted: ${this.#halted}`);
  }
}

/**
 * Create a runtime. Everything defaults to the local data folder: keys,
 * audit log, revocations and secrets live in `.authority/` (0700).
 */
export async function createRuntime(opts: RuntimeOptions = {}): Promise<Runtime> {
  validateRuntimeOptions(opts);
  // Checked where it enters, before anything is opened: a bad limit is a configuration error naming the field.
  if (opts.limits !== undefined) validLimits(opts.limits);
  const dataDir = ensurePrivateDir(resolveDataDir(opts.dataDir));
  const logger = opts.logger ?? defaultLogger();
  const policy = await resolvePolicy(opts.policy);
  const keyring =
    opts.keys?.file !== undefined || opts.keys?.env !== undefined
      ? Keyring.load({ file: opts.keys.file, env: opts.keys.env, dataDir })
      : Keyring.fromDataDir(dataDir, { create: true });
  const revocations = RevocationList.fromDataDir(dataDir);
  const secrets = opts.secrets instanceof SecretStore ? opts.secrets : SecretStore.load({ file: dataPaths(dataDir).secrets, fileOptional: true, ...(opts.secrets ?? {}) });
  const paths = dataPaths(dataDir);
  const audit = await AuditLog.open({
    dir: dataDir,
    auditDir: opts.audit?.dir ?? paths.auditDir,
    checkpointDir: opts.audit?.checkpointDir ?? paths.checkpointDir,
    durability: opts.audit?.durability ?? 'fsync',
    io: opts.audit?.io,
  });
  return new Runtime({ opts, dataDir, keyring, revocations, secrets, audit, policy, store: opts.store ?? new MemoryLimitStore(), logger });
}

export { DEFAULT_LIMITS };
