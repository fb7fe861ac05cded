import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCode } from '../src/errors.ts';
import { Limiter, type LimiterConfig, type LimitStore, type Reservation } from '../src/limits/index.ts';
import { loadPolicy } from '../src/policy/index.ts';
import { limitStores, type StoreKind } from './helpers/limit-stores.ts';

function config(run: LimiterConfig['run'], shared: LimiterConfig['shared'] = {}, caps = { fsReadBytes: 1000, httpResponseBytes: 1000 }): LimiterConfig {
  return { namespace: 'budget-test', rates: {}, run, shared, caps };
}

const ctx = (runId = 'run-1', tool = 'tool') => ({ runId, tool });

const stores = limitStores();
after(() => stores.close());

for (const kind of stores.kinds) {
  describe(`with the ${kind.name} store`, () => {
    test('counts tool calls and host calls per run, and denies the one over budget naming the budget', async () => {
      const limiter = new Limiter(config({ tool_calls: 2, host_calls: 3 }), await kind.make());
      for (let i = 0; i < 2; i++) assert.equal((await limiter.reserve(ctx(), { op: 'tool.invoke' })).decision.allow, true);
      const third = (await limiter.reserve(ctx(), { op: 'tool.invoke' })).decision;
      assert.equal(third.allow, false);
      assert.equal(third.allow === false && third.code, ErrorCode.BUDGET_EXCEEDED);
      assert.equal(third.reason, 'budgets.tool_calls 2 spent for run run-1 (used 2)');
      assert.equal(third.rule, 'budgets.tool_calls');
      for (let i = 0; i < 3; i++) assert.equal((await limiter.reserve(ctx(), { op: 'fs.stat' })).decision.allow, true);
      assert.equal((await limiter.reserve(ctx(), { op: 'secrets.get' })).decision.rule, 'budgets.host_calls');
      // Another run has its own budget.
      assert.equal((await limiter.reserve(ctx('run-2'), { op: 'tool.invoke' })).decision.allow, true);
      assert.deepEqual(await limiter.usage('run-1'), { tool_calls: 2, host_calls: 3 });
    });

    test('reserves the response cap before a fetch and settles to the bytes actually read', async () => {
      const limiter = new Limiter(config({ http_bytes: 2500 }), await kind.make());
      const call = { op: 'http.fetch', host: 'a.example', requestBytes: 100 } as const;
      const first = await limiter.reserve(ctx(), call);
      assert.equal(first.decision.allow, true);
      assert.equal(first.reservation?.allowance.responseBytes, 1000, 'the whole cap');
      assert.deepEqual(await limiter.usage('run-1'), { http_bytes: 1100 });
      await limiter.settle(first.reservation as Reservation, { requestBytes: 100, responseBytes: 250 });
      assert.deepEqual(await limiter.usage('run-1'), { http_bytes: 350 });
      // Settling twice changes nothing.
      await limiter.settle(first.reservation as Reservation, { requestBytes: 0, responseBytes: 0 });
      assert.deepEqual(await limiter.usage('run-1'), { http_bytes: 350 });
    });

    test('near the end of a byte budget, grants what is left and says so in the allowance', async () => {
      const limiter = new Limiter(config({ http_bytes: 1500, fs_read_bytes: 1200 }), await kind.make());
      const fetch = { op: 'http.fetch', host: 'a.example', requestBytes: 100 } as const;
      const a = await limiter.reserve(ctx(), fetch);
      assert.equal(a.reservation?.allowance.responseBytes, 1000);
      const b = await limiter.reserve(ctx(), fetch);
      assert.equal(b.reservation?.allowance.responseBytes, 300, 'only 400 bytes were left: 100 to send, 300 to read');
      const c = await limiter.reserve(ctx(), fetch);
      assert.equal(c.decision.allow, false, 'no room for the request and one byte of response');
      assert.equal(c.decision.reason, 'budgets.http_bytes 1500 spent for run run-1 (used 1500)');
      const r1 = await limiter.reserve(ctx(), { op: 'fs.read' });
      assert.equal(r1.reservation?.allowance.readBytes, 1000);
      const r2 = await limiter.reserve(ctx(), { op: 'fs.read' });
      assert.equal(r2.reservation?.allowance.readBytes, 200);
      assert.equal((await limiter.reserve(ctx(), { op: 'fs.read' })).decision.allow, false);
      await limiter.settle(r1.reservation as Reservation, { readBytes: 10 });
      assert.equal((await limiter.reserve(ctx(), { op: 'fs.read' })).reservation?.allowance.readBytes, 990);
    });

    test('a write reserves exactly its bytes; a write that does not fit is refused whole', async () => {
      const limiter = new Limiter(config({ fs_write_bytes: 100 }), await kind.make());
      assert.equal((await limiter.reserve(ctx(), { op: 'fs.write', bytes: 60 })).decision.allow, true);
      const over = await limiter.reserve(ctx(), { op: 'fs.write', bytes: 41 });
      assert.equal(over.decision.allow, false);
      assert.equal(over.decision.reason, 'budgets.fs_write_bytes 100 spent for run run-1 (used 60)');
      assert.equal((await limiter.reserve(ctx(), { op: 'fs.write', bytes: 40 })).decision.allow, true);
    });

    test('cancel gives back everything; an unreported use keeps its whole reservation; overuse is clamped', async () => {
      const limiter = new Limiter(config({ tool_calls: 5, http_bytes: 10_000 }), await kind.make());
      const fetch = { op: 'http.fetch', host: 'a.example', requestBytes: 0 } as const;
      const a = await limiter.reserve(ctx(), fetch);
      await limiter.cancel(a.reservation as Reservation);
      assert.deepEqual(await limiter.usage('run-1'), { tool_calls: 0, http_bytes: 0 });
      const b = await limiter.reserve(ctx(), fetch);
      await limiter.settle(b.reservation as Reservation, {});
      assert.deepEqual(await limiter.usage('run-1'), { tool_calls: 0, http_bytes: 1000 }, 'fail closed: unreported bytes count in full');
      const c = await limiter.reserve(ctx(), fetch);
      assert.deepEqual(await limiter.settle(c.reservation as Reservation, { responseBytes: 5000 }), { clamped: true });
      assert.deepEqual(await limiter.usage('run-1'), { tool_calls: 0, http_bytes: 2000 }, 'never more than was reserved');
    });

    test('shared budgets are spent by every run together', async () => {
      const store = await kind.make();
      const limiter = new Limiter(config({}, { tool_calls: 3 }), store);
      assert.equal((await limiter.reserve(ctx('a'), { op: 'tool.invoke' })).decision.allow, true);
      assert.equal((await limiter.reserve(ctx('b'), { op: 'tool.invoke' })).decision.allow, true);
      assert.equal((await limiter.reserve(ctx('c'), { op: 'tool.invoke' })).decision.allow, true);
      const d = (await limiter.reserve(ctx('d'), { op: 'tool.invoke' })).decision;
      assert.equal(d.reason, 'budgets.shared.tool_calls 3 spent shared by every run (used 3)');
      assert.equal(d.rule, 'budgets.shared.tool_calls');
      assert.deepEqual(await limiter.sharedUsage(), { tool_calls: 3 });
      // A second limiter on the same store and namespace sees the same counters.
      const again = new Limiter(config({}, { tool_calls: 3 }), store);
      assert.equal((await again.reserve(ctx('e'), { op: 'tool.invoke' })).decision.allow, false);
    });

    test('a run and a shared byte budget grant the same amount: the smaller room', async () => {
      const limiter = new Limiter(config({ http_bytes: 5000 }, { http_bytes: 1300 }), await kind.make());
      const a = await limiter.reserve(ctx('a'), { op: 'http.fetch', host: 'h', requestBytes: 0 });
      const b = await limiter.reserve(ctx('b'), { op: 'http.fetch', host: 'h', requestBytes: 0 });
      assert.equal(a.reservation?.allowance.responseBytes, 1000);
      assert.equal(b.reservation?.allowance.responseBytes, 300);
      assert.deepEqual(await limiter.usage('b'), { http_bytes: 300 });
      assert.deepEqual(await limiter.sharedUsage(), { http_bytes: 1300 });
    });

    test('the wall-time budget closes a run after its duration', async () => {
      let now = 1_000;
      const limiter = new Limiter(config({ wall_time_ms: 500 }), await kind.make({ now: () => now }));
      assert.deepEqual(await limiter.startRun('r'), { deadlineMs: 1_500 });
      now = 1_500;
      assert.equal((await limiter.reserve(ctx('r'), { op: 'fs.stat' })).decision.allow, true);
      now = 1_501;
      const late = (await limiter.reserve(ctx('r'), { op: 'fs.stat' })).decision;
      assert.equal(late.allow, false);
      assert.equal(late.reason, 'budgets.wall_time_ms 500 elapsed for run r');
      // A run that was never started explicitly starts at its first call.
      assert.equal((await limiter.reserve(ctx('fresh'), { op: 'fs.stat' })).decision.allow, true);
      assert.deepEqual(await limiter.startRun('fresh'), { deadlineMs: 2_001 });
      await limiter.endRun('r');
      assert.equal((await limiter.reserve(ctx('r'), { op: 'fs.stat' })).decision.allow, true, 'an ended run is forgotten');
    });

    test('a policy hands its budgets and caps to the limiter', async () => {
      const { policy } = loadPolicy({ version: '1.0', name: 'p1', net: { max_response_bytes: 64 }, budgets: { http_bytes: 100, shared: { tool_calls: 1 } } });
      const limiter = new Limiter(policy.limiterConfig(), await kind.make());
      const r = await limiter.reserve(ctx(), { op: 'http.fetch', host: 'x', requestBytes: 0 });
      assert.equal(r.reservation?.allowance.responseBytes, 64);
      assert.equal((await limiter.reserve(ctx(), { op: 'tool.invoke' })).decision.allow, true);
      assert.equal((await limiter.reserve(ctx('other'), { op: 'tool.invoke' })).decision.rule, 'budgets.shared.tool_calls');
    });
  });
}

/** A store whose every call resolves when the scheduler says, checking the counters after each step. */
function scheduledStore(s: fc.Scheduler, inner: LimitStore, check: () => Promise<void>): LimitStore {
  const wrap =
    <A extends unknown[], R>(f: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const r = await s.schedule(f(...args));
      await check();
      return r;
    };
  return {
    acquire: wrap((r) => inner.acquire(r)),
    reserve: wrap((c, w) => inner.reserve(c, w)),
    release: wrap((e) => inner.release(e)),
    read: (k) => inner.read(k),
    windowStart: (k) => inner.windowStart(k),
    delete: wrap((k) => inner.delete(k)),
  };
}

/** The race: 64 invocations, each reserving a tool call and then two fetches, against `makeStore`. */
function race(makeStore: (s: fc.Scheduler, inner: LimitStore, check: () => Promise<void>) => LimitStore, numRuns: number, kind: StoreKind = stores.kinds[0] as StoreKind): Promise<void> {
  return fc.assert(
    fc.asyncProperty(fc.scheduler(), fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 64, maxLength: 64 }), async (s, responseSizes) => {
      const inner = await kind.make();
      const budgets = { tool_calls: 50, host_calls: 120, http_bytes: 40_000 };
      const cfg = config(budgets, {}, { fsReadBytes: 1000, httpResponseBytes: 1000 });
      const keys = Object.keys(budgets).map((d) => `authority:{${cfg.namespace}}:run:run-1:${d}`);
      const check = async (): Promise<void> => {
        const values = await inner.read(keys);
        values.forEach((v, i) => {
          const limit = Object.values(budgets)[i] as number;
          assert.ok(v >= 0 && v <= limit, `${keys[i]} = ${v} within 0..${limit}`);
        });
      };
      const limiter = new Limiter(cfg, makeStore(s, inner, check));
      let granted = 0;
      let bytesUsed = 0;
      const invocation = async (i: number): Promise<void> => {
        const inv = await limiter.reserve(ctx(), { op: 'tool.invoke' });
        if (!inv.decision.allow) return;
        granted++;
        for (let k = 0; k < 2; k++) {
          const r = await limiter.reserve(ctx(), { op: 'http.fetch', host: 'h', requestBytes: 10 });
          if (r.reservation === undefined) continue;
          const read = Math.min(responseSizes[i] as number, r.reservation.allowance.responseBytes ?? 0);
          bytesUsed += 10 + read;
          await limiter.settle(r.reservation, { requestBytes: 10, responseBytes: read });
        }
      };
      const all = Promise.all(Array.from({ length: 64 }, (_, i) => invocation(i)));
      await s.waitFor(all);
      assert.equal(granted, 50);
      const usage = await limiter.usage('run-1');
      assert.equal(usage.tool_calls, 50);
      assert.equal(usage.http_bytes, bytesUsed, 'settled counters equal what was actually used');
      assert.ok((usage.host_calls ?? 0) <= 100);
    }),
    // Stop at the first counterexample: shrinking 64 racing tasks takes long and adds nothing here.
    { numRuns, endOnFailure: true },
  );
}

test('the race above catches a store whose check and add are two steps', async () => {
  // Reads the counters, yields to the scheduler, then reserves against the stale reading.
  const naive = (s: fc.Scheduler, inner: LimitStore, check: () => Promise<void>): LimitStore => {
    const base = scheduledStore(s, inner, check);
    return {
      ...base,
      async reserve(counters, window) {
        const used = await inner.read(counters.map((c) => c.key));
        await s.schedule(Promise.resolve());
        if (counters.some((c, i) => (used[i] as number) + c.amount > c.limit)) return base.reserve(counters, window);
        // Believes it fits: adds without checking again (a lost update).
        return base.reserve(counters.map((c) => ({ ...c, limit: Number.MAX_SAFE_INTEGER })), window);
      },
    };
  };
  await assert.rejects(race(naive, 60), (e: unknown) => {
    const cause = (e as Error).cause as Error | undefined;
    assert.match(String(cause?.message), /tool_calls = (5[1-9]|6\d) within 0\.\.50|Expected values to be strictly equal/);
    return true;
  });
});

for (const kind of stores.kinds) {
  describe(`with the ${kind.name} store`, () => {
    test('64 racing invocations get exactly 50 tool calls; no budget ever goes negative or over', async () => {
      await race(scheduledStore, kind.name === 'memory' ? 60 : 20, kind);
    });

    test('64 invocations racing on real event-loop interleavings get exactly 50', async () => {
      for (let round = 0; round < 20; round++) {
        const limiter = new Limiter(config({ tool_calls: 50 }), await kind.make());
        const tick = () => new Promise<void>((resolve) => (Math.random() < 0.5 ? setImmediate(resolve) : queueMicrotask(resolve)));
        const results = await Promise.all(
          Array.from({ length: 64 }, async () => {
            for (let i = Math.floor(Math.random() * 4); i > 0; i--) await tick();
            return (await limiter.reserve(ctx(), { op: 'tool.invoke' })).decision.allow;
          }),
        );
        assert.equal(results.filter(Boolean).length, 50);
        assert.deepEqual(await limiter.usage('run-1'), { tool_calls: 50 });
      }
    });
  });
}
