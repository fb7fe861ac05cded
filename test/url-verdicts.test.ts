/**
 * One URL parser: `authority policy test` (the decision API users rely on to
 * predict what a tool can reach) and the live http path must give every URL
 * the same verdict. A corpus (hostile-net.json's URLs, url-verdicts.json, and
 * a generated cross product of host spellings, ports, schemes and suffixes)
 * runs through both:
 *
 * - live, end to end: a real tool (net-probe) sends each URL through the
 *   worker bridge, the gate and the host's HTTP client to a server on
 *   127.0.0.1, under a policy that allows that server only (by address and as
 *   `localhost`). Every non-loopback URL is refused by the rules before any
 *   dial, and the client's dial hook refuses anything but the test server,
 *   so nothing leaves this machine even if the gate were broken.
 * - at the decision level, for any host: under the loosest net policy there
 *   is, `policy test` against the gate's own path (decode, policy, address
 *   check of an IP literal), without sending anything.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { AuditRecord } from '../src/audit/index.ts';
import { policyCommand } from '../src/cli/commands/policy.ts';
import type { CliIO } from '../src/cli/types.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { decode } from '../src/gate/decode.ts';
import type { LookupFn } from '../src/host/index.ts';
import { loadPolicy, type Policy } from '../src/policy/index.ts';
import { CanaryServer } from './helpers/canary-server.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { auditRecords, testRuntime } from './helpers/runtime.ts';

let server: CanaryServer;
let rt: Awaited<ReturnType<typeof testRuntime>>;
let grants: string[];
let dir: string;
let livePolicyFile: string;
let loosePolicyFile: string;
let loose: Policy;
const refusedDials: string[] = [];

const lookup: LookupFn = async () => [{ address: '127.0.0.1', family: 4 }];

// 127.0.0.1 as itself or IPv4-mapped (the rule naming 127.0.0.1 admits both, and both reach the server).
const SERVER_ADDRESSES = new Set(['127.0.0.1', '::ffff:7f00:1', '::ffff:127.0.0.1']);

function onConnect(address: string, port: number): void {
  if (!SERVER_ADDRESSES.has(address) || port !== server.port) {
    refusedDials.push(`${address}:${port}`);
    throw new Error(`test guard: refused to dial ${address}:${port}`);
  }
}

before(async () => {
  server = await CanaryServer.start('verdicts');
  dir = mkdtempSync(join(tmpdir(), 'authority-url-verdicts-'));
  const live = { version: '1.0', net: { connect: [`http://127.0.0.1:${server.port}`, `http://localhost:${server.port}`] }, tools: { allow: ['net-probe'] } };
  const looseDoc = { version: '1.0', net: { connect: ['http://*:*', 'https://*:*', `http://127.0.0.1:${server.port}`, `http://localhost:${server.port}`] } };
  livePolicyFile = join(dir, 'live.json');
  loosePolicyFile = join(dir, 'loose.json');
  writeFileSync(livePolicyFile, JSON.stringify(live));
  writeFileSync(loosePolicyFile, JSON.stringify(looseDoc));
  loose = loadPolicy(looseDoc).policy;
  rt = await testRuntime({ policy: loadPolicy(live).policy, http: { lookup, onConnect } });
  await rt.register(await jsFixture('net-probe'));
  grants = [
    rt.issueToken({ kind: 'net', resource: 'http://*:*/**', methods: ['*'], ttlMs: 3_600_000 }),
    rt.issueToken({ kind: 'net', resource: 'https://*:*/**', methods: ['*'], ttlMs: 3_600_000 }),
  ];
});

after(async () => {
  await rt?.cleanup();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
  assert.deepEqual(refusedDials, [], 'nothing but the test server was ever dialled');
});

/** Every URL of the corpus, with the test server's port filled in. */
function corpus(): string[] {
  const port = String(server.port);
  const fill = (s: string): string => s.replaceAll('{{PORT}}', port).replaceAll('{{ALLOWED_PORT}}', port).replaceAll('{{VICTIM_PORT}}', String(server.port + 1));
  const net = JSON.parse(readFileSync(new URL('./fixtures/hostile-net.json', import.meta.url), 'utf8')) as { entries: { url?: string }[] };
  const extra = JSON.parse(readFileSync(new URL('./fixtures/url-verdicts.json', import.meta.url), 'utf8')) as { urls: string[] };
  const urls = [...net.entries.flatMap((e) => (e.url === undefined ? [] : [e.url])), ...extra.urls].map(fill);
  const hosts = ['127.0.0.1', '2130706433', '0x7f.1', '127.1', '0177.0.0.1', '127.0.0.1.', 'localhost', 'LOCALHOST', 'localhost.', 'a.localhost', '[::1]', '[::ffff:127.0.0.1]', '１２７.0.0.1', '127.0.0.1%2e', 'allowed.test'];
  const ports = [port, `0${port}`, '', String(server.port + 1), '65536'];
  const schemes = ['http', 'HTTP', 'https'];
  const suffixes = ['/', '', '/a?b#c', '/%2e%2e/x'];
  for (const h of hosts) for (const p of ports) for (const s of schemes) urls.push(`${s}://${h}${p === '' ? '' : `:${p}`}${suffixes[(h.length + p.length + s.length) % suffixes.length]}`);
  return [...new Set(urls)];
}

/** `authority policy test FILE --op http.fetch --target URL`, in process: 'allow' or the code it denies with. */
async function policyTest(file: string, url: string): Promise<string> {
  let out = '';
  const io: CliIO = { out: (t) => void (out += t), err: () => {}, log: pino({ level: 'silent' }), env: {}, cwd: dir };
  const code = await policyCommand.run(['test', file, '--op', 'http.fetch', `--target=${url}`, '--json'], io);
  assert.ok(code === 0 || code === 1, `policy test exited ${code} for ${JSON.stringify(url)}`);
  const doc = JSON.parse(out) as { allow: boolean; decision: { allow: boolean; code?: string }; address?: { allow: boolean; code?: string } };
  assert.equal(doc.allow, code === 0);
  if (doc.allow) return 'allow';
  return (doc.decision.allow ? doc.address?.code : doc.decision.code) ?? 'deny';
}

/** The verdict of each URL on the live path: 'allow' when the gate let the call through, else its code. */
async function liveVerdicts(urls: string[]): Promise<string[]> {
  const verdicts: string[] = [];
  for (let i = 0; i < urls.length; i += 40) {
    const batch = urls.slice(i, i + 40);
    const runId = `verdicts-${i}`;
    await rt.invoke('net-probe', { requests: batch.map((url) => ({ url })) }, { grants, runId });
    const records = await auditRecords(rt.dataDir, (r: AuditRecord) => r.runId === runId && (r.kind === 'call.denied' || r.kind === 'call.outcome'));
    assert.equal(records.length, batch.length, 'one decision record per request');
    for (const r of records) {
      // An outcome is an allowed call; one the effect refused (an address check) carries the gate's code.
      if (r.kind === 'call.denied') verdicts.push(r.code ?? 'deny');
      else verdicts.push(r.code === ErrorCode.POLICY_DENY ? r.code : 'allow');
    }
  }
  return verdicts;
}

test('policy test and the live http path give every URL of the corpus the same verdict', async () => {
  const urls = corpus();
  assert.ok(urls.length > 400, `a corpus of ${urls.length} URLs`);
  const live = await liveVerdicts(urls);
  const differ: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < urls.length; i++) {
    const url = urls[i] as string;
    const decided = await policyTest(livePolicyFile, url);
    seen.add(decided);
    if (decided !== live[i]) differ.push(`${JSON.stringify(url)}: policy test ${decided}, live ${live[i]}`);
  }
  assert.deepEqual(differ, []);
  // The corpus exercises both verdicts and both kinds of refusal.
  for (const v of ['allow', ErrorCode.INVALID_ARGUMENT, ErrorCode.POLICY_DENY]) assert.ok(seen.has(v), `some URL got ${v}`);
  assert.ok(server.requests.length > 0, 'allowed URLs reached the test server');
});

test('http://2130706433:PORT/ is refused by policy test and by the live path, both saying how to write the address', async () => {
  const url = `http://2130706433:${server.port}/`;
  assert.equal(await policyTest(livePolicyFile, url), ErrorCode.INVALID_ARGUMENT);
  const before = server.requests.length;
  const out = await rt.invoke('net-probe', { requests: [{ url }] }, { grants });
  const [result] = JSON.parse(out.output) as { ok: boolean; tag: string; message: string }[];
  assert.equal(result?.ok, false);
  assert.equal(result?.tag, 'invalid');
  assert.match(result?.message ?? '', /four decimal numbers/);
  assert.equal(server.requests.length, before, 'no request reached the server');
});

/** The gate's own path at the decision level: decode, the policy on the decoded URL, the address check of an IP literal. */
function gateVerdict(policy: Policy, url: string): string {
  let decoded;
  try {
    decoded = decode({ op: 'http.fetch', method: 'GET', url, headers: [] });
  } catch (e) {
    assert.ok(e instanceof AuthorityError, String(e));
    return e.code;
  }
  if (decoded.op !== 'http.fetch') throw new Error('decoded to another op');
  const d = policy.decide({ op: 'http.fetch', url: decoded.url.href, method: decoded.method });
  if (!d.allow) return d.code;
  if (decoded.url.ip !== undefined) {
    const a = policy.decideAddress(decoded.url, decoded.url.host);
    if (!a.allow) return a.code;
  }
  return 'allow';
}

test('under the loosest net policy, policy test and the gate agree on every URL at the decision level (nothing is sent)', async () => {
  const differ: string[] = [];
  const seen = new Set<string>();
  for (const url of corpus()) {
    const decided = await policyTest(loosePolicyFile, url);
    seen.add(decided);
    const gate = gateVerdict(loose, url);
    if (decided !== gate) differ.push(`${JSON.stringify(url)}: policy test ${decided}, gate ${gate}`);
  }
  assert.deepEqual(differ, []);
  for (const v of ['allow', ErrorCode.INVALID_ARGUMENT, ErrorCode.POLICY_DENY]) assert.ok(seen.has(v), `some URL got ${v}`);
});
