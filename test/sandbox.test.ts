import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import type { HostReply } from '../src/host-call.ts';
import { compileComponent, sha256Hex, type CompiledTool } from '../src/registry/index.ts';
import { WorkerPool } from '../src/sandbox/index.ts';
import { exampleTools, watFixture } from './helpers/fixtures.ts';
import { auditRecords, SHARED_CACHE, testRuntime } from './helpers/runtime.ts';

let rt: Awaited<ReturnType<typeof testRuntime>>;

function codeOf(e: unknown): string {
  assert.ok(e instanceof AuthorityError, `expected an AuthorityError, got ${String(e)}`);
  return e.code;
}

before(async () => {
  const tools = await exampleTools(['echo']);
  rt = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } } });
  await rt.register(tools['echo'] as string);
  await rt.register(await watFixture('counter'));
  await rt.register(await watFixture('spin'), { limits: { timeoutMs: 300 } });
  await rt.register(await watFixture('grow'), { limits: { maxMemoryBytes: 4 * 1024 * 1024 } });
  await rt.register(await watFixture('trap'));
  await rt.register(await watFixture('bad-pointer'));
  await rt.register(await watFixture('read-passwd'));
});
after(async () => rt.cleanup());

test('gives every invocation a fresh instance: no state survives a run', async () => {
  for (let i = 0; i < 8; i++) {
    const r = await rt.invoke('counter', {});
    assert.equal(r.output, '1,1', `run ${i} saw state from an earlier run`);
  }
});

test('stops a tool that loops forever at its deadline and keeps serving others', async () => {
  const started = Date.now();
  const spinning = rt.invoke('spin', {}).then(
    () => assert.fail('spin returned'),
    (e: unknown) => {
      assert.equal(codeOf(e), ErrorCode.TIMEOUT);
      return Date.now() - started;
    },
  );
  // While it spins, other invocations still complete.
  let served = 0;
  while (Date.now() - started < 250) {
    const r = await rt.invoke('echo', { n: served });
    assert.equal(JSON.parse(r.output).n, served);
    served++;
  }
  const elapsed = await spinning;
  assert.ok(served > 0, 'echo ran while spin was spinning');
  assert.ok(elapsed >= 300, `stopped no earlier than its deadline (${elapsed} ms)`);
  // And afterwards, too.
  assert.equal((await rt.invoke('echo', { after: true })).output, '{"after":true}');
});

test('caps a tool\'s linear memory at its limit', async () => {
  const r = await rt.invoke('grow', {});
  assert.equal(Number(r.output), 64, '4 MiB is 64 pages');
});

test('a trap ends the invocation with E_TOOL_TRAPPED and the next run is unaffected', async () => {
  await assert.rejects(rt.invoke('trap', {}), (e: unknown) => codeOf(e) === ErrorCode.TOOL_TRAPPED);
  for (let i = 0; i < 4; i++) assert.equal((await rt.invoke('counter', {})).output, '1,1');
});

test('a pointer outside guest memory traps in the bindings; the host reads nothing', async () => {
  await assert.rejects(rt.invoke('bad-pointer', {}), (e: unknown) => codeOf(e) === ErrorCode.TOOL_TRAPPED);
  assert.equal((await rt.invoke('echo', { still: 'fine' })).output, '{"still":"fine"}');
});

test('a denied host call reaches the guest as a typed error it can read', async () => {
  const r = await rt.invoke('read-passwd', {}, { runId: 'passwd-attempt' });
  assert.equal(r.output, ErrorCode.CAP_MISSING);
  const kinds = (await auditRecords(rt.dataDir, (x) => x.runId === 'passwd-attempt')).map((x) => `${x.kind}:${x.code}`);
  assert.deepEqual(kinds, ['invoke.start:ok', `call.denied:${ErrorCode.CAP_MISSING}`, 'invoke.end:ok']);
});

test('records timeouts and traps in the audit log', async () => {
  await assert.rejects(rt.invoke('spin', {}, { runId: 'spin-audit', timeoutMs: 50 }));
  await assert.rejects(rt.invoke('trap', {}, { runId: 'trap-audit' }));
  const ends = new Map((await auditRecords(rt.dataDir, (x) => x.kind === 'invoke.end')).map((x) => [x.runId, x.code]));
  assert.equal(ends.get('spin-audit'), ErrorCode.TIMEOUT);
  assert.equal(ends.get('trap-audit'), ErrorCode.TOOL_TRAPPED);
});

test('halt stops running invocations, refuses new ones, and records why', async () => {
  const rt2 = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } } });
  try {
    await rt2.register(await watFixture('spin'), { limits: { timeoutMs: 60_000 } });
    const running = rt2.invoke('spin', {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 100));
    await rt2.halt('incident 42: exfiltration suspected');
    assert.equal(codeOf(await running), ErrorCode.HALTED);
    await assert.rejects(rt2.invoke('spin', {}), (e: unknown) => codeOf(e) === ErrorCode.HALTED);
    const halts = (await auditRecords(rt2.dataDir, (x) => x.kind === 'halt')).map((x) => x.reason);
    assert.deepEqual(halts, ['incident 42: exfiltration suspected']);
  } finally {
    await rt2.cleanup();
  }
});

test('an instance made ahead of time whose start function never returns retires its worker, and the pool serves on', async () => {
  const load = async (path: string): Promise<CompiledTool> => {
    const bytes = readFileSync(path);
    return compileComponent(bytes, sha256Hex(bytes), { cacheDir: SHARED_CACHE, maxMemoryBytes: 1 << 20 });
  };
  const stuck = await load(await watFixture('start-spin'));
  const echo = await load((await exampleTools(['echo']))['echo'] as string);
  const pool = new WorkerPool({ size: 1, prepareTimeoutMs: 200 });
  try {
    await pool.warmUp();
    pool.prepare(stuck);
    const started = Date.now();
    while (pool.load.replaced === 0 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(pool.load.replaced, 1, 'the worker stuck instantiating was retired');
    assert.ok(Date.now() - started >= 200, 'not before its time');
    assert.equal(pool.load.workers, 1);
    const noHost = async (): Promise<HostReply> => ({ tag: 'err', val: { tag: 'io', val: 'none' } });
    const r = await pool.run({ tool: echo, entry: 'run', input: '{"after":1}', timeoutMs: 5000, maxOutputBytes: 1 << 20, onHostCall: noHost });
    assert.deepEqual(r.end, { kind: 'ok', output: '{"after":1}' });
    // The same tool called directly: its instantiation is part of the run, stopped at the run's deadline.
    const t0 = Date.now();
    const s = await pool.run({ tool: stuck, entry: 'run', input: '{}', timeoutMs: 300, maxOutputBytes: 1 << 20, onHostCall: noHost });
    assert.equal(s.end.kind, 'timeout');
    assert.ok(Date.now() - t0 < 300 + 1000, `stopped near its deadline (${Date.now() - t0} ms)`);
  } finally {
    await pool.close();
  }
});

test('an invocation reports how long its host calls took as the tool saw them', async () => {
  const r = await rt.invoke('read-passwd', {});
  const times = r.stats.hostCallUs;
  assert.ok(times !== undefined, 'a run that made a host call has its times');
  assert.ok(times.p50 > 0 && Number.isFinite(times.p50), `p50 ${times.p50}`);
  assert.ok(times.p99 >= times.p50, `p99 ${times.p99} >= p50 ${times.p50}`);
  // Bounded by the invocation itself.
  assert.ok(times.p99 <= r.stats.durationMs * 1000 * 1.1, `p99 ${times.p99} us within the invocation's ${r.stats.durationMs} ms`);
  const quiet = await rt.invoke('echo', { a: 1 });
  assert.equal(quiet.stats.hostCallUs, undefined, 'no host calls, no times');
});
