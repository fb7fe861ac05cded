import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../src/errors.ts';
import { exampleTools, FIXTURES, watFixture } from './helpers/fixtures.ts';
import { SHARED_CACHE, tempDir } from './helpers/runtime.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'authority.js');
const KEY = 'cli-weather-key-abcdef';

let dir: ReturnType<typeof tempDir>;
let tools: Record<string, string>;
let server: Server;
let port = 0;
let policyFile: string;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir.path, env: { PATH: process.env['PATH'] ?? '', AUTHORITY_DATA_DIR: join(dir.path, 'data'), ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  tools = await exampleTools(['word-count', 'read-file', 'write-file', 'fetch-url', 'weather']);
  dir = tempDir('authority-cli-');
  // Share the compile cache so each child does not transpile the tools again.
  mkdirSync(join(dir.path, 'data'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir.path, 'ws', 'out'), { recursive: true });
  writeFileSync(join(dir.path, 'ws', 'in.txt'), 'from the cli\n');
  server = createServer((req, res) => {
    if (req.url?.startsWith('/v1/current')) {
      res.writeHead(req.headers.authorization === `Bearer ${KEY}` ? 200 : 401).end('{"tempC":18}');
      return;
    }
    res.end('pong');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  policyFile = join(dir.path, 'policy.json');
  writeFileSync(
    policyFile,
    JSON.stringify({
      version: '1.0',
      fs: { read: [`${dir.path}/ws/**`], write: [`${dir.path}/ws/out/**`] },
      net: { connect: [`http://127.0.0.1:${port}`] },
      secrets: { WEATHER_KEY: { hosts: [`http://127.0.0.1:${port}`] } },
      tools: { allow: ['*'] },
    }),
  );
  // Tools by name: put them in the data folder's tools/.
  mkdirSync(join(dir.path, 'data', 'tools'), { recursive: true });
  for (const [name, path] of Object.entries(tools)) copyFileSync(path, join(dir.path, 'data', 'tools', `${name}.wasm`));
  void SHARED_CACHE;
});

after(() => {
  server.close();
  dir.cleanup();
});

async function grant(...args: string[]): Promise<string> {
  const r = await cli(['cap', 'issue', ...args, '--ttl', '1h']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test('runs every example tool from the CLI with a policy file and grants', async () => {
  const fsToken = await grant('--kind', 'fs', '--resource', `${dir.path}/ws/**`, '--methods', 'read,write');
  const netToken = await grant('--kind', 'net', '--resource', `http://127.0.0.1:${port}/**`, '--methods', 'GET');
  const useToken = await grant('--kind', 'secrets', '--resource', 'WEATHER_KEY', '--methods', 'use');
  const common = ['--policy', policyFile, '--json'];

  let r = await cli(['run', 'word-count', '--input', '{"text":"a b c"}', ...common]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(JSON.parse(r.stdout).output).words, 3);

  r = await cli(['run', 'read-file', '--input', JSON.stringify({ path: `${dir.path}/ws/in.txt` }), '--grant', fsToken, ...common]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(JSON.parse(r.stdout).output).content, 'from the cli\n');

  r = await cli(['run', 'write-file', '--input', JSON.stringify({ path: `${dir.path}/ws/out/o.txt`, content: 'x' }), '--grant', fsToken, ...common]);
  assert.equal(r.code, 0, r.stderr);

  r = await cli(['run', tools['fetch-url'] as string, '--input', JSON.stringify({ url: `http://127.0.0.1:${port}/ping` }), '--grant', netToken, ...common]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(JSON.parse(r.stdout).output).body, 'pong');

  r = await cli(
    ['run', 'weather', '--input', JSON.stringify({ city: 'Porto', endpoint: `http://127.0.0.1:${port}` }), '--grant', netToken, '--grant', useToken, '--secret-env', 'WEATHER_KEY=TEST_WEATHER', ...common],
    { TEST_WEATHER: KEY },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(JSON.parse(r.stdout).output), { tempC: 18 });
  assert.ok(!r.stdout.includes(KEY) && !r.stderr.includes(KEY));
});

test('a denied call exits 1 with the gate code in the --json output', async () => {
  const fsToken = await grant('--kind', 'fs', '--resource', '/**', '--methods', 'read');
  const r = await cli(['run', 'read-file', '--input', '{"path":"/etc/passwd"}', '--grant', fsToken, '--policy', policyFile, '--json']);
  assert.equal(r.code, 1);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.ok, false);
  assert.equal(doc.error.data.denials[0].code, ErrorCode.POLICY_DENY);
  assert.equal(doc.error.data.denials[0].op, 'fs.read');
});

test('a tool the policy refuses exits 1 with E_POLICY_DENY; bad usage exits 2', async () => {
  let r = await cli(['run', 'word-count', '--input', '{"text":"x"}', '--json']);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.stdout).error.code, ErrorCode.POLICY_DENY);
  r = await cli(['run', 'word-count', '--input', 'not json']);
  assert.equal(r.code, 2);
  r = await cli(['run', 'no-such-tool', '--input', '{}']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no tool named no-such-tool/);
});

test('tools inspect refuses a WASI-importing component by name, exit 2', async () => {
  const sneaky = await watFixture('wasi-import', { witDir: join(FIXTURES, 'wasi-import'), world: 'sneaky' });
  const r = await cli(['tools', 'inspect', sneaky, '--json']);
  assert.equal(r.code, 2);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.error.code, ErrorCode.COMPONENT_IMPORT);
  assert.equal(doc.error.data.import, 'wasi:cli/environment@0.2.3');
});

test('tools list describes every component in the tools folder', async () => {
  const r = await cli(['tools', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.deepEqual(
    doc.tools.map((t: { tool: { name: string } }) => t.tool.name).sort(),
    ['fetch-url', 'read-file', 'weather', 'word-count', 'write-file'],
  );
});
