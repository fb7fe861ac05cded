/**
 * The hostile network corpus (test/fixtures/hostile-net.json), tried end to
 * end: a real tool (net-probe, a component in the sandbox) sends each entry
 * across the worker bridge, through the gate (capability, policy, audit) to
 * the host's HTTP client, against real servers on 127.0.0.1. Every entry must
 * be refused, no server may see a request it should not, and the audit log
 * must show each refusal with the code and reason the tool was given.
 *
 * Safety: names resolve only through the table below, and the HTTP client's
 * dial hook refuses (and records) anything but 127.0.0.1, so even a broken
 * gate could not send a byte off this machine. After the run no such attempt
 * may have been recorded.
 *
 * Each entry runs twice: under a strict policy (the servers by name only)
 * and under the loosest net policy the language has (`http://*:*`,
 * `https://*:*`), where only the address checks stand between a tool and
 * loopback or the metadata service.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tailAuditRecords, verifyAudit, type AuditRecord } from '../src/audit/index.ts';
import { checkCapability, requestForHostCall, type GrantSet } from '../src/capability/index.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { decode } from '../src/gate/decode.ts';
import type { Header } from '../src/host-call.ts';
import { SecretStore, type LookupFn } from '../src/host/index.ts';
import { loadPolicy, type Policy } from '../src/policy/index.ts';
import { runtimeInternals, type InvokeResult } from '../src/runtime.ts';
import { CanaryServer } from './helpers/canary-server.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { testRuntime } from './helpers/runtime.ts';

type Answer = { address: string; family: number }[] | 'ENOTFOUND';
interface NetEntry {
  id: string;
  category: string;
  why: string;
  kind: 'url' | 'dns' | 'request' | 'redirect';
  method?: string;
  url?: string;
  location?: string;
  headers?: Header[];
  body?: string;
  dns?: Record<string, Answer>;
  expect: 'invalid' | 'denied' | 'io';
  code?: string;
}
const corpus = JSON.parse(readFileSync(new URL('./fixtures/hostile-net.json', import.meta.url), 'utf8')) as { entries: NetEntry[] };

/** What net-probe reports for one request. */
type ProbeResult = { ok: true; status: number; headers: Header[]; body: string } | { ok: false; tag: string; code?: string; message: string };
interface ProbeRequest {
  method: string;
  url: string;
  headers: Header[];
  body?: string | undefined;
}

const SECRET = 'sk-corpus-0123456789abcdef';
const REDIRECT_STATUSES = [301, 302, 303, 307, 308] as const;

let rt: Awaited<ReturnType<typeof testRuntime>>;
let grants: string[];
let grantSet: GrantSet;
let strict: Policy;
let loose: Policy;
/** A: the allowed API. B: the one place API_KEY may go. R: an allowed server that redirects. V, C: canaries on other ports. */
let A: CanaryServer, B: CanaryServer, R: CanaryServer, V: CanaryServer, C: CanaryServer;
let servers: CanaryServer[];
/** Location and status R answers for `/r/<key>`. */
const redirects = new Map<string, { status: number; location: string }>();

// The guard: every dial the HTTP client makes passes here; anything but 127.0.0.1 is refused and recorded.
const dials: string[] = [];
const refusedDials: string[] = [];
function onConnect(address: string, port: number): void {
  dials.push(`${address}:${port}`);
  if (address !== '127.0.0.1') {
    refusedDials.push(`${address}:${port}`);
    throw new Error(`test guard: refused to dial ${address}`);
  }
}

// The only resolver: the entry's own answers, then the base table, then loopback (so a gate bug lands on a counted canary port).
let entryDns: Record<string, Answer> = {};
const lookups: string[] = [];
const BASE_DNS: Record<string, Answer> = {
  'allowed.test': [{ address: '127.0.0.1', family: 4 }],
  'bound.test': [{ address: '127.0.0.1', family: 4 }],
  'redirector.test': [{ address: '127.0.0.1', family: 4 }],
  'rebind.test': [{ address: '127.0.0.1', family: 4 }],
  'metadata.test': [{ address: '169.254.169.254', family: 4 }],
};
const lookup: LookupFn = async (name) => {
  lookups.push(name);
  const a = entryDns[name] ?? BASE_DNS[name] ?? [{ address: '127.0.0.1', family: 4 }];
  if (a === 'ENOTFOUND') throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  return a;
};

before(async () => {
  A = await CanaryServer.start('allowed');
  B = await CanaryServer.start('bound');
  V = await CanaryServer.start('victim');
  C = await CanaryServer.start('canary');
  R = await CanaryServer.start('redirector', (req) => {
    const r = redirects.get(req.target.replace(/^\/r\//, ''));
    return r === undefined ? { status: 404 } : { status: r.status, headers: [['location', r.location]] };
  });
  servers = [A, B, V, C, R];
  const secrets = { API_KEY: { hosts: [`http://bound.test:${B.port}`] } };
  strict = loadPolicy(
    {
      version: '1.0',
      name: 'hostile-net-strict',
      net: {
        connect: [
          { url: `http://allowed.test:${A.port}`, resolves_to: ['127.0.0.1'] },
          { url: `http://bound.test:${B.port}`, resolves_to: ['127.0.0.1'] },
          { url: `http://redirector.test:${R.port}`, resolves_to: ['127.0.0.1'] },
        ],
      },
      secrets,
      tools: { allow: ['net-probe'] },
    },
    { source: 'hostile-net strict' },
  ).policy;
  loose = loadPolicy(
    {
      version: '1.0',
      name: 'hostile-net-loose',
      // The loosest net rules there are; the redirector must still be reachable for redirect entries.
      net: { connect: ['http://*:*', 'https://*:*', { url: `http://redirector.test:${R.port}`, resolves_to: ['127.0.0.1'] }] },
      secrets,
      tools: { allow: ['net-probe'] },
    },
    { source: 'hostile-net loose' },
  ).policy;
  rt = await testRuntime({ policy: strict, secrets: SecretStore.load({ values: { API_KEY: SECRET } }), http: { lookup, onConnect } });
  await rt.register(await jsFixture('net-probe'));
  // Tokens as wide as tokens go: the policy and the host are what is under test.
  grants = [
    rt.issueToken({ kind: 'net', resource: 'http://*:*/**', methods: ['*'], ttlMs: 3_600_000 }),
    rt.issueToken({ kind: 'net', resource: 'https://*:*/**', methods: ['*'], ttlMs: 3_600_000 }),
    rt.issueToken({ kind: 'secrets', resource: 'API_KEY', methods: ['use'], ttlMs: 3_600_000 }),
  ];
  grantSet = rt.prepareGrants(grants);
});

after(async () => {
  await rt?.cleanup();
  for (const s of servers ?? []) await s.close();
  assert.deepEqual(refusedDials, [], 'the guard never had to refuse a dial: nothing but 127.0.0.1 was ever attempted');
});

function reset(): void {
  for (const s of servers) s.reset();
  dials.length = 0;
  lookups.length = 0;
  entryDns = {};
}

const fill = (s: string): string => s.replaceAll('{{ALLOWED_PORT}}', String(A.port)).replaceAll('{{VICTIM_PORT}}', String(V.port));

async function probe(request: ProbeRequest, runId: string): Promise<{ result: ProbeResult; run: InvokeResult; records: AuditRecord[] }> {
  const run = await rt.invoke('net-probe', { requests: [request] }, { grants, runId });
  const results = JSON.parse(run.output) as ProbeResult[];
  assert.equal(results.length, 1);
  // Runs are sequential: the run's records are the last (end - start + 1) records of the log.
  const lines = await tailAuditRecords({ dir: rt.dataDir }, run.audit.end - run.audit.start + 1, { runId });
  const records = lines.map((l) => l.record as AuditRecord);
  assert.deepEqual(
    records.map((r) => r.seq),
    Array.from({ length: run.audit.end - run.audit.start + 1 }, (_, i) => run.audit.start + i),
    'the run owns a contiguous range of the log',
  );
  return { result: results[0] as ProbeResult, run, records };
}

/** The code the gate records for what the tool was told. */
function codeOf(r: Exclude<ProbeResult, { ok: true }>): string {
  return r.tag === 'denied' ? (r.code as string) : r.tag;
}

const TAG_CODES: Record<string, string> = {
  invalid: ErrorCode.INVALID_ARGUMENT,
  'not-found': ErrorCode.NOT_FOUND,
  'too-large': ErrorCode.TOO_LARGE,
  io: ErrorCode.IO,
  timeout: ErrorCode.TIMEOUT,
  'rate-limited': ErrorCode.RATE_LIMITED,
  'budget-exhausted': ErrorCode.BUDGET_EXCEEDED,
};
/** The code a call.denied record holds for what the tool was told (the gate's code behind a guest error tag). */
function deniedCodeOf(r: Exclude<ProbeResult, { ok: true }>): string {
  return r.tag === 'denied' ? (r.code as string) : (TAG_CODES[r.tag] ?? r.tag);
}

const clip = (reason: string): string => (reason.length > 1024 ? reason.slice(0, 1021) + '...' : reason);

/**
 * Where the gate must refuse a request: stage 1 (decode), 2 (capability) or 3
 * (policy, including secret placeholders), with that stage's code and reason;
 * or nowhere, so the host must.
 */
async function gateVerdict(policy: Policy, req: ProbeRequest): Promise<{ stage: 'gate'; code: string; reason: string } | { stage: 'host' }> {
  let call;
  try {
    call = await decode({ op: 'http.fetch', method: req.method, url: req.url, headers: req.headers, body: req.body === undefined ? undefined : new TextEncoder().encode(req.body) });
  } catch (e) {
    assert.ok(e instanceof AuthorityError);
    return { stage: 'gate', code: e.code === ErrorCode.IO ? ErrorCode.IO : ErrorCode.INVALID_ARGUMENT, reason: e.message };
  }
  if (call.op !== 'http.fetch') throw new Error('unreachable');
  const cap = checkCapability(grantSet, requestForHostCall({ op: 'http.fetch', method: call.method, url: call.url.href, headers: [] }), { runId: 'x', revocations: runtimeInternals(rt).revocations });
  if (!cap.allow) return { stage: 'gate', code: cap.code, reason: cap.reason };
  const pd = policy.decide({ op: 'http.fetch', url: call.url.href, method: call.method });
  if (!pd.allow) return { stage: 'gate', code: pd.code, reason: pd.reason };
  for (const name of call.placeholders) {
    const use = checkCapability(grantSet, { kind: 'secrets', resource: name, method: 'use' }, { runId: 'x', revocations: runtimeInternals(rt).revocations });
    if (!use.allow) return { stage: 'gate', code: use.code, reason: `secret placeholder {{secret:${name}}}: ${use.reason}` };
    const bound = policy.decide({ op: 'secrets.use', name, url: call.url.href });
    if (!bound.allow) return { stage: 'gate', code: bound.code, reason: bound.reason };
  }
  return { stage: 'host' };
}

/** Nothing but `expected` requests reached any server, and nothing was dialled but R. */
function assertServersUntouched(label: string, expectR: string[]): void {
  for (const s of [A, B, V, C]) {
    assert.equal(s.connections, 0, `${label}: ${s.name} saw no connection`);
    assert.equal(s.requests.length, 0, `${label}: ${s.name} saw no request`);
  }
  assert.deepEqual(
    R.requests.map((r) => r.target),
    expectR,
    `${label}: the redirector saw only the first hop`,
  );
  for (const d of dials) assert.equal(d, `127.0.0.1:${R.port}`, `${label}: nothing was dialled but the redirector`);
  assert.deepEqual(refusedDials, [], `${label}: the guard refused nothing`);
}

const tally = { tried: 0, gate: 0, host: 0, redirects: 0 };

async function tryEntry(entry: NetEntry, phase: 'strict' | 'loose', index: number): Promise<void> {
  rt.setPolicy(phase === 'strict' ? strict : loose);
  reset();
  entryDns = entry.dns ?? {};
  const runId = `net-${phase}-${entry.id}`;
  const label = `${phase} ${entry.id}`;
  tally.tried++;

  if (entry.kind === 'redirect') {
    tally.redirects++;
    const status = REDIRECT_STATUSES[index % REDIRECT_STATUSES.length] as number;
    redirects.set(entry.id, { status, location: fill(entry.location as string) });
    const { result, records } = await probe({ method: 'GET', url: `http://redirector.test:${R.port}/r/${entry.id}`, headers: [] }, runId);
    assert.equal(result.ok, false, `${label}: the redirect was not followed (${JSON.stringify(result)})`);
    if (result.ok) return;
    assertServersUntouched(label, [`/r/${entry.id}`]);
    assertRedirectRefused(label, records, result, status);
    return;
  }

  const request: ProbeRequest = {
    method: entry.method ?? 'GET',
    url: fill(entry.url as string),
    headers: (entry.headers ?? []).map(([k, v]) => [fill(k), fill(v)] as Header),
    body: entry.body === undefined ? undefined : fill(entry.body),
  };
  const verdict = await gateVerdict(phase === 'strict' ? strict : loose, request);
  const { result, records } = await probe(request, runId);
  assert.equal(result.ok, false, `${label}: refused (${JSON.stringify(result).slice(0, 300)})`);
  if (result.ok) return;
  assertServersUntouched(label, []);
  assert.ok(!result.message.includes(SECRET), `${label}: the message never shows the secret`);
  const calls = records.filter((r) => r.kind.startsWith('call.'));
  if (verdict.stage === 'gate') {
    tally.gate++;
    assert.deepEqual(
      calls.map((r) => [r.kind, r.op, r.decision, r.code, r.reason]),
      [['call.denied', 'http.fetch', 'deny', verdict.code, clip(verdict.reason)]],
      `${label}: one call.denied record with the stage's code and reason`,
    );
    assert.equal(deniedCodeOf(result), verdict.code, `${label}: the tool was told the same code`);
    assert.equal(result.message, verdict.reason, `${label}: and the same reason`);
    assert.deepEqual(lookups, [], `${label}: refused before any DNS lookup`);
  } else {
    tally.host++;
    // The policy allowed the destination; the host refused the request itself (headers, method, secrets, addresses).
    assert.equal(result.tag, entry.expect, `${label}: the host refused it as ${entry.expect} (${result.message})`);
    if (entry.code !== undefined) assert.equal(result.code, entry.code, label);
    assert.deepEqual(
      calls.map((r) => [r.kind, r.op, r.code, r.reason]),
      [
        ['call.intent', 'http.fetch', undefined, records.find((r) => r.kind === 'call.intent')?.reason],
        ['call.outcome', 'http.fetch', codeOf(result), clip(result.message)],
      ],
      `${label}: the intent, then an outcome carrying the host's refusal`,
    );
  }
}

function assertRedirectRefused(label: string, records: AuditRecord[], result: Exclude<ProbeResult, { ok: true }>, status: number): void {
  const calls = records.filter((r) => r.kind.startsWith('call.'));
  const [intent, outcome, ...hop1] = calls;
  assert.equal(intent?.kind, 'call.intent', `${label}: the first hop was allowed`);
  assert.equal(outcome?.kind, 'call.outcome', label);
  assert.equal(outcome?.code, 'ok', label);
  assert.equal(outcome?.detail?.['status'], status, `${label}: the first hop answered ${status}`);
  assert.ok(hop1.length > 0, `${label}: the audit log shows the refused hop (records: ${JSON.stringify(calls.map((r) => [r.kind, r.code]))})`);
  const last = hop1[hop1.length - 1] as AuditRecord;
  if (last.kind === 'call.denied') {
    // Re-gated and refused before any effect.
    assert.equal(hop1.length, 1, label);
    assert.equal(last.detail?.['hop'], 1, `${label}: the denied record names hop 1`);
    assert.equal(last.op, 'http.fetch', label);
    assert.equal(last.decision, 'deny', label);
    assert.equal(last.code, deniedCodeOf(result), `${label}: recorded with the code the tool got`);
    assert.equal(last.reason, clip(result.message), `${label}: and its reason`);
    assert.match(last.reason ?? '', /^redirect hop 1: /, label);
  } else {
    // Allowed by the policy, refused by the host's address checks (loose policy).
    assert.deepEqual(
      hop1.map((r) => [r.kind, r.detail?.['hop']]),
      [
        ['call.intent', 1],
        ['call.outcome', 1],
      ],
      label,
    );
    assert.notEqual(last.code, 'ok', `${label}: the hop failed`);
    assert.equal(last.code, codeOf(result), label);
  }
}

test('the network corpus holds at least 150 hostile entries, each with a category and a reason', () => {
  assert.ok(corpus.entries.length >= 150, `${corpus.entries.length} entries`);
  assert.equal(new Set(corpus.entries.map((e) => e.id)).size, corpus.entries.length);
  for (const e of corpus.entries) assert.ok(e.category && e.why && (e.url ?? e.location), e.id);
});

test('a request the policy allows reaches the allowed server by name, pinned to the checked address (the corpus is not vacuous)', async () => {
  reset();
  rt.setPolicy(strict);
  const { result, records } = await probe({ method: 'GET', url: `http://allowed.test:${A.port}/ok?x=1#frag`, headers: [['x-probe', 'yes']] }, 'net-control-allowed');
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(
    A.requests.map((r) => [r.method, r.target]),
    [['GET', '/ok?x=1']],
  );
  assert.equal(A.requests[0]?.headers.find(([k]) => k === 'host')?.[1], `allowed.test:${A.port}`);
  assert.deepEqual(lookups, ['allowed.test']);
  assert.deepEqual(dials, [`127.0.0.1:${A.port}`]);
  assert.deepEqual(
    records.filter((r) => r.kind.startsWith('call.')).map((r) => [r.kind, r.code ?? null]),
    [
      ['call.intent', null],
      ['call.outcome', 'ok'],
    ],
  );
  // The same request under the loose policy is refused: allowed.test resolves to loopback, which `*` never admits.
  reset();
  rt.setPolicy(loose);
  const refused = await probe({ method: 'GET', url: `http://allowed.test:${A.port}/ok`, headers: [] }, 'net-control-loose');
  assert.equal(refused.result.ok, false);
  assert.equal(A.requests.length, 0);
  assert.deepEqual(dials, []);
});

test('a redirect to a destination the policy allows is followed, and its hop is audited (the redirect entries are not vacuous)', async () => {
  reset();
  rt.setPolicy(strict);
  redirects.set('control', { status: 302, location: `http://allowed.test:${A.port}/landed` });
  const { result, records } = await probe({ method: 'GET', url: `http://redirector.test:${R.port}/r/control`, headers: [] }, 'net-control-redirect');
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(
    A.requests.map((r) => r.target),
    ['/landed'],
  );
  assert.deepEqual(
    records.filter((r) => r.kind.startsWith('call.')).map((r) => [r.kind, r.code ?? null, r.detail?.['hop'] ?? 0]),
    [
      ['call.intent', null, 0],
      ['call.outcome', 'ok', 0],
      ['call.intent', null, 1],
      ['call.outcome', 'ok', 1],
    ],
  );
});

corpus.entries.forEach((entry, i) => {
  test(`strict policy: refuses ${entry.id} (${entry.why})`, () => tryEntry(entry, 'strict', i));
});

corpus.entries.forEach((entry, i) => {
  test(`loose policy: refuses ${entry.id} (${entry.why})`, () => tryEntry(entry, 'loose', i));
});

// Redirect targets the corpus does not spell out: other ports of allowed names, canaries by literal, loops.
const extraRedirects: { id: string; why: string; location: () => string; policy: 'strict' | 'loose' }[] = [
  { id: 'allowed-name-victim-port', why: 'the allowed name on a canary port', location: () => `http://allowed.test:${V.port}/`, policy: 'strict' },
  { id: 'bound-name-other-port', why: 'the bound name on another canary port', location: () => `http://bound.test:${C.port}/`, policy: 'strict' },
  { id: 'canary-literal', why: 'a canary by IP literal', location: () => `http://127.0.0.1:${C.port}/`, policy: 'strict' },
  { id: 'canary-literal-loose', why: 'a canary by IP literal under the loose policy', location: () => `http://127.0.0.1:${C.port}/`, policy: 'loose' },
  { id: 'metadata-name', why: 'a name that resolves to the metadata address', location: () => 'http://metadata.test/latest/meta-data/', policy: 'loose' },
  { id: 'rebind-name', why: 'a name that resolves to loopback', location: () => `http://rebind.test:${V.port}/`, policy: 'loose' },
  { id: 'userinfo-allowed', why: 'userinfo naming the allowed host', location: () => `http://allowed.test:${A.port}@127.0.0.1:${V.port}/`, policy: 'strict' },
  { id: 'https-downgrade-name', why: 'another scheme for the allowed name', location: () => `https://allowed.test:${A.port}/`, policy: 'strict' },
];
extraRedirects.forEach((x, i) => {
  test(`${x.policy} policy: refuses a redirect to ${x.why}`, async () => {
    rt.setPolicy(x.policy === 'strict' ? strict : loose);
    reset();
    const status = REDIRECT_STATUSES[i % REDIRECT_STATUSES.length] as number;
    redirects.set(x.id, { status, location: x.location() });
    const { result, records } = await probe({ method: 'GET', url: `http://redirector.test:${R.port}/r/${x.id}`, headers: [] }, `net-extra-${x.id}`);
    assert.equal(result.ok, false, JSON.stringify(result));
    if (result.ok) return;
    assertServersUntouched(x.id, [`/r/${x.id}`]);
    assertRedirectRefused(x.id, records, result, status);
  });
});

test('loose policy: a name that resolves to the metadata address is refused by the address check, before any dial', async () => {
  rt.setPolicy(loose);
  reset();
  const { result, records } = await probe({ method: 'GET', url: 'http://metadata.test/latest/meta-data/iam/security-credentials/', headers: [] }, 'net-extra-metadata');
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.code, ErrorCode.POLICY_DENY);
  assert.match(result.message, /169\.254\.169\.254/);
  assert.deepEqual(lookups, ['metadata.test'], 'the name was resolved through the test table');
  assert.deepEqual(dials, [], 'nothing was dialled, so the guard never had to act');
  assert.deepEqual(
    records.filter((r) => r.kind.startsWith('call.')).map((r) => [r.kind, r.code ?? null]),
    [
      ['call.intent', null],
      ['call.outcome', ErrorCode.POLICY_DENY],
    ],
  );
});

test('a redirect loop ends after 5 hops with a denial that names the sixth', async () => {
  rt.setPolicy(strict);
  reset();
  redirects.set('loop', { status: 307, location: `http://redirector.test:${R.port}/r/loop` });
  const { result, records } = await probe({ method: 'GET', url: `http://redirector.test:${R.port}/r/loop`, headers: [] }, 'net-extra-loop');
  assert.equal(result.ok, false);
  assert.equal(R.requests.length, 6, 'the first request and five redirects');
  const denied = records.filter((r) => r.kind === 'call.denied');
  assert.equal(denied.length, 1);
  assert.equal(denied[0]?.detail?.['hop'], 6);
  assert.equal(denied[0]?.code, ErrorCode.POLICY_DENY);
  assert.match(denied[0]?.reason ?? '', /more than 5 redirects/);
});

test('every entry was tried under both policies, and no server ever received the secret', (t) => {
  t.diagnostic(`tried ${tally.tried} (${corpus.entries.length} entries x 2 policies): refused by the gate ${tally.gate}, by the host ${tally.host}, redirects ${tally.redirects}`);
  assert.equal(tally.tried, corpus.entries.length * 2);
  // Both layers did real work: the gate refused some entries, the host the rest.
  assert.ok(tally.gate > 0 && tally.host > 0, JSON.stringify(tally));
  for (const s of servers) assert.ok(!s.received.includes(SECRET), `${s.name} never received the secret's value`);
  for (const s of [V, C]) assert.equal(s.received.length, 0, `canary ${s.name} never received a byte`);
  assert.deepEqual(refusedDials, []);
});

test('the audit chain verifies after the whole corpus', async () => {
  const report = await verifyAudit({ dir: rt.dataDir });
  assert.equal(report.ok, true, JSON.stringify(report.firstBad));
});
