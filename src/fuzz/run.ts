/**
 * `runFuzz`: one fuzz run over the chosen host functions and layers, with
 * fast-check doing generation, shrinking and replay (`seed` + `path`).
 *
 * Runs are host calls: `runs` per host function, most straight into the gate
 * (the decision-level differential), a share through the echo guest (jco and
 * the worker bridge), plus canonical-ABI abuse programs.
 * @module
 */
import { availableParallelism } from 'node:os';
import fc from 'fast-check';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { AbiHarness, programArb, type AbiProgram } from './abi-harness.ts';
import { fuzzWitAbi } from './wit-abi.ts';
import { caseFromJson, caseToJson, LAYERS, type Layer, type RegressionCase } from './cases.ts';
import { runInWorker } from './jobs.ts';
import type { CheckStats } from './checker.ts';
import { FuzzCaseError, GateHarness, type CaseFailure } from './gate-harness.ts';
import { ALL_OPS, countRuns, scenarioArb, TARGETS, type Op, type Scenario, type Target } from './generators.ts';
import { GuestHarness } from './guest-harness.ts';
import { defaultCacheDir, prepareGuests } from './guests.ts';
import { INVARIANTS } from './invariants.ts';
import { STRICTER } from './model.ts';
import { World } from './world.ts';

export interface FuzzOptions {
  /** Host calls per host function. Default 100,000. */
  runs?: number | undefined;
  /** fast-check seed; default a fresh one (printed, so a failure can be replayed). */
  seed?: number | undefined;
  /** Replay one counterexample: fast-check's path (with `seed`, `layer` and `op`). */
  path?: string | undefined;
  target?: Target | 'all' | undefined;
  /** Only this host function. */
  op?: Op | undefined;
  layers?: readonly Layer[] | undefined;
  /** Share of each host function's runs made through the echo guest. Default 0.1. */
  guestShare?: number | undefined;
  /** Canonical-ABI abuse programs. Default runs / 50. */
  abiPrograms?: number | undefined;
  /** A user's policy document (its fs globs are re-rooted under a scratch folder). */
  policy?: Record<string, unknown> | undefined;
  /** How `--policy` was given, for the replay command. */
  policyArg?: string | undefined;
  /** Compile cache for the guests (transpiling a JS guest takes seconds). */
  cacheDir?: string | undefined;
  /** Progress lines (stderr in the CLI). */
  progress?: ((line: string) => void) | undefined;
  /** Audit chain verification every this many cases (and at the end). Default 2,000. */
  verifyEvery?: number | undefined;
  /** Parallel jobs (worker threads, each with its own world). Default: 2 when the machine has 2 cores or more. */
  jobs?: number | undefined;
  /** @internal The properties this job runs (set by the job runner). */
  items?: readonly WorkItem[] | undefined;
}

/** One property: a host function on a layer (abi: the abuse programs). */
export interface WorkItem {
  readonly layer: Layer;
  readonly op: Op | 'abi';
}

export interface PropertyResult {
  readonly layer: Layer;
  readonly op: Op | 'abi';
  /** Host calls checked (abi: programs run). */
  readonly runs: number;
  readonly cases: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly failure?: FuzzFailure | undefined;
}

export interface FuzzFailure {
  readonly layer: Layer;
  readonly op: Op | 'abi';
  readonly seed: number;
  readonly path: string;
  /** The shrunk counterexample, portable (see cases.ts). */
  readonly counterexample: unknown;
  readonly step: number;
  readonly problems: readonly string[];
  readonly call?: unknown;
  readonly records?: unknown;
  readonly reply?: unknown;
  /** One command that replays it. */
  readonly replay: string;
}

export interface FuzzReport {
  readonly ok: boolean;
  readonly seed: number;
  readonly results: readonly PropertyResult[];
  readonly failure?: FuzzFailure | undefined;
  readonly invariants: readonly string[];
  readonly model: { readonly stricter: readonly string[]; readonly opaque: readonly string[] };
  /** Calls checked against the model, calls it could not model, time-ambiguous calls. */
  readonly differential: { readonly compared: number; readonly opaque: number; readonly ambiguous: number };
  readonly outcomes: Readonly<Record<string, number>>;
  readonly auditVerified: boolean;
}

/** Steps per case: the gate takes short runs, the guest long ones (an invocation costs milliseconds). */
const GATE_STEPS = 24;
const GUEST_STEPS = 160;

function opsOf(o: FuzzOptions): Op[] {
  if (o.op !== undefined) return [o.op];
  const t = o.target ?? 'all';
  return t === 'all' ? [...ALL_OPS] : [...TARGETS[t]];
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function jsonSafe(v: unknown, world: World): unknown {
  return caseToJson(v ?? null, world);
}

/** The replay command of a failure. */
export function replayCommand(f: { seed: number; path: string; layer: Layer; op: Op | 'abi' }, policyArg?: string): string {
  const op = f.op === 'abi' ? '' : ` --op ${f.op}`;
  return `authority fuzz --seed ${f.seed} --path ${f.path} --layer ${f.layer}${op}${policyArg === undefined ? '' : ` --policy ${policyArg}`}`;
}

/** The properties a run makes, in order. */
export function workItems(options: FuzzOptions): WorkItem[] {
  const layers = options.layers ?? LAYERS;
  const ops = opsOf(options);
  const items: WorkItem[] = [];
  for (const layer of ['gate', 'guest'] as const) if (layers.includes(layer)) for (const op of ops) items.push({ layer, op });
  if (layers.includes('abi') && options.op === undefined) items.push({ layer: 'abi', op: 'abi' });
  return items;
}

/** How many runs a property makes, and how many seconds that takes, roughly (to share the work between jobs). */
export function plan(item: WorkItem, options: FuzzOptions): { target: number; cost: number } {
  const runs = options.runs ?? 100_000;
  const layers = options.layers ?? LAYERS;
  const share = options.guestShare ?? 0.1;
  if (item.layer === 'abi') {
    const target = options.abiPrograms ?? Math.max(1, Math.ceil(runs / 200));
    return { target, cost: target / 7 };
  }
  if (item.layer === 'guest') {
    const target = layers.includes('gate') ? Math.max(1, Math.floor(runs * share)) : runs;
    return { target, cost: target / 600 };
  }
  const target = layers.includes('guest') ? Math.max(1, Math.ceil(runs * (1 - share))) : runs;
  return { target, cost: target / 1000 };
}

/**
 * Run the fuzzer. Never throws for a finding: the report says what failed.
 *
 * @example
 * ```ts
 * const report = await runFuzz({ runs: 1000, seed: 42, target: 'fs' });
 * if (!report.ok) console.error(report.failure?.replay);
 * ```
 */
export async function runFuzz(options: FuzzOptions = {}): Promise<FuzzReport> {
  const runs = options.runs ?? 100_000;
  if (!Number.isInteger(runs) || runs < 1) throw new AuthorityError(ErrorCode.USAGE, '--runs takes a positive whole number');
  const seed = options.seed ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const items = options.items ?? workItems(options);
  const jobs = Math.max(1, Math.min(options.jobs ?? Math.min(2, availableParallelism()), items.length));
  if (jobs > 1 && options.path === undefined) return runJobs({ ...options, seed }, items, jobs);
  return runItems({ ...options, seed }, items, seed);
}

/** Abuse programs from which the WIT-derived ABI cases join the abi layer, and from which they start with the full product. */
const WIT_ABI_MIN = 100;
const WIT_ABI_EVERY = 200;

async function runItems(options: FuzzOptions, items: readonly WorkItem[], seed: number): Promise<FuzzReport> {
  const say = options.progress ?? (() => {});
  const verifyEvery = options.verifyEvery ?? 2000;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const world = await World.create({ policy: options.policy });
  const results: PropertyResult[] = [];
  const stats: CheckStats[] = [];
  let failure: FuzzFailure | undefined;
  let verified = true;
  const replay = options.path !== undefined;
  try {
    const property = async <T>(layer: Layer, op: Op | 'abi', arb: fc.Arbitrary<T>, target: number, count: (c: T) => number, run: (c: T) => Promise<void>, verify: () => Promise<string | undefined>): Promise<void> => {
      // Cases to ask fast-check for: the target over the mean number of runs per case, with room to spare;
      // once the target is reached the remaining cases are generated but not run.
      const sample = fc.sample(arb, { seed, numRuns: 64 });
      const mean = Math.max(0.5, sample.reduce((n, c) => n + count(c), 0) / sample.length);
      const numRuns = Math.max(1, Math.ceil((target / mean) * 2) + 4);
      let done = 0;
      let cases = 0;
      let failed = false;
      const started = performance.now();
      let lastSay = started;
      const prop = fc.asyncProperty(arb, async (c) => {
        if (!failed && !replay && done >= target) return;
        try {
          await run(c);
        } catch (e) {
          failed = true;
          throw e;
        }
        if (failed) return;
        done += count(c);
        cases++;
        if (cases % verifyEvery === 0) {
          const v = await verify();
          if (v !== undefined) throw new FuzzCaseError({ step: -1, problems: [v] });
        }
        const now = performance.now();
        if (now - lastSay > 10_000) {
          lastSay = now;
          say(`${layer} ${op}: ${fmt(done)} of ${fmt(target)} runs, ${fmt(done / ((now - started) / 1000))}/s`);
        }
      });
      const res = await fc.check(prop, { seed, numRuns, path: options.path, endOnFailure: replay, reporter: () => {} } as fc.Parameters<[T]>);
      const seconds = (performance.now() - started) / 1000;
      let f: FuzzFailure | undefined;
      if (res.failed) {
        const err = res.errorInstance;
        const cf: CaseFailure = err instanceof FuzzCaseError ? err.failure : { step: -1, problems: [err instanceof Error ? `${err.name}: ${err.message}` : String(err)] };
        const path = res.counterexamplePath ?? options.path ?? '';
        f = {
          layer,
          op,
          seed,
          path,
          counterexample: jsonSafe(res.counterexample?.[0], world),
          step: cf.step,
          problems: cf.problems,
          call: jsonSafe(cf.call, world),
          records: jsonSafe(cf.records, world),
          reply: jsonSafe(cf.reply, world),
          replay: replayCommand({ seed, path, layer, op }, options.policyArg),
        };
        failure ??= f;
      }
      results.push({ layer, op, runs: done, cases, seconds, perSecond: done / seconds, failure: f });
      say(`${layer} ${op}: ${fmt(done)} runs in ${seconds.toFixed(1)} s (${fmt(done / seconds)}/s)${f ? ' FAILED' : ''}`);
    };

    // The gate and guest layers run the same scenarios through different harnesses.
    const scenarioLayers = [
      { layer: 'gate', steps: GATE_STEPS, open: () => GateHarness.create(world) },
      { layer: 'guest', steps: GUEST_STEPS, open: () => GuestHarness.create(world, { cacheDir, log: say }) },
    ] as const;
    for (const { layer, steps, open } of scenarioLayers) {
      const layerItems = items.filter((i) => i.layer === layer);
      if (layerItems.length === 0 || failure !== undefined) continue;
      const h = await open();
      try {
        for (const item of layerItems) {
          const op = item.op as Op;
          await property(layer, op, scenarioArb(world.vocab, world.secrets, world.variants.length, op, steps), plan(item, options).target, (s) => countRuns(s, op), (s) => h.run(s), () => h.verify());
          if (failure !== undefined) break;
        }
        const v = await h.verify();
        if (v !== undefined) {
          verified = false;
          failure ??= { layer, op: layerItems[0]?.op ?? 'abi', seed, path: '', counterexample: null, step: -1, problems: [v], replay: '' };
        }
      } finally {
        stats.push(h.stats);
        await h.close();
      }
    }
    const abiItem = items.find((i) => i.layer === 'abi');
    if (abiItem !== undefined && failure === undefined) {
      const h = await AbiHarness.create(world, { cacheDir, log: say });
      try {
        await property('abi', 'abi', programArb(world.vocab), plan(abiItem, options).target, () => 1, (p: AbiProgram) => h.run(p), () => h.verify());
        const v = await h.verify();
        if (v !== undefined) {
          verified = false;
          failure ??= { layer: 'abi', op: 'abi', seed, path: '', counterexample: null, step: -1, problems: [v], replay: '' };
        }
      } finally {
        await h.close();
      }
      const abiTarget = plan(abiItem, options).target;
      if (failure === undefined && !replay && abiTarget >= WIT_ABI_MIN) {
        // The same layer from the WIT's side: as many random cases as abuse programs over every
        // pointer site of every import, after (in long runs) every site with every kind of bad pointer.
        // Short runs leave it to the test suite's own pass (test/abi-guard.test.ts): each trap costs a worker.
        const started = performance.now();
        const w = await fuzzWitAbi({ runs: abiTarget, seed, pass: abiTarget >= WIT_ABI_EVERY ? 'every' : undefined, cacheDir, log: say });
        const seconds = (performance.now() - started) / 1000;
        let f: FuzzFailure | undefined;
        if (w.problems.length > 0) {
          f = { layer: 'abi', op: 'abi', seed, path: '', counterexample: null, step: 0, problems: w.problems, replay: replayCommand({ seed, path: '', layer: 'abi', op: 'abi' }, options.policyArg) };
          failure ??= f;
        }
        results.push({ layer: 'abi', op: 'abi', runs: w.cases, cases: w.cases, seconds, perSecond: w.cases / Math.max(seconds, 1e-9), failure: f });
      }
    }
  } finally {
    await world.close();
  }
  const outcomes: Record<string, number> = {};
  for (const s of stats) for (const [k, v] of Object.entries(s.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + v;
  return {
    ok: failure === undefined,
    seed,
    results,
    failure,
    invariants: INVARIANTS,
    model: { stricter: STRICTER, opaque: [...new Set(world.variants.flatMap((v) => v.model.opaque))] },
    differential: {
      compared: stats.reduce((n, s) => n + s.compared, 0),
      opaque: stats.reduce((n, s) => n + s.opaque, 0),
      ambiguous: stats.reduce((n, s) => n + s.ambiguous, 0),
    },
    outcomes,
    auditVerified: verified,
  };
}

/** Share the properties between `jobs` worker threads (each its own world), and merge their reports in item order. */
async function runJobs(options: FuzzOptions & { seed: number }, items: readonly WorkItem[], jobs: number): Promise<FuzzReport> {
  const load = Array.from({ length: jobs }, () => ({ cost: 0, items: [] as WorkItem[] }));
  const order = [...items].sort((a, b) => plan(b, options).cost - plan(a, options).cost);
  for (const item of order) {
    const least = load.reduce((a, b) => (b.cost < a.cost ? b : a));
    least.cost += plan(item, options).cost;
    least.items.push(item);
  }
  const { progress, ...rest } = options;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  await prepareGuests(
    items.map((i) => i.layer),
    cacheDir,
    progress,
  );
  const reports = await Promise.all(load.filter((l) => l.items.length > 0).map((l) => runInWorker<FuzzOptions, FuzzReport>({ ...rest, cacheDir, jobs: 1, items: l.items }, progress)));
  const index = (r: PropertyResult): number => items.findIndex((i) => i.layer === r.layer && i.op === r.op);
  const results = reports.flatMap((r) => r.results).sort((a, b) => index(a) - index(b));
  const failed = results.find((r) => r.failure !== undefined)?.failure ?? reports.find((r) => r.failure !== undefined)?.failure;
  const outcomes: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + v;
  return {
    ok: reports.every((r) => r.ok),
    seed: options.seed,
    results,
    failure: failed,
    invariants: INVARIANTS,
    model: { stricter: STRICTER, opaque: [...new Set(reports.flatMap((r) => r.model.opaque))] },
    differential: {
      compared: reports.reduce((n, r) => n + r.differential.compared, 0),
      opaque: reports.reduce((n, r) => n + r.differential.opaque, 0),
      ambiguous: reports.reduce((n, r) => n + r.differential.ambiguous, 0),
    },
    outcomes,
    auditVerified: reports.every((r) => r.auditVerified),
  };
}

/**
 * Replay committed regression cases; returns the problems of each case that
 * fails (none when every case passes).
 */
export async function replayRegressions(list: readonly RegressionCase[], options: { cacheDir?: string | undefined } = {}): Promise<Array<{ name: string; problems: readonly string[] }>> {
  const out: Array<{ name: string; problems: readonly string[] }> = [];
  const world = await World.create();
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  try {
    const gate = list.some((c) => c.layer === 'gate') ? await GateHarness.create(world) : undefined;
    const guest = list.some((c) => c.layer === 'guest') ? await GuestHarness.create(world, { cacheDir }) : undefined;
    const abi = list.some((c) => c.layer === 'abi') ? await AbiHarness.create(world, { cacheDir }) : undefined;
    try {
      for (const c of list) {
        try {
          if (c.layer === 'abi') await (abi as AbiHarness).run(caseFromJson<AbiProgram>(c.case, world));
          else {
            const s = caseFromJson<Scenario>(c.case, world);
            const variants = c.variant === undefined ? world.variants.map((_, i) => i) : [c.variant];
            for (const variant of variants) await (c.layer === 'gate' ? (gate as GateHarness) : (guest as GuestHarness)).run({ ...s, variant });
          }
        } catch (e) {
          out.push({ name: c.name, problems: e instanceof FuzzCaseError ? e.failure.problems : [String(e)] });
        }
      }
      for (const h of [gate, guest, abi]) {
        const v = await h?.verify();
        if (v !== undefined) out.push({ name: 'the audit log of the regression replay', problems: [v] });
      }
    } finally {
      await gate?.close();
      await guest?.close();
      await abi?.close();
    }
  } finally {
    await world.close();
  }
  return out;
}
