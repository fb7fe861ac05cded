/**
 * The hostile-tool suite: real components that try to hurt the host. Each
 * must end with a clear error, leave concurrent invocations undisturbed, and
 * be on record in the audit log; the host process must stay healthy.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { verifyAudit } from '../src/audit/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { exampleTools, watFixture } from './helpers/fixtures.ts';
import { auditRecords, testRuntime } from './helpers/runtime.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let rt: Awaited<ReturnType<typeof testRuntime>>;
const DEADLINE = 400;
const FLOOD_LIMIT = 300;

function codeOf(e: unknown): string {
  assert.ok(e instanceof AuthorityError, `expected an AuthorityError, got ${String(e)}`);
  return e.code;
}

before(async () => {
  writeFileSync('/tmp/hammer', 'x');
  const tools = await exampleTools(['echo']);
  rt = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] }, fs: { read: ['/tmp/hammer', '/etc/hostname'] } } });
  await rt.register(tools['echo'] as string);
  for (const name of ['spin', 'recurse', 'grow', 'table-grow', 'huge-output', 'hammer', 'bad-pointer', 'bad-utf8', 'realloc-trap', 'trap']) {
    // Only the spinner is about its deadline; the others get room on a slow machine.
    const timeoutMs = name === 'spin' ? DEADLINE : 30_000;
    await rt.register(await watFixture(name), { limits: { timeoutMs, maxMemoryBytes: 64 * 1024 * 1024, maxHostCalls: FLOOD_LIMIT } });
  }
});
after(async () => rt.cleanup());

/** Run `name` while echo runs alongside; returns the hostile run's error and how long it took. */
async function hostile(name: string, input: unknown = {}, grants: string[] = []): Promise<{ code: string; ms: number; runId: string; error: AuthorityError }> {
  const runId = `hostile-${name}-${Date.now()}`;
  const started = performance.now();
  let done = false;
  const attack = rt.invoke(name, input, { runId, grants }).then(
    () => assert.fail(`${name} was expected to fail`),
    (e: unknown) => {
      done = true;
      return { code: codeOf(e), ms: performance.now() - started, runId, error: e as AuthorityError };
    },
  );
  let echoes = 0;
  while (!done) {
    const r = await rt.invoke('echo', { i: echoes });
    assert.equal(r.output, JSON.stringify({ i: echoes }), 'a concurrent invocation was disturbed');
    echoes++;
  }
  const result = await attack;
  const end = await auditRecords(rt.dataDir, (r) => r.runId === runId && r.kind === 'invoke.end');
  assert.equal(end.length, 1, `one end record for ${name}`);
  assert.equal(end[0]?.code, result.code, `the audit log records ${name}'s outcome`);
  return result;
}

test('an infinite loop is stopped at its deadline', async () => {
  const r = await hostile('spin');
  assert.equal(r.code, ErrorCode.TIMEOUT);
  assert.ok(r.ms >= DEADLINE && r.ms < DEADLINE + 2_000, `ended after ${r.ms.toFixed(0)} ms`);
});

test('unbounded recursion traps without touching the host stack', async () => {
  const r = await hostile('recurse');
  assert.equal(r.code, ErrorCode.TOOL_TRAPPED);
});

test('memory growth stops at the cap and the tool sees the refusal', async () => {
  const out = await rt.invoke('grow', {});
  assert.equal(Number(out.output), 1024, '64 MiB cap = 1024 pages');
});

test('table growth stops at the table cap', async () => {
  const out = await rt.invoke('table-grow', {});
  assert.equal(Number(out.output), 100_000);
});

test('a table bomb is refused at registration', async () => {
  await assert.rejects(rt.register(await watFixture('table-bomb')), (e: unknown) => codeOf(e) === ErrorCode.COMPONENT_INVALID && /table 0 starts at 10000000 elements/.test((e as Error).message));
});

test('huge output is an error, not a truncated result', async () => {
  const r = await hostile('huge-output');
  assert.equal(r.code, ErrorCode.TOOL_OUTPUT);
  assert.equal(r.error.data?.['bytes'], 32 * 1024 * 1024);
});

test('a flood of host calls is cut off at the run limit with one record, not thousands', async () => {
  const grant = rt.issueToken({ kind: 'fs', resource: '/tmp/hammer', methods: ['read'], ttlMs: 60_000 });
  const r = await hostile('hammer', { n: 1_000_000 }, [grant]);
  assert.equal(r.code, ErrorCode.BUDGET_EXCEEDED);
  const records = await auditRecords(rt.dataDir, (x) => x.runId === r.runId);
  const outcomes = records.filter((x) => x.kind === 'call.outcome').length;
  const denied = records.filter((x) => x.kind === 'call.denied');
  assert.equal(outcomes, FLOOD_LIMIT);
  assert.equal(denied.length, 1);
  assert.equal(denied[0]?.code, ErrorCode.BUDGET_EXCEEDED);
});

test('out-of-range pointers trap in the bindings', async () => {
  assert.equal((await hostile('bad-pointer')).code, ErrorCode.TOOL_TRAPPED);
});

test('invalid UTF-8 in a path reaches the gate as replacement characters and is denied', async () => {
  const out = await rt.invoke('bad-utf8', {}, { runId: 'bad-utf8-run' });
  assert.equal(out.output, ErrorCode.CAP_MISSING);
  const denied = await auditRecords(rt.dataDir, (x) => x.runId === 'bad-utf8-run' && x.kind === 'call.denied');
  assert.equal(denied.length, 1);
});

test('a trap while a host call hands back its result ends the run; the call is on record', async () => {
  const grant = rt.issueToken({ kind: 'fs', resource: '/etc/hostname', methods: ['read'], ttlMs: 60_000 });
  const r = await hostile('realloc-trap', {}, [grant]);
  assert.equal(r.code, ErrorCode.TOOL_TRAPPED);
  const kinds = (await auditRecords(rt.dataDir, (x) => x.runId === r.runId)).map((x) => x.kind);
  assert.deepEqual(kinds, ['invoke.start', 'call.intent', 'call.outcome', 'invoke.end']);
});

test('after the whole suite the host is healthy: memory back near its baseline, the chain verifies', async () => {
  gc();
  const baseline = process.memoryUsage().rss;
  for (let round = 0; round < 3; round++) {
    for (const name of ['spin', 'recurse', 'huge-output', 'bad-pointer', 'trap']) await rt.invoke(name, {}).catch(() => undefined);
    await rt.invoke('grow', {});
    await rt.invoke('table-grow', {});
  }
  // Workers replaced after traps and timeouts start in the background; give them a moment, then collect.
  await new Promise((r) => setTimeout(r, 500));
  gc();
  const grown = process.memoryUsage().rss - baseline;
  assert.ok(grown < 192 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(0)} MiB`);
  assert.equal((await rt.invoke('echo', { alive: true })).output, '{"alive":true}');
  assert.ok(rt.load.workers >= 1);
  const report = await verifyAudit({ dir: rt.dataDir });
  assert.equal(report.ok, true, JSON.stringify(report.firstBad));
});
