import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { canonicalJson, hashRequest, isSha256Hex, sha256Hex } from '../src/audit/index.ts';
import { buildRecord, entryFields, GENESIS_PREV, parseRecordLine, type AuditEntry } from '../src/audit/record.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';

test('canonical JSON sorts members by UTF-16 code units (the RFC 8785 sorting example)', () => {
  const input: Record<string, string> = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
  // (Object.keys would put "1" first on its own: integer-like keys lead in JS property order.)
  const order = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'] as const;
  const expected = `{${order.map((k) => `${JSON.stringify(k)}:${JSON.stringify(input[k])}`).join(',')}}`;
  assert.equal(canonicalJson(input), expected);
});

test('canonical JSON has no whitespace and escapes only what JSON requires', () => {
  assert.equal(canonicalJson({ b: [1, 'x'], a: { d: null, c: true } }), '{"a":{"c":true,"d":null},"b":[1,"x"]}');
  assert.equal(canonicalJson('\u000b\n"\\\u2028é'), '"\\u000b\\n\\"\\\\\u2028é"');
  assert.equal(canonicalJson([-0, 1e21, 0.1, 5]), '[0,1e+21,0.1,5]');
  assert.equal(canonicalJson({ gone: undefined, kept: 1 }), '{"kept":1}');
  assert.equal(canonicalJson(new Uint8Array([0, 255])), '{"$base64":"AP8="}');
});

test('canonical JSON refuses what it cannot write exactly, naming where', () => {
  const refuses = (v: unknown, where: RegExp): void => {
    assert.throws(() => canonicalJson(v), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.INVALID_ARGUMENT && where.test(e.message));
  };
  refuses({ a: [1, Number.NaN] }, /\$\.a\[1\]/);
  refuses({ n: 1n }, /bigint at \$\.n/);
  refuses({ when: new Date(0) }, /class instance at \$\.when/);
  refuses([undefined], /undefined at \$\[0\]/);
  refuses({ s: 'a\ud800b' }, /lone surrogate at \$\.s/);
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  refuses(cyclic, /nesting deeper/);
});

test('canonical JSON is a fixed point and ignores member order', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const once = canonicalJson(v);
      assert.equal(canonicalJson(JSON.parse(once)), once);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
        const reversed = Object.fromEntries(Object.entries(v).reverse());
        assert.equal(canonicalJson(reversed), once);
      }
    }),
    { numRuns: 300 },
  );
});

test('hashRequest is SHA-256 of the canonical JSON text', () => {
  const expected = createHash('sha256').update('{"a":1,"b":[true,null,"x"]}').digest('hex');
  assert.equal(hashRequest({ b: [true, null, 'x'], a: 1 }), expected);
  assert.ok(isSha256Hex(expected));
  assert.equal(isSha256Hex(expected.toUpperCase()), false);
  assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
});

const good: AuditEntry = {
  kind: 'call.intent',
  runId: 'run-7',
  tool: 'fetcher',
  toolDigest: 'sha256:' + 'a'.repeat(64),
  op: 'http.fetch',
  decision: 'allow',
  code: 'ok',
  tokenId: 'tok_01HZX',
  requestHash: hashRequest({ url: 'https://example.com/' }),
  reason: 'rule net.allow[0] matches example.com',
  detail: { method: 'GET', attempt: 1, tags: ['a', 'b'] },
};

test('a record hash is SHA-256 of the canonical record without its hash, reproducible by hand', () => {
  const { text, hash } = buildRecord(entryFields(good), 3, '2026-01-02T03:04:05.678Z', GENESIS_PREV);
  const line = Buffer.from(text + '\n');
  // Built by hand in member order, as a verifier in another language would.
  const body =
    `{"code":"ok","decision":"allow","detail":{"attempt":1,"method":"GET","tags":["a","b"]},"kind":"call.intent","op":"http.fetch",` +
    `"prev":"${GENESIS_PREV}","reason":"rule net.allow[0] matches example.com","requestHash":"${good.requestHash as string}","runId":"run-7",` +
    `"seq":3,"time":"2026-01-02T03:04:05.678Z","tokenId":"tok_01HZX","tool":"fetcher","toolDigest":"sha256:${'a'.repeat(64)}","v":1}`;
  assert.equal(hash, createHash('sha256').update(body).digest('hex'));
  assert.equal(line.toString(), body.replace('"kind"', `"hash":"${hash}","kind"`) + '\n');
  const back = parseRecordLine(line.subarray(0, -1));
  assert.ok(back.ok);
  assert.equal(back.record.hash, hash);
  assert.equal(back.record.seq, 3);
});

test('records built from any valid entry parse back as valid, whatever the fields and text', () => {
  const text = fc.string({ maxLength: 40 });
  const entries = fc.record(
    {
      kind: fc.constantFrom('call.intent', 'call.outcome', 'halt', 'approval'),
      runId: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,20}$/),
      decision: fc.constantFrom('allow', 'deny'),
      reason: text,
      detail: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(text, fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 })), { maxKeys: 4 }),
    },
    { requiredKeys: ['kind'] },
  );
  fc.assert(
    fc.property(entries, fc.nat(), (entry, seq) => {
      let fields: Record<string, unknown>;
      try {
        fields = entryFields(entry as AuditEntry);
      } catch {
        return; // e.g. a lone surrogate in free text: refused up front, fine
      }
      const { text, hash } = buildRecord(fields, seq, '2026-01-02T03:04:05.678Z', GENESIS_PREV);
      const line = Buffer.from(text + '\n');
      const back = parseRecordLine(line.subarray(0, -1));
      assert.ok(back.ok, back.ok ? '' : back.message);
      assert.equal(back.record.hash, hash);
    }),
    { numRuns: 300 },
  );
});

test('an entry with an unknown field, a whole token or a raw request is refused, naming the field', () => {
  const refused = (entry: unknown, field: string): void => {
    assert.throws(
      () => entryFields(entry as AuditEntry),
      (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.INVALID_ARGUMENT && (e.data as { field: string }).field === field,
      field,
    );
  };
  refused({ ...good, secret: 'hunter2' }, 'secret');
  refused({ ...good, tokenId: 'v1.' + 'eyJzY29wZSI6ImZzOnJlYWQifQ'.repeat(4) + '.c2lnbmF0dXJl' }, 'tokenId');
  refused({ ...good, requestHash: 'GET https://example.com/' }, 'requestHash');
  refused({ ...good, responseHash: 'A'.repeat(64) }, 'responseHash');
  refused({ ...good, decision: 'maybe' }, 'decision');
  refused({ ...good, kind: 'Call Intent' }, 'kind');
  refused({ ...good, kind: 'genesis' }, 'kind');
  refused({ ...good, kind: 'log.open' }, 'kind');
  refused({ ...good, reason: 'x'.repeat(1025) }, 'reason');
  refused({ ...good, detail: { ratio: 0.5 } }, 'detail');
  refused({ ...good, detail: { blob: 'x'.repeat(5000) } }, 'detail');
  refused({ ...good, detail: ['not', 'an', 'object'] }, 'detail');
  refused({ ...good, tool: 'a b' }, 'tool');
  const { kind: _kind, ...noKind } = good;
  refused(noKind, 'kind');
});

test('a kind outside the known list is accepted when it is a dotted lowercase name', () => {
  assert.equal(entryFields({ kind: 'budget.reserve' })['kind'], 'budget.reserve');
});

test('a line is refused unless it is exactly the canonical form of a valid record with its own hash', () => {
  const { text } = buildRecord(entryFields(good), 3, '2026-01-02T03:04:05.678Z', GENESIS_PREV);
  const problem = (t: string | Buffer): string => {
    const r = parseRecordLine(typeof t === 'string' ? Buffer.from(t) : t);
    return r.ok ? 'ok' : r.problem;
  };
  assert.equal(problem(text), 'ok');
  assert.equal(problem(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)])), 'malformed', 'a byte order mark');
  assert.equal(problem(Buffer.from([0xff, 0xfe])), 'malformed', 'not UTF-8');
  assert.equal(problem(text.replace('{"code"', '{ "code"')), 'non-canonical', 'whitespace');
  assert.equal(problem(text.replace('"seq":3', '"seq":3.0')), 'non-canonical', 'another spelling of 3');
  assert.equal(problem(text.replace('{"code":"ok",', '{"code":"ok","code":"ok",')), 'non-canonical', 'a duplicate member');
  assert.equal(problem(text.replace('"run-7"', '"run-8"')), 'record-hash', 'a changed value');
  assert.equal(problem(text.replace('"v":1}', '"v":1,"x":1}')), 'schema', 'an unknown field');
  assert.equal(problem(text.replace('"v":1}', '"v":2}')), 'schema', 'another version');
  assert.equal(problem(text.replace('.678Z', 'Z')), 'schema', 'a time without milliseconds');
  assert.equal(problem('[]'), 'malformed');
  assert.equal(problem('x'.repeat(20000)), 'malformed', 'longer than any record');
});
