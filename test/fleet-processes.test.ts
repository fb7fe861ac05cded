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
    const ok = replies.filter((r) => r.ok);
    assert.equal(ok.length, 50, `round ${round}`);
    for (const r of replies) if (!r.ok) assert.equal(r.code, ErrorCode.BUDGET_EXCEEDED, r.message);
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
    assert.equal(replies.filter((r) => r.ok).length, 50, `round ${round}`);
    for (const r of replies) if (!r.ok) assert.match(r.message, /budgets\.fs_write_bytes 500 spent/);
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
    assert.equal(replies.filter((r) => r.ok).length, 50, `round ${round}`);
    // The tool reports the gate's refusal in its own words.
    for (const r of replies) if (!r.ok) assert.match(r.message, /rate-limited: retry after \d+ ms/);
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
