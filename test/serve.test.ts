/**
 * `authority serve` as a real process, driven by the MCP SDK's own
 * Streamable HTTP client: bearer tokens choose grants profiles, each session
 * is its own run, a bad token gets 401, and /metrics parses as Prometheus text.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { exampleTools } from './helpers/fixtures.ts';
import { SHARED_CACHE, tempDir } from './helpers/runtime.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'authority.js');
let dir: { path: string; cleanup: () => void };
let server: ChildProcess;
let base = '';
const tokens: Record<string, string> = {};
let stderr = '';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir.path, env: { PATH: process.env['PATH'] ?? '', AUTHORITY_DATA_DIR: join(dir.path, 'data') } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code ?? 1), stdout, stderr });
    });
  });
}

before(async () => {
  dir = tempDir('authority-serve-');
  const ws = join(dir.path, 'ws');
  mkdirSync(join(ws, 'a'), { recursive: true });
  mkdirSync(join(ws, 'b'), { recursive: true });
  writeFileSync(join(ws, 'a', 'x.txt'), 'for a');
  writeFileSync(join(ws, 'b', 'y.txt'), 'for b');
  const tools = await exampleTools(['read-file']);
  mkdirSync(join(dir.path, 'tools'));
  copyFileSync(tools['read-file'] as string, join(dir.path, 'tools', 'read-file.wasm'));
  writeFileSync(join(dir.path, 'policy.json'), JSON.stringify({ version: '1.0', name: 'serve-test', tools: { allow: ['*'] }, fs: { read: [`${ws}/**`] } }));
  const access = join(dir.path, 'access.json');
  writeFileSync(
    access,
    JSON.stringify({
      profiles: {
        'reads-a': { grants: [{ kind: 'fs', resource: `${ws}/a/**`, methods: ['read'] }] },
        'reads-b': { grants: [{ kind: 'fs', resource: `${ws}/b/**`, methods: ['read'] }] },
      },
      tokens: [],
    }),
  );
  for (const [name, profile] of [
    ['agent-a', 'reads-a'],
    ['agent-b', 'reads-b'],
  ] as const) {
    const r = await cli(['serve', 'token', '--access', access, '--profile', profile, '--name', name]);
    assert.equal(r.code, 0, r.stderr);
    tokens[name] = r.stdout.trim();
    assert.match(tokens[name] as string, /^asv_[A-Za-z0-9_-]{43}$/);
  }
  const stored = (await import('node:fs')).readFileSync(access, 'utf8');
  for (const t of Object.values(tokens)) assert.ok(!stored.includes(t), 'the access file never holds a token in clear');

  server = spawn(
    process.execPath,
    [BIN, 'serve', '--access', access, '--port', '0', '--policy', join(dir.path, 'policy.json'), '--tools', join(dir.path, 'tools'), '--cache-dir', SHARED_CACHE],
    { cwd: dir.path, env: { PATH: process.env['PATH'] ?? '', AUTHORITY_DATA_DIR: join(dir.path, 'data') }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  base = await new Promise<string>((resolve, reject) => {
    server.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /MCP at (http:\/\/127\.0\.0\.1:\d+)\/mcp/.exec(stderr);
      if (m !== null) resolve(m[1] as string);
    });
    server.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
});

after(async () => {
  if (server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  dir.cleanup();
});

async function connect(token: string): Promise<Client> {
  const client = new Client({ name: 'serve-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  return client;
}

type Result = { isError?: boolean; content: Array<{ type: string; text?: string }>; _meta?: Record<string, { ok: boolean; runId: string; code?: string }> };
const read = async (c: Client, path: string) => (await c.callTool({ name: 'read-file', arguments: { path } })) as Result;
const meta = (r: Result) => r._meta?.['authority-sandbox/result'];

test('two clients at once with different tokens get their own profiles’ grants and their own runs', async () => {
  const [a, b] = await Promise.all([connect(tokens['agent-a'] as string), connect(tokens['agent-b'] as string)]);
  try {
    const ws = join(dir.path, 'ws');
    const [aOwn, bOwn, aOther, bOther] = await Promise.all([read(a, `${ws}/a/x.txt`), read(b, `${ws}/b/y.txt`), read(a, `${ws}/b/y.txt`), read(b, `${ws}/a/x.txt`)]);
    assert.notEqual(aOwn.isError, true, JSON.stringify(aOwn));
    assert.equal(JSON.parse(aOwn.content[0]?.text ?? '{}').content, 'for a');
    assert.equal(JSON.parse(bOwn.content[0]?.text ?? '{}').content, 'for b');
    // The tool reports the refusal; the gate's code is in the result's meta.
    for (const r of [aOther, bOther]) assert.match(JSON.stringify(r), /E_CAP_SCOPE|E_CAP_MISSING/);
    const runA = meta(aOwn)?.runId;
    const runB = meta(bOwn)?.runId;
    assert.match(runA ?? '', /^serve-agent-a-/);
    assert.match(runB ?? '', /^serve-agent-b-/);
    assert.equal(meta(aOther)?.runId, runA, 'one run per session');
    const tools = await a.listTools();
    assert.deepEqual(tools.tools.map((t) => t.name), ['read-file']);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('a bad or missing bearer token gets 401 before any MCP, and a session cannot be used with another token', async () => {
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
  const post = (headers: Record<string, string>) =>
    fetch(`${base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(init) });
  const cases: Array<Record<string, string>> = [{}, { authorization: 'Bearer asv_not-a-real-token-at-all-xxxxxxxxxxxxxxxxxxxxx' }, { authorization: `Basic ${tokens['agent-a']}` }];
  for (const headers of cases) {
    const r = await post(headers);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="authority"');
  }
  await assert.rejects(connect('asv_wrong-wrong-wrong-wrong-wrong-wrong-wrong-wro'), (e: unknown) => (e as { code?: unknown }).code === 401);
  const a = await connect(tokens['agent-a'] as string);
  try {
    const sessionId = (a.transport as StreamableHTTPClientTransport).sessionId as string;
    const r = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tokens['agent-b']}`, 'mcp-session-id': sessionId },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    assert.equal(r.status, 403);
  } finally {
    await a.close();
  }
});

/** Parse Prometheus text exposition: every sample line must be well formed. */
function parseProm(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const types = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t !== null) {
      types.add(t[1] as string);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    assert.ok(m !== null, `not a Prometheus sample line: ${line}`);
    const family = (m[1] as string).replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1] as string) || types.has(family), `sample before its TYPE: ${line}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return samples;
}

test('health, readiness and a metrics scrape that parses, counting invocations and denials by code', async () => {
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(((await ready.json()) as { ready: boolean }).ready, true);
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const m = parseProm(await res.text());
  assert.ok((m.get('authority_invocations_total{tool="read-file",code="ok"}') ?? 0) >= 2);
  const denied = [...m.entries()].filter(([k]) => k.startsWith('authority_denials_total{op="fs.read"')).reduce((n, [, v]) => n + v, 0);
  assert.ok(denied >= 2, 'the two refused reads are counted by op and code');
  assert.ok((m.get('authority_http_refused_total{status="401"}') ?? 0) >= 4);
  assert.ok((m.get('authority_invocation_duration_seconds_count{tool="read-file"}') ?? 0) >= 4);
  assert.ok((m.get('authority_host_call_duration_seconds_count{stat="p50"}') ?? 0) >= 2);
  assert.ok(m.has('authority_pool_workers') && m.has('authority_pool_queued') && m.has('authority_audit_checkpoint_age_seconds'));
});
