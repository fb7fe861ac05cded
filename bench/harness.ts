/**
 * Small helpers shared by the benchmarks: timing loops, percentiles, and the
 * row format every benchmark returns. Benchmarks never run under `npm test`.
 */

export interface BenchRow {
  /** What was measured, e.g. "token verify". */
  name: string;
  /** The figure. */
  value: number;
  /** Its unit: "ops/s", "us p50", "ms p99", ... */
  unit: string;
  /** A baseline measured in the same run, when the row compares against one. */
  baseline?: { name: string; value: number } | undefined;
  /** value / baseline.value, filled in by `row()`. */
  ratio?: number | undefined;
  /** A target this figure is held against, e.g. ">= 300000". */
  target?: string | undefined;
  note?: string | undefined;
}

export type Bench = () => Promise<BenchRow[]>;

export function row(name: string, value: number, unit: string, extra: Omit<BenchRow, 'name' | 'value' | 'unit' | 'ratio'> = {}): BenchRow {
  const r: BenchRow = { name, value, unit, ...extra };
  if (extra.baseline && extra.baseline.value !== 0) r.ratio = value / extra.baseline.value;
  return r;
}

export function percentile(sortedAsc: readonly number[], p: number): number {
  if (sortedAsc.length === 0) return Number.NaN;
  const idx = Math.min(sortedAsc.length - 1, Math.max(0, Math.ceil((p / 100) * sortedAsc.length) - 1));
  return sortedAsc[idx] as number;
}

/** Time `fn` `n` times after `warmup` runs; returns per-call durations in microseconds, sorted. */
export async function sampleUs(fn: () => unknown, n: number, warmup = Math.min(100, n)): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return out.sort((a, b) => a - b);
}

/** Operations per second of a synchronous `fn`, run for about `ms` milliseconds. */
export function throughputSync(fn: (i: number) => unknown, ms = 1000): number {
  for (let i = 0; i < 1000; i++) fn(i);
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 1000; i++) fn(n + i);
    n += 1000;
    elapsed = process.hrtime.bigint() - start;
  }
  return n / (Number(elapsed) / 1e9);
}
