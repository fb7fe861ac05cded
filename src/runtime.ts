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
import type { RevocationChecker } from './capability/index.ts';
import { dataPaths, ensurePrivateDir, haltReason, resolveDataDir } from './data-dir.ts';
import type { Fleet } from './fleet/fleet.ts';
import { AuthorityError, ErrorCode, toAuthorityError } from './errors.ts';
import { DEFAULT_POLICY_NAME, Gate, endRecord, refusalRecord, startRecord, type Admission, type Approver, type RunContext } from './gate/index.ts';
import type { HostCall, HostReply } from './host-call.ts';
import { HostFs, HttpClient, SecretStore } from './host/index.ts';
import { Limiter, MemoryLimitStore, type LimitStore } from './limits/index.ts';
import type { Policy } from './policy/index.ts';
import { checkProvenance, DEFAULT_LIMITS, InputSchemas, Registry, toInfo, validLimits, type Provenance, type ProvenanceResult, type RegisterOptions, type ToolInfo, type ToolLimits } from './registry/index.ts';
import { defaultLogger, invocationInput, resolvePolicy, validateRuntimeOptions, type InvokeOptions, type InvokeResult, type InvokeStats, type RuntimeOptions } from './runtime-options.ts';
import { endMessage, invocationError, invokeStats, runEnding, type Ending } from './run-end.ts';
import { Slots, WorkerPool, type RunOutcome } from './sandbox/index.ts';
import { readSidecar } from './signing/index.ts';

export { DEFAULT_POLICY_NAME };
export type { ApprovalDecision, ApprovalRequest, Approver } from './gate/index.ts';
export type { InvokeOptions, InvokeResult, InvokeStats, RuntimeOptions } from './runtime-options.ts';
import { capturePreImage, planUndo, PreImageStore, undoRun, type UndoDeps, type UndoOptions, type UndoPlan, type UndoResult } from './undo/index.ts';

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

/** A fleet the runtime joined: whether it owns the connection, and how to start its audit witness. */
interface FleetParts {
  fleet: Fleet;
  owned: boolean;
  witness: (audit: AuditLog) => () => Promise<void>;
}

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
  readonly #hostFs = new HostFs();
  /** Pre-images of the files runs change (`<data>/undo`), so a run can be undone. */
  readonly #preImages: PreImageStore;
  readonly #schemas = new InputSchemas();
  readonly #slots = new Map<string, Slots>();
  readonly #running = new Set<AbortController>();
  /** Aborted by halt() and close(): approvals still waited for at admission stop. */
  readonly #stopping = new AbortController();
  readonly #opts: RuntimeOptions;
  #halted: string | undefined;
  #closed = false;
  readonly #haltWatch: NodeJS.Timeout;
  /** The revocations every check reads: the local list, and the fleet's mirror when in a fleet. */
  readonly #checker: RevocationChecker;
  /** The fleet this runtime is part of, if any. */
  readonly fleet: Fleet | undefined;
  readonly #ownsFleet: boolean;
  readonly #fleetStop: (() => Promise<void>) | undefined;

  /** @internal use createRuntime() */
  constructor(parts: { opts: RuntimeOptions; dataDir: string; policy: Policy; store: LimitStore; logger: Logger; fleet?: FleetParts | undefined } & Internals) {
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
    this.fleet = parts.fleet?.fleet;
    this.#ownsFleet = parts.fleet?.owned ?? false;
    this.#checker = this.fleet?.checker(parts.revocations) ?? parts.revocations;
    this.#pool = new WorkerPool(parts.opts.pool);
    this.#http = new HttpClient(parts.opts.http);
    this.#preImages = new PreImageStore(dataPaths(parts.dataDir).undoDir);
    this.#gate = new Gate({
      revocations: this.#checker,
      policy: () => this.#policy,
      limiter: () => this.#limiter,
      audit: parts.audit,
      fs: this.#hostFs,
      http: this.#http,
      secrets: parts.secrets,
      logger: parts.logger,
      onAuditFailure: (err) => this.#onAuditFailure(err),
      stopping: this.#stopping.signal,
      preImage: (target, scope) => capturePreImage(this.#preImages, this.#hostFs, target, scope),
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
    if (this.fleet !== undefined) {
      // The fleet's stop switch: pushed by pub/sub, or found by the poll.
      const onHalt = (h: { reason: string; by: string }): void => void this.halt(`fleet halt by ${h.by}: ${h.reason}`);
      this.fleet.on('halt', onHalt);
      const current = this.fleet.halted;
      if (current !== undefined) onHalt(current);
      this.#fleetStop = parts.fleet?.witness(parts.audit);
    }
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

  /**
   * What undoing a run would do now, newest change first: each change is
   * ready, done, a conflict (the file changed since the run) or blocked (why
   * says). Reads files; changes nothing.
   *
   * @example
   * ```ts
   * const plan = await runtime.undoPlan('run-42');
   * plan.steps.filter((s) => s.state === 'conflict');
   * ```
   */
  undoPlan(runId: string): Promise<UndoPlan> {
    return planUndo(this.#undoDeps(), runId);
  }

  /**
   * Undo a run's file changes: newest first, each only while the file still
   * holds what the run left (else a conflict, left alone unless `force`).
   * The policy must name the run's tool in `undo.tools`, and every restore is
   * decided and confined like a write. Audited as `undo.*` records; run it
   * again to resume an undo that was cut short.
   *
   * @example
   * ```ts
   * const r = await runtime.undoRun('run-42');
   * console.log(r.restored, r.conflicts);
   * ```
   */
  undoRun(runId: string, options: UndoOptions = {}): Promise<UndoResult> {
    return undoRun(this.#undoDeps(), runId, options);
  }

  #undoDeps(): UndoDeps {
    return {
      location: { dir: this.dataDir, auditDir: this.#opts.audit?.dir, checkpointDir: this.#opts.audit?.checkpointDir },
      audit: { append: (e) => this.#record(e) },
      policy: () => this.#policy,
      fs: this.#hostFs,
      store: this.#preImages,
    };
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
      this.#schemas.forget(tool.digest);
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

  /**
   * Revoke a token (and every token derived from it) from the next host call
   * on. In a fleet, every node's next host call too, once this resolves.
   */
  async revokeToken(tokenId: string, reason?: string): Promise<void> {
    this.#revocations.revokeToken(tokenId, { reason });
    await this.fleet?.revokeToken(tokenId, reason);
  }

  /** Revoke a run: its next host call, and any new invocation in it, is refused (in a fleet, on every node). */
  async revokeRun(runId: string, reason?: string): Promise<void> {
    this.#revocations.revokeRun(runId, { reason });
    await this.fleet?.revokeRun(runId, reason);
  }

  /** The audit log's counters and its latest signed checkpoint, as metrics show them. */
  get auditStatus(): { readonly stats: AuditLog['stats']; readonly latestCheckpoint: AuditLog['latestCheckpoint'] } {
    return { stats: this.#audit.stats, latestCheckpoint: this.#audit.latestCheckpoint };
  }

  /** Verify this runtime's audit log: the chain, every checkpoint's root and signature (see `verifyAudit`). */
  async verifyAudit(): Promise<AuditVerifyReport> {
    await this.#audit.flushed();
    return verifyAudit({ dir: this.dataDir, auditDir: this.#opts.audit?.dir, checkpointDir: this.#opts.audit?.checkpointDir });
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
    const validate = (v: unknown) => this.#schemas.check(tool, v);
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
    const stats = invokeStats(performance.now() - started, ctx.stats, outcome, ended.redactions.length);
    const end = await this.#end(ctx, ended, stats);
    const audit = { start: start.seq, end: end.seq };
    if ('error' in ended) {
      ctx.log.info({ code: ended.error.code }, 'invocation failed');
      throw invocationError(ended.error, { tool: name, runId, audit, denials: ctx.denials });
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
    // After the close: the final checkpoint is witnessed too.
    await this.#fleetStop?.();
    if (this.#ownsFleet) await this.fleet?.close();
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
  let fleet: FleetParts | undefined;
  if (opts.redis !== undefined) {
    // Loaded only here: a runtime outside a fleet never loads the Redis client.
    const mod = await import('./fleet/index.ts');
    const given = opts.redis;
    const owned = !(given instanceof mod.Fleet);
    let f: Fleet;
    try {
      f = given instanceof mod.Fleet ? given : await mod.Fleet.connect(typeof given === 'string' ? { url: given } : given);
    } catch (e) {
      await audit.close();
      throw e;
    }
    fleet = { fleet: f, owned, witness: (log) => mod.startWitness(f, log, logger) };
  }
  return new Runtime({ opts, dataDir, keyring, revocations, secrets, audit, policy, store: opts.store ?? fleet?.fleet.store ?? new MemoryLimitStore(), logger, fleet });
}

export { DEFAULT_LIMITS };
