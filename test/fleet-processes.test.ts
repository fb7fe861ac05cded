/**
 * Three runtime processes on one real Redis: what one node spends, every
 * node sees. Each round sends 64 invocations at once, spread over the nodes,
 * against a budget or rate of 50; exactly 50 must take effect.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { Keyring, issueToken } from '../src/capability/index.ts';
import { verifyAudit } from '../src/audit/index.ts';
import { ErrorCode } from '../src/errors.ts';
import { exampleTools, watFixture } from './helpers/fixtures.ts';
import { startFleetNode, type FleetNode } from './helpers/fleet-node.ts';
import { startRedis, type TestRedis } from './helpers/redis-server.ts';
import { SHARED_CACHE, auditRecords, tempDir } from './helpers/runtime.ts';

const ROUNDS = 5;
let redis: TestRedis;
let nodes: FleetNode[] = [];
let dir: { path: string; cleanup: () => void };
let server: Server;
let port = 0;
let hits = 0;
let keyring: Keyring;

function policy(name: string, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    version: '1.0',
    name,
    tools: { allow: ['*'] },
    fs: { write: [`${dir.path}/ws/**`] },
    net: { connect: [`http://127.0.0.1:${port}`] },
    ...extra,
  };
}

before(async () => {
  dir = tempDir('authority-fleet-');
  mkdirSync(join(dir.path, 'ws'));
  server = createServer((_req, res) => {
    hits++;
    res.end('pong');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  keyring = Keyring.fromDataDir(join(dir.path, 'keys'), { create: true });
  const tools = await exampleTools(['write-file', 'fetch-url']);
  const counter = await watFixture('counter');
  redis = await startRedis();
  nodes = await Promise.all(
    ['node-a', 'node-b', 'node-c'].map((node) =>
      startFleetNode({
        node,
        dataDir: join(dir.path, node),
        keysFile: join(dir.path, 'keys', 'keys.json'),
        redisUrl: redis.url,
        policy: policy('fleet-start', {}),
        tools: [counter, tools['write-file'] as string, tools['fetch-url'] as string],
        cacheDir: SHARED_CACHE,
      }),
    ),
  );
});

after(async () => {
  await Promise.all(nodes.map((n) => n.close()));
  await redis?.stop();
  server?.close();
  dir?.cleanup();
});

/** 64 invocations at once, round-robin over the nodes. */
async function burst(tool: string, input: (i: number) => unknown, runId: string, grants: string[] = []) {
  return Promise.all(Array.from({ length: 64 }, (_, i) => (nodes[i % nodes.length] as FleetNode).call('invoke', { tool, input: input(i), runId, grants })));
}

async function setPolicy(doc: Record<string, unknown>): Promise<void> {
  for (const n of nodes) assert.equal((await n.call('setPolicy', { policy: doc })).ok, true);
}

test('a run budget of 50 tool calls: exactly 50 of 64 concurrent invocations on three nodes run, every round', async () => {
  await setPolicy(policy('fleet-tool-calls', { budgets: { tool_calls: 50 } }));
  for (let round = 0; round < ROUNDS; round++) {
    const replies = await burst('counter', () => ({}), `tool-calls-${round}`);
    for (const r of replies) if (!r.ok) assert.equal(r.code, ErrorCode.BUDGET_EXCEEDED, r.message);
    assert.equal(replies.filter((r) => r.ok).length, 50, `round ${round}`);
    // Every node took part in spending it.
    for (let k = 0; k < 3; k++) assert.ok(replies.some((r, i) => i % 3 === k && r.ok), `node ${k} ran some`);
  }
});

test('a byte budget of 500 written bytes: exactly 50 ten-byte writes take effect, every round', async () => {
  await setPolicy(policy('fleet-bytes', { budgets: { fs_write_bytes: 500 } }));
  const grant = issueToken(keyring, { kind: 'fs', resource: `${dir.path}/ws/**`, methods: ['write'], ttlMs: 600_000 });
  for (let round = 0; round < ROUNDS; round++) {
    const out = join(dir.path, 'ws', `r${round}`);
    mkdirSync(out);
    const replies = await burst('write-file', (i) => ({ path: join(out, `f${i}.txt`), content: '0123456789' }), `bytes-${round}`, [grant]);
    for (const r of replies) if (!r.ok) assert.match(r.message, /budgets\.fs_write_bytes 500 spent/);
    assert.equal(replies.filter((r) => r.ok).length, 50, `round ${round}`);
    assert.equal(readdirSync(out).length, 50, 'exactly 50 files were written');
  }
});

test('a fleet-wide rate limit of 50 per host: exactly 50 fetches reach the server, every round', async () => {
  const grant = issueToken(keyring, { kind: 'net', resource: `http://127.0.0.1:${port}/**`, methods: ['GET'], ttlMs: 600_000 });
  for (let round = 0; round < ROUNDS; round++) {
    // A fresh policy name per round is a fresh rate bucket (the name is the limits' namespace).
    await setPolicy(policy(`fleet-rate-${round}`, { limits: { hosts: { '127.0.0.1': { rate: '50/h', burst: 50 } } } }));
    hits = 0;
    const replies = await burst('fetch-url', () => ({ url: `http://127.0.0.1:${port}/ping` }), `rate-${round}`, [grant]);
    // The tool reports the gate's refusal in its own words.
    for (const r of replies) if (!r.ok) assert.match(r.message, /rate-limited: retry after \d+ ms/);
    assert.equal(replies.filter((r) => r.ok).length, 50, `round ${round}`);
    assert.equal(hits, 50, 'the server saw exactly 50 requests');
  }
});

test("every node's audit log holds each of its invocations", async () => {
  let total = 0;
  for (const n of nodes) {
    const starts = await auditRecords(join(dir.path, n.name), (r) => r.kind === 'invoke.start');
    assert.ok(starts.length > 0, `${n.name} recorded its invocations`);
    total += starts.length;
  }
  assert.equal(total, 64 * ROUNDS * 3, 'one invoke.start per invocation, allowed or denied');
});

test('Redis killed mid-load: calls fail closed with E_STATE_UNAVAILABLE, no node crashes, no audit record is lost, service resumes', async () => {
  await setPolicy(policy('fleet-kill', { budgets: { tool_calls: 1_000_000 } }));
  const before = await Promise.all(nodes.map(async (n) => (await auditRecords(join(dir.path, n.name), (r) => r.kind === 'invoke.start')).length));
  const sent = [0, 0, 0];
  const replies: Array<{ phase: string; ok: boolean; code?: string | undefined; message?: string | undefined }> = [];
  const batch = async (phase: string): Promise<boolean> => {
    const rs = await Promise.all(
      Array.from({ length: 12 }, (_, i) => {
        sent[i % 3] = (sent[i % 3] as number) + 1;
        return (nodes[i % 3] as FleetNode).call('invoke', { tool: 'counter', input: {}, runId: `kill-${phase}` });
      }),
    );
    for (const r of rs) replies.push({ phase, ok: r.ok, code: r.ok ? undefined : r.code, message: r.ok ? undefined : r.message });
    return rs.every((r) => r.ok);
  };
  assert.ok(await batch('up'), `all pass while Redis is up: ${JSON.stringify(replies.filter((r) => !r.ok).slice(0, 2))}`);
  const load = (async () => {
    for (let i = 0; i < 3; i++) await batch('dying');
  })();
  await redis.kill();
  await load;
  for (let i = 0; i < 3; i++) await batch('down');
  const down = replies.filter((r) => r.phase === 'down');
  assert.ok(down.every((r) => !r.ok && r.code === ErrorCode.STATE_UNAVAILABLE), `every call fails closed while Redis is down: ${JSON.stringify(down.slice(0, 3))}`);
  for (const r of replies) if (!r.ok) assert.equal(r.code, ErrorCode.STATE_UNAVAILABLE);
  await redis.restart();
  let resumed = false;
  for (let i = 0; i < 100 && !resumed; i++) {
    resumed = await batch('back');
    if (!resumed) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(resumed, 'service resumes once Redis is back');
  for (const n of nodes) assert.equal(n.proc.exitCode, null, `${n.name} is still running`);
  for (const [k, n] of nodes.entries()) {
    const starts = (await auditRecords(join(dir.path, n.name), (r) => r.kind === 'invoke.start')).length;
    assert.equal(starts - (before[k] as number), sent[k], `${n.name}: one invoke.start per invocation sent, allowed or refused`);
    const report = await verifyAudit({ dir: join(dir.path, n.name) });
    assert.equal(report.firstBad, null, `${n.name}'s log verifies`);
  }
});
