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
import { Writable } from 'node:stream';
import pino from 'pino';
import { ErrorCode } from '../src/errors.ts';
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
