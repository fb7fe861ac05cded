/**
 * Shared revocations and the fleet's stop switch, between runtimes that are
 * separate fleet nodes (each its own Fleet connection and data folder) on one
 * real Redis; and what a node does while it cannot know the shared state.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Keyring, RevocationList, checkCapability, inspectToken } from '../src/capability/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import type { Fleet } from '../src/fleet/index.ts';
import type { Runtime } from '../src/runtime.ts';
import { watFixture } from './helpers/fixtures.ts';
import { startRedis, type TestRedis } from './helpers/redis-server.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

const HAMMER_FILE = '/tmp/hammer';
let redis: TestRedis;
let keys: { path: string; cleanup: () => void };
let hammer: string;
const open: Array<Runtime & { cleanup: () => Promise<void> }> = [];

before(async () => {
  writeFileSync(HAMMER_FILE, 'hammer\n');
  redis = await startRedis();
  keys = tempDir();
  Keyring.fromDataDir(keys.path, { create: true });
  hammer = await watFixture('hammer');
});
after(async () => {
  for (const rt of open) await rt.cleanup();
  await redis.stop();
  keys.cleanup();
});

/** A runtime that is its own fleet node. */
async function node(name: string, extra: { graceMs?: number; pollMs?: number; prefix?: string } = {}, register = true): Promise<Runtime & { cleanup: () => Promise<void> }> {
  const rt = await testRuntime({
    keys: { file: join(keys.path, 'keys.json') },
    policy: { version: '1.0', name: 'fleet-state', tools: { allow: ['*'] }, fs: { read: [HAMMER_FILE] } },
    redis: { url: redis.url, node: name, commandTimeoutMs: 300, ...extra },
  });
  open.push(rt);
  if (register) await rt.register(hammer);
  return rt;
}

const denialOf = async (rt: Runtime, grant: string, runId?: string) => {
  const r = await rt.invoke('hammer', { n: 1 }, { grants: [grant], runId });
  return r.denials[0];
};

test('a token revoked on one node is refused by the next host call on another, and it is audited there', async () => {
  const a = await node('rev-a', { prefix: 'rev' });
  const b = await node('rev-b', { prefix: 'rev' });
  const grant = a.issueToken({ kind: 'fs', resource: HAMMER_FILE, methods: ['read'], ttlMs: 60_000 });
  assert.equal(await denialOf(b, grant), undefined, 'allowed before the revocation');
  const seen = once(b.fleet as Fleet, 'revoked');
  await a.revokeToken(inspectToken(grant).tokenId, 'leaked in a log');
  await seen;
  const d = await denialOf(b, grant);
  assert.equal(d?.code, ErrorCode.CAP_REVOKED);
  assert.match(d?.reason ?? '', /revoked: leaked in a log/);
  const denied = await auditRecords(b.dataDir, (r) => r.kind === 'call.denied');
  assert.equal(denied.length, 1);
  assert.equal(denied[0]?.code, ErrorCode.CAP_REVOKED);
});

test('a run revoked on one node is refused at admission on another', async () => {
  const a = await node('run-a', { prefix: 'run' });
  const b = await node('run-b', { prefix: 'run' });
  const grant = a.issueToken({ kind: 'fs', resource: HAMMER_FILE, methods: ['read'], ttlMs: 60_000 });
  assert.equal(await denialOf(b, grant, 'session-9'), undefined);
  const seen = once(b.fleet as Fleet, 'revoked');
  await a.revokeRun('session-9');
  await seen;
  await assert.rejects(b.invoke('hammer', { n: 1 }, { grants: [grant], runId: 'session-9' }), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CAP_REVOKED);
  assert.equal(await denialOf(b, grant, 'session-10'), undefined, 'other runs go on');
});

test('a fleet halt from one node halts the others, with the reason in their audit logs; a node started while it is in force starts halted', async () => {
  const a = await node('halt-a', { prefix: 'halt' });
  const b = await node('halt-b', { prefix: 'halt' });
  const halted = once(b, 'halted');
  await (a.fleet as Fleet).halt('incident 42');
  await halted;
  assert.match(b.halted ?? '', /^fleet halt by halt-a: incident 42$/);
  await assert.rejects(b.invoke('hammer', { n: 1 }), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.HALTED);
  const rec = await auditRecords(b.dataDir, (r) => r.kind === 'halt');
  assert.equal(rec.length, 1);
  assert.match(rec[0]?.reason ?? '', /incident 42/);
  const c = await node('halt-c', { prefix: 'halt' }, false);
  assert.match(c.halted ?? '', /incident 42/, 'starts halted');
  assert.equal(await (a.fleet as Fleet).clearHalt(), true);
  const d = await node('halt-d', { prefix: 'halt' });
  assert.equal(d.halted, undefined, 'after the halt is cleared, a new node runs');
});

test('a revocation published while a node was disconnected from pub/sub reaches it by the resync', async () => {
  const a = await node('sync-a', { prefix: 'sync' });
  const b = await node('sync-b', { prefix: 'sync', pollMs: 50 });
  const grant = a.issueToken({ kind: 'fs', resource: HAMMER_FILE, methods: ['read'], ttlMs: 60_000 });
  // Cut every pub/sub connection: b's subscriber is among them and must reconnect.
  const fleetA = a.fleet as Fleet;
  await fleetA.client.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
  await a.revokeToken(inspectToken(grant).tokenId, 'during the cut');
  const deadline = Date.now() + 5000;
  let d;
  while (Date.now() < deadline) {
    d = await denialOf(b, grant);
    if (d !== undefined) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(d?.code, ErrorCode.CAP_REVOKED);
});

test('Redis unreachable past the grace: host calls and admissions fail closed with E_STATE_UNAVAILABLE, audited; the node recovers by itself', async () => {
  const own = await startRedis();
  const rt = await testRuntime({
    keys: { file: join(keys.path, 'keys.json') },
    policy: { version: '1.0', name: 'fleet-down', tools: { allow: ['*'] }, fs: { read: [HAMMER_FILE] } },
    redis: { url: own.url, node: 'down-a', graceMs: 200, pollMs: 50, commandTimeoutMs: 200 },
  });
  try {
    await rt.register(hammer);
    const grant = rt.issueToken({ kind: 'fs', resource: HAMMER_FILE, methods: ['read'], ttlMs: 60_000 });
    assert.equal(await denialOf(rt, grant), undefined);
    const fleet = rt.fleet as Fleet;
    const unknown = once(fleet, 'unknown');
    await own.kill();
    assert.deepEqual(await unknown, [true]);
    // Admission asks whether the run was revoked anywhere: it cannot know, so it refuses.
    await assert.rejects(rt.invoke('hammer', { n: 1 }, { grants: [grant], runId: 'r-down' }), (e: unknown) => {
      assert.ok(e instanceof AuthorityError);
      assert.equal(e.code, ErrorCode.STATE_UNAVAILABLE);
      assert.match(e.message, /have not been confirmed for \d+ ms, over the grace of 200 ms/);
      return true;
    });
    const audited = await auditRecords(rt.dataDir, (r) => r.kind === 'invoke.start' && r.code === ErrorCode.STATE_UNAVAILABLE);
    assert.equal(audited.length, 1, 'the refusal is in the audit log');
    // The capability check of a host call in a run already going answers the same.
    const cap = checkCapability(rt.prepareGrants([grant]), { kind: 'fs', resource: HAMMER_FILE, method: 'read' }, { runId: 'r-going', revocations: fleet.checker(RevocationList.memory()) });
    assert.equal(cap.allow === false && cap.code, ErrorCode.STATE_UNAVAILABLE);
    const known = once(fleet, 'unknown');
    await own.restart();
    assert.deepEqual(await known, [false]);
    assert.equal(await denialOf(rt, grant), undefined, 'calls pass again once Redis answers');
  } finally {
    await rt.cleanup();
    await own.stop();
  }
});
