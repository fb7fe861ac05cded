import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { Limiter, parseRate, type LimiterConfig, type RateSpec } from '../src/limits/index.ts';
import { RedisLimitStore, hashTag } from '../src/fleet/redis-store.ts';
import { connectRedis, type RedisClient } from '../src/fleet/redis.ts';
import { startRedis, type TestRedis } from './helpers/redis-server.ts';

let redis: TestRedis;
let client: RedisClient;
before(async () => {
  redis = await startRedis();
  client = await connectRedis({ url: redis.url, commandTimeoutMs: 500 });
});
after(async () => {
  client.destroy();
  await redis.stop();
});

const config = (ns: string, run: LimiterConfig['run'] = {}, rates: LimiterConfig['rates'] = {}): LimiterConfig => ({
  namespace: ns,
  rates,
  run,
  shared: {},
  caps: { fsReadBytes: 100, httpResponseBytes: 100 },
});

test('every key of one limiter call carries the namespace as its Redis Cluster hash tag', async () => {
  const store = new RedisLimitStore({ client });
  const limiter = new Limiter(config('ns-{odd}', { tool_calls: 5 }, { invocations: parseRate('5/s') as RateSpec }), store);
  assert.equal((await limiter.reserve({ runId: 'r', tool: 't' }, { op: 'tool.invoke' })).decision.allow, true);
  const keys = (await client.sendCommand(['KEYS', 'authority:*'])) as string[];
  assert.ok(keys.length > 0);
  for (const k of keys) assert.equal(hashTag(k), 'ns-%7Bodd%7D', `${k} hashes by the namespace alone, braces in it escaped`);
});

test('refuses a call whose keys would land on different cluster slots, before sending it', async () => {
  const store = new RedisLimitStore({ client });
  await assert.rejects(
    store.reserve([
      { key: '{a}:x', amount: 1, limit: 2 },
      { key: '{b}:y', amount: 1, limit: 2 },
    ]),
    (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.INVALID_ARGUMENT && /hash tag/.test(e.message),
  );
  assert.deepEqual(await store.read(['{a}:x']), [0], 'nothing was written');
});

test("uses Redis's clock: rate keys expire by Redis time, counters keep their run TTL", async () => {
  const store = new RedisLimitStore({ client, prefix: 'ttl:' });
  const limiter = new Limiter({ ...config('ttl', { tool_calls: 3 }, { invocations: parseRate('2/s') as RateSpec }), runTtlMs: 60_000 }, store);
  await limiter.rate({ runId: 'r', tool: 't' }, { op: 'tool.invoke' });
  await limiter.reserve({ runId: 'r', tool: 't' }, { op: 'tool.invoke' });
  const rateTtl = Number(await client.sendCommand(['PTTL', 'ttl:authority:{ttl}:rate:invoke:t']));
  assert.ok(rateTtl > 0 && rateTtl <= 500, `a rate key lives until its TAT (${rateTtl} ms)`);
  const runTtl = Number(await client.sendCommand(['PTTL', 'ttl:authority:{ttl}:run:r:tool_calls']));
  assert.ok(runTtl > 59_000 && runTtl <= 60_000, `a run counter lives runTtlMs after its last change (${runTtl} ms)`);
  // Two stores on the same Redis without a clock of their own agree on the same bucket.
  const other = new Limiter(config('ttl', {}, { invocations: parseRate('2/s') as RateSpec }), new RedisLimitStore({ client, prefix: 'ttl:' }));
  assert.equal((await other.rate({ runId: 'r', tool: 't' }, { op: 'tool.invoke' })).allow, true);
  const third = await other.rate({ runId: 'r', tool: 't' }, { op: 'tool.invoke' });
  assert.equal(third.allow, false, 'the burst of 2 is spent across both limiters');
});

test('Redis unreachable: the limiter denies with E_STATE_UNAVAILABLE, and works again once Redis is back', async () => {
  const own = await startRedis();
  const c = await connectRedis({ url: own.url, commandTimeoutMs: 300 });
  try {
    const limiter = new Limiter(config('down', { tool_calls: 10 }, { invocations: parseRate('100/s') as RateSpec }), new RedisLimitStore({ client: c }));
    const ctx = { runId: 'r', tool: 't' };
    assert.equal((await limiter.reserve(ctx, { op: 'tool.invoke' })).decision.allow, true);
    await own.kill();
    const rate = await limiter.rate(ctx, { op: 'tool.invoke' });
    assert.equal(rate.allow, false);
    assert.equal(rate.allow === false && rate.code, ErrorCode.STATE_UNAVAILABLE);
    assert.match(rate.reason, /^rate limits cannot be checked, so the call is refused: Redis acquire failed/);
    const budget = (await limiter.reserve(ctx, { op: 'tool.invoke' })).decision;
    assert.equal(budget.allow === false && budget.code, ErrorCode.STATE_UNAVAILABLE);
    await own.restart();
    // The client reconnects by itself; the restarted server lost its data (no persistence), so counting starts again.
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      back = (await limiter.reserve(ctx, { op: 'tool.invoke' })).decision.allow;
      if (!back) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(back, 'reserves again after the restart');
    assert.deepEqual(await limiter.usage('r'), { tool_calls: 1 });
  } finally {
    c.destroy();
    await own.stop();
  }
});
