/**
 * The decision-level harness: the real gate (decode, capability, policy,
 * limits, audit, effects) with real parts (a file-backed revocation list, an
 * audit log, the host's fs and http effects on the fuzz world), driven call
 * by call without the sandbox, so it runs fast. Every call is compared with
 * the reference model and checked against the invariants.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { AuditLog, verifyAudit, type AuditEntry } from '../audit/index.ts';
import { Keyring, RevocationList, prepareGrants } from '../capability/index.ts';
import { Gate, type RunContext } from '../gate/index.ts';
import type { HostCall, HostReply } from '../host-call.ts';
import { HostFs, HttpClient, SecretStore } from '../host/index.ts';
import { Limiter, MemoryLimitStore } from '../limits/index.ts';
import type { Scenario } from './generators.ts';
import { RunChecker, newStats, type CheckStats } from './checker.ts';
import { budgetProblems, HangError, secretNeedles, secretsIn, settleWithin } from './invariants.ts';
import type { ModelCall } from './model.ts';
import { lookAfter, lookBefore, type ObservedCall, type ObservedRecord } from './simulate.ts';
import { ForeignKeys, mint } from './tokens.ts';
import type { Policy } from '../policy/index.ts';
import type { PolicyVariant, World } from './world.ts';

/** A failed fuzz case: where, and every problem found there. */
export interface CaseFailure {
  readonly step: number;
  readonly problems: readonly string[];
  readonly call?: HostCall | undefined;
  readonly records?: readonly ObservedRecord[] | undefined;
  readonly reply?: unknown;
}

export class FuzzCaseError extends Error {
  override name = 'FuzzCaseError';
  constructor(readonly failure: CaseFailure) {
    super(`step ${failure.step}: ${failure.problems.join('; ')}`);
  }
}

/**
 * A call as the worker bridge can deliver it: jco decodes every guest string
 * from UTF-8 with `new TextDecoder()`, which replaces a lone surrogate with
 * U+FFFD and drops one leading byte-order mark (U+FEFF).
 */
export function bridged(call: HostCall): HostCall {
  const w = (s: string): string => {
    const well = s.toWellFormed();
    return well.startsWith('\ufeff') ? well.slice(1) : well;
  };
  switch (call.op) {
    case 'http.fetch':
      return { ...call, method: w(call.method), url: w(call.url), headers: call.headers.map(([k, v]) => [w(k), w(v)]) };
    case 'secrets.get':
      return { ...call, name: w(call.name) };
    default:
      return { ...call, path: w(call.path) };
  }
}

/** The limiter's clock starts here; each step moves it on by its `dt`. */
export const CLOCK_START = 1_767_225_600_000;
/** Margin on top of a call's own deadline before it counts as a hang. */
export const HANG_MARGIN_MS = 5_000;

/** Captures operational logs in memory so they can be searched for secrets. */
export class LogCapture extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  take(): Buffer {
    const b = Buffer.concat(this.chunks);
    this.chunks = [];
    return b;
  }
}


/** A switchable view of the gate's dependencies: the policy and limiter of the current case. */
export class GateHarness {
  readonly world: World;
  readonly dataDir: string;
  readonly stats: CheckStats = newStats();
  readonly #keyring = Keyring.generate({ keyId: 'fuzz-key' });
  readonly #foreign = new ForeignKeys();
  readonly #revocations: RevocationList;
  readonly #audit: AuditLog;
  readonly #http: HttpClient;
  readonly #gate: Gate;
  readonly #log: Logger;
  readonly #logs = new LogCapture();
  readonly #needles: ReturnType<typeof secretNeedles>;
  #tap: AuditEntry[] = [];
  #variant = 0;
  #limiter: Limiter;
  #cases = 0;

  private constructor(world: World, dataDir: string, audit: AuditLog, enforce: (v: PolicyVariant) => Policy) {
    this.world = world;
    this.dataDir = dataDir;
    this.#audit = audit;
    this.#revocations = RevocationList.open(join(dataDir, 'revocations.jsonl'));
    this.#http = new HttpClient({ lookup: world.lookup, onConnect: world.onConnect, keepAliveTimeoutMs: 1000 });
    this.#log = pino({ level: 'debug', redact: { paths: ['grants', '*.grants', 'token', '*.token', 'secret', '*.secret', 'value', '*.value', 'headers', '*.headers'], censor: '[redacted]' } }, this.#logs);
    this.#needles = secretNeedles(world.secrets);
    this.#limiter = new Limiter((world.variants[0] as (typeof world.variants)[number]).policy.limiterConfig(), new MemoryLimitStore());
    // Only records the log accepted count: a refused append is a call without its record.
    const tap = {
      append: async (entry: AuditEntry) => {
        const receipt = await this.#audit.append(entry);
        this.#tap.push(entry);
        return receipt;
      },
    };
    this.#gate = new Gate({
      revocations: this.#revocations,
      policy: () => enforce(this.world.variants[this.#variant] as PolicyVariant),
      limiter: () => this.#limiter,
      audit: tap,
      fs: new HostFs(),
      http: this.#http,
      secrets: new SecretStore(world.secrets),
      logger: this.#log,
    });
  }

  /**
   * `enforce` picks the policy the gate enforces for a variant (default: the
   * variant's own, the one the model reads). A test passes another to prove
   * the differential notices when the two disagree.
   */
  static async create(world: World, options: { enforce?: ((v: PolicyVariant) => Policy) | undefined } = {}): Promise<GateHarness> {
    const dataDir = mkdtempSync(join(tmpdir(), 'authority-fuzz-gate-'));
    const audit = await AuditLog.open({ dir: dataDir, durability: 'none' });
    return new GateHarness(world, dataDir, audit, options.enforce ?? ((v) => v.policy));
  }

  /** Run one case; throws FuzzCaseError with the first problems found. */
  async run(s: Scenario): Promise<void> {
    this.#cases++;
    this.world.restore(this.#cases % 64 === 0);
    const variant = this.world.variants[s.variant % this.world.variants.length] as (typeof this.world.variants)[number];
    this.#variant = s.variant % this.world.variants.length;
    const clock = { now: CLOCK_START };
    this.#limiter = new Limiter(variant.policy.limiterConfig(), new MemoryLimitStore({ now: () => clock.now }));
    const runId = `fz-${this.#cases}-${randomBytes(4).toString('hex')}`;
    const now = Date.now();
    const all = s.grants.map((g) => mint(g, this.#keyring, this.#foreign, now, runId, this.#revocations));
    const minted = all.filter((m) => m !== undefined);
    const grants = prepareGrants(this.#keyring, minted.map((m) => m.text));
    const controller = new AbortController();
    const ctx: RunContext = {
      runId,
      tool: { name: 'fuzz-gate', digest: '0'.repeat(64) },
      grants,
      deadline: now + 600_000,
      signal: controller.signal,
      log: this.#log.child({ runId }),
      stats: { calls: 0, allowed: 0, denied: 0, failed: 0, redactions: 0 },
      denials: [],
      maxHostCalls: Number.MAX_SAFE_INTEGER,
      stop: (err) => controller.abort(err),
    };
    const checker = new RunChecker(this.world, variant, runId, 'fuzz-gate', minted.map((m) => m.model), this.stats);
    s.grants.forEach((g, i) => {
      const m = all[i];
      if (g.revoke !== undefined && m !== undefined) checker.revokedTokens.add(g.revoke === 'root' ? (m.chain[0] as string) : (m.chain[m.chain.length - 1] as string));
    });
    // One deadline covers a fetch and all its redirects; anything else is quicker.
    const timeout = variant.model.caps.httpTimeoutMs + HANG_MARGIN_MS;
    try {
      for (const [i, step] of s.steps.entries()) {
        if ('revoke' in step) {
          if (step.revoke === 'run') {
            this.#revocations.revokeRun(runId, { reason: 'fuzz' });
            checker.revokedRuns.add(runId);
          } else if (minted.length > 0) {
            const m = minted[step.revoke % minted.length] as (typeof minted)[number];
            this.#revocations.revokeToken(m.chain[0] as string, { reason: 'fuzz' });
            checker.revokedTokens.add(m.chain[0] as string);
          }
          continue;
        }
        clock.now += step.dt;
        const call = bridged(step.call);
        const tapFrom = this.#tap.length;
        const sentFrom = this.world.canary.requests.length;
        const before = lookBefore(call as ModelCall);
        const t0 = Date.now();
        let reply: HostReply;
        try {
          reply = await settleWithin(this.#gate.handle(ctx, call), timeout, `host call ${call.op}`);
        } catch (e) {
          if (e instanceof HangError) throw new FuzzCaseError({ step: i, call, problems: [e.message] });
          throw e;
        }
        const t1 = Date.now();
        if (call.op === 'fs.write' || call.op === 'fs.remove' || call.op === 'fs.mkdir') lookAfter(before);
        const entries = this.#tap.slice(tapFrom);
        const records: ObservedRecord[] = entries.map((e) => ({ kind: e.kind, code: e.code, op: e.op, detail: e.detail as Record<string, unknown> | undefined }));
        const obs: ObservedCall = { call: call as ModelCall, before, records, reply };
        const problems = checker.check(obs, entries, this.world.canary.since(sentFrom), t0, t1, clock.now);
        // The denials an invocation's caller reads quote the gate's reasons: no secret value there either.
        const inDenials = secretsIn(JSON.stringify(ctx.denials), this.#needles);
        if (inDenials.length > 0) problems.push(`secret value of ${inDenials.join(', ')} in the denials the caller reads`);
        problems.push(...budgetProblems(await this.#limiter.usage(runId), variant.model.budgets.run, 'run'));
        problems.push(...budgetProblems(await this.#limiter.sharedUsage(), variant.model.budgets.shared, 'shared'));
        if (problems.length > 0) throw new FuzzCaseError({ step: i, call, problems, records, reply });
      }
      const logs = this.#logs.take();
      const inLogs = secretsIn(logs, this.#needles);
      if (inLogs.length > 0) throw new FuzzCaseError({ step: s.steps.length, problems: [`secret value of ${inLogs.join(', ')} in the operational logs`] });
    } finally {
      controller.abort();
      this.#tap = [];
      this.world.canary.clear();
    }
  }

  /** Verify the whole audit chain written so far. */
  async verify(): Promise<string | undefined> {
    const report = await verifyAudit({ dir: this.dataDir });
    return report.ok ? undefined : `the audit log does not verify: ${report.firstBad?.code}: ${report.firstBad?.message}`;
  }

  async close(): Promise<void> {
    await this.#http.close();
    await this.#audit.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
