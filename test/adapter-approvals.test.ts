import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { loadPolicy } from '../src/policy/index.ts';
import type { ApprovalRequest, Approver } from '../src/runtime.ts';
import { exampleTools } from './helpers/fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

let rt: Awaited<ReturnType<typeof testRuntime>>;
let ws: ReturnType<typeof tempDir>;
let grants: string[];

function policy(approvals: Record<string, unknown>) {
  return loadPolicy({
    version: '1.0',
    fs: { read: [`${ws.path}/**`], write: [`${ws.path}/**`] },
    tools: { allow: ['*'] },
    approvals,
  }).policy;
}

function failure(e: unknown): AuthorityError {
  assert.ok(e instanceof AuthorityError, `expected an AuthorityError, got ${String(e)}`);
  return e;
}

function denials(e: unknown): Array<{ op: string; code: string; reason: string }> {
  return (failure(e).data?.['denials'] ?? []) as Array<{ op: string; code: string; reason: string }>;
}

/** An approver that records what it was asked and answers as told. */
function recording(answer: (r: ApprovalRequest) => unknown): Approver & { asked: ApprovalRequest[] } {
  const asked: ApprovalRequest[] = [];
  const fn = (async (r: ApprovalRequest) => {
    asked.push(r);
    return answer(r);
  }) as Approver & { asked: ApprovalRequest[] };
  fn.asked = asked;
  return fn;
}

before(async () => {
  const tools = await exampleTools(['echo', 'read-file', 'write-file']);
  ws = tempDir('authority-approvals-');
  ws.path = realpathSync(ws.path);
  rt = await testRuntime({ audit: { durability: 'none' } });
  for (const path of Object.values(tools)) await rt.register(path);
  grants = [rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read', 'list', 'write'], ttlMs: 600_000 })];
});

after(async () => {
  await rt.cleanup();
  ws.cleanup();
});

test('validates the approvals section and locates each problem', () => {
  assert.throws(
    () => loadPolicy({ version: '1.0', approvals: { tools: ['deploy-*', ''], ops: ['fs.write', 'fs.delete'], timeout_ms: 0, ask: true } }),
    (e: unknown) => {
      const issues = (failure(e).data?.['issues'] ?? []) as Array<{ path: string; message: string }>;
      const paths = issues.map((i) => i.path).sort();
      assert.deepEqual(paths, ['approvals.ask', 'approvals.ops[1]', 'approvals.timeout_ms', 'approvals.tools[1]']);
      assert.match(issues.find((i) => i.path === 'approvals.ops[1]')?.message ?? '', /expected a host operation \(one of fs\.read, .*\), got "fs\.delete"/);
      return failure(e).code === ErrorCode.POLICY_INVALID;
    },
  );
  const { warnings } = loadPolicy({ version: '1.0', approvals: { tools: ['bad name'] } });
  assert.deepEqual(
    warnings.map((w) => [w.path, w.message]),
    [['approvals.tools[0]', '"bad name" can never match: names are [A-Za-z0-9_-]{1,64}']],
  );
});

test('names the rule that asks for an approval, and asks for nothing else', () => {
  const p = loadPolicy({ version: '1.0', approvals: { tools: ['deploy-*'], ops: ['fs.write', 'fs.remove'] } }).policy;
  assert.deepEqual(p.approvalFor({ op: 'tool.invoke', name: 'deploy-prod' }), { rule: 'approvals.tools[0]', reason: "approvals.tools[0] 'deploy-*' matches deploy-prod" });
  assert.equal(p.approvalFor({ op: 'tool.invoke', name: 'word-count' }), undefined);
  assert.equal(p.approvalFor({ op: 'fs.remove' })?.rule, 'approvals.ops[1]');
  assert.equal(p.approvalFor({ op: 'fs.read' }), undefined);
  assert.equal(p.approvalTimeoutMs, 120_000);
  assert.equal(loadPolicy({ version: '1.0' }).policy.approvalFor({ op: 'fs.write' }), undefined);
});

test('denies a tool that needs approval when no approver is configured, before it runs', async () => {
  rt.setPolicy(policy({ tools: ['echo'] }));
  const runId = 'approve-none';
  await assert.rejects(rt.invoke('echo', { a: 1 }, { runId }), (e: unknown) => {
    assert.equal(failure(e).code, ErrorCode.APPROVAL_REQUIRED);
    assert.match(failure(e).message, /invoking echo needs approval \(approvals\.tools\[0\] 'echo' matches echo\), and no approver is configured/);
    return true;
  });
  const records = await auditRecords(rt.dataDir, (r) => r.runId === runId);
  assert.deepEqual(
    records.map((r) => [r.kind, r.decision, r.code]),
    [
      ['approval', 'deny', ErrorCode.APPROVAL_REQUIRED],
      ['invoke.start', 'deny', ErrorCode.APPROVAL_REQUIRED],
    ],
  );
  assert.deepEqual(records[0]?.detail, { by: 'none', rule: 'approvals.tools[0]', target: 'echo' });
});

test('runs a tool once its approver says yes, and records who approved', async () => {
  const approve = recording(() => ({ approved: true, by: 'alice@example.com', reason: 'looks fine' }));
  rt.setPolicy(policy({ tools: ['echo'] }));
  const r = await rt.invoke('echo', { deploy: 'v2' }, { runId: 'approve-yes', approve });
  assert.equal(r.output, '{"deploy":"v2"}');
  assert.equal(approve.asked.length, 1);
  const asked = approve.asked[0] as ApprovalRequest;
  assert.deepEqual(
    { op: asked.op, tool: asked.tool, runId: asked.runId, target: asked.target, input: asked.input, rule: asked.rule },
    { op: 'tool.invoke', tool: 'echo', runId: 'approve-yes', target: 'echo', input: { deploy: 'v2' }, rule: 'approvals.tools[0]' },
  );
  assert.ok(asked.deadline > Date.now());
  const records = await auditRecords(rt.dataDir, (x) => x.runId === 'approve-yes');
  assert.deepEqual(
    records.map((x) => [x.kind, x.decision, x.code]),
    [
      ['approval', 'allow', 'ok'],
      ['invoke.start', 'allow', 'ok'],
      ['invoke.end', 'allow', 'ok'],
    ],
  );
  assert.equal(records[0]?.detail?.['by'], 'alice@example.com');
  assert.match(records[1]?.reason ?? '', /approved by alice@example\.com: looks fine/);
});

test('refuses a tool its approver says no to, and never runs it', async () => {
  rt.setPolicy(policy({ tools: ['echo'] }));
  const approve = recording(() => ({ approved: false, by: 'bob', reason: 'not during the freeze' }));
  await assert.rejects(rt.invoke('echo', {}, { runId: 'approve-no', approve }), (e: unknown) => {
    assert.equal(failure(e).code, ErrorCode.APPROVAL_DENIED);
    assert.equal(failure(e).message, 'invoking echo was refused by bob: not during the freeze');
    return true;
  });
  const kinds = (await auditRecords(rt.dataDir, (x) => x.runId === 'approve-no')).map((x) => [x.kind, x.code]);
  assert.deepEqual(kinds, [
    ['approval', ErrorCode.APPROVAL_DENIED],
    ['invoke.start', ErrorCode.APPROVAL_DENIED],
  ]);
});

test("an invocation's approver overrides the runtime's", async () => {
  const fallback = recording(() => ({ approved: false, by: 'runtime default' }));
  const own = recording(() => ({ approved: true, by: 'session user' }));
  const local = await testRuntime({ policy: policy({ tools: ['echo'] }), approve: fallback, audit: { durability: 'none' } });
  try {
    await local.register((await exampleTools(['echo']))['echo'] as string);
    await assert.rejects(local.invoke('echo', {}), (e: unknown) => failure(e).code === ErrorCode.APPROVAL_DENIED);
    assert.equal((await local.invoke('echo', {}, { approve: own })).output, '{}');
    assert.deepEqual([fallback.asked.length, own.asked.length], [1, 1]);
  } finally {
    await local.cleanup();
  }
});

test('asks before a marked host call, after the checks and before its intent record', async () => {
  rt.setPolicy(policy({ ops: ['fs.write'] }));
  const approve = recording(() => ({ approved: true, by: 'carol' }));
  const file = join(ws.path, 'approved.txt');
  await rt.invoke('write-file', { path: file, content: 'twelve bytes' }, { grants, runId: 'op-yes', approve });
  assert.equal(readFileSync(file, 'utf8'), 'twelve bytes');
  const asked = approve.asked[0] as ApprovalRequest;
  assert.deepEqual({ op: asked.op, tool: asked.tool, target: asked.target, bytes: asked.bytes, rule: asked.rule }, { op: 'fs.write', tool: 'write-file', target: file, bytes: 12, rule: 'approvals.ops[0]' });
  const records = await auditRecords(rt.dataDir, (x) => x.runId === 'op-yes');
  assert.deepEqual(
    records.map((x) => [x.kind, x.op ?? '', x.code]),
    [
      ['invoke.start', '', 'ok'],
      ['approval', 'fs.write', 'ok'],
      ['call.intent', 'fs.write', undefined],
      ['call.outcome', 'fs.write', 'ok'],
      ['invoke.end', '', 'ok'],
    ],
  );
  assert.match(records[2]?.reason ?? '', /approved by carol$/);
});

test('refuses a marked host call its approver says no to: the effect never happens', async () => {
  rt.setPolicy(policy({ ops: ['fs.write'] }));
  const file = join(ws.path, 'refused.txt');
  await assert.rejects(rt.invoke('write-file', { path: file, content: 'x' }, { grants, runId: 'op-no', approve: () => ({ approved: false, by: 'dave' }) }), (e: unknown) => {
    assert.deepEqual(
      denials(e).map((d) => [d.op, d.code]),
      [['fs.write', ErrorCode.APPROVAL_DENIED]],
    );
    assert.match(denials(e)[0]?.reason ?? '', /^fs\.write .*refused\.txt by write-file was refused by dave$/);
    return true;
  });
  assert.equal(existsSync(file), false);
  const kinds = (await auditRecords(rt.dataDir, (x) => x.runId === 'op-no')).map((x) => x.kind);
  assert.deepEqual(kinds, ['invoke.start', 'approval', 'call.denied', 'invoke.end']);
});

test('never asks about a host call another check already denied', async () => {
  rt.setPolicy(policy({ ops: ['fs.read'] }));
  const approve = recording(() => ({ approved: true, by: 'eve' }));
  await assert.rejects(rt.invoke('read-file', { path: '/etc/passwd' }, { grants, approve }), (e: unknown) => denials(e)[0]?.code === ErrorCode.POLICY_DENY);
  await assert.rejects(rt.invoke('read-file', { path: join(ws.path, 'x') }, { approve }), (e: unknown) => denials(e)[0]?.code === ErrorCode.CAP_MISSING);
  assert.equal(approve.asked.length, 0);
});

test('does not ask about operations the policy does not mark', async () => {
  rt.setPolicy(policy({ ops: ['fs.write'] }));
  const approve = recording(() => ({ approved: false, by: 'frank' }));
  await assert.rejects(rt.invoke('read-file', { path: join(ws.path, 'missing') }, { grants, approve }), (e: unknown) => failure(e).code === ErrorCode.TOOL_FAILED);
  assert.equal(approve.asked.length, 0);
});

test('fails closed: a throwing approver, a malformed answer and no answer in time are all denials', async () => {
  rt.setPolicy(policy({ tools: ['echo'], timeout_ms: 100 }));
  const answers: Array<[Approver, RegExp]> = [
    [
      () => {
        throw new Error('approval service down');
      },
      /the approver failed for invoking echo: approval service down/,
    ],
    [() => ({ approved: 'yes', by: 'mallory' }) as never, /gave no valid answer/],
    [() => ({ approved: true, by: '' }), /gave no valid answer/],
    [() => ({ approved: true, by: 'x'.repeat(129) }), /gave no valid answer/],
    [() => new Promise(() => {}), /no answer to the approval request for invoking echo in time/],
  ];
  for (const [approve, message] of answers) {
    await assert.rejects(rt.invoke('echo', {}, { approve }), (e: unknown) => {
      assert.equal(failure(e).code, ErrorCode.APPROVAL_REQUIRED);
      assert.match(failure(e).message, message);
      return true;
    });
  }
});

test('an approver can say that nobody can be asked', async () => {
  rt.setPolicy(policy({ tools: ['echo'] }));
  const approve: Approver = () => {
    throw new AuthorityError(ErrorCode.APPROVAL_REQUIRED, 'the on-call channel is not configured');
  };
  await assert.rejects(rt.invoke('echo', {}, { approve }), (e: unknown) => failure(e).code === ErrorCode.APPROVAL_REQUIRED && failure(e).message === 'the on-call channel is not configured');
});

test('the approval wait of a host call ends with the run: a halt stops it, and nothing is written', async () => {
  const local = await testRuntime({ policy: policy({ ops: ['fs.write'] }), audit: { durability: 'none' } });
  try {
    await local.register((await exampleTools(['write-file']))['write-file'] as string);
    const token = local.issueToken({ kind: 'fs', resource: '/**', methods: ['write'], ttlMs: 60_000 });
    let asked: (r: ApprovalRequest) => void = () => {};
    const waiting = new Promise<ApprovalRequest>((res) => (asked = res));
    const approve: Approver = (r) => {
      asked(r);
      return new Promise(() => {});
    };
    const run = local.invoke('write-file', { path: join(ws.path, 'late.txt'), content: 'x' }, { grants: [token], approve, timeoutMs: 60_000 });
    const outcome = run.then(
      () => undefined,
      (e: unknown) => e,
    );
    const request = await waiting;
    assert.equal(request.signal.aborted, false);
    await local.halt('operator stop');
    assert.equal(failure(await outcome).code, ErrorCode.HALTED);
    assert.equal(request.signal.aborted, true);
    assert.equal(existsSync(join(ws.path, 'late.txt')), false);
  } finally {
    await local.cleanup();
  }
});
