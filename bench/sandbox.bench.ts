/**
 * The sandbox and the bridge: a fresh instance per invocation, the host-call
 * round trip, throughput. Every figure sits beside the raw jco floor measured
 * in the same run: the same component instantiated and called by jco directly
 * on this thread, with no worker, no gate and no audit.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createRuntime, type Runtime } from '../src/runtime.ts';
import { compileComponent, sha256Hex, type CompiledTool } from '../src/registry/index.ts';
import { WorkerPool } from '../src/sandbox/index.ts';
import type { HostReply } from '../src/host-call.ts';
import { ensureTools } from '../tools/build.ts';
import { watFixture } from '../test/helpers/fixtures.ts';
import { SHARED_CACHE } from '../test/helpers/runtime.ts';
import { percentile, row, sampleUs, type Bench, type BenchRow } from './harness.ts';

type Exports = { run(input: string): string };
type Instantiate = (get: (n: string) => WebAssembly.Module, imports: Record<string, Record<string, unknown>>) => Exports;

const DENY: HostReply = { tag: 'err', val: { tag: 'denied', val: { code: 'E_POLICY_DENY', message: 'no' } } };
const STAT_OK: HostReply = { tag: 'ok', val: { kind: 'file', size: 1n, modifiedMs: 0n } };

async function compiled(path: string): Promise<CompiledTool> {
  const bytes = readFileSync(path);
  return compileComponent(bytes, sha256Hex(bytes), { cacheDir: SHARED_CACHE, maxMemoryBytes: 256 * 1024 * 1024 });
}

/** jco alone: instantiate + run on this thread, per call. */
async function floor(tool: CompiledTool, input: string, n: number, warmup = Math.min(50, n), reply: HostReply = DENY): Promise<number[]> {
  const mod = (await import(tool.jsUrl)) as { instantiate: Instantiate };
  const get = (name: string): WebAssembly.Module => tool.modules.get(name) as WebAssembly.Module;
  const answer = (): HostReply => reply;
  const imports = {
    'authority:sandbox/types': {},
    'authority:sandbox/fs': { readFile: answer, writeFile: answer, listDir: answer, stat: answer, remove: answer },
    'authority:sandbox/http': { fetch: answer },
    'authority:sandbox/secrets': { get: answer },
  };
  return sampleUs(() => mod.instantiate(get, imports).run(input), n, warmup);
}

const p50 = (xs: number[]): number => percentile(xs, 50);
const p99 = (xs: number[]): number => percentile(xs, 99);

/** Calls spaced `gapMs` apart, as an agent's are (it waits on its model between calls): each can find an instance made ahead. */
async function sampleSpacedUs(fn: () => Promise<unknown>, n: number, gapMs: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, gapMs));
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out.sort((a, b) => a - b);
}

/** Spacing of the agent-like rows: longer than word-count's instantiation. */
const GAP_MS = 10;

/** Per host call: the mean over whole runs (stalls included), and the p50 the guest saw (median over the rounds). */
async function perCallUs(rt: Runtime, tool: string, input: unknown, n: number, grants: string[], rounds = 5, warmup = 3): Promise<{ mean: number; p50: number }> {
  for (let i = 0; i < warmup; i++) await rt.invoke(tool, input, { grants });
  const means: number[] = [];
  const p50s: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const r = await rt.invoke(tool, input, { grants });
    means.push((r.stats.durationMs * 1000) / n);
    p50s.push(r.stats.hostCallUs?.p50 ?? Number.NaN);
  }
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  return { mean: median(means), p50: median(p50s) };
}

export const bench: Bench = async () => {
  const rows: BenchRow[] = [];
  const tools = await ensureTools(['echo', 'word-count']);
  const hammerPath = await watFixture('hammer');
  writeFileSync('/tmp/hammer', 'x');
  const echo = await compiled(tools['echo'] as string);
  const wc = await compiled(tools['word-count'] as string);
  const hammer = await compiled(hammerPath);
  const wcInput = JSON.stringify({ text: 'the quick brown fox jumps over the lazy dog' });

  // Floors: jco on this thread.
  const echoFloor = await floor(echo, '{"a":1}', 2000, 1000);
  const wcFloor = await floor(wc, wcInput, 300);
  const CALLS = 5000;
  const hostFloorDeny = (await floor(hammer, JSON.stringify({ n: CALLS }), 5, 3, DENY)).map((us) => us / CALLS);
  const hostFloorOk = (await floor(hammer, JSON.stringify({ n: CALLS }), 5, 3, STAT_OK)).map((us) => us / CALLS);

  // The pool alone: a fresh instance per run in a warm worker, no gate, no audit.
  const pool = new WorkerPool({ size: 2 });
  await pool.warmUp();
  const runOn = (tool: CompiledTool, input: string, onHostCall = async (): Promise<HostReply> => DENY) =>
    pool.run({ tool, entry: 'run', input, timeoutMs: 30_000, maxOutputBytes: 1 << 20, onHostCall });
  const poolEcho = await sampleUs(() => runOn(echo, '{"a":1}'), 2000, 2000);
  const poolWc = await sampleUs(() => runOn(wc, wcInput), 300, 30);
  const bridgeDeny: number[] = [];
  const bridgeOk: number[] = [];
  for (let i = 0; i < 3; i++) {
    await runOn(hammer, JSON.stringify({ n: CALLS }), async () => DENY);
    await runOn(hammer, JSON.stringify({ n: CALLS }), async () => STAT_OK);
  }
  for (let i = 0; i < 7; i++) {
    const a = await runOn(hammer, JSON.stringify({ n: CALLS }), async () => DENY);
    bridgeDeny.push(a.stats.runUs / CALLS);
    const b = await runOn(hammer, JSON.stringify({ n: CALLS }), async () => STAT_OK);
    bridgeOk.push(b.stats.runUs / CALLS);
  }
  bridgeDeny.sort((a, b) => a - b);
  bridgeOk.sort((a, b) => a - b);
  await pool.close();

  // The whole runtime: admission, audit records, the gate.
  type PerCall = { mean: number; p50: number };
  const results: Record<string, { echo: number[]; wc: number[]; echoSpaced: number[]; wcSpaced: number[]; deny: PerCall; allow: PerCall; throughput: number }> = {};
  for (const durability of ['none', 'fsync'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'authority-bench-'));
    const rt = await createRuntime({
      dataDir: dir,
      cacheDir: SHARED_CACHE,
      logger: pino({ level: 'silent' }),
      pool: { size: 2 },
      audit: { durability },
      policy: { version: '1.0', tools: { allow: ['*'] }, fs: { read: ['/tmp/hammer'] } },
    });
    await rt.warmUp();
    await rt.register(tools['echo'] as string);
    await rt.register(tools['word-count'] as string);
    await rt.register(hammerPath, { limits: { maxHostCalls: 1_000_000, timeoutMs: 600_000 } });
    const grant = rt.issueToken({ kind: 'fs', resource: '/tmp/hammer', methods: ['read'], ttlMs: 3_600_000 });
    // Warm: the first thousands of invocations still run colder code (JIT) than the rest.
    const e = await sampleUs(() => rt.invoke('echo', { a: 1 }), durability === 'none' ? 2000 : 500, durability === 'none' ? 3000 : 500);
    const w = await sampleUs(() => rt.invoke('word-count', { text: 'the quick brown fox jumps over the lazy dog' }), 200, 50);
    const echoSpaced = await sampleSpacedUs(() => rt.invoke('echo', { a: 1 }), 300, GAP_MS);
    const wcSpaced = await sampleSpacedUs(() => rt.invoke('word-count', { text: 'the quick brown fox jumps over the lazy dog' }), 200, GAP_MS);
    const n = durability === 'none' ? CALLS : 1000;
    const deny = await perCallUs(rt, 'hammer', { n }, n, []);
    const allow = await perCallUs(rt, 'hammer', { n }, n, [grant]);
    // Throughput: 8 callers at once on the small native tool.
    let done = 0;
    const until = performance.now() + 3000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (performance.now() < until) {
          await rt.invoke('echo', { a: done });
          done++;
        }
      }),
    );
    const throughput = done / ((performance.now() - t0) / 1000);
    results[durability] = { echo: e, wc: w, echoSpaced, wcSpaced, deny, allow, throughput };
    await rt.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const floorEcho = { name: 'jco floor', value: p50(echoFloor) };
  const floorWc = { name: 'jco floor', value: p50(wcFloor) };
  rows.push(row('echo (WAT): jco floor, instantiate+run', p50(echoFloor), 'us p50', { note: `p99 ${p99(echoFloor).toFixed(0)} us` }));
  rows.push(row('word-count (JS): jco floor, instantiate+run', p50(wcFloor), 'us p50', { note: `p99 ${p99(wcFloor).toFixed(0)} us` }));
  rows.push(row('echo: pool, fresh instance (no gate, no audit)', p50(poolEcho), 'us p50', { baseline: floorEcho, note: `p99 ${p99(poolEcho).toFixed(0)} us` }));
  rows.push(row('word-count: pool, fresh instance', p50(poolWc), 'us p50', { baseline: floorWc, note: `p99 ${p99(poolWc).toFixed(0)} us` }));
  for (const d of ['none', 'fsync'] as const) {
    const r = results[d] as (typeof results)[string];
    rows.push(row(`echo: runtime invoke, audit ${d}`, p50(r.echo), 'us p50', { baseline: floorEcho, target: d === 'none' ? '< 500' : undefined, note: `p99 ${p99(r.echo).toFixed(0)} us` }));
    rows.push(row(`word-count: runtime invoke, audit ${d}`, p50(r.wc), 'us p50', { baseline: floorWc, target: d === 'none' ? '< 2000' : undefined, note: `p99 ${p99(r.wc).toFixed(0)} us; back to back: bound by instantiation` }));
  }
  for (const d of ['none', 'fsync'] as const) {
    const r = results[d] as (typeof results)[string];
    const spaced = `calls ${GAP_MS} ms apart, as an agent's`;
    rows.push(row(`echo: runtime invoke, spaced, audit ${d}`, p50(r.echoSpaced), 'us p50', { baseline: floorEcho, target: d === 'none' ? '< 500' : undefined, note: `p99 ${p99(r.echoSpaced).toFixed(0)} us; ${spaced}` }));
    rows.push(row(`word-count: runtime invoke, spaced, audit ${d}`, p50(r.wcSpaced), 'us p50', { baseline: floorWc, target: d === 'none' ? '< 2000' : undefined, note: `p99 ${p99(r.wcSpaced).toFixed(0)} us; ${spaced}` }));
  }
  rows.push(row('host call: jco floor (same thread, denied)', p50(hostFloorDeny), 'us/call'));
  rows.push(row('host call: bridge only, denied reply', p50(bridgeDeny), 'us/call', { baseline: { name: 'jco floor', value: p50(hostFloorDeny) } }));
  rows.push(row('host call: bridge only, stat reply', p50(bridgeOk), 'us/call', { baseline: { name: 'jco floor', value: p50(hostFloorOk) } }));
  for (const d of ['none', 'fsync'] as const) {
    const r = results[d] as (typeof results)[string];
    const seen = 'the host side as the guest saw it (import entry to return); add the floor for the whole call';
    rows.push(row(`host call through the gate, denied, audit ${d}, p50`, r.deny.p50, 'us', { target: d === 'none' ? '< 30' : undefined, note: seen }));
    rows.push(row(`host call through the gate, denied, audit ${d}, mean`, r.deny.mean, 'us/call', { baseline: { name: 'jco floor', value: p50(hostFloorDeny) }, note: 'whole run / calls: guest, bridge, gate, stalls' }));
    rows.push(row(`host call through the gate, allowed fs.stat, audit ${d}, p50`, r.allow.p50, 'us', { target: d === 'none' ? '< 50' : undefined, note: seen }));
    rows.push(row(`host call through the gate, allowed fs.stat, audit ${d}, mean`, r.allow.mean, 'us/call', { baseline: { name: 'jco floor', value: p50(hostFloorOk) }, note: 'whole run / calls' }));
  }
  for (const d of ['none', 'fsync'] as const) {
    const r = results[d] as (typeof results)[string];
    rows.push(row(`echo throughput, 8 callers, audit ${d}`, r.throughput, 'invocations/s', { baseline: { name: 'jco floor (1 thread)', value: 1e6 / p50(echoFloor) }, target: d === 'none' ? '>= 2000' : undefined }));
  }
  return rows;
};
