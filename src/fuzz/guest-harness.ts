/**
 * The through-the-guest harness: a real runtime (registry, worker pool, sync
 * bridge, gate, audit log, effects) and the echo guest, which makes a case's
 * host calls through its real imports, so every value crosses jco's lowering
 * and lifting and the bridge. Each invocation makes many calls (a fresh
 * instance costs milliseconds); every call is still checked on its own,
 * because the harness watches the audit log as the gate writes it: a call's
 * first record is written before its effect, which is when the model looks
 * at the file system.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { verifyAudit, type AuditEntry, type AuditReceipt } from '../audit/index.ts';
import { AuthorityError } from '../errors.ts';
import type { HostCall } from '../host-call.ts';
import { Limiter, MemoryLimitStore, type LimitStore } from '../limits/index.ts';
import { runtimeInternals, type Runtime } from '../runtime.ts';
import { RunChecker, newStats, type CheckStats } from './checker.ts';
import { bridged, CLOCK_START, FuzzCaseError, HANG_MARGIN_MS, type LogCapture } from './gate-harness.ts';
import type { Scenario, Step } from './generators.ts';
import { ECHO_SOURCE, guestRuntime, type GuestRuntimeOptions } from './guests.ts';
import { budgetProblems, groupCalls, HangError, secretNeedles, secretsIn, settleWithin } from './invariants.ts';
import { admitInvocation, type ModelCall } from './model.ts';
import { lookAfter, lookBefore, type BeforeCall, type ObservedRecord, type ObservedReply } from './simulate.ts';
import { ForeignKeys, mint } from './tokens.ts';
import type { World } from './world.ts';

/** A LimitStore that forwards to a fresh store per case, so cases never share counters. */
class SwitchStore implements LimitStore {
  current: LimitStore = new MemoryLimitStore();
  acquire: LimitStore['acquire'] = (r) => this.current.acquire(r);
  reserve: LimitStore['reserve'] = (c, w) => this.current.reserve(c, w);
  release: LimitStore['release'] = (e) => this.current.release(e);
  read: LimitStore['read'] = (k) => this.current.read(k);
  windowStart: LimitStore['windowStart'] = (k) => this.current.windowStart(k);
  delete: LimitStore['delete'] = (k) => this.current.delete(k);
}

/** A call as the echo guest's input carries it: bytes in base64, no body as null. */
function encodeCall(c: HostCall): Record<string, unknown> {
  switch (c.op) {
    case 'fs.write':
      return { op: c.op, path: c.path, data: Buffer.from(c.data).toString('base64') };
    case 'http.fetch':
      return { op: c.op, method: c.method, url: c.url, headers: c.headers, body: c.body === undefined ? null : Buffer.from(c.body).toString('base64') };
    default:
      return { ...c };
  }
}

/** A value from the echo guest's output back to what the bindings handed it. */
function decodeValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decodeValue);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o['$b'] === 'string' && Object.keys(o).length === 1) return new Uint8Array(Buffer.from(o['$b'], 'base64'));
    if (typeof o['$n'] === 'string' && Object.keys(o).length === 1) return BigInt(o['$n']);
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decodeValue(x)]));
  }
  return v;
}

/** The runtime's output has secret values redacted; put them back where the guest had them, to compare. */
function unredact(v: unknown, secrets: Readonly<Record<string, string>>): unknown {
  if (typeof v === 'string') return v.replace(/\[REDACTED:([A-Za-z0-9_.-]+)\]/g, (whole, name: string) => secrets[name] ?? whole);
  if (Array.isArray(v)) return v.map((x) => unredact(x, secrets));
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unredact(x, secrets)]));
  return v;
}

function toReply(op: string, r: { ok?: unknown; err?: unknown }): ObservedReply | undefined {
  if ('ok' in r) return { tag: 'ok', val: op === 'fs.write' || op === 'fs.remove' || op === 'fs.mkdir' ? undefined : decodeValue(r.ok) };
  const e = decodeValue(r.err) as { tag?: unknown; val?: unknown } | undefined;
  if (e === undefined || typeof e.tag !== 'string' || e.tag === 'guest') return undefined;
  return { tag: 'err', val: { tag: e.tag, val: e.val } };
}

interface CallWatch {
  entries: AuditEntry[];
  before: BeforeCall | undefined;
  sentFrom: number;
  t0: number;
  t1: number;
}

export class GuestHarness {
  readonly world: World;
  readonly stats: CheckStats = newStats();
  readonly dataDir: string;
  /** Invocations made. */
  invocations = 0;
  readonly #rt: Runtime;
  readonly #store: SwitchStore;
  readonly #logs: LogCapture;
  readonly #foreign = new ForeignKeys();
  readonly #needles: ReturnType<typeof secretNeedles>;
  #variant = -1;
  #cases = 0;
  /** The calls of the invocation in flight, and what the audit tap has seen of each. */
  #watch: { runId: string; calls: HostCall[]; seen: CallWatch[]; lastT: number } | undefined;

  private constructor(world: World, rt: Runtime, store: SwitchStore, logs: LogCapture, dataDir: string) {
    this.world = world;
    this.#rt = rt;
    this.#store = store;
    this.#logs = logs;
    this.dataDir = dataDir;
    this.#needles = secretNeedles(world.secrets);
    // The tap: every record the gate writes passes here before it is appended.
    const audit = runtimeInternals(rt).audit;
    const append = audit.append.bind(audit);
    (audit as { append: (e: AuditEntry) => Promise<AuditReceipt> }).append = (entry) => {
      this.#observe(entry);
      return append(entry);
    };
  }

  static async create(world: World, options: GuestRuntimeOptions = {}): Promise<GuestHarness> {
    const store = new SwitchStore();
    const { rt, logs, dataDir } = await guestRuntime(world, ECHO_SOURCE, 'guest', options, { store, limits: { timeoutMs: 60_000, maxOutputBytes: 64 * 1024 * 1024 } });
    return new GuestHarness(world, rt, store, logs, dataDir);
  }

  get runtime(): Runtime {
    return this.#rt;
  }

  #observe(entry: AuditEntry): void {
    const w = this.#watch;
    if (w === undefined || entry.runId !== w.runId || !entry.kind.startsWith('call.')) return;
    const starts = (entry.kind === 'call.intent' || entry.kind === 'call.denied') && entry.detail?.['hop'] === undefined;
    const now = Date.now();
    if (starts) {
      // The previous call is over: look at what it wrote or removed before this one changes it.
      const prev = w.seen[w.seen.length - 1];
      const prevOp = w.calls[w.seen.length - 1]?.op;
      if (prev !== undefined && (prevOp === 'fs.write' || prevOp === 'fs.remove' || prevOp === 'fs.mkdir')) lookAfter(prev.before);
      // The call's first record: its effect has not run yet. Look at the world now.
      const call = w.calls[w.seen.length];
      w.seen.push({ entries: [], before: call === undefined ? undefined : lookBefore(call as ModelCall), sentFrom: this.world.canary.requests.length, t0: w.lastT, t1: now });
    }
    const current = w.seen[w.seen.length - 1];
    if (current !== undefined) {
      current.entries.push(entry);
      // Its checks (and each redirect hop's) ran after the previous call's last record and before this record.
      current.t1 = now;
    }
    w.lastT = now;
  }

  /** Run one case: its steps in as few invocations as revocations allow. */
  async run(s: Scenario): Promise<void> {
    this.#cases++;
    this.world.restore(this.#cases % 16 === 0);
    const vi = s.variant % this.world.variants.length;
    const variant = this.world.variants[vi] as (typeof this.world.variants)[number];
    if (vi !== this.#variant) {
      this.#rt.setPolicy(variant.policy);
      this.#variant = vi;
    }
    const clock = { now: CLOCK_START };
    this.#store.current = new MemoryLimitStore({ now: () => clock.now });
    const limiter = new Limiter(variant.policy.limiterConfig(), this.#store);
    const runId = `fzg-${this.#cases}-${randomBytes(4).toString('hex')}`;
    const now = Date.now();
    const all = s.grants.map((g) => mint(g, runtimeInternals(this.#rt).keyring, this.#foreign, now, runId, runtimeInternals(this.#rt).revocations));
    const minted = all.filter((m) => m !== undefined);
    const checker = new RunChecker(this.world, variant, runId, 'fuzz-echo', minted.map((m) => m.model), this.stats);
    s.grants.forEach((g, i) => {
      const m = all[i];
      if (g.revoke !== undefined && m !== undefined) checker.revokedTokens.add(g.revoke === 'root' ? (m.chain[0] as string) : (m.chain[m.chain.length - 1] as string));
    });
    // Split at revocations: a revocation reaches the next invocation's calls.
    const batches: { steps: Extract<Step, { call: HostCall }>[]; first: number }[] = [];
    let current: { steps: Extract<Step, { call: HostCall }>[]; first: number } = { steps: [], first: 0 };
    const revokeAt = new Map<number, Step>();
    s.steps.forEach((step, i) => {
      if ('revoke' in step) {
        if (current.steps.length > 0) batches.push(current);
        current = { steps: [], first: i + 1 };
        revokeAt.set(batches.length, step);
      } else current.steps.push(step);
    });
    if (current.steps.length > 0) batches.push(current);
    try {
      for (const [b, batch] of batches.entries()) {
        const r = revokeAt.get(b);
        if (r !== undefined && 'revoke' in r) {
          if (r.revoke === 'run') {
            this.#rt.revokeRun(runId, 'fuzz');
            checker.revokedRuns.add(runId);
          } else if (minted.length > 0) {
            const m = minted[r.revoke % minted.length] as (typeof minted)[number];
            this.#rt.revokeToken(m.chain[0] as string, 'fuzz');
            checker.revokedTokens.add(m.chain[0] as string);
          }
        }
        // Time stands still inside an invocation: the limiter's clock moves between them.
        clock.now += batch.steps.reduce((n, st) => n + st.dt, 0);
        await this.#invoke(batch, runId, minted.map((m) => m.text), checker, clock.now, limiter, variant);
      }
      const inLogs = secretsIn(this.#logs.take(), this.#needles);
      if (inLogs.length > 0) throw new FuzzCaseError({ step: s.steps.length, problems: [`secret value of ${inLogs.join(', ')} in the operational logs`] });
    } finally {
      this.#watch = undefined;
      this.world.canary.clear();
    }
  }

  async #invoke(
    batch: { steps: Extract<Step, { call: HostCall }>[]; first: number },
    runId: string,
    grants: string[],
    checker: RunChecker,
    clockMs: number,
    limiter: Limiter,
    variant: World['variants'][number],
  ): Promise<void> {
    const calls = batch.steps.map((st) => bridged(st.call));
    const input = { calls: calls.map(encodeCall) };
    const watch = { runId, calls, seen: [] as CallWatch[], lastT: Date.now() };
    this.#watch = watch;
    const timeoutMs = 60_000;
    let output: string;
    // Admission, as the model sees it: a revoked run, then the invocation rate, then tool_calls and wall time.
    const refused = checker.revokedRuns.has(runId) ? 'E_CAP_REVOKED' : checker.comparing ? admitInvocation(variant.model, checker.state, runId, 'fuzz-echo', clockMs) : undefined;
    try {
      this.invocations++;
      const result = await settleWithin(this.#rt.invoke('fuzz-echo', input, { grants, runId, timeoutMs }), timeoutMs + HANG_MARGIN_MS, 'an invocation of the echo guest');
      output = result.output;
    } catch (e) {
      if (e instanceof HangError) throw new FuzzCaseError({ step: batch.first, problems: [e.message] });
      // Refused at admission: nothing ran, and the model says so too.
      if (refused !== undefined && e instanceof AuthorityError && e.code === refused && watch.seen.length === 0) return;
      throw new FuzzCaseError({ step: batch.first, problems: [`the echo guest failed: ${e instanceof AuthorityError ? `${e.code}: ${e.message}` : String(e)}${refused === undefined ? '' : ` (the model expected admission to refuse it with ${refused})`}`] });
    } finally {
      this.#watch = undefined;
    }
    const lastOp = calls[watch.seen.length - 1]?.op;
    if (lastOp === 'fs.write' || lastOp === 'fs.remove' || lastOp === 'fs.mkdir') lookAfter(watch.seen[watch.seen.length - 1]?.before);
    if (refused !== undefined) throw new FuzzCaseError({ step: batch.first, problems: [`an invocation was admitted that admission must refuse with ${refused}`] });
    const inOutput = secretsIn(output, this.#needles);
    if (inOutput.length > 0) throw new FuzzCaseError({ step: batch.first, problems: [`secret value of ${inOutput.join(', ')} in the tool's output (the runtime must redact it)`] });
    const results = (JSON.parse(output) as { results: { ok?: unknown; err?: unknown }[] }).results;
    if (results.length !== calls.length) throw new FuzzCaseError({ step: batch.first, problems: [`the guest made ${results.length} calls of ${calls.length}`] });
    if (watch.seen.length !== calls.length) {
      throw new FuzzCaseError({ step: batch.first, problems: [`${calls.length} host calls left records for ${watch.seen.length} calls: ${groupCalls(watch.seen.flatMap((c) => c.entries)).length} groups`] });
    }
    const sentAll = this.world.canary.requests;
    for (const [i, call] of calls.entries()) {
      const seen = watch.seen[i] as CallWatch;
      // Only a revealed value (secrets.get) is the guest's to return; the runtime redacted it from the output.
      const raw = results[i] as { ok?: unknown; err?: unknown };
      const reply = toReply(call.op, call.op === 'secrets.get' && 'ok' in raw ? { ok: unredact(raw.ok, this.world.secrets) } : raw);
      if (reply === undefined) throw new FuzzCaseError({ step: batch.first + i, call, problems: [`the echo guest could not make the call: ${JSON.stringify(results[i]).slice(0, 200)}`] });
      const records: ObservedRecord[] = seen.entries.map((e) => ({ kind: e.kind, code: e.code, op: e.op, detail: e.detail as Record<string, unknown> | undefined }));
      const sentTo = watch.seen[i + 1]?.sentFrom ?? sentAll.length;
      const sent = sentAll.slice(seen.sentFrom, sentTo);
      const problems = checker.check({ call: call as ModelCall, before: seen.before, records, reply }, seen.entries, sent, seen.t0, seen.t1, clockMs);
      if (problems.length > 0) throw new FuzzCaseError({ step: batch.first + i, call, problems, records, reply });
    }
    const problems = [...budgetProblems(await limiter.usage(runId), variant.model.budgets.run, 'run'), ...budgetProblems(await limiter.sharedUsage(), variant.model.budgets.shared, 'shared')];
    if (problems.length > 0) throw new FuzzCaseError({ step: batch.first, problems });
  }

  async verify(): Promise<string | undefined> {
    const report = await verifyAudit({ dir: this.dataDir });
    return report.ok ? undefined : `the audit log does not verify: ${report.firstBad?.code}: ${report.firstBad?.message}`;
  }

  async close(): Promise<void> {
    await this.#rt.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
