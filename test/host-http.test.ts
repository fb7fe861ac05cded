import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import type { Decision, Header } from '../src/host-call.ts';
import {
  FORBIDDEN_REQUEST_HEADERS,
  HttpClient,
  MAX_REDIRECTS,
  SecretStore,
  embeddedIPv4,
  nextHop,
  parseGuestUrl,
  toGuestError,
  type CheckAddress,
  type HttpCallContext,
  type HttpRequest,
  type LookupFn,
} from '../src/host/index.ts';

// ---------------------------------------------------------------------------
// Loopback servers. A (127.0.0.1:PA) is the one destination the test allows.
// V (127.0.0.1:PV) is a victim; A2 and V2 listen on 127.0.0.2 at the same
// ports, standing for "the attacker" and for a rebinding answer. Each counts
// the requests it received: a hostile input must never move a counter.
// ---------------------------------------------------------------------------

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
interface Srv {
  name: string;
  server: http.Server;
  port: number;
  seen: Seen[];
}

const SECRET = 'sk-corpus-0123456789abcdef';
const secrets = new SecretStore({ API_KEY: SECRET });
let redirectLocation = '';
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;
const routes = new Map<string, Handler>();

function startServer(name: string, host: string, port: number): Promise<Srv> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const route = routes.get(`${name} ${(req.url ?? '').split('?')[0]}`);
      if (route) return route(req, res, body);
      if (req.url?.startsWith('/redirect')) {
        res.writeHead(302, { location: redirectLocation });
        return res.end();
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ server: name, method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ name, server, port: (server.address() as AddressInfo).port, seen }));
  });
}

let A: Srv, V: Srv, A2: Srv, V2: Srv, B: Srv;
let servers: Srv[] = [];

// Every dial goes through this hook: anything outside 127/8 is refused and recorded.
const dials: string[] = [];
const foreignDials: string[] = [];
function onConnect(address: string, port: number): void {
  dials.push(`${address}:${port}`);
  if (!/^127\.\d+\.\d+\.\d+$/.test(address)) {
    foreignDials.push(address);
    throw new Error(`test refuses to dial non-loopback ${address}`);
  }
}

// The injectable resolver: per-entry answers, then a base table, then "the attacker".
type Answer = { address: string; family: number }[] | 'ENOTFOUND';
let entryDns: Record<string, Answer> = {};
let baseDns: Record<string, Answer> = {};
const lookups: string[] = [];
const lookup: LookupFn = async (name) => {
  lookups.push(name);
  const a = entryDns[name] ?? baseDns[name] ?? [{ address: '127.0.0.2', family: 4 }];
  if (a === 'ENOTFOUND') throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  return a;
};

const allowD = (reason: string): Decision => ({ allow: true, reason });
const denyD = (reason: string, code: ErrorCode = ErrorCode.POLICY_DENY): Decision => ({ allow: false, code, reason });

const addressChecks: string[] = [];
// Allows exactly 127.0.0.1 on the allowed port (plus ports a test adds).
const allowedPorts = new Set<number>();
const checkAddress: CheckAddress = (address, family, target) => {
  addressChecks.push(`${address}/${family}:${target.port}`);
  return address === '127.0.0.1' && family === 4 && allowedPorts.has(target.port) ? allowD('test allow') : denyD(`test denies ${address}:${target.port}`);
};
const mayUse = (name: string, url: string): Decision =>
  name === 'API_KEY' && url.startsWith(`http://allowed.test:${A.port}/bound`) ? allowD('bound') : denyD(`${name} is not bound to ${url}`);

let client: HttpClient;
const ctx = (extra: Partial<HttpCallContext> = {}): HttpCallContext => ({ checkAddress, mayUse, secrets, ...extra });

function resetCounters(): void {
  for (const s of servers) s.seen.length = 0;
  dials.length = 0;
  lookups.length = 0;
  addressChecks.length = 0;
  entryDns = {};
}

/**
 * A client of its own for a test that aborts a request: undici may reopen a
 * connection (sending nothing) to the same, already checked address after an
 * abort, and that must not land in another test's dial log.
 */
async function withOwnClient<T>(fn: (c: HttpClient) => Promise<T>): Promise<T> {
  const own = new HttpClient({ lookup, onConnect });
  try {
    return await fn(own);
  } finally {
    await own.close();
  }
}

async function refusal(p: Promise<unknown>): Promise<AuthorityError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AuthorityError, `expected an AuthorityError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the request to be refused');
}

before(async () => {
  A = await startServer('A', '127.0.0.1', 0);
  V = await startServer('V', '127.0.0.1', 0);
  A2 = await startServer('A2', '127.0.0.2', A.port);
  V2 = await startServer('V2', '127.0.0.2', V.port);
  B = await startServer('B', '127.0.0.1', 0);
  servers = [A, V, A2, V2, B];
  allowedPorts.add(A.port);
  baseDns = { 'allowed.test': [{ address: '127.0.0.1', family: 4 }], 'b.test': [{ address: '127.0.0.1', family: 4 }] };
  client = new HttpClient({ lookup, onConnect });
});

after(async () => {
  await client.close();
  for (const s of servers) {
    s.server.closeAllConnections();
    await new Promise((r) => s.server.close(r));
  }
  assert.deepEqual(foreignDials, [], 'no test ever dialled a non-loopback address');
});

// ---------------------------------------------------------------------------
// The hostile corpus.
// ---------------------------------------------------------------------------

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
  expect: 'invalid' | 'denied' | 'io' | 'too-large' | 'not-found';
  code?: string;
}
const corpus = JSON.parse(fs.readFileSync(new URL('./fixtures/hostile-net.json', import.meta.url), 'utf8')) as { entries: NetEntry[] };

test('the network corpus holds at least 150 distinct hostile entries, each with a category and a reason', () => {
  assert.ok(corpus.entries.length >= 150);
  assert.equal(new Set(corpus.entries.map((e) => e.id)).size, corpus.entries.length);
  for (const e of corpus.entries) {
    assert.ok(e.category && e.why && e.expect, e.id);
    assert.ok((e.url ?? e.location) !== undefined, e.id);
  }
});

const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

for (const entry of corpus.entries) {
  test(`refuses ${entry.id} (${entry.why}) as ${entry.expect}`, async () => {
    const fill = (s: string): string => s.replaceAll('{{ALLOWED_PORT}}', String(A.port)).replaceAll('{{VICTIM_PORT}}', String(V.port));
    resetCounters();
    entryDns = Object.fromEntries(Object.entries(entry.dns ?? {}).map(([k, v]) => [k, v]));
    let err: AuthorityError;
    let allowedHits = 0;
    if (entry.kind === 'redirect') {
      const location = fill(entry.location as string);
      const first: HttpRequest = { method: 'GET', url: `http://allowed.test:${A.port}/redirect`, headers: [] };
      let response: { status: number; headers: Header[] };
      if (HEADER_VALUE.test(location)) {
        redirectLocation = location;
        response = await client.fetch(first, ctx());
        assert.equal(response.status, 302);
        allowedHits = 1;
      } else {
        // Node's server refuses to send this Location at all; nextHop is checked on it directly.
        response = { status: 302, headers: [['location', location]] };
      }
      err = await refusal(
        (async () => {
          const next = nextHop(first, response);
          assert.ok(next !== undefined, 'a redirect yields a next hop or an error');
          return client.fetch(next, ctx());
        })(),
      );
    } else {
      const req: HttpRequest = {
        method: entry.method ?? 'GET',
        url: fill(entry.url as string),
        headers: (entry.headers ?? []).map(([k, v]) => [fill(k), fill(v)] as Header),
        body: entry.body === undefined ? undefined : Buffer.from(fill(entry.body), 'utf8'),
      };
      err = await refusal(client.fetch(req, ctx()));
    }
    const g = toGuestError(err);
    assert.equal(g.tag, entry.expect, `${entry.id}: got ${g.tag} ${JSON.stringify(g.val, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
    if (entry.code !== undefined) assert.equal(g.tag === 'denied' ? g.val.code : undefined, entry.code);
    assert.equal(A.seen.length, allowedHits, 'the allowed server saw only the first hop of a redirect');
    for (const s of [V, A2, V2, B]) assert.equal(s.seen.length, 0, `server ${s.name} was never reached`);
    for (const d of dials) assert.equal(d, `127.0.0.1:${A.port}`, 'nothing but the allowed server was dialled');
    if (entry.kind !== 'redirect') assert.deepEqual(dials, [], 'nothing was dialled at all');
    assert.ok(!JSON.stringify(g).includes(SECRET), 'the error never shows the secret value');
  });
}

// ---------------------------------------------------------------------------
// Positive controls: the corpus test is not vacuous.
// ---------------------------------------------------------------------------

test('a request to the allowed destination reaches it with the name in Host and the checked address dialled', async () => {
  resetCounters();
  const res = await client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/hello?x=1#frag`, headers: [['x-tool', 'yes']] }, ctx());
  assert.equal(res.status, 200);
  assert.equal(A.seen.length, 1);
  const seen = A.seen[0] as Seen;
  assert.equal(seen.url, '/hello?x=1', 'the fragment is never sent');
  assert.equal(seen.headers.host, `allowed.test:${A.port}`);
  assert.equal(seen.headers['x-tool'], 'yes');
  assert.equal(seen.headers['accept-encoding'], 'identity');
  assert.equal(res.address, '127.0.0.1');
  assert.deepEqual(lookups, ['allowed.test']);
  assert.deepEqual(addressChecks, [`127.0.0.1/4:${A.port}`]);
});

test('an IP-literal URL skips DNS but still passes checkAddress', async () => {
  resetCounters();
  const res = await client.fetch({ method: 'GET', url: `http://127.0.0.1:${A.port}/`, headers: [] }, ctx());
  assert.equal(res.status, 200);
  assert.deepEqual(lookups, []);
  assert.deepEqual(addressChecks, [`127.0.0.1/4:${A.port}`]);
});

test('every IPv4 address embedded in an IPv6 one is checked too, so an IPv4-only policy still holds', async () => {
  resetCounters();
  assert.deepEqual(embeddedIPv4('::ffff:7f00:1'), ['127.0.0.1']);
  assert.deepEqual(embeddedIPv4('64:ff9b::a9fe:a9fe'), ['169.254.169.254']);
  assert.deepEqual(embeddedIPv4('2001:0:4136:e378:8000:63bf:80ff:fffe'), ['65.54.227.120', '127.0.0.1']);
  // A policy that allows every IPv6 address but denies 127.0.0.1: the mapped form must still be denied.
  const v6Only: CheckAddress = (address, family) => (family === 6 ? allowD('any v6') : address === '127.0.0.1' ? denyD('loopback') : allowD('v4'));
  const err = await refusal(client.fetch({ method: 'GET', url: `http://[::ffff:127.0.0.1]:${V.port}/`, headers: [] }, ctx({ checkAddress: v6Only })));
  assert.equal(err.code, ErrorCode.POLICY_DENY);
  assert.equal(V.seen.length, 0);
  assert.deepEqual(dials, []);
});

test('DNS is resolved once and the connection is pinned to the checked answer, so a rebinding second answer is never used', async () => {
  resetCounters();
  let calls = 0;
  // First answer 127.0.0.1 (allowed), every later answer 127.0.0.2 (denied): a second lookup would rebind.
  const rebinding: LookupFn = async () => (calls++ === 0 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '127.0.0.2', family: 4 }]);
  const pinned = new HttpClient({ lookup: rebinding, onConnect });
  try {
    const res = await pinned.fetch({ method: 'GET', url: `http://pin.test:${A.port}/pinned`, headers: [] }, ctx());
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(Buffer.from(res.body).toString()).server, 'A');
    assert.equal(calls, 1, 'one lookup per hop: nothing resolves the name again');
    assert.equal(A.seen.length, 1);
    assert.equal(A2.seen.length, 0, 'the rebinding address was never contacted');
    assert.deepEqual(dials, [`127.0.0.1:${A.port}`]);
    // The next hop resolves again and gets the denied answer: refused before any connection.
    const err = await refusal(pinned.fetch({ method: 'GET', url: `http://pin.test:${A.port}/pinned`, headers: [] }, ctx()));
    assert.equal(err.code, ErrorCode.POLICY_DENY);
    assert.equal(A2.seen.length, 0);
    assert.equal(dials.length, 1);
  } finally {
    await pinned.close();
  }
});

test('a connection is never opened to a host name, only to the checked address', async () => {
  resetCounters();
  const seenHosts: string[] = [];
  const c = new HttpClient({ lookup, onConnect: (a, p) => (seenHosts.push(a), onConnect(a, p)) });
  try {
    await c.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/`, headers: [] }, ctx());
    assert.deepEqual(seenHosts, ['127.0.0.1']);
  } finally {
    await c.close();
  }
});

// ---------------------------------------------------------------------------
// Caps and deadline.
// ---------------------------------------------------------------------------

test('a response body streaming forever is cut at the cap and its socket closed', async () => {
  resetCounters();
  let closed!: Promise<void>;
  let written = 0;
  routes.set('A /forever', (req, res) => {
    closed = new Promise((resolve) => req.socket.once('close', () => resolve()));
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const pump = (): void => {
      while (!res.destroyed) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
    };
    pump();
  });
  const err = await withOwnClient((c) => refusal(c.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/forever`, headers: [] }, ctx({ limits: { responseBodyBytes: 256 * 1024 } }))));
  assert.equal(toGuestError(err).tag, 'too-large');
  await closed; // resolves only when the server sees its socket closed by the host
  assert.ok(written > 256 * 1024);
});

test('a declared content-length above the cap is refused without reading the body', async () => {
  resetCounters();
  routes.set('A /big', (_req, res) => {
    res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) });
    res.write(Buffer.alloc(1024));
  });
  const err = await withOwnClient((c) => refusal(c.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/big`, headers: [] }, ctx({ limits: { responseBodyBytes: 4096 } }))));
  assert.equal(err.code, ErrorCode.TOO_LARGE);
});

test('a body of exactly the cap is returned whole', async () => {
  resetCounters();
  routes.set('A /exact', (_req, res) => res.end(Buffer.alloc(5000, 0x62)));
  const res = await client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/exact`, headers: [] }, ctx({ limits: { responseBodyBytes: 5000 } }));
  assert.equal(res.body.length, 5000);
});

test('a response with more header fields than the cap is too-large', async () => {
  resetCounters();
  routes.set('A /many-headers', (_req, res) => {
    for (let i = 0; i < 100; i++) res.setHeader(`x-h${i}`, 'v');
    res.end('ok');
  });
  const err = await withOwnClient((c) => refusal(c.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/many-headers`, headers: [] }, ctx())));
  assert.equal(toGuestError(err).tag, 'too-large');
});

test('response headers larger than the byte cap are too-large, whether the parser or the per-call cap catches them', async () => {
  resetCounters();
  routes.set('A /fat-header', (_req, res) => {
    res.setHeader('x-fat', 'f'.repeat(20 * 1024));
    res.end('ok');
  });
  routes.set('A /medium-header', (_req, res) => {
    res.setHeader('x-medium', 'm'.repeat(2048));
    res.end('ok');
  });
  const a = await withOwnClient((c) => refusal(c.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/fat-header`, headers: [] }, ctx())));
  assert.equal(toGuestError(a).tag, 'too-large');
  const b = await withOwnClient((c) => refusal(c.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/medium-header`, headers: [] }, ctx({ limits: { headerBytes: 1024 } }))));
  assert.equal(toGuestError(b).tag, 'too-large');
});

test('request header count, header bytes and body size are capped before anything is sent', async () => {
  resetCounters();
  const url = `http://allowed.test:${A.port}/`;
  const many = Array.from({ length: 65 }, (_, i) => [`x-h${i}`, 'v'] as Header);
  assert.equal((await refusal(client.fetch({ method: 'GET', url, headers: many }, ctx()))).code, ErrorCode.TOO_LARGE);
  assert.equal((await refusal(client.fetch({ method: 'GET', url, headers: [['x-big', 'b'.repeat(17 * 1024)]] }, ctx()))).code, ErrorCode.TOO_LARGE);
  const body = new Uint8Array(1024 * 1024 + 1);
  assert.equal((await refusal(client.fetch({ method: 'POST', url, headers: [], body }, ctx()))).code, ErrorCode.TOO_LARGE);
  assert.equal(A.seen.length, 0);
  assert.deepEqual(dials, []);
});

test('a server that never answers hits the one deadline as a timeout, and the connection is dropped', async () => {
  resetCounters();
  let closed!: Promise<void>;
  routes.set('A /never', (req) => {
    closed = new Promise((resolve) => req.socket.once('close', () => resolve()));
  });
  const err = await withOwnClient((c) => refusal(c.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/never`, headers: [] }, ctx({ timeoutMs: 150 }))));
  assert.equal(toGuestError(err).tag, 'timeout');
  await closed;
});

test('a body that stalls after the headers hits the same deadline', async () => {
  resetCounters();
  routes.set('A /stall', (_req, res) => {
    res.writeHead(200);
    res.write('partial');
  });
  const err = await withOwnClient((c) => refusal(c.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/stall`, headers: [] }, ctx({ timeoutMs: 150 }))));
  assert.equal(err.code, ErrorCode.TIMEOUT);
});

test('a resolver that never answers hits the deadline too', async () => {
  resetCounters();
  const stuck = new HttpClient({ lookup: () => new Promise(() => undefined), onConnect });
  try {
    const err = await refusal(stuck.fetch({ method: 'GET', url: `http://slow-dns.test:${A.port}/`, headers: [] }, ctx({ timeoutMs: 100 })));
    assert.equal(err.code, ErrorCode.TIMEOUT);
    assert.deepEqual(dials, []);
  } finally {
    await stuck.close();
  }
});

// ---------------------------------------------------------------------------
// Headers.
// ---------------------------------------------------------------------------

test('every header the WIT says a guest may not set is refused as invalid, and the WIT lists every refused header', async () => {
  const wit = fs.readFileSync(new URL('../wit/sandbox.wit', import.meta.url), 'utf8');
  const comment = /The guest may\s*\n?\s*\/\/\/ not set ([^:]*?): such a request/s.exec(wit)?.[1] ?? /may not set (.*?) such a request/s.exec(wit.replace(/\s*\/\/\/\s*/g, ' '))?.[1];
  assert.ok(comment, 'the WIT comment on forbidden headers is found');
  const listed = [...comment.matchAll(/`([a-z*-]+)`/g)].map((m) => m[1] as string);
  for (const name of FORBIDDEN_REQUEST_HEADERS) assert.ok(listed.includes(name), `WIT lists ${name}`);
  for (const name of listed) {
    const header = name === 'proxy-*' ? 'proxy-anything' : name;
    const err = await refusal(client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/`, headers: [[header, 'x']] }, ctx()));
    assert.equal(toGuestError(err).tag, 'invalid', header);
  }
  assert.equal(A.seen.length, 0);
});

test('a guest accept-encoding is replaced by identity, and a body the server compresses anyway is decoded and capped', async () => {
  resetCounters();
  routes.set('A /gzip', (_req, res) => {
    res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'text/plain' });
    res.end(zlib.gzipSync(Buffer.from('hello compressed world')));
  });
  routes.set('A /bomb', (_req, res) => {
    res.writeHead(200, { 'content-encoding': 'gzip' });
    res.end(zlib.gzipSync(Buffer.alloc(8 * 1024 * 1024)));
  });
  const res = await client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/gzip`, headers: [['accept-encoding', 'gzip']] }, ctx());
  assert.equal((A.seen[0] as Seen).headers['accept-encoding'], 'identity');
  assert.equal(Buffer.from(res.body).toString(), 'hello compressed world');
  assert.equal(res.headers.find(([k]) => k === 'content-encoding'), undefined);
  const err = await refusal(client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/bomb`, headers: [] }, ctx({ limits: { responseBodyBytes: 1024 * 1024 } })));
  assert.equal(err.code, ErrorCode.TOO_LARGE);
});

test('set-cookie and hop-by-hop response headers never reach the guest', async () => {
  resetCounters();
  routes.set('A /cookie', (_req, res) => {
    res.setHeader('set-cookie', ['session=abc; HttpOnly', 'other=1']);
    res.setHeader('x-kept', 'yes');
    res.setHeader('proxy-status', 'internal-hop');
    res.end('ok');
  });
  const res = await client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/cookie`, headers: [] }, ctx());
  const names = res.headers.map(([k]) => k);
  assert.ok(names.includes('x-kept'));
  for (const dropped of ['set-cookie', 'connection', 'keep-alive', 'transfer-encoding', 'proxy-status']) assert.ok(!names.includes(dropped), dropped);
});

test('lower-case methods are normalised and the method set is closed', async () => {
  resetCounters();
  const res = await client.fetch({ method: 'post', url: `http://allowed.test:${A.port}/m`, headers: [], body: Buffer.from('x') }, ctx());
  assert.equal(res.status, 200);
  assert.equal((A.seen[0] as Seen).method, 'POST');
  assert.equal((await refusal(client.fetch({ method: 'HEAD', url: `http://allowed.test:${A.port}/m`, headers: [], body: Buffer.from('x') }, ctx()))).code, ErrorCode.INVALID_ARGUMENT);
});

// ---------------------------------------------------------------------------
// Redirects: nextHop's rules, and the gate's loop over real servers.
// ---------------------------------------------------------------------------

const hop = (status: number, location: string): { status: number; headers: Header[] } => ({ status, headers: [['location', location]] });
const base: HttpRequest = {
  method: 'POST',
  url: 'https://api.example.com/v1/items?x=1',
  headers: [
    ['authorization', 'Bearer {{secret:API_KEY}}'],
    ['cookie', 'a=b'],
    ['x-api-key', '{{secret:OTHER}}'],
    ['content-type', 'application/json'],
    ['x-trace', '1'],
  ],
  body: Buffer.from('{}'),
};

test('nextHop returns nothing for a final response', () => {
  assert.equal(nextHop(base, { status: 200, headers: [] }), undefined);
  assert.equal(nextHop(base, { status: 304, headers: [['location', '/x']] }), undefined);
  assert.equal(nextHop(base, { status: 300, headers: [['location', '/x']] }), undefined);
  assert.equal(nextHop(base, { status: 302, headers: [] }), undefined);
});

test('nextHop resolves Location against the current URL and drops fragments', () => {
  assert.equal(nextHop(base, hop(307, 'next?y=2#f'))?.url, 'https://api.example.com/v1/next?y=2');
  assert.equal(nextHop(base, hop(307, '/root'))?.url, 'https://api.example.com/root');
  assert.equal(nextHop(base, hop(307, '//cdn.example.com/a'))?.url, 'https://cdn.example.com/a');
  assert.equal(nextHop(base, hop(307, 'HTTPS://API.example.com/z'))?.url, 'https://api.example.com/z');
});

test('303 turns any method but HEAD into GET and drops the body and its headers', () => {
  const put = nextHop({ ...base, method: 'PUT' }, hop(303, '/done'));
  assert.equal(put?.method, 'GET');
  assert.equal(put?.body, undefined);
  assert.ok(!put?.headers.some(([k]) => k === 'content-type'));
  assert.ok(put?.headers.some(([k]) => k === 'x-trace'));
  assert.equal(nextHop({ ...base, method: 'HEAD', body: undefined }, hop(303, '/done'))?.method, 'HEAD');
});

test('301 and 302 turn POST into GET but keep other methods; 307 and 308 keep method and body', () => {
  for (const status of [301, 302]) {
    const p = nextHop(base, hop(status, '/moved'));
    assert.equal(p?.method, 'GET');
    assert.equal(p?.body, undefined);
    const d = nextHop({ ...base, method: 'DELETE' }, hop(status, '/moved'));
    assert.equal(d?.method, 'DELETE');
  }
  for (const status of [307, 308]) {
    const p = nextHop(base, hop(status, '/moved'));
    assert.equal(p?.method, 'POST');
    assert.deepEqual(p?.body, base.body);
    assert.ok(p?.headers.some(([k]) => k === 'content-type'));
  }
});

test('a cross-origin hop drops authorization, cookie and every header that carried a placeholder; a same-origin hop keeps them', () => {
  const names = (r: HttpRequest | undefined): string[] => (r?.headers ?? []).map(([k]) => k);
  const same = nextHop(base, hop(307, '/v2/items'));
  assert.deepEqual(names(same), ['authorization', 'cookie', 'x-api-key', 'content-type', 'x-trace']);
  for (const other of ['https://evil.example.com/', 'http://api.example.com/v1/items', 'https://api.example.com:8443/v1/items']) {
    assert.deepEqual(names(nextHop(base, hop(307, other))), ['content-type', 'x-trace'], other);
  }
});

test('nextHop refuses an ambiguous Location', () => {
  assert.throws(() => nextHop(base, { status: 302, headers: [['location', '/a'], ['location', '/b']] }), (e: AuthorityError) => e.code === ErrorCode.INVALID_ARGUMENT);
  assert.throws(() => nextHop(base, hop(302, '')), (e: AuthorityError) => e.code === ErrorCode.INVALID_ARGUMENT);
  assert.throws(() => nextHop(base, hop(302, '/\\evil.example.com')), (e: AuthorityError) => e.code === ErrorCode.INVALID_ARGUMENT);
});

/** What the gate does: re-gate and re-send each hop, at most MAX_REDIRECTS times. */
async function followAsGate(c: HttpClient, first: HttpRequest, context: HttpCallContext): Promise<{ res: Awaited<ReturnType<HttpClient['fetch']>>; hops: number }> {
  let req = first;
  let res = await c.fetch(req, context);
  let hops = 0;
  for (let next = nextHop(req, res); next !== undefined; next = nextHop(req, res)) {
    if (++hops > MAX_REDIRECTS) throw new AuthorityError(ErrorCode.POLICY_DENY, 'too many redirects');
    req = next;
    res = await c.fetch(req, context);
  }
  return { res, hops };
}

test('a placeholder header survives a same-origin redirect, is re-checked for the new URL, and never crosses to another origin', async () => {
  resetCounters();
  allowedPorts.add(B.port);
  try {
    routes.set('A /bound/start', (_req, res) => res.writeHead(302, { location: '/bound/final' }).end());
    routes.set('A /bound/away', (_req, res) => res.writeHead(307, { location: `http://b.test:${B.port}/landing` }).end());
    routes.set('A /bound/sideways', (_req, res) => res.writeHead(302, { location: '/unbound/x' }).end());
    const auth: Header[] = [['authorization', 'Bearer {{secret:API_KEY}}']];

    const same = await followAsGate(client, { method: 'GET', url: `http://allowed.test:${A.port}/bound/start`, headers: auth }, ctx());
    assert.equal(same.hops, 1);
    assert.equal(A.seen.at(-1)?.headers.authorization, `Bearer ${SECRET}`);

    resetCounters();
    const away = await followAsGate(client, { method: 'GET', url: `http://allowed.test:${A.port}/bound/away`, headers: auth }, ctx());
    assert.equal(away.hops, 1);
    assert.equal(B.seen.length, 1);
    assert.equal(B.seen[0]?.headers.authorization, undefined, 'the credential stayed behind');
    assert.ok(!JSON.stringify(B.seen).includes(SECRET));

    resetCounters();
    // Same origin, but the new path is not one the secret is bound to: mayUse says no for this hop.
    const err = await refusal(followAsGate(client, { method: 'GET', url: `http://allowed.test:${A.port}/bound/sideways`, headers: auth }, ctx()));
    assert.equal(err.code, ErrorCode.POLICY_DENY);
    assert.equal(A.seen.length, 1, 'only the first hop was sent');
  } finally {
    allowedPorts.delete(B.port);
  }
});

test('a redirect loop stops after MAX_REDIRECTS hops', async () => {
  resetCounters();
  routes.set('A /loop', (_req, res) => res.writeHead(302, { location: '/loop' }).end());
  const err = await refusal(followAsGate(client, { method: 'GET', url: `http://allowed.test:${A.port}/loop`, headers: [] }, ctx()));
  assert.equal(err.code, ErrorCode.POLICY_DENY);
  assert.equal(A.seen.length, MAX_REDIRECTS + 1);
});

// ---------------------------------------------------------------------------
// Secrets on the wire.
// ---------------------------------------------------------------------------

test('a placeholder is filled only for the bound destination, and the tool reads its echo redacted', async () => {
  resetCounters();
  routes.set('A /bound/echo', (req, res) => {
    res.setHeader('x-echo', String(req.headers.authorization));
    res.end(`you sent ${req.headers.authorization}`);
  });
  const res = await client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/bound/echo`, headers: [['authorization', 'Bearer {{secret:API_KEY}}']] }, ctx());
  assert.equal(A.seen[0]?.headers.authorization, `Bearer ${SECRET}`, 'the server got the value');
  assert.deepEqual(res.secretsUsed, ['API_KEY']);
  assert.equal(Buffer.from(res.body).toString(), 'you sent Bearer [REDACTED:API_KEY]');
  assert.equal(res.headers.find(([k]) => k === 'x-echo')?.[1], 'Bearer [REDACTED:API_KEY]');
  assert.deepEqual(
    [...res.redactions].sort((a, b) => a.where.localeCompare(b.where)),
    [
      { name: 'API_KEY', where: 'body', count: 1 },
      { name: 'API_KEY', where: 'header:x-echo', count: 1 },
    ],
  );
  assert.ok(!Buffer.from(res.body).toString().includes(SECRET));
  assert.equal(res.headers.find(([k]) => k === 'content-length'), undefined, 'a redacted body has no stale length');
});

test('a secret value or placeholder never reaches a server the secret is not bound to', async () => {
  resetCounters();
  allowedPorts.add(B.port);
  try {
    const url = `http://b.test:${B.port}/collect`;
    const attempts: HttpRequest[] = [
      { method: 'GET', url, headers: [['authorization', 'Bearer {{secret:API_KEY}}']] },
      { method: 'GET', url: `${url}?k=${SECRET}`, headers: [] },
      { method: 'GET', url: `${url}?k=${encodeURIComponent(SECRET).replace('a', '%61')}`, headers: [] },
      { method: 'POST', url, headers: [], body: Buffer.from(`{"k":"${SECRET}"}`) },
      { method: 'POST', url, headers: [], body: Buffer.from(`k=${SECRET.replace('-', '%2D')}`) },
      { method: 'GET', url, headers: [['x-copy', SECRET]] },
      { method: 'GET', url, headers: [['x-copy', `prefix ${SECRET} suffix`]] },
    ];
    for (const req of attempts) {
      const err = await refusal(client.fetch(req, ctx()));
      assert.equal(toGuestError(err).tag, 'denied', JSON.stringify(req.url));
      assert.ok(!err.message.includes(SECRET));
    }
    // A non-ASCII value, percent-encoded as UTF-8 by the tool, is still recognised.
    const uni = new SecretStore({ UNI: 'pässwörd-geheim-1' });
    const e2 = await refusal(client.fetch({ method: 'GET', url: `${url}?k=${encodeURIComponent('pässwörd-geheim-1')}`, headers: [] }, ctx({ secrets: uni })));
    assert.equal(e2.code, ErrorCode.SECRET_LEAK);
    assert.equal(B.seen.length, 0);
    assert.deepEqual(dials, []);
  } finally {
    allowedPorts.delete(B.port);
  }
});

test('without a mayUse callback no placeholder is filled and no value may leave', async () => {
  resetCounters();
  const err = await refusal(client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/bound/x`, headers: [['authorization', '{{secret:API_KEY}}']] }, ctx({ mayUse: undefined })));
  assert.equal(err.code, ErrorCode.SECRET_LEAK);
  assert.equal(A.seen.length, 0);
});

test('a value the tool typed itself may go to a destination the secret is bound to (documented)', async () => {
  resetCounters();
  const res = await client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/bound/direct`, headers: [['x-key', SECRET]] }, ctx());
  assert.equal(res.status, 200);
  assert.equal(A.seen[0]?.headers['x-key'], SECRET);
});

test('a placeholder for a secret that does not exist is not-found, but only where the name is bound', async () => {
  resetCounters();
  const bindAll = (): Decision => allowD('any');
  const err = await refusal(client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/bound/x`, headers: [['authorization', '{{secret:MISSING}}']] }, ctx({ mayUse: bindAll })));
  assert.equal(toGuestError(err).tag, 'not-found');
  const denied = await refusal(client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/bound/x`, headers: [['authorization', '{{secret:MISSING}}']] }, ctx()));
  assert.equal(toGuestError(denied).tag, 'denied');
  assert.equal(A.seen.length, 0);
});

test('a throwing gate callback is a deny, never an allow', async () => {
  resetCounters();
  const boom: CheckAddress = () => {
    throw new Error('policy store down');
  };
  const err = await refusal(client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/`, headers: [] }, ctx({ checkAddress: boom })));
  assert.equal(toGuestError(err).tag, 'denied');
  const throwingMayUse = (): Decision => {
    throw new Error('x');
  };
  const err2 = await refusal(client.fetch({ method: 'GET', url: `http://allowed.test:${A.port}/bound/`, headers: [['a', '{{secret:API_KEY}}']] }, ctx({ mayUse: throwingMayUse })));
  assert.equal(toGuestError(err2).tag, 'denied');
  assert.equal(A.seen.length, 0);
});

// ---------------------------------------------------------------------------
// TLS: the pinned IP is dialled, the certificate is verified against the name.
// ---------------------------------------------------------------------------

function makeCert(dir: string): { ca: string; key: string; cert: string } | undefined {
  try {
    const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=authority-test-ca', '-days', '2']);
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=allowed.test']);
    fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:allowed.test\n');
    run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.crt', '-days', '2', '-extfile', 'ext.cnf']);
    const read = (f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');
    return { ca: read('ca.crt'), key: read('leaf.key'), cert: read('leaf.crt') };
  } catch {
    return undefined;
  }
}

test('https dials the checked IP but verifies the certificate against the host name', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'authority-tls-'));
  try {
    const pki = makeCert(dir);
    if (pki === undefined) return t.skip('openssl is not available to make a test certificate');
    let hits = 0;
    const server = https.createServer({ key: pki.key, cert: pki.cert }, (_req, res) => {
      hits++;
      res.end('secure');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const tlsDials: string[] = [];
    const c = new HttpClient({
      lookup: async () => [{ address: '127.0.0.1', family: 4 }],
      onConnect: (a, p) => (tlsDials.push(a), onConnect(a, p)),
      connect: { ca: pki.ca },
    });
    const only: CheckAddress = (a, _f, target) => (a === '127.0.0.1' && target.port === port ? allowD('tls') : denyD('no'));
    try {
      const ok = await c.fetch({ method: 'GET', url: `https://allowed.test:${port}/`, headers: [] }, { checkAddress: only });
      assert.equal(Buffer.from(ok.body).toString(), 'secure');
      const wrongName = await refusal(c.fetch({ method: 'GET', url: `https://other.test:${port}/`, headers: [] }, { checkAddress: only }));
      assert.equal(toGuestError(wrongName).tag, 'io');
      const byIp = await refusal(c.fetch({ method: 'GET', url: `https://127.0.0.1:${port}/`, headers: [] }, { checkAddress: only }));
      assert.equal(toGuestError(byIp).tag, 'io');
      assert.equal(hits, 1, 'only the request whose name matched the certificate was served');
      assert.ok(tlsDials.every((a) => a === '127.0.0.1'));
    } finally {
      await c.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the client refuses to be built with TLS verification off', () => {
  assert.throws(() => new HttpClient({ connect: { rejectUnauthorized: false } as never }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
});

test('parseGuestUrl gives the gate the same host the client dials', () => {
  const u = parseGuestUrl('HTTPS://API.Example.com:8443/a%20b?q=1#frag');
  assert.equal(u.hostname, 'api.example.com');
  assert.equal(u.port, 8443);
  assert.equal(u.href, 'https://api.example.com:8443/a%20b?q=1');
  assert.equal(u.hostHeader, 'api.example.com:8443');
  assert.equal(parseGuestUrl('http://[::1]/').hostHeader, '[::1]');
});
