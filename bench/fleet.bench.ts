/**
 * The fleet on one real redis-server (loopback): what the Redis store costs
 * per host call beside the in-memory store, decisions per second per node,
 * and how long a revocation or a halt takes to reach another node's mirror.
 */
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Fleet } from '../src/fleet/index.ts';
import { Limiter, MemoryLimitStore, parseRate, type LimiterConfig, type LimitStore, type RateSpec } from '../src/limits/index.ts';
import { RedisLimitStore } from '../src/fleet/redis-store.ts';
import { connectRedis } from '../src/fleet/redis.ts';
import { createRuntime } from '../src/runtime.ts';
import { watFixture } from '../test/helpers/fixtures.ts';
import { startRedis } from '../test/helpers/redis-server.ts';
import { SHARED_CACHE, tempDir } from '../test/helpers/runtime.ts';
import { percentile, row, sampleUs, type Bench, type BenchRow } from './harness.ts';

const config: LimiterConfig = {
  namespace: 'bench',
  rates: { fs: parseRate('1000000000/s') as RateSpec, per_token: parseRate('1000000000/s') as RateSpec },
  run: { host_calls: 1e12, fs_read_bytes: 1e15 },
  shared: { host_calls: 1e15 },
  caps: { fsReadBytes: 65536, httpResponseBytes: 65536 },
};

/** Stages 4 and 5 of one fs.read host call: rate, reserve, settle. */
async function hostCallLimits(limiter: Limiter, i: number): Promise<void> {
  const ctx = { runId: `run-${i % 16}`, tool: 'bench', tokenId: 'tok' };
  const call = { op: 'fs.read' } as const;
  await limiter.rate(ctx, call);
  const { reservation } = await limiter.reserve(ctx, call);
  if (reservation !== undefined) await limiter.settle(reservation, { readBytes: 100 });
}

/** Decisions (rate + reserve + settle) per second with `concurrency` in flight, for about `ms`. */
async function decisionsPerSecond(limiter: Limiter, concurrency: number, ms: number): Promise<number> {
  let n = 0;
  const end = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, k) => {
      while (performance.now() < end) {
        await hostCallLimits(limiter, k);
        n++;
      }
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

/** A whole host call as a tool sees it (hammer: fs.stat N times), on a runtime with the given store. */
async function hostCallUs(store: LimitStore | undefined, redisUrl: string | undefined): Promise<{ p50: number; p99: number }> {
  const dir = tempDir('authority-bench-fleet-');
  writeFileSync('/tmp/hammer', 'hammer\n');
  const rt = await createRuntime({
    dataDir: dir.path,
    cacheDir: SHARED_CACHE,
    logger: pino({ level: 'silent' }),
    pool: { size: 1 },
    limits: { timeoutMs: 120_000 },
    audit: { durability: 'none' },
    policy: { version: '1.0', name: 'bench-host', tools: { allow: ['*'] }, fs: { read: ['/tmp/hammer'] }, limits: { fs: '1000000000/s' }, budgets: { host_calls: 1_000_000_000 } },
    ...(store === undefined ? {} : { store }),
    ...(redisUrl === undefined ? {} : { redis: { url: redisUrl, node: 'bench-host', prefix: 'benchhost' } }),
  });
  try {
    await rt.register(await watFixture('hammer'));
    const grant = rt.issueToken({ kind: 'fs', resource: '/tmp/hammer', methods: ['read'], ttlMs: 600_000 });
    await rt.invoke('hammer', { n: 200 }, { grants: [grant] });
    const p50: number[] = [];
    const p99: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await rt.invoke('hammer', { n: 500 }, { grants: [grant] });
      p50.push(r.stats.hostCallUs?.p50 ?? Number.NaN);
      p99.push(r.stats.hostCallUs?.p99 ?? Number.NaN);
    }
    p50.sort((a, b) => a - b);
    p99.sort((a, b) => a - b);
    return { p50: percentile(p50, 50), p99: percentile(p99, 50) };
  } finally {
    await rt.close();
    dir.cleanup();
  }
}

/** Milliseconds from a revocation (or halt) made on this node until the peer process's mirror has it. */
async function propagation(url: string, trials: number): Promise<{ revoke: number[]; halt: number[] }> {
  const peer = fork(fileURLToPath(new URL('./fleet-peer.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, AUTHORITY_BENCH_REDIS: url },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages: Array<{ t: string; id?: string; reason?: string; at: number }> = [];
  let wake: () => void = () => {};
  peer.on('message', (m: { t: string; id?: string; reason?: string; at: number }) => {
    messages.push(m);
    wake();
  });
  const next = (pred: (m: { t: string; id?: string; reason?: string; at: number }) => boolean): Promise<{ at: number }> =>
    new Promise((resolve) => {
      const check = (): void => {
        const i = messages.findIndex(pred);
        if (i >= 0) resolve(messages.splice(i, 1)[0] as { at: number });
        else wake = check;
      };
      check();
    });
  await next((m) => m.t === 'ready');
  const fleet = await Fleet.connect({ url, node: 'bench-origin', prefix: 'bench' });
  const now = (): number => performance.timeOrigin + performance.now();
  const revoke: number[] = [];
  const halt: number[] = [];
  try {
    for (let i = 0; i < trials; i++) {
      const id = i.toString(16).padStart(32, '0');
      const t0 = now();
      await fleet.revokeToken(id, 'bench');
      const seen = await next((m) => m.t === 'revoked' && m.id === id);
      revoke.push(seen.at - t0);
    }
    for (let i = 0; i < Math.min(trials, 100); i++) {
      await fleet.clearHalt();
      await new Promise((r) => setTimeout(r, 5));
      const t0 = now();
      await fleet.halt(`drill ${i}`);
      const seen = await next((m) => m.t === 'halt' && m.reason === `drill ${i}`);
      halt.push(seen.at - t0);
    }
  } finally {
    await fleet.clearHalt().catch(() => {});
    await fleet.close();
    peer.send({ t: 'close' });
    await new Promise((r) => peer.once('exit', r));
  }
  return { revoke: revoke.sort((a, b) => a - b), halt: halt.sort((a, b) => a - b) };
}

export const bench: Bench = async () => {
  const redis = await startRedis();
  const client = await connectRedis({ url: redis.url });
  const rows: BenchRow[] = [];
  try {
    const memory = new Limiter(config, new MemoryLimitStore());
    const shared = new Limiter(config, new RedisLimitStore({ client }));
    let i = 0;
    const mem = await sampleUs(() => hostCallLimits(memory, i++), 20_000, 2000);
    const red = await sampleUs(() => hostCallLimits(shared, i++), 5_000, 500);
    rows.push(row('limits of one host call (rate+reserve+settle), memory store', percentile(mem, 50), 'us p50'));
    rows.push(row('limits of one host call, memory store', percentile(mem, 99), 'us p99'));
    rows.push(row('limits of one host call, Redis store', percentile(red, 50), 'us p50', { baseline: { name: 'memory', value: percentile(mem, 50) }, note: '3 round trips to Redis on loopback' }));
    rows.push(row('limits of one host call, Redis store', percentile(red, 99), 'us p99', { baseline: { name: 'memory', value: percentile(mem, 99) } }));

    const hcMem = await hostCallUs(undefined, undefined);
    const hcRed = await hostCallUs(undefined, redis.url);
    rows.push(row('host call as the tool sees it (fs.stat, rate + budget), memory store', hcMem.p50, 'us p50'));
    rows.push(row('host call as the tool sees it, memory store', hcMem.p99, 'us p99'));
    rows.push(row('host call as the tool sees it, fleet on Redis', hcRed.p50, 'us p50', { baseline: { name: 'memory', value: hcMem.p50 } }));
    rows.push(row('host call as the tool sees it, fleet on Redis', hcRed.p99, 'us p99', { baseline: { name: 'memory', value: hcMem.p99 } }));

    const dMem = await decisionsPerSecond(memory, 64, 1500);
    const dRed = await decisionsPerSecond(shared, 64, 1500);
    rows.push(row('limit decisions per second per node, memory store (64 in flight)', dMem, 'ops/s'));
    rows.push(row('limit decisions per second per node, Redis store (64 in flight)', dRed, 'ops/s', { baseline: { name: 'memory', value: dMem } }));

    const p = await propagation(redis.url, 300);
    rows.push(row('revocation reaches another node (process)', percentile(p.revoke, 50), 'ms p50'));
    rows.push(row('revocation reaches another node (process)', percentile(p.revoke, 99), 'ms p99', { target: '<= 100', note: `${p.revoke.length} trials, from the revoke call to the peer's mirror` }));
    rows.push(row('halt reaches another node (process)', percentile(p.halt, 50), 'ms p50'));
    rows.push(row('halt reaches another node (process)', percentile(p.halt, 99), 'ms p99', { target: '<= 100', note: `${p.halt.length} trials` }));
  } finally {
    client.destroy();
    await redis.stop();
  }
  return rows;
};
