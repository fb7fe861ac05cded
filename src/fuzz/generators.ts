/**
 * fast-check generators for every host function's arguments (the WIT types
 * of wit/sandbox.wit), biased toward the hostile: sizes at the caps and one
 * past them, mixed Unicode normalisation and lone surrogates, path and URL
 * tricks, header injection, placeholders and secret values where they may
 * not go, capability tokens that are almost valid, and rate and budget edges.
 * Everything they draw from comes from the world (`Vocab`), so the same
 * generators serve the built-in policies and a user's own.
 * @module
 */
import fc from 'fast-check';
import type { HostCall } from '../host-call.ts';
import { CAP_METHODS, type CapKind } from './model.ts';
import type { CaveatSpec, Mutation, TokenSpec } from './tokens.ts';
import type { Vocab } from './world.ts';

/** The host functions a fuzz target covers. */
export const TARGETS = {
  fs: ['fs.read', 'fs.write', 'fs.list', 'fs.stat', 'fs.remove', 'fs.mkdir'],
  http: ['http.fetch'],
  secrets: ['secrets.get'],
} as const;
export type Target = keyof typeof TARGETS;
export type Op = HostCall['op'];
export const ALL_OPS: readonly Op[] = ['fs.read', 'fs.write', 'fs.list', 'fs.stat', 'fs.remove', 'fs.mkdir', 'http.fetch', 'secrets.get'];

/** One step of a case: a host call (after the limiter clock moves `dt` ms), or a revocation in the middle of the run. */
export type Step = { readonly call: HostCall; readonly dt: number } | { readonly revoke: 'run' | number };

/** One fuzz case: a policy, the grants of a run, and what the run does. */
export interface Scenario {
  readonly variant: number;
  readonly grants: readonly TokenSpec[];
  readonly steps: readonly Step[];
}

const weighted = <T>(...pairs: [number, fc.Arbitrary<T>][]): fc.Arbitrary<T> => fc.oneof(...pairs.map(([weight, arbitrary]) => ({ weight, arbitrary })));

// ------------------------------------------------------------- strings

/** Text that is hostile to normalisation and encodings. */
export const weirdText: fc.Arbitrary<string> = weighted(
  [4, fc.constantFrom('caf\u00e9', 'cafe\u0301', '\u212b', 'A\u030a', '\ufb01', '\u0130', '\u1e9b\u0323', '\u202e', '\u200d', '\ufeff', '\uff0f', '\u2215', '\u00a0', '\u0085', '\u2028')],
  [2, fc.constantFrom('\ud800', '\udfff', 'a\ud800b', '\udc00\ud800', '\ud83d\ude00', '\ud83d')],
  [2, fc.constantFrom('\0', 'a\0b', '\x01', '\x1f', '\x7f', '\t', '\n', '\r', '\r\n', ' ')],
  [3, fc.string({ unit: 'grapheme', maxLength: 6 })],
  [2, fc.string({ unit: 'binary', maxLength: 6 })],
  [1, fc.string({ unit: 'binary-ascii', maxLength: 8 })],
);

/** A string of exactly `bytes` UTF-8 bytes (ASCII), for length caps. */
const sized = (bytes: number, ch = 'a'): string => ch.repeat(Math.max(0, bytes));

// --------------------------------------------------------------- paths

function pathArb(v: Vocab): fc.Arbitrary<string> {
  const root = fc.constantFrom(...v.roots);
  const seg = weighted<string>([6, fc.constantFrom(...v.segments)], [2, weirdText], [1, fc.constantFrom(sized(255), sized(256), '%2e%2e', '%2f', '..%2f', '...', '....')]);
  const joined = fc.tuple(root, fc.array(seg, { minLength: 0, maxLength: 4 })).map(([r, s]) => (r === '/' ? '' : r) + '/' + s.join('/'));
  const traversal = fc
    .tuple(fc.constantFrom(...v.roots), fc.integer({ min: 1, max: 6 }), fc.constantFrom('etc/passwd', v.outside.slice(1) + '/passwd', v.scratch.slice(1) + '/datax/file.txt', 'data/.env', ''))
    .map(([r, n, rest]) => `${r}/${'../'.repeat(n)}${rest}`);
  const sibling = fc.tuple(fc.constantFrom(...v.roots.filter((r) => r !== '/')), fc.constantFrom('x', '-evil', '.bak', 'x/file.txt', '-evil/file.txt', '/../' + 'datax/file.txt', '\u0301')).map(([r, s]) => r + s);
  const decorated = fc.tuple(fc.constantFrom(...v.paths), fc.constantFrom('/', '//', '/.', '/./', '/..', '\0', '%00', '\u0000x', '/\u00a0', '\\', '/x/..')).map(([p, d]) => (d.startsWith('/') ? p + d : p + d));
  const doubled = fc.constantFrom(...v.paths).map((p) => p.replaceAll('/', '//'));
  const long = fc.constantFrom(4095, 4096, 4097, 5000).map((n) => {
    const base = `${v.scratch}/data/`;
    return base + sized(Math.max(1, n - base.length));
  });
  const nonAbsolute = fc.constantFrom('', 'data/a.txt', '.', '..', './x', '~/x', 'C:\\x', '\\\\server\\share');
  return weighted<string>([8, fc.constantFrom(...v.paths)], [8, joined], [3, traversal], [3, sibling], [3, decorated], [1, doubled], [1, long], [1, nonAbsolute], [1, fc.string({ unit: 'grapheme', maxLength: 40 })]);
}

// ---------------------------------------------------------------- URLs

function urlArb(v: Vocab, depth = 0): fc.Arbitrary<string> {
  const cap = [0, 1, 63, 64, 65, 4095, 4096, 4097, 10000];
  const scheme = weighted<string>([12, fc.constant('http')], [2, fc.constant('https')], [1, fc.constantFrom('HTTP', 'hTTp', 'ftp', 'file', 'javascript', 'data', 'ws', 'gopher')]);
  const port = weighted<string>([10, fc.constant(`:${v.port}`)], [3, fc.constant('')], [1, fc.constantFrom(`:${v.port - 1}`, `:${v.port + 1}`, ':0', ':80', ':443', ':65535', ':65536', `:0${v.port}`, ':')]);
  const userinfo = weighted<string>([20, fc.constant('')], [1, fc.constantFrom('user@', 'user:pw@', ':@', '%40@', `canary.fuzz.test:${v.port}@`)]);
  const path: fc.Arbitrary<string> = fc.letrec<{ p: string }>((tie) => ({
    p: weighted<string>(
      [4, fc.constantFrom('/', '/ok', '/echo', '/cookie', '', '/v1/items', '/a/../b', '/%2e%2e/x', '//x', '/x?y=1', '/x#frag', '/x?{{secret:API_KEY}}', '/%7B%7Bsecret:API_KEY%7D%7D', '/\u00e9', '/a%00b', '/ok?q=%0d%0a')],
      [2, fc.constantFrom(...cap).map((n) => `/size/${n}`)],
      [1, fc.constantFrom(50, 55, 57, 58, 59, 60, 64).map((n) => `/headers/${n}`)],
      [1, fc.constantFrom(...cap).map((n) => `/gzip/${n}`)],
      [1, fc.constantFrom(200, 204, 301, 304, 400, 404, 500, 599).map((n) => `/status/${n}`)],
      [1, fc.constantFrom(...v.secretNames).map((n) => `/secret/${n}`)],
      [
        depth < 2 ? 3 : 0,
        fc
          .tuple(fc.constantFrom(301, 302, 303, 307, 308, 300, 305), weighted<string>([3, fc.constant('REL')], [5, fc.constant('ABS')], [2, fc.constantFrom('/echo', '//evil.example/x', 'ftp://x/', ' /x', '\\\\x', 'http://[::1', `http://canary.fuzz.test:${v.port}/redirect/302?to=/redirect/302?to=/ok`, 'https://api.fuzz.test/', '')]))
          .chain(([status, to]) =>
            (to === 'ABS' ? urlArb(v, depth + 1) : to === 'REL' ? tie('p') : fc.constant(to)).map((target) => `/redirect/${status}?to=${encodeURIComponent(target)}`),
          ),
      ],
    ),
  })).p;
  const host = weighted<string>([6, fc.constantFrom('127.0.0.1', 'canary.fuzz.test', 'localhost')], [4, fc.constantFrom(...v.hosts)]);
  const structured = fc.tuple(scheme, userinfo, host, port, path).map(([s, u, h, p, rest]) => `${s}://${u}${h}${p}${rest}`);
  // Where to splice is a fraction, not an index: a replay in another world (another port, another folder) picks the same spot.
  const mangled = fc.tuple(structured, fc.constantFrom(' ', '\t', '\n', '\r\n', '\0', '\\', '#', '%', '\u3000'), fc.double({ min: 0, max: 1, noNaN: true })).map(([u, junk, at]) => {
    const i = Math.floor(at * u.length);
    return u.slice(0, i) + junk + u.slice(i);
  });
  return weighted<string>([30, structured], [2, mangled], [1, fc.constantFrom('', 'http://', 'http:///x', 'http:x', '//canary.fuzz.test/', 'http://a..b/', `http://${'a'.repeat(64)}.fuzz.test:${v.port}/`, `http://127.0.0.1:${v.port}/` + 'x'.repeat(8200))], [1, fc.string({ maxLength: 30 })]);
}

// ------------------------------------------------------------- headers

function headersArb(v: Vocab): fc.Arbitrary<[string, string][]> {
  const name = weighted<string>(
    [6, fc.constantFrom('x-a', 'X-Echo', 'Authorization', 'content-type', 'Cookie', 'accept')],
    [2, fc.constantFrom('Host', 'content-length', 'Transfer-Encoding', 'Connection', 'TE', 'Trailer', 'Upgrade', 'Expect', 'Keep-Alive', 'proxy-x', 'Proxy-Authorization', 'accept-encoding')],
    [1, fc.constantFrom('', 'x y', 'x:y', 'x\r\ny', '\u00e9', 'x\0', '(x)')],
  );
  const secretRef = fc.constantFrom(...v.secretNames);
  const value = weighted<string>(
    [5, fc.constantFrom('v', 'application/json', '')],
    [4, secretRef.map((n) => `Bearer {{secret:${n}}}`)],
    [1, secretRef.map((n) => `{{secret:${n}}}{{secret:${n}}}`)],
    [2, fc.constantFrom('{{ secret:API_KEY }}', '{{SECRET:API_KEY}}', '{{secret:API_KEY}', '{{secret:}}', '{{secret:a{b}}', '{{secret:API_KEY}}{{secret:', '{{secret:' + 'A'.repeat(129) + '}}')],
    [2, fc.constantFrom('a\r\nInjected: 1', 'a\nx', 'a\rx', 'a\0b', 'a\x7fb', 'caf\u00e9', '\u0100', '\ud800', '\u00ff', ' leading', 'trailing\t')],
    [1, fc.constantFrom(sized(16 * 1024 - 10), sized(16 * 1024), sized(8 * 1024))],
  );
  const small = fc.array(fc.tuple(name, value), { maxLength: 4 });
  const many = fc.constantFrom(63, 64, 65, 1000).map((n) => Array.from({ length: n }, (_, i): [string, string] => [`x-${i}`, 'v']));
  return weighted<[string, string][]>([12, small], [1, many]);
}

/** Values the world's secrets hold, spelled in ways a scan must still see. */
function secretValueArb(secrets: Readonly<Record<string, string>>): fc.Arbitrary<string> {
  const values = Object.values(secrets);
  if (values.length === 0) return fc.constant('no-secrets');
  return fc.tuple(fc.constantFrom(...values), fc.constantFrom('raw', 'pct', 'prefix', 'half')).map(([s, how]) =>
    how === 'raw' ? s : how === 'pct' ? [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('') : how === 'prefix' ? `x${s}y` : s.slice(0, Math.ceil(s.length / 2)),
  );
}

function bytesArb(caps: readonly number[], extra: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> {
  return weighted<Uint8Array>(
    [4, fc.uint8Array({ maxLength: 64 })],
    [2, fc.constantFrom(...caps).map((n) => new Uint8Array(Math.max(0, n)).fill(0x7a))],
    [2, extra.map((s) => new Uint8Array(Buffer.from(s)))],
  );
}

// --------------------------------------------------------------- calls

/** A call of one host function. */
export function callArb(v: Vocab, secrets: Readonly<Record<string, string>>, op: Op): fc.Arbitrary<HostCall> {
  const caps = [0, 1, 2047, 2048, 2049, 4095, 4096, 4097, 6001, 9001, 100_000];
  switch (op) {
    case 'fs.read':
    case 'fs.list':
    case 'fs.stat':
    case 'fs.remove':
    case 'fs.mkdir':
      return pathArb(v).map((path) => ({ op, path }));
    case 'fs.write':
      return fc.tuple(pathArb(v), bytesArb(caps, fc.constantFrom('{{secret:API_KEY}}', 'hello'))).map(([path, data]) => ({ op, path, data }));
    case 'secrets.get':
      return weighted<string>(
        [8, fc.constantFrom(...v.secretNames)],
        [2, fc.constantFrom('', ' API_KEY', 'API_KEY ', 'api_key', 'API_KEY\0', 'API/KEY', 'A\tB', '\u0130', sized(128), sized(129), sized(256), sized(257), '{{secret:API_KEY}}')],
        [1, weirdText],
      ).map((name) => ({ op, name }));
    case 'http.fetch': {
      const method = weighted<string>([12, fc.constantFrom('GET', 'POST', 'HEAD', 'PUT', 'DELETE')], [3, fc.constantFrom('get', 'Post', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE')], [1, fc.constantFrom('', 'G E T', 'GET\r\n', 'X'.repeat(16), 'X'.repeat(17), '\u00c4', 'GET/1.1')]);
      const body = weighted<Uint8Array | undefined>([6, fc.constant(undefined)], [4, bytesArb(caps, fc.oneof(secretValueArb(secrets), fc.constantFrom('{{secret:API_KEY}}', '%7B%7Bsecret:OPEN_KEY%7D%7D', 'body')))]);
      const headers = weighted<[string, string][]>([10, headersArb(v)], [1, secretValueArb(secrets).map((s) => [['x-a', s]] as [string, string][])]);
      const url = weighted<string>([10, urlArb(v)], [1, secretValueArb(secrets).map((s) => `http://127.0.0.1:${v.port}/echo?k=${s}`)]);
      return fc.tuple(method, url, headers, body).map(([m, u, h, b]) => ({ op, method: m, url: u, headers: h, body: b }));
    }
  }
}

// -------------------------------------------------------------- tokens

function methodsArb(kind: CapKind): fc.Arbitrary<string[]> {
  return fc.subarray([...CAP_METHODS[kind]], { minLength: 1 });
}

function patternArb(v: Vocab, kind: CapKind): fc.Arbitrary<string> {
  return fc.constantFrom(...(kind === 'fs' ? v.fsPatterns : kind === 'net' ? v.netPatterns : v.secretPatterns));
}

/** Offsets around the edges that matter: 0, one millisecond either side, the 60 s skew. */
const edge = fc.constantFrom(-3_600_000, -60_001, -60_000, -2, -1, 0, 1, 2, 59_999, 60_000, 60_001, 3_600_000);

function caveatArb(v: Vocab, kind: CapKind): fc.Arbitrary<CaveatSpec> {
  return fc.record(
    {
      resource: patternArb(v, kind),
      methods: methodsArb(kind),
      nbf: edge,
      exp: edge,
      rate: fc.record({ count: fc.constantFrom(1, 2, 5, 100), periodMs: fc.constantFrom(1, 1000, 60_000) }),
      run: fc.constantFrom<'this' | 'other'>('this', 'other'),
    },
    { requiredKeys: [] },
  );
}

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('bitflip' as const), at: fc.double({ min: 0, max: 0.999, noNaN: true }), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat(200) }),
  fc.record({ kind: fc.constant('text' as const), at: fc.double({ min: 0, max: 0.999, noNaN: true }), char: fc.constantFrom('A', '_', '-', '=', '+', '/', ' ', '.', '\u00e9') }),
  fc.constant({ kind: 'swap-caveats' as const }),
);

export function tokenArb(v: Vocab, kinds: readonly CapKind[]): fc.Arbitrary<TokenSpec> {
  return fc.constantFrom(...kinds).chain((kind) =>
    fc
      .record({
        kind: fc.constant(kind),
        resource: patternArb(v, kind),
        methods: methodsArb(kind),
        iat: weighted<number>([6, fc.constant(0)], [2, edge]),
        nbf: weighted<number | undefined>([6, fc.constant(undefined)], [2, edge]),
        exp: weighted<number>([6, fc.constant(3_600_000)], [3, edge]),
        rate: weighted<{ count: number; periodMs: number } | undefined>([6, fc.constant(undefined)], [1, fc.record({ count: fc.constantFrom(1, 2, 3, 10), periodMs: fc.constantFrom(1, 1000, 60_000) })]),
        run: weighted<'this' | 'other' | undefined>([6, fc.constant(undefined)], [2, fc.constant('this' as const)], [1, fc.constant('other' as const)]),
        key: weighted<'active' | 'unknown' | 'bad-secret'>([14, fc.constant('active' as const)], [1, fc.constant('unknown' as const)], [1, fc.constant('bad-secret' as const)]),
        caveats: weighted<CaveatSpec[]>([6, fc.constant([])], [3, fc.array(caveatArb(v, kind), { minLength: 1, maxLength: 3 })]),
        revoke: weighted<'root' | 'leaf' | undefined>([14, fc.constant(undefined)], [1, fc.constantFrom('root' as const, 'leaf' as const)]),
        mutate: weighted<Mutation | undefined>([14, fc.constant(undefined)], [1, mutationArb]),
      })
      .map((t) => ({ ...t, exp: t.exp <= (t.nbf ?? t.iat - 60_000) ? (t.nbf ?? t.iat - 60_000) + 1 : t.exp })),
  );
}

/** A token that covers everything of a kind for the whole case: most calls should reach the policy. */
export function broadToken(kind: CapKind): TokenSpec {
  const resource = kind === 'fs' ? '/**' : kind === 'net' ? 'http://*:*' : '*';
  return { kind, resource, methods: [...CAP_METHODS[kind]], iat: 0, exp: 3_600_000, key: 'active', caveats: [] };
}

/**
 * A case for one host function: mostly calls of it, some of the
 * others (limits and budgets are shared), grants that are usually broad with
 * some hostile ones beside them, and now and then a revocation mid-run.
 */
export function scenarioArb(v: Vocab, secrets: Readonly<Record<string, string>>, variants: number, op: Op, maxSteps: number): fc.Arbitrary<Scenario> {
  const others = ALL_OPS.filter((o) => o !== op);
  const ownCalls = callArb(v, secrets, op);
  const otherCalls = fc.constantFrom(...others).chain((op) => callArb(v, secrets, op));
  const dt = weighted<number>([6, fc.constant(0)], [3, fc.constantFrom(1, 50, 100, 199, 200, 201, 333, 500, 1000)], [1, fc.integer({ min: 0, max: 5000 })]);
  const step = weighted<Step>([48, fc.record({ call: ownCalls, dt })], [10, fc.record({ call: otherCalls, dt })], [1, fc.record({ revoke: fc.oneof(fc.constant('run' as const), fc.nat(5)) })]);
  const kinds: CapKind[] = ['fs', 'net', 'secrets'];
  // Two kinds of runs: broad tokens (most calls reach the policy and the effects), with a hostile token
  // beside them now and then; or hostile tokens alone (expired by a millisecond, forged caveats, bit flips...).
  const broad = fc.tuple(...kinds.map((k) => weighted<TokenSpec[]>([6, fc.constant([broadToken(k)])], [1, fc.constant([])])));
  const withBroad = fc.tuple(broad, weighted<TokenSpec[]>([3, fc.constant([])], [1, fc.array(tokenArb(v, kinds), { minLength: 1, maxLength: 2 })])).map(([b, hostile]) => [...hostile, ...b.flat()]);
  const hostileOnly = fc.array(tokenArb(v, kinds), { minLength: 1, maxLength: 4 });
  const grants = weighted<TokenSpec[]>([2, withBroad], [1, hostileOnly]);
  // Now and then the same call many times at one instant: rate limits and budgets at their edges.
  const burst = fc.tuple(fc.record({ call: ownCalls, dt: fc.constant(0) }), fc.integer({ min: 2, max: 30 })).map(([st, n]) => Array.from({ length: n }, () => st as Step));
  const block = weighted<Step[]>([12, step.map((st) => [st])], [1, burst]);
  return fc.record({
    variant: fc.nat(Math.max(0, variants - 1)),
    grants,
    steps: fc.array(block, { minLength: 1, maxLength: Math.max(1, Math.ceil(maxSteps / 2)), size: 'max' }).map((blocks) => blocks.flat().slice(0, maxSteps)),
  });
}

/** How many of a case's steps call `op`. */
export function countRuns(s: Scenario, op: Op): number {
  return s.steps.filter((step) => 'call' in step && step.call.op === op).length;
}
