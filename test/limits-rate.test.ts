import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCode } from '../src/errors.ts';
import { Limiter, MemoryLimitStore, gcraStep, parseRate, type LimiterConfig, type RateSpec } from '../src/limits/index.ts';
import { limitStores } from './helpers/limit-stores.ts';

function rate(text: string, burst?: number): RateSpec {
  const r = parseRate(text, burst);
  assert.ok(typeof r !== 'string', String(r));
  return r;
}

test('parses rates with units, periods and bursts', () => {
  assert.deepEqual({ ...rate('10/s') }, { text: '10/s', count: 10, periodMs: 1000, burst: 10, emissionIntervalUs: 100_000 });
  assert.equal(rate('100/m').emissionIntervalUs, 600_000);
  assert.equal(rate('5/10s').periodMs, 10_000);
  assert.equal(rate('1/h', 1).burst, 1);
  assert.equal(rate('3/d').periodMs, 86_400_000);
  assert.equal(rate('1000/ms').emissionIntervalUs, 1);
  // Intervals round up: a limiter is never looser than its rate.
  assert.equal(rate('3/s').emissionIntervalUs, 333_334);
  assert.match(parseRate('10/sec') as string, /^rate must look like/);
  assert.match(parseRate('ten/s') as string, /^rate must look like/);
  assert.match(parseRate('0/s') as string, /at least 1/);
  assert.match(parseRate('1/0s') as string, /period must be at least 1/);
  assert.match(parseRate('1/s', 0) as string, /^burst must be/);
  assert.match(parseRate('1/s', 1.5) as string, /^burst must be/);
});

test('GCRA admits a burst, then one call per interval, with the exact retry-after', () => {
  const T = 100_000; // 10/s
  let tat: number | undefined;
  for (let i = 0; i < 10; i++) {
    const s = gcraStep(tat, 0, T, 10);
    assert.ok(s.allowed, `call ${i} of the burst`);
    tat = s.tat;
  }
  const refused = gcraStep(tat, 0, T, 10);
  assert.equal(refused.allowed, false);
  assert.equal(refused.retryAfterUs, T);
  assert.equal(gcraStep(tat, T - 1, T, 10).allowed, false, 'one microsecond early is still too early');
  assert.equal(gcraStep(tat, T - 1, T, 10).retryAfterUs, 1);
  assert.equal(gcraStep(tat, T, T, 10).allowed, true, 'exactly at retry-after it is admitted');
  // A key left alone for long enough is as good as new.
  assert.equal(gcraStep(tat, 10 * T, T, 10).tat, 11 * T);
});

test('GCRA never admits more than burst + rate x elapsed in any window', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 1, max: 5000 }),
      fc.integer({ min: 1, max: 20 }),
      fc.array(fc.integer({ min: 0, max: 300_000 }), { minLength: 1, maxLength: 150 }),
      (count, periodMs, burst, gaps) => {
        const spec = rate(`${count}/${periodMs}ms`, burst);
        const nominalIntervalUs = (periodMs * 1000) / count;
        let now = 0;
        let tat: number | undefined;
        const admitted: number[] = [];
        for (const gap of gaps) {
          now += gap;
          const s = gcraStep(tat, now, spec.emissionIntervalUs, spec.burst);
          if (s.allowed) {
            tat = s.tat;
            admitted.push(now);
          } else {
            assert.ok(s.retryAfterUs > 0);
            // The retry-after is exact: then (and not a microsecond before) the call is admitted.
            assert.ok(gcraStep(tat, now + s.retryAfterUs, spec.emissionIntervalUs, spec.burst).allowed);
            assert.ok(!gcraStep(tat, now + s.retryAfterUs - 1, spec.emissionIntervalUs, spec.burst).allowed);
          }
        }
        for (let i = 0; i < admitted.length; i++) {
          for (let j = i; j < admitted.length; j++) {
            const elapsed = (admitted[j] as number) - (admitted[i] as number);
            const inWindow = j - i + 1;
            assert.ok(inWindow <= burst + elapsed / nominalIntervalUs, `${inWindow} calls in ${elapsed} us at ${count}/${periodMs}ms burst ${burst}`);
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

function config(rates: LimiterConfig['rates']): LimiterConfig {
  return { namespace: 'test', rates, run: {}, shared: {}, caps: { fsReadBytes: 100, httpResponseBytes: 100 } };
}

const stores = limitStores();
after(() => stores.close());

for (const kind of stores.kinds) {
  describe(`with the ${kind.name} store`, () => {
    test('limits http calls per destination host, with a per-host override', async () => {
      let now = 1_000_000;
      const limiter = new Limiter(config({ http: rate('2/s'), hosts: new Map([['slow.example', rate('1/m')]]) }), await kind.make({ now: () => now }));
      const ctx = { runId: 'r', tool: 't' };
      const call = (host: string) => limiter.rate(ctx, { op: 'http.fetch', host, requestBytes: 0 });
      assert.equal((await call('a.example')).allow, true);
      assert.equal((await call('a.example')).allow, true);
      const third = await call('a.example');
      assert.equal(third.allow, false);
      assert.equal(third.allow === false && third.code, ErrorCode.RATE_LIMITED);
      assert.equal(third.allow === false && third.retryAfterMs, 500);
      assert.equal(third.reason, "limits.http '2/s' for host a.example: retry after 500 ms");
      assert.equal(third.rule, 'limits.http');
      assert.equal((await call('b.example')).allow, true, 'another host has its own limit');
      assert.equal((await call('slow.example')).allow, true);
      const slow = await call('slow.example');
      assert.equal(slow.rule, 'limits.hosts["slow.example"]');
      assert.equal(slow.allow === false && slow.retryAfterMs, 60_000);
      now += 500;
      assert.equal((await call('a.example')).allow, true, 'admitted again after the retry-after');
    });

    test('limits fs, secrets and invocations per tool, and every call per token', async () => {
      const now = 5_000_000;
      const limiter = new Limiter(config({ fs: rate('1/s'), secrets: rate('1/s'), invocations: rate('1/s'), per_token: rate('3/s') }), await kind.make({ now: () => now }));
      const a = { runId: 'r1', tool: 'a', tokenId: 'tok-1' };
      const b = { runId: 'r2', tool: 'b', tokenId: 'tok-1' };
      assert.equal((await limiter.rate(a, { op: 'fs.read' })).allow, true);
      assert.equal((await limiter.rate(a, { op: 'fs.stat' })).rule, 'limits.fs');
      assert.equal((await limiter.rate(a, { op: 'secrets.get' })).allow, true);
      assert.equal((await limiter.rate(a, { op: 'tool.invoke' })).allow, true);
      // Tool b has its own fs allowance, but shares the token: its fourth call is over 3/s.
      const overToken = await limiter.rate(b, { op: 'fs.read' });
      assert.equal(overToken.allow, false);
      assert.equal(overToken.rule, 'limits.per_token');
      assert.equal(overToken.reason, "limits.per_token '3/s' for this token: retry after 334 ms");
    });

    test('a refused call consumes no slot of any limit (all or nothing)', async () => {
      const store = await kind.make({ now: () => 10_000_000 });
      const limiter = new Limiter(config({ fs: rate('10/s'), per_token: rate('1/s') }), store);
      const ctx = { runId: 'r', tool: 't', tokenId: 'x' };
      assert.equal((await limiter.rate(ctx, { op: 'fs.read' })).allow, true);
      for (let i = 0; i < 20; i++) assert.equal((await limiter.rate(ctx, { op: 'fs.read' })).allow, false);
      // Had the refused calls taken fs slots, a token-less caller of the same tool would now be limited.
      const other = { runId: 'r', tool: 't' };
      for (let i = 0; i < 9; i++) assert.equal((await limiter.rate(other, { op: 'fs.read' })).allow, true, `fs slot ${i + 2} of 10`);
      assert.equal((await limiter.rate(other, { op: 'fs.read' })).allow, false);
    });
  });
}

test('without limits every call passes, and rate keys expire once their time has passed', async () => {
  let now = 0;
  const store = new MemoryLimitStore({ now: () => now, sweepEvery: 1 });
  const free = new Limiter(config({}), store);
  assert.equal((await free.rate({ runId: 'r', tool: 't' }, { op: 'fs.read' })).allow, true);
  const limited = new Limiter(config({ fs: rate('1/s') }), store);
  for (let i = 0; i < 50; i++) await limited.rate({ runId: 'r', tool: `tool-${i}` }, { op: 'fs.read' });
  assert.equal(store.size, 50);
  now += 2000;
  await limited.rate({ runId: 'r', tool: 'late' }, { op: 'fs.read' });
  assert.equal(store.size, 1, 'expired keys are swept');
});
