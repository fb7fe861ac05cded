import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { verifyAudit } from '../src/audit/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { SecretStore } from '../src/host/index.ts';
import { exampleTools } from './helpers/fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

const KEY = 'weather-key-0123456789';

let rt: Awaited<ReturnType<typeof testRuntime>>;
let ws: ReturnType<typeof tempDir>;
let api: Server;
let other: Server;
let apiPort = 0;
let otherPort = 0;
const seen: { api: string[]; other: string[] } = { api: [], other: [] };
let grants: string[];

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function code(e: unknown): string {
  assert.ok(e instanceof AuthorityError, `expected an AuthorityError, got ${String(e)}`);
  return e.code;
}

before(async () => {
  const tools = await exampleTools(['word-count', 'read-file', 'write-file', 'fetch-url', 'weather']);
  ws = tempDir('authority-ws-');
  mkdirSync(join(ws.path, 'out'));
  writeFileSync(join(ws.path, 'in.txt'), 'hello workspace\n');
  api = createServer((req, res) => {
    seen.api.push(`${req.method} ${req.url} auth=${req.headers.authorization ?? ''}`);
    if (req.url?.startsWith('/v1/current')) {
      if (req.headers.authorization !== `Bearer ${KEY}`) return void res.writeHead(401).end('bad key');
      return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"tempC":20}');
    }
    if (req.url === '/leak') return void res.writeHead(200).end(`the key is ${KEY}`);
    if (req.url === '/to-other') return void res.writeHead(302, { location: `http://127.0.0.1:${otherPort}/stolen` }).end();
    res.writeHead(200, { 'content-type': 'text/plain' }).end('hi');
  });
  other = createServer((req, res) => {
    seen.other.push(`${req.method} ${req.url}`);
    res.end('other');
  });
  apiPort = await listen(api);
  otherPort = await listen(other);
  rt = await testRuntime({
    policy: {
      version: '1.0',
      fs: { read: [`${ws.path}/**`], write: [`${ws.path}/out/**`] },
      net: { connect: [`http://127.0.0.1:${apiPort}`] },
      secrets: { WEATHER_KEY: { hosts: [`http://127.0.0.1:${apiPort}`] } },
      tools: { allow: ['*'] },
    },
    secrets: SecretStore.load({ values: { WEATHER_KEY: KEY } }),
  });
  for (const path of Object.values(tools)) await rt.register(path);
  grants = [
    rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read', 'list', 'write'], ttlMs: 600_000 }),
    rt.issueToken({ kind: 'net', resource: 'http://127.0.0.1:*/**', methods: ['GET'], ttlMs: 600_000 }),
    rt.issueToken({ kind: 'secrets', resource: 'WEATHER_KEY', methods: ['use'], ttlMs: 600_000 }),
  ];
});

after(async () => {
  await rt.cleanup();
  api.close();
  other.close();
  ws.cleanup();
});

test('runs a pure tool and returns its output', async () => {
  const r = await rt.invoke('word-count', { text: 'one two  three' });
  assert.deepEqual(JSON.parse(r.output), { words: 3, lines: 1, characters: 14 });
  assert.equal(r.stats.hostCalls, 0);
  assert.ok(r.audit.end > r.audit.start);
});

test('refuses input that does not match the tool schema, naming where', async () => {
  await assert.rejects(rt.invoke('word-count', { text: 42 }), (e: unknown) => {
    assert.equal(code(e), ErrorCode.INVALID_ARGUMENT);
    assert.match((e as Error).message, /input\.text/);
    return true;
  });
  await assert.rejects(rt.invoke('word-count', { words: 'x' }), (e: unknown) => code(e) === ErrorCode.INVALID_ARGUMENT);
});

test('reads a file the token and the policy both allow', async () => {
  const r = await rt.invoke('read-file', { path: join(ws.path, 'in.txt') }, { grants });
  assert.equal(JSON.parse(r.output).content, 'hello workspace\n');
  assert.equal(r.stats.allowed, 1);
});

test('denies /etc/passwd by policy even though the token covers it', async () => {
  await assert.rejects(rt.invoke('read-file', { path: '/etc/passwd' }, { grants }), (e: unknown) => {
    assert.equal(code(e), ErrorCode.TOOL_FAILED);
    const denials = (e as AuthorityError).data?.['denials'] as Array<{ code: string; op: string }>;
    assert.deepEqual(
      denials.map((d) => [d.op, d.code]),
      [['fs.read', ErrorCode.POLICY_DENY]],
    );
    return true;
  });
});

test('denies every host call when the run holds no token', async () => {
  await assert.rejects(rt.invoke('read-file', { path: join(ws.path, 'in.txt') }), (e: unknown) => {
    const denials = (e as AuthorityError).data?.['denials'] as Array<{ code: string }>;
    assert.equal(denials[0]?.code, ErrorCode.CAP_MISSING);
    return true;
  });
});

test('writes inside the allowed folder and refuses to write outside it', async () => {
  await rt.invoke('write-file', { path: join(ws.path, 'out', 'a.txt'), content: 'ok' }, { grants });
  assert.equal(readFileSync(join(ws.path, 'out', 'a.txt'), 'utf8'), 'ok');
  await assert.rejects(rt.invoke('write-file', { path: join(ws.path, 'in.txt'), content: 'overwritten' }, { grants }), (e: unknown) => {
    assert.equal(((e as AuthorityError).data?.['denials'] as Array<{ code: string }>)[0]?.code, ErrorCode.POLICY_DENY);
    return true;
  });
  assert.equal(readFileSync(join(ws.path, 'in.txt'), 'utf8'), 'hello workspace\n');
});

test('fetches from the allowed server and never reaches another one', async () => {
  const before = seen.other.length;
  const r = await rt.invoke('fetch-url', { url: `http://127.0.0.1:${apiPort}/hello` }, { grants });
  assert.equal(JSON.parse(r.output).body, 'hi');
  await assert.rejects(rt.invoke('fetch-url', { url: `http://127.0.0.1:${otherPort}/` }, { grants }), (e: unknown) => {
    assert.equal(((e as AuthorityError).data?.['denials'] as Array<{ code: string }>)[0]?.code, ErrorCode.POLICY_DENY);
    return true;
  });
  assert.equal(seen.other.length, before);
});

test('re-checks a redirect hop and refuses one that leaves the allowlist', async () => {
  const before = seen.other.length;
  await assert.rejects(rt.invoke('fetch-url', { url: `http://127.0.0.1:${apiPort}/to-other` }, { grants }), (e: unknown) => {
    const denials = (e as AuthorityError).data?.['denials'] as Array<{ code: string; reason: string }>;
    assert.equal(denials[0]?.code, ErrorCode.POLICY_DENY);
    assert.match(denials[0]?.reason ?? '', /redirect hop 1/);
    return true;
  });
  assert.equal(seen.other.length, before, 'the other server saw no request');
});

test('fills a secret placeholder for the bound host; the tool never sees the value', async () => {
  const r = await rt.invoke('weather', { city: 'Lisbon', endpoint: `http://127.0.0.1:${apiPort}` }, { grants });
  assert.deepEqual(JSON.parse(r.output), { tempC: 20 });
  assert.ok(seen.api.some((l) => l.includes(`auth=Bearer ${KEY}`)));
  assert.ok(!r.output.includes(KEY));
});

test('redacts a secret value that comes back in a response', async () => {
  const r = await rt.invoke('fetch-url', { url: `http://127.0.0.1:${apiPort}/leak` }, { grants });
  assert.ok(!r.output.includes(KEY));
  assert.match(r.output, /REDACTED:WEATHER_KEY/);
  assert.equal(r.stats.redactions, 1);
});

test('refuses a tool the policy does not allow, before it runs', async () => {
  rt.setPolicy((await import('../src/policy/index.ts')).loadPolicy({ version: '1.0', tools: { allow: ['*'], deny: ['word-*'] } }).policy);
  try {
    await assert.rejects(rt.invoke('word-count', { text: 'x' }), (e: unknown) => code(e) === ErrorCode.POLICY_DENY);
  } finally {
    rt.setPolicy((await import('../src/policy/index.ts')).loadPolicy({
      version: '1.0',
      fs: { read: [`${ws.path}/**`], write: [`${ws.path}/out/**`] },
      net: { connect: [`http://127.0.0.1:${apiPort}`] },
      secrets: { WEATHER_KEY: { hosts: [`http://127.0.0.1:${apiPort}`] } },
      tools: { allow: ['*'] },
    }).policy);
  }
});

test('records every invocation and host call in a chain that verifies', async () => {
  const r = await rt.invoke('read-file', { path: join(ws.path, 'in.txt') }, { grants, runId: 'audit-check-run' });
  await assert.rejects(rt.invoke('read-file', { path: '/etc/shadow' }, { grants, runId: 'audit-check-run' }));
  const records = await auditRecords(rt.dataDir, (x) => x.runId === 'audit-check-run');
  assert.deepEqual(
    records.map((x) => [x.kind, x.op ?? '', x.decision, x.code]),
    [
      ['invoke.start', '', 'allow', 'ok'],
      ['call.intent', 'fs.read', 'allow', undefined],
      ['call.outcome', 'fs.read', 'allow', 'ok'],
      ['invoke.end', '', 'allow', 'ok'],
      ['invoke.start', '', 'allow', 'ok'],
      ['call.denied', 'fs.read', 'deny', ErrorCode.POLICY_DENY],
      ['invoke.end', '', 'deny', ErrorCode.TOOL_FAILED],
    ],
  );
  assert.equal(records[0]?.seq, r.audit.start);
  const tokenIds = new Set(records.filter((x) => x.kind === 'call.intent').map((x) => x.tokenId));
  assert.equal(tokenIds.size, 1);
  const text = readFileSync(join(rt.dataDir, 'audit', 'log.jsonl'), 'utf8');
  for (const g of grants) assert.ok(!text.includes(g), 'no token text in the log');
  assert.ok(!text.includes(KEY), 'no secret in the log');
  const report = await verifyAudit({ dir: rt.dataDir });
  assert.equal(report.ok, true, JSON.stringify(report.firstBad));
  assert.ok(existsSync(join(rt.dataDir, 'checkpoints')));
});
