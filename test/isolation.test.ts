/**
 * The bounds around the sandbox that are not about one tool: concurrency
 * limits and queues, the stop switch (in-process and across processes), and
 * what happens when the audit log itself fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeAuditIo, type AuditIo } from '../src/audit/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { exampleTools, watFixture } from './helpers/fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'authority.js');
const ALLOW_ALL_TOOLS = { version: '1.0', tools: { allow: ['*'] } };

function settle(p: Promise<unknown>): Promise<AuthorityError | 'ok'> {
  return p.then(
    () => 'ok' as const,
    (e: unknown) => {
      assert.ok(e instanceof AuthorityError, String(e));
      return e;
    },
  );
}

test('a tool at its concurrency limit queues, and refuses with E_OVERLOADED past its queue', async (t) => {
  const rt = await testRuntime({ policy: ALLOW_ALL_TOOLS });
  t.after(() => rt.cleanup());
  await rt.register(await watFixture('spin'), { limits: { timeoutMs: 300, maxConcurrency: 1, maxQueued: 1 } });
  const first = settle(rt.invoke('spin', {}));
  const second = settle(rt.invoke('spin', {}));
  const third = await settle(rt.invoke('spin', {}));
  assert.ok(third !== 'ok' && third.code === ErrorCode.OVERLOADED, 'the third is refused at once');
  assert.equal(((await first) as AuthorityError).code, ErrorCode.TIMEOUT);
  assert.equal(((await second) as AuthorityError).code, ErrorCode.TIMEOUT, 'the queued one ran after the first');
  const refused = await auditRecords(rt.dataDir, (r) => r.kind === 'invoke.start' && r.code === ErrorCode.OVERLOADED);
  assert.equal(refused.length, 1, 'the refusal is on record');
});

test('the pool refuses with E_OVERLOADED past its global queue, without growing', async (t) => {
  const rt = await testRuntime({ policy: ALLOW_ALL_TOOLS, pool: { size: 1, maxQueue: 2 } });
  t.after(() => rt.cleanup());
  await rt.register(await watFixture('spin'), { limits: { timeoutMs: 300 } });
  const runs = Array.from({ length: 5 }, () => settle(rt.invoke('spin', {})));
  const results = await Promise.all(runs);
  const codes = results.map((r) => (r === 'ok' ? 'ok' : r.code)).sort();
  assert.deepEqual(codes, [ErrorCode.OVERLOADED, ErrorCode.OVERLOADED, ErrorCode.TIMEOUT, ErrorCode.TIMEOUT, ErrorCode.TIMEOUT]);
});

test('`authority halt` in another process stops a running invocation and the reason is audited', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const rt = await testRuntime({ policy: ALLOW_ALL_TOOLS, dataDir: dir.path });
  t.after(() => rt.close());
  await rt.register(await watFixture('spin'), { limits: { timeoutMs: 60_000 } });
  const running = settle(rt.invoke('spin', {}));
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [BIN, 'halt', '--reason', 'operator pulled the switch', '--data-dir', rt.dataDir], (err) => (err ? reject(err) : resolve())),
  );
  const ended = await running;
  assert.ok(ended !== 'ok' && ended.code === ErrorCode.HALTED);
  assert.match(rt.halted ?? '', /operator pulled the switch/);
  const halts = await auditRecords(rt.dataDir, (r) => r.kind === 'halt');
  assert.equal(halts.length, 1);
  assert.match(halts[0]?.reason ?? '', /operator pulled the switch/);
  // A runtime opened on the same folder while the file exists starts halted.
  await rt.close();
  const rt2 = await testRuntime({ policy: ALLOW_ALL_TOOLS, dataDir: rt.dataDir });
  try {
  const tools = await exampleTools(['echo']);
    await assert.rejects(rt2.register(tools['echo'] as string), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.HALTED);
  } finally {
    await rt2.close();
  }
});

test('when the audit log fails, the call fails closed and the runtime halts', async (t) => {
  let syncs = 0;
  const failing: AuditIo = {
    ...nodeAuditIo,
    fdatasync: async (fd) => {
      if (++syncs > 6) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      return nodeAuditIo.fdatasync(fd);
    },
  };
  const rt = await testRuntime({ policy: ALLOW_ALL_TOOLS, audit: { io: failing } });
  t.after(() => rt.cleanup().catch(() => undefined));
  const tools = await exampleTools(['echo']);
  await rt.register(tools['echo'] as string);
  let error: AuthorityError | 'ok' = 'ok';
  for (let i = 0; i < 10 && error === 'ok'; i++) error = await settle(rt.invoke('echo', { i }));
  assert.ok(error !== 'ok', 'an invocation failed once the log could not sync');
  assert.equal(error.code, ErrorCode.AUDIT_WRITE);
  await new Promise((r) => setTimeout(r, 50));
  assert.match(rt.halted ?? '', /audit log failed/);
  await assert.rejects(rt.invoke('echo', {}), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.HALTED);
});
