/**
 * `authority runs list|show|undo|prune` over a data folder where a real tool
 * overwrote and removed files.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { main } from '../src/cli/main.ts';
import type { CliIO } from '../src/cli/types.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { tempDir, testRuntime } from './helpers/runtime.ts';

let ws: { path: string; cleanup: () => void };
let data: { path: string; cleanup: () => void };
let policyFile: string;

before(async () => {
  ws = tempDir('authority-runs-ws-');
  data = tempDir('authority-runs-data-');
  fs.writeFileSync(path.join(ws.path, 'report.txt'), 'the real report\n');
  fs.writeFileSync(path.join(ws.path, 'config.json'), '{"keep":true}\n');
  const policy = { version: '1.0', name: 'runs-cli', fs: { read: [`${ws.path}/**`], write: [`${ws.path}/**`] }, tools: { allow: ['fs-probe'] }, undo: { tools: ['fs-probe'] } };
  policyFile = path.join(data.path, 'policy.json');
  fs.writeFileSync(policyFile, JSON.stringify(policy));
  const rt = await testRuntime({ dataDir: data.path, policy, audit: { durability: 'none' } });
  await rt.register(await jsFixture('fs-probe'), { limits: { timeoutMs: 120_000 } });
  const grants = [rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read', 'write', 'remove'], ttlMs: 3_600_000 })];
  await rt.invoke('fs-probe', { ops: [{ op: 'read', path: path.join(ws.path, 'report.txt') }] }, { grants, runId: 'run-reader' });
  await rt.invoke('fs-probe', { ops: [{ op: 'write', path: path.join(ws.path, 'report.txt'), data: 'garbage' }, { op: 'remove', path: path.join(ws.path, 'config.json') }] }, { grants, runId: 'run-vandal' });
  await rt.close();
});

after(() => {
  ws.cleanup();
  data.cleanup();
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = { out: (t) => void (out += t), err: (t) => void (err += t), log: pino({ level: 'silent' }), env: {}, cwd: data.path };
  const code = await main(argv, io);
  return { code, out, err };
}

test('runs list shows the runs newest first with their reversible changes', async () => {
  const r = await cli('runs', 'list', '--data-dir', data.path, '--json');
  assert.equal(r.code, 0, r.err);
  const doc = JSON.parse(r.out) as { runs: { id: string; tool: string; outcome: string; reversible: number }[] };
  assert.deepEqual(doc.runs.map((x) => [x.id, x.tool, x.outcome, x.reversible]), [
    ['run-vandal', 'fs-probe', 'ok', 2],
    ['run-reader', 'fs-probe', 'ok', 0],
  ]);
  const human = await cli('runs', 'list', '--data-dir', data.path);
  assert.match(human.out, /run-vandal\s+fs-probe/);
});

test('runs show lists the host calls of a run; an unknown run is a usage error', async () => {
  const r = await cli('runs', 'show', 'run-vandal', '--data-dir', data.path);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /fs\.write\s+allow ok .*report\.txt .*\(reversible\)/);
  assert.match(r.out, /fs\.remove\s+allow ok .*config\.json/);
  assert.equal((await cli('runs', 'show', 'no-such-run', '--data-dir', data.path)).code, 2);
});

test('runs undo --dry-run plans without touching a file; runs undo restores both; a second undo has nothing left', async () => {
  const dry = await cli('runs', 'undo', 'run-vandal', '--data-dir', data.path, '--policy', policyFile, '--dry-run', '--json');
  assert.equal(dry.code, 0, dry.out + dry.err);
  assert.deepEqual((JSON.parse(dry.out) as { plan: { steps: { state: string }[] } }).plan.steps.map((s) => s.state), ['ready', 'ready']);
  assert.equal(fs.readFileSync(path.join(ws.path, 'report.txt'), 'utf8'), 'garbage');
  const r = await cli('runs', 'undo', 'run-vandal', '--data-dir', data.path, '--policy', policyFile);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /restored 2, conflicts 0/);
  assert.equal(fs.readFileSync(path.join(ws.path, 'report.txt'), 'utf8'), 'the real report\n');
  assert.equal(fs.readFileSync(path.join(ws.path, 'config.json'), 'utf8'), '{"keep":true}\n');
  const again = await cli('runs', 'undo', 'run-vandal', '--data-dir', data.path, '--policy', policyFile, '--json');
  assert.equal((JSON.parse(again.out) as { result: { restored: number; skipped: number } }).result.restored, 0);
  const verify = await cli('audit', 'verify', '--data-dir', data.path);
  assert.equal(verify.code, 0, verify.out);
});

test('runs prune drops pre-images by age and total size, and needs one of them', async () => {
  assert.equal((await cli('runs', 'prune', '--data-dir', data.path)).code, 2);
  assert.equal((await cli('runs', 'prune', '--data-dir', data.path, '--max-age', 'soon')).code, 2);
  const keep = await cli('runs', 'prune', '--data-dir', data.path, '--max-age', '30d', '--json');
  assert.equal((JSON.parse(keep.out) as { removed: number; kept: number }).removed, 0);
  const dry = await cli('runs', 'prune', '--data-dir', data.path, '--max-size', '0', '--dry-run', '--json');
  const d = JSON.parse(dry.out) as { removed: number; kept: number };
  assert.ok(d.removed >= 2);
  assert.equal(fs.readdirSync(path.join(data.path, 'undo', 'objects')).length, d.removed);
  const real = await cli('runs', 'prune', '--data-dir', data.path, '--max-size', '0', '--json');
  assert.equal((JSON.parse(real.out) as { kept: number }).kept, 0);
  assert.deepEqual(fs.readdirSync(path.join(data.path, 'undo', 'objects')), []);
});
