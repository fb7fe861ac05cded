/**
 * createRuntime(): wires the registry, the sandbox pool, the gate and its
 * checks (capabilities, policy, limits), the audit log and the host effects.
 * The CLI, the MCP server and every adapter use exactly this.
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
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import pino, { type Logger } from 'pino';
import { AuditLog, hashRequest, type AuditDurability, type AuditEntry, type AuditIo, type AuditReceipt } from './audit/index.ts';
import {
  Keyring,
  RevocationList,
  attenuateToken,
  checkCapability,
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
import type { Fleet, FleetOptions } from './fleet/fleet.ts';
import { AuthorityError, ErrorCode, toAuthorityError } from './errors.ts';
import { Gate, type CanonicalCall, type Denial, type RunContext } from './gate/index.ts';
import type { Decision, HostCall, HostOp, HostReply } from './gate/types.ts';
import { HostFs, HttpClient, SecretStore, type HttpClientOptions, type SecretStoreOptions } from './host/index.ts';
import { Limiter, MemoryLimitStore, type LimitStore, type Reservation } from './limits/index.ts';
import { Policy, loadPolicy, loadPolicyFile } from './policy/index.ts';
import { DEFAULT_LIMITS, Registry, toInfo, validLimits, type RegisterOptions, type ToolInfo, type ToolLimits } from './registry/index.ts';
import { WorkerPool, type PoolOptions, type RunOutcome } from './sandbox/index.ts';

/** The name of the policy in force when none was given: it denies everything. */
export const DEFAULT_POLICY_NAME = 'default-deny';
/** How often a runtime looks for the data folder's HALT file. */
const HALT_POLL_MS = 250;
const RUN_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const DEFAULT_MAX_GRANTS = 64;

export interface RuntimeOptions {
  /** The data folder (keyring, audit log, revocations, secrets, compile cache). Default: $AUTHORITY_DATA_DIR or ./.authority */
  dataDir?: string;
  /**
   * The deployment policy: a loaded Policy, a path to a policy JSON file, or a
   * policy document. Default: `{ "version": "1.0" }`, which denies everything.
   */
  policy?: Policy | string | Record<string, unknown>;
  /** Where HMAC keys come from: a keyring file, or `AUTHORITY_KEYS` in `env`. Default: the data folder's keyring, created if missing. */
  keys?: { file?: string; env?: Readonly<Record<string, string | undefined>> };
  /** Secrets for tools: a store, or where to load one from. Default: the data folder's secrets.json if it exists. */
  secrets?: SecretStore | SecretStoreOptions;
  audit?: {
    /** Folder of the log. Default `<dataDir>/audit`. */
    dir?: string;
    /** Folder of the signed checkpoints, ideally on other storage. Default `<dataDir>/checkpoints`. */
    checkpointDir?: string;
    /** `'fsync'` (default): nothing is acknowledged before it is on disk. `'none'`: for tests on tmpfs and benchmarks. */
    durability?: AuditDurability;
    /** The log's file operations (fault injection in tests). */
    io?: AuditIo;
  };
  pool?: PoolOptions;
  /** Where transpiled tools are cached, by digest. Default `<dataDir>/cache`. */
  cacheDir?: string;
  /**
   * Default limits of every tool (each registration may override them),
   * checked here: an unknown or non-positive field is E_CONFIG naming it.
   * `describeTimeoutMs` bounds describe() at registration (default 5 s).
   */
  limits?: Partial<ToolLimits>;
  /**
   * Options of the one HTTP client every http.fetch goes through. Tests use
   * `lookup` (a resolver) and `connect` (a hook that sees every dial) to keep
   * traffic on loopback whatever a tool asks for.
   */
  http?: HttpClientOptions;
  /** Where rate limits and budgets are counted. Default: in memory, or the fleet's Redis with `redis`. */
  store?: LimitStore;
  /**
   * Join a fleet of runtimes on one Redis: a URL (`redis://`, `rediss://` for
   * TLS), connection options, or a connected Fleet that several runtimes share.
   * Rate limits and budgets, revocations, the stop switch and the audit
   * witness are then shared (see docs/fleet.md). Default: none, everything local.
   */
  redis?: string | FleetOptions | Fleet;
  /** Operational logs (never the audit log). Default: pino at level warn on stderr. */
  logger?: Logger;
  /** Invocations need a `tool` capability token with method `invoke` covering the tool's name. Default false. */
  requireToolGrant?: boolean;
  /** Most grants one invocation may carry. Default 64. */
  maxGrants?: number;
  /**
   * Who approves what the policy's `approvals` section marks (a tool's
   * invocations, or host operations). Without one, such requests are denied
   * with `E_APPROVAL_REQUIRED`. `InvokeOptions.approve` overrides it per call.
   */
  approve?: Approver | undefined;
  /** Clock (tests). */
  now?: () => number;
}

export interface InvokeOptions {
  /** Capability tokens for this run (text form). Without them, every host call is denied. */
  grants?: readonly string[];
  /** The run this invocation belongs to (an agent session); budgets and revocations by run apply. Default: a fresh id. */
  runId?: string;
  /** Lower this invocation's deadline below the tool's. */
  timeoutMs?: number | undefined;
  /** The approver for this invocation (e.g. an MCP session's user); default `RuntimeOptions.approve`. */
  approve?: Approver | undefined;
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
 * const rt = await createRuntime({
 *   policy: { version: '1.0', tools: { allow: ['*'] }, approvals: { tools: ['deploy-*'] } },
 *   approve: async (req) => ({ approved: await askOnSlack(req.reason), by: 'oncall@example.com' }),
 * });
 * ```
 */
export type Approver = (request: ApprovalRequest) => ApprovalDecision | Promise<ApprovalDecision>;

const APPROVER_NAME_MAX = 128;

export interface InvokeResult {
  ok: true;
  tool: string;
  runId: string;
  /** The tool's output, with any secret value redacted. */
  output: string;
  /** Sequence numbers of this invocation's first and last audit records. */
  audit: { start: number; end: number };
  stats: InvokeStats;
  /** Host calls the gate refused during the run (the first 16). */
  denials: Denial[];
}

export interface InvokeStats {
  durationMs: number;
  hostCalls: number;
  allowed: number;
  denied: number;
  redactions: number;
  /** The instance was made ahead of time (no instantiation on this call's path). */
  preparedInstance: boolean;
  /**
   * How long the run's host calls took as the tool saw them, from the
   * import's entry to its return (the bridge, the gate, the audit records and
   * the effect), in microseconds, to within 9%. Only when it made any.
   */
  hostCallUs?: { p50: number; p99: number } | undefined;
}

export interface RuntimeEvents {
  'tools-changed': [{ added?: string; removed?: string; replaced?: string }];
  halted: [{ reason: string }];
}

// Run ids: a random prefix per process and a counter: unique, and no entropy to draw per call.
const RUN_PREFIX = randomBytes(6).toString('base64url');
let runCounter = 0;
function newRunId(): string {
  return `run-${RUN_PREFIX}-${(++runCounter).toString(36)}`;
}

function defaultLogger(): Logger {
  return pino(
    {
      level: process.env['AUTHORITY_LOG_LEVEL'] ?? 'warn',
      name: 'authority',
      redact: { paths: ['grants', '*.grants', 'token', '*.token', 'secret', '*.secret', 'value', '*.value', 'headers', '*.headers'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}

async function resolvePolicy(p: RuntimeOptions['policy']): Promise<Policy> {
  if (p === undefined) return loadPolicy({ version: '1.0', name: DEFAULT_POLICY_NAME }, { source: 'default (deny everything)' }).policy;
  if (p instanceof Policy) return p;
  if (typeof p === 'string') return (await loadPolicyFile(p)).policy;
  return loadPolicy(p, { source: 'runtime options' }).policy;
}

/** A semaphore per tool with a bounded queue. */
class Slots {
  #busy = 0;
  readonly #waiting: Array<() => void> = [];
  constructor(
    readonly max: number,
    readonly maxQueue: number,
  ) {}
  async take(tool: string): Promise<void> {
    if (this.#busy < this.max) {
      this.#busy++;
      return;
    }
    if (this.#waiting.length >= this.maxQueue) {
      throw new AuthorityError(ErrorCode.OVERLOADED, `tool ${tool} is at its concurrency limit (${this.max} running, ${this.#waiting.length} waiting)`, {
        data: { tool, running: this.#busy, queued: this.#waiting.length },
      });
    }
    await new Promise<void>((res) => this.#waiting.push(res));
    this.#busy++;
  }
  release(): void {
    this.#busy--;
    this.#waiting.shift()?.();
  }
}

/**
 * A runtime: tools registered in it run in fresh sandbox instances, and every
 * host call they make passes the gate. Create it with {@link createRuntime}.
 */
export class Runtime extends EventEmitter<RuntimeEvents> {
  readonly dataDir: string;
  readonly keyring: Keyring;
  readonly revocations: RevocationList;
  readonly secrets: SecretStore;
  readonly audit: AuditLog;
  readonly logger: Logger;
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
  /** The approver of each run in progress (the gate hands back the run's context). */
  readonly #approvers = new WeakMap<RunContext, Approver | undefined>();
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
  constructor(parts: {
    opts: RuntimeOptions;
    dataDir: string;
    keyring: Keyring;
    revocations: RevocationList;
    secrets: SecretStore;
    audit: AuditLog;
    policy: Policy;
    store: LimitStore;
    logger: Logger;
    fleet?: { fleet: Fleet; owned: boolean; witness: (audit: AuditLog) => () => Promise<void> } | undefined;
  }) {
    super();
    this.#opts = parts.opts;
    this.dataDir = parts.dataDir;
    this.keyring = parts.keyring;
    this.revocations = parts.revocations;
    this.secrets = parts.secrets;
    this.audit = parts.audit;
    this.logger = parts.logger;
    this.#policy = parts.policy;
    this.#store = parts.store;
    this.#limiter = new Limiter(parts.policy.limiterConfig(), parts.store);
    this.fleet = parts.fleet?.fleet;
    this.#ownsFleet = parts.fleet?.owned ?? false;
    this.#checker = this.fleet?.checker(parts.revocations) ?? parts.revocations;
    this.#pool = new WorkerPool(parts.opts.pool);
    this.#http = new HttpClient(parts.opts.http);
    this.#gate = new Gate({
      revocations: this.#checker,
      policy: () => this.#policy,
      limiter: () => this.#limiter,
      audit: parts.audit,
      fs: new HostFs(),
      http: this.#http,
      secrets: parts.secrets,
      logger: parts.logger,
      onAuditFailure: (err) => this.#onAuditFailure(err),
      approve: (ctx, call) => this.#approveCall(ctx, call),
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
  async #record(entry: AuditEntry): Promise<AuditReceipt> {
    try {
      return await this.audit.append(entry);
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
  async register(component: string | Uint8Array, opts: RegisterOptions = {}): Promise<ToolInfo> {
    this.#assertOpen();
    const limits = { ...this.#opts.limits, ...opts.limits };
    try {
      const tool = await this.#registry.register(component, { ...opts, limits });
      this.#validators.delete(tool.digest);
      this.#slots.set(tool.name, new Slots(tool.limits.maxConcurrency, tool.limits.maxQueued));
      await this.#record({ kind: 'tool.register', tool: tool.name, toolDigest: `sha256:${tool.digest}`, decision: 'allow', code: 'ok', detail: { imports: tool.imports, bytes: tool.size } });
      this.#pool.prepare(tool.compiled, 1);
      return toInfo(tool);
    } catch (e) {
      const err = e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.COMPONENT_INVALID, (e as Error).message, { cause: e });
      await this.audit
        .append({ kind: 'tool.register', decision: 'deny', code: err.code, reason: err.message.slice(0, 1024), detail: typeof component === 'string' ? { source: component.slice(0, 512) } : {} })
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
    return issueToken(this.keyring, claims);
  }

  /** Derive a narrower token (no key needed). */
  attenuateToken(token: string, caveat: CaveatInput): string {
    return attenuateToken(token, caveat);
  }

  inspectToken(token: string): TokenInfo {
    return inspectToken(token);
  }

  /**
   * Revoke a token (and every token derived from it) from the next host call
   * on. In a fleet, every node's next host call too, once this resolves.
   */
  async revokeToken(tokenId: string, reason?: string): Promise<void> {
    this.revocations.revokeToken(tokenId, { reason });
    await this.fleet?.revokeToken(tokenId, reason);
  }

  /** Revoke a run: its next host call, and any new invocation in it, is refused (in a fleet, on every node). */
  async revokeRun(runId: string, reason?: string): Promise<void> {
    this.revocations.revokeRun(runId, { reason });
    await this.fleet?.revokeRun(runId, reason);
  }

  #validator(tool: ToolInfo): ValidateFunction {
    let v = this.#validators.get(tool.digest);
    if (v === undefined) {
      try {
        v = this.#ajv.compile(tool.inputSchema);
      } catch (e) {
        throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the input schema of ${tool.name} does not compile: ${(e as Error).message}`, { cause: e });
      }
      this.#validators.set(tool.digest, v);
    }
    return v;
  }

  async #admit(tool: ToolInfo, runId: string, grants: GrantSet, input: unknown, approver: Approver | undefined): Promise<(Decision & { tokenId?: string | undefined; reservation?: Reservation | undefined })> {
    const policy = this.#policy.decide({ op: 'tool.invoke', name: tool.name });
    if (!policy.allow) {
      if (this.#policy.name === DEFAULT_POLICY_NAME) return { ...policy, reason: `${policy.reason}; no policy was given, so everything is denied (pass one: RuntimeOptions.policy, --policy FILE, or <data-dir>/policy.json)` };
      return policy;
    }
    let tokenId: string | undefined;
    if (this.#opts.requireToolGrant === true) {
      const cap = checkCapability(grants, { kind: 'tool', resource: tool.name, method: 'invoke' }, { runId, revocations: this.#checker });
      if (!cap.allow) return cap;
      tokenId = cap.tokenId;
    }
    const revoked = this.#checker.findRevoked([], [runId]);
    if (revoked?.type === 'unavailable') return { allow: false, code: ErrorCode.STATE_UNAVAILABLE, reason: `revocations cannot be checked: ${revoked.reason ?? ''}` };
    if (revoked !== undefined) return { allow: false, code: ErrorCode.CAP_REVOKED, reason: `run ${runId} is revoked` };
    const validate = this.#validator(tool);
    if (!validate(input)) {
      const first = validate.errors?.[0];
      const where = first?.instancePath ? `input${first.instancePath.replaceAll('/', '.')}` : 'input';
      return { allow: false, code: ErrorCode.INVALID_ARGUMENT, reason: `${where}: ${first?.message ?? 'does not match the input schema'}`, rule: first?.schemaPath };
    }
    const rate = await this.#limiter.rate({ runId, tool: tool.name, tokenId }, { op: 'tool.invoke' });
    if (!rate.allow) return { ...rate, tokenId };
    const { decision, reservation } = await this.#limiter.reserve({ runId, tool: tool.name, tokenId }, { op: 'tool.invoke' });
    if (!decision.allow) return { ...decision, tokenId };
    const needs = this.#policy.approvalFor({ op: 'tool.invoke', name: tool.name });
    if (needs === undefined) return { allow: true, reason: `${policy.reason}`, tokenId, reservation };
    let approval: Decision;
    try {
      approval = await this.#approve(approver, { op: 'tool.invoke', tool: tool.name, toolDigest: tool.digest, runId, target: tool.name, input, ...needs }, { signal: this.#stopping.signal });
    } catch (e) {
      if (reservation) await this.#limiter.cancel(reservation).catch(() => {});
      throw e;
    }
    if (!approval.allow) {
      if (reservation) await this.#limiter.cancel(reservation).catch(() => {});
      return { ...approval, tokenId };
    }
    return { allow: true, reason: `${policy.reason}; ${approval.reason}`, tokenId, reservation };
  }

  /** The gate's stage 5b: undefined when the call needs no approval. */
  #approveCall(ctx: RunContext, call: CanonicalCall): Promise<Decision> | undefined {
    const needs = this.#policy.approvalFor({ op: call.op });
    if (needs === undefined) return undefined;
    const target = call.op === 'http.fetch' ? call.url.href : call.op === 'secrets.get' ? call.name : call.real;
    return this.#approve(
      this.#approvers.get(ctx),
      {
        op: call.op,
        tool: ctx.tool.name,
        toolDigest: ctx.tool.digest,
        runId: ctx.runId,
        target,
        method: call.op === 'http.fetch' ? call.method : undefined,
        bytes: call.op === 'fs.write' ? call.data.length : undefined,
        ...needs,
      },
      { deadline: ctx.deadline, signal: ctx.signal },
    );
  }

  /**
   * Ask the approver, bounded by the policy's approval timeout (and the run's
   * deadline and signal), and audit the answer as an `approval` record before
   * the request goes on. Every failure to get a clear yes is a deny.
   */
  async #approve(
    approver: Approver | undefined,
    req: Omit<ApprovalRequest, 'deadline' | 'signal'> & { toolDigest: string },
    bound: { deadline?: number; signal?: AbortSignal } = {},
  ): Promise<Decision> {
    const { toolDigest, ...request } = req;
    const what = request.op === 'tool.invoke' ? `invoking ${request.tool}` : `${request.op}${request.method === undefined ? '' : ` ${request.method}`} ${request.target.slice(0, 256)} by ${request.tool}`;
    const deadline = Math.min(Date.now() + this.#policy.approvalTimeoutMs, bound.deadline ?? Number.POSITIVE_INFINITY);
    let by = 'none';
    let decision: Decision;
    if (approver === undefined) {
      decision = { allow: false, code: ErrorCode.APPROVAL_REQUIRED, reason: `${what} needs approval (${request.reason}), and no approver is configured`, rule: request.rule };
    } else {
      const controller = new AbortController();
      const onAbort = (): void => controller.abort(bound.signal?.reason);
      bound.signal?.addEventListener('abort', onAbort, { once: true });
      if (bound.signal?.aborted === true) controller.abort(bound.signal.reason);
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_, reject) => {
        const fail = (): void => reject(new AuthorityError(ErrorCode.APPROVAL_REQUIRED, `no answer to the approval request for ${what} in time`));
        if (controller.signal.aborted) return fail();
        controller.signal.addEventListener('abort', fail, { once: true });
        timer = setTimeout(() => controller.abort(new Error('approval timed out')), Math.max(0, deadline - Date.now()));
      });
      expired.catch(() => {});
      try {
        const answer: unknown = await Promise.race([Promise.resolve().then(() => approver({ ...request, deadline, signal: controller.signal })), expired]);
        if (!isApprovalDecision(answer)) throw new AuthorityError(ErrorCode.APPROVAL_REQUIRED, `the approver gave no valid answer for ${what} (expected { approved: boolean, by: string of 1-${APPROVER_NAME_MAX} characters })`);
        by = answer.by;
        const why = typeof answer.reason === 'string' && answer.reason.length > 0 ? `: ${answer.reason.slice(0, 256)}` : '';
        decision = answer.approved
          ? { allow: true, reason: `approved by ${by}${why}`, rule: request.rule }
          : { allow: false, code: ErrorCode.APPROVAL_DENIED, reason: `${what} was refused by ${by}${why}`, rule: request.rule };
      } catch (e) {
        const err = e instanceof AuthorityError && (e.code === ErrorCode.APPROVAL_REQUIRED || e.code === ErrorCode.APPROVAL_DENIED) ? e : undefined;
        decision = { allow: false, code: err?.code ?? ErrorCode.APPROVAL_REQUIRED, reason: err?.message ?? `the approver failed for ${what}: ${e instanceof Error ? e.message : String(e)}`, rule: request.rule };
      } finally {
        clearTimeout(timer);
        bound.signal?.removeEventListener('abort', onAbort);
        controller.abort();
      }
    }
    await this.audit.append({
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
    const runId = opts.runId ?? newRunId();
    if (!RUN_ID.test(runId)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'runId must match [A-Za-z0-9._:-]{1,128}', { data: { field: 'runId' } });
    const grantTexts = opts.grants ?? [];
    const maxGrants = this.#opts.maxGrants ?? DEFAULT_MAX_GRANTS;
    if (grantTexts.length > maxGrants) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `at most ${maxGrants} grants per invocation`, { data: { field: 'grants' } });
    let inputText: string;
    try {
      inputText = JSON.stringify(input ?? {});
    } catch (e) {
      throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `input is not JSON: ${(e as Error).message}`, { cause: e });
    }
    const grants = prepareGrants(this.keyring, grantTexts);
    const base: Pick<AuditEntry, 'runId' | 'tool' | 'toolDigest'> = { runId, tool: name, toolDigest: `sha256:${tool.digest}` };
    const requestHash = hashRequest({ tool: name, digest: tool.digest, input: inputText });
    const grantIds = grants.summary().map((g) => g.tokenId ?? `#${g.index}:invalid`);

    const approver = opts.approve ?? this.#opts.approve;
    const admission = await this.#admit(tool, runId, grants, input ?? {}, approver);
    if (!admission.allow) {
      const receipt = await this.#record({ ...base, kind: 'invoke.start', decision: 'deny', code: admission.code, reason: admission.reason.slice(0, 1024), tokenId: admission.tokenId, requestHash, detail: { grants: grantIds } });
      throw new AuthorityError(admission.code, admission.reason, { data: { tool: name, runId, audit: { start: receipt.seq, end: receipt.seq }, ...(admission.retryAfterMs === undefined ? {} : { retryAfterMs: admission.retryAfterMs }) } });
    }

    const slots = this.#slots.get(name) ?? new Slots(Number.POSITIVE_INFINITY, 0);
    try {
      await slots.take(name);
    } catch (e) {
      if (admission.reservation) await this.#limiter.cancel(admission.reservation).catch(() => {});
      const err = e as AuthorityError;
      const receipt = await this.#record({ ...base, kind: 'invoke.start', decision: 'deny', code: err.code, reason: err.message, requestHash, detail: { grants: grantIds } });
      throw new AuthorityError(err.code, err.message, { data: { ...err.data, runId, audit: { start: receipt.seq, end: receipt.seq } } });
    }

    const controller = new AbortController();
    this.#running.add(controller);
    const log = this.logger.child({ tool: name, runId });
    const timeoutMs = Math.max(1, Math.min(tool.limits.timeoutMs, opts.timeoutMs ?? Number.POSITIVE_INFINITY));
    const ctx: RunContext = {
      runId,
      tool: { name, digest: tool.digest },
      grants,
      deadline: Date.now() + timeoutMs,
      signal: controller.signal,
      log,
      stats: { calls: 0, allowed: 0, denied: 0, failed: 0, redactions: 0 },
      denials: [],
      maxHostCalls: tool.limits.maxHostCalls,
      stop: (err) => controller.abort(err),
    };
    this.#approvers.set(ctx, approver);
    let startReceipt: AuditReceipt;
    let outcome: RunOutcome;
    const inFlight = new Set<Promise<HostReply>>();
    try {
      // The start record takes its place in the log now, before any record of the run's host calls; the run
      // starts while it syncs. The guest can do nothing but compute until its first host call, whose intent
      // record is durable only once everything before it is. The caller hears of the run only after both.
      const starting = this.#record({ ...base, kind: 'invoke.start', decision: 'allow', code: 'ok', tokenId: admission.tokenId, requestHash, reason: admission.reason, detail: { grants: grantIds, inputBytes: inputText.length } });
      starting.catch((e: unknown) => controller.abort(e));
      const running = this.#pool.run({
        tool: registered.compiled,
        entry: 'run',
        input: inputText,
        timeoutMs,
        maxOutputBytes: tool.limits.maxOutputBytes,
        signal: controller.signal,
        onHostCall: (call: HostCall) => {
          const p = this.#gate.handle(ctx, call);
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
          return p;
        },
      });
      outcome = await running;
      startReceipt = await starting;
    } catch (e) {
      controller.abort();
      this.#running.delete(controller);
      slots.release();
      throw e;
    } finally {
      // Calls still in the gate (an http request when the deadline hit) stop now; their records come before the end record.
      if (inFlight.size > 0) {
        controller.abort();
        await Promise.allSettled([...inFlight]);
      }
    }
    this.#running.delete(controller);
    slots.release();

    const end = outcome.end;
    let output: string | undefined;
    let error: AuthorityError | undefined;
    let redactions: string[] = [];
    switch (end.kind) {
      case 'ok': {
        const red = this.secrets.redactText(end.output);
        output = red.text;
        redactions = red.redactions.map((r) => r.name);
        break;
      }
      case 'tool-error': {
        const red = this.secrets.redactText(end.message);
        redactions = red.redactions.map((r) => r.name);
        error = new AuthorityError(ErrorCode.TOOL_FAILED, red.text);
        break;
      }
      case 'output-too-large':
        error = new AuthorityError(ErrorCode.TOOL_OUTPUT, `the tool's output is ${end.bytes} bytes, over its cap of ${tool.limits.maxOutputBytes}`, { data: { bytes: end.bytes, cap: tool.limits.maxOutputBytes } });
        break;
      case 'timeout':
        error = new AuthorityError(ErrorCode.TIMEOUT, end.message, { data: { timeoutMs } });
        break;
      case 'halted':
        error = new AuthorityError(ErrorCode.HALTED, `the runtime was halted: ${end.message}`);
        break;
      case 'aborted': {
        const reason: unknown = controller.signal.reason;
        error = reason instanceof AuthorityError ? reason : new AuthorityError(ErrorCode.HALTED, `the run was stopped: ${end.message}`);
        break;
      }
      case 'trap':
        error = new AuthorityError(ErrorCode.TOOL_TRAPPED, `the tool trapped: ${end.message}`);
        break;
      case 'crash':
        error = new AuthorityError(ErrorCode.TOOL_TRAPPED, end.message);
        break;
      case 'load-error':
        error = new AuthorityError(ErrorCode.INTERNAL, `the tool could not be instantiated: ${end.message}`);
        break;
      case 'described':
        error = new AuthorityError(ErrorCode.INTERNAL, 'unexpected describe result');
        break;
    }
    if (admission.reservation) await this.#limiter.settle(admission.reservation).catch(() => {});
    const durationMs = performance.now() - started;
    const stats: InvokeStats = {
      durationMs,
      hostCalls: ctx.stats.calls,
      allowed: ctx.stats.allowed,
      denied: ctx.stats.denied,
      redactions: ctx.stats.redactions + redactions.length,
      preparedInstance: 'fromReady' in outcome.stats ? outcome.stats.fromReady : false,
      ...(outcome.stats.hostCalls === undefined ? {} : { hostCallUs: { p50: outcome.stats.hostCalls.p50Us, p99: outcome.stats.hostCalls.p99Us } }),
    };
    const endReceipt = await this.#record({
      ...base,
      kind: 'invoke.end',
      decision: error === undefined ? 'allow' : 'deny',
      code: error === undefined ? 'ok' : error.code,
      reason: error?.message.slice(0, 1024),
      responseHash: output === undefined ? undefined : hashRequest({ output }),
      detail: {
        durationMs: Math.round(durationMs),
        hostCalls: stats.hostCalls,
        allowed: stats.allowed,
        denied: stats.denied,
        ...(redactions.length ? { redacted: redactions } : {}),
        ...(output === undefined ? {} : { outputBytes: Buffer.byteLength(output) }),
      },
    });
    // Without fsync, appends do not wait for their writes: the caller still sees the result only once its records reached the OS.
    if (this.audit.durability === 'none') {
      try {
        await this.audit.flushed();
      } catch (e) {
        const err = toAuthorityError(e, ErrorCode.AUDIT_WRITE);
        this.#onAuditFailure(err);
        throw err;
      }
    }
    const audit = { start: startReceipt.seq, end: endReceipt.seq };
    if (error !== undefined) {
      log.info({ code: error.code }, 'invocation failed');
      const denials = ctx.denials.length > 0 ? { denials: ctx.denials } : {};
      throw new AuthorityError(error.code, error.message, { data: { ...error.data, tool: name, runId, audit, ...denials }, cause: error.cause });
    }
    return { ok: true, tool: name, runId, output: output as string, audit, stats, denials: ctx.denials };
  }

  /**
   * The stop switch: stop every running invocation now, refuse new ones, and
   * record why in the audit log. The runtime cannot be resumed; close it.
   */
  async halt(reason: string): Promise<void> {
    if (this.#halted !== undefined) return;
    this.#halted = reason;
    await this.audit.append({ kind: 'halt', decision: 'deny', code: ErrorCode.HALTED, reason: reason.slice(0, 1024), detail: this.#pool.load }).catch((e: unknown) => {
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
    await this.audit.close();
    // After the close: the final checkpoint is witnessed too.
    await this.#fleetStop?.();
    if (this.#ownsFleet) await this.fleet?.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new AuthorityError(ErrorCode.HALTED, 'the runtime is closed');
    if (this.#halted !== undefined) throw new AuthorityError(ErrorCode.HALTED, `the runtime is halted: ${this.#halted}`);
  }
}

function isApprovalDecision(v: unknown): v is ApprovalDecision {
  if (typeof v !== 'object' || v === null) return false;
  const d = v as Record<string, unknown>;
  return typeof d['approved'] === 'boolean' && typeof d['by'] === 'string' && d['by'].length > 0 && d['by'].length <= APPROVER_NAME_MAX && (d['reason'] === undefined || typeof d['reason'] === 'string');
}

function endMessage(outcome: RunOutcome): string {
  const end = outcome.end as { kind: string; message?: string };
  return end.message ?? end.kind;
}

/**
 * Create a runtime. Everything defaults to the local data folder: keys,
 * audit log, revocations and secrets live in `.authority/` (0700).
 */
export async function createRuntime(opts: RuntimeOptions = {}): Promise<Runtime> {
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
  let fleet: { fleet: Fleet; owned: boolean; witness: (audit: AuditLog) => () => Promise<void> } | undefined;
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
  const runtime = new Runtime({ opts, dataDir, keyring, revocations, secrets, audit, policy, store: opts.store ?? fleet?.fleet.store ?? new MemoryLimitStore(), logger, fleet });
  return runtime;
}

export { DEFAULT_LIMITS };
