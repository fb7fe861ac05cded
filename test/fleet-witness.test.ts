/**
 * The audit witness: nodes publish their signed checkpoints to Redis, and a
 * node whose log is later rolled back below one is flagged, both by
 * `authority audit verify --witness` and by `authority audit fleet`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Keyring, inspectToken } from '../src/capability/index.ts';
import type { Fleet } from '../src/fleet/index.ts';
import { watFixture } from './helpers/fixtures.ts';
import { startRedis, type TestRedis } from './helpers/redis-server.ts';
import { tempDir, testRuntime } from './helpers/runtime.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'authority.js');
let redis: TestRedis;
let dir: { path: string; cleanup: () => void };
let counter: string;

before(async () => {
  redis = await startRedis();
  dir = tempDir('authority-witness-');
  Keyring.fromDataDir(join(dir.path, 'keys'), { create: true });
  counter = await watFixture('counter');
});
after(async () => {
  await redis.stop();
  dir.cleanup();
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args, '--redis', redis.url], { cwd: dir.path, env: { PATH: process.env['PATH'] ?? '' } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

/** Open node `name` on `dataDir`, run `n` invocations, close (which publishes the final checkpoint). */
async function session(dataDir: string, name: string, n: number): Promise<void> {
  const rt = await testRuntime({
    dataDir,
    keys: { file: join(dir.path, 'keys', 'keys.json') },
    policy: { version: '1.0', tools: { allow: ['*'] } },
    redis: { url: redis.url, node: name },
  });
  await rt.register(counter);
  for (let i = 0; i < n; i++) await rt.invoke('counter', {});
  await rt.close();
}

test('a node whose log was rolled back below a checkpoint it published is flagged; an intact one passes', async () => {
  const a = join(dir.path, 'node-a');
  const b = join(dir.path, 'node-b');
  await session(a, 'node-a', 3);
  await session(b, 'node-b', 2);
  const saved = join(dir.path, 'node-a.saved');
  cpSync(a, saved, { recursive: true });
  await session(a, 'node-a', 4);

  let r = await cli(['audit', 'verify', '--witness', '--data-dir', a, '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const okDoc = JSON.parse(r.stdout) as { ok: boolean; witness: { ok: boolean; witnessed: { node: string; size: number }; records: number } };
  assert.equal(okDoc.witness.witnessed.node, 'node-a');
  assert.equal(okDoc.witness.witnessed.size, okDoc.witness.records, 'the final checkpoint of a clean close covers every record');

  // Restore the older copy: the log and its own checkpoints agree with each other, so the local check passes...
  rmSync(a, { recursive: true });
  cpSync(saved, a, { recursive: true });
  r = await cli(['audit', 'verify', '--data-dir', a, '--json']);
  assert.equal(r.code, 0, 'locally the older copy is consistent');
  // ...but the witness remembers the larger checkpoint it was shown.
  r = await cli(['audit', 'verify', '--witness', '--data-dir', a]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /witness: PROBLEM \(rolled-back\): the log holds \d+ records, but node node-a published a checkpoint of \d+ records/);

  r = await cli(['audit', 'fleet', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const before = JSON.parse(r.stdout) as { nodes: Array<{ node: string; behind: number; regressed: unknown }> };
  assert.deepEqual(before.nodes.map((n) => n.node), ['node-a', 'node-b']);
  assert.ok(before.nodes.every((n) => n.behind === 0 && n.regressed === null));

  // The rolled-back node starts again and publishes a smaller checkpoint: the witness keeps the larger, and says so.
  await session(a, 'node-a', 0);
  r = await cli(['audit', 'fleet']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /node-a .* ROLLED BACK to \d+/);
  assert.match(r.stdout, /node-b /);
});

test('cap revoke --redis and halt --redis from the command line reach a running node', async () => {
  const rt = await testRuntime({
    keys: { file: join(dir.path, 'keys', 'keys.json') },
    policy: { version: '1.0', tools: { allow: ['*'] } },
    redis: { url: redis.url, node: 'cli-target' },
  });
  try {
    const token = rt.issueToken({ kind: 'fs', resource: '/tmp/x', methods: ['read'], ttlMs: 60_000 });
    const revoked = once(rt.fleet as Fleet, 'revoked');
    const r = await cli(['cap', 'revoke', token, '--data-dir', join(dir.path, 'cli-data'), '--reason', 'from the cli', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(JSON.parse(r.stdout).fleet, /^redis:\/\/127\.0\.0\.1:\d+/);
    const [entry] = (await revoked) as [{ id: string; reason: string; by: string }];
    assert.deepEqual([entry.id, entry.reason, entry.by], [inspectToken(token).tokenId, 'from the cli', 'cap-cli']);
    const halted = once(rt, 'halted');
    const h = await cli(['halt', '--reason', 'cli drill', '--json']);
    assert.equal(h.code, 0, h.stderr);
    assert.deepEqual(await halted, [{ reason: `fleet halt by halt-cli-${hostname()}: cli drill` }]);
    const c = await cli(['halt', '--clear', '--json']);
    assert.equal(JSON.parse(c.stdout).cleared, true);
  } finally {
    await rt.cleanup();
  }
});
