import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { Writable } from 'node:stream';
import pino from 'pino';
import fc from 'fast-check';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { MIN_SECRET_BYTES, SecretScanner, SecretStore, readSecretsFile, toGuestError, writeSecretsFile } from '../src/host/index.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'authority-secrets-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const V1 = 'sk-live-FIRST-0123456789';
const V2 = 'ghp_SECOND_abcdefghijkl';
const V3 = 'env-provided-value-42';

function file(name: string, body: string, mode = 0o600): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, body, { mode });
  fs.chmodSync(p, mode);
  return p;
}

/** Everything an error can show: message, data, cause chain, JSON, inspect. */
function everything(err: unknown): string {
  const parts: string[] = [util.inspect(err, { depth: null, showHidden: true })];
  for (let e: unknown = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    parts.push(String((e as Error).message), JSON.stringify(e), String((e as Error).stack));
  }
  return parts.join('\n');
}

function assertNoValues(text: string, label: string): void {
  for (const v of [V1, V2, V3]) assert.ok(!text.includes(v), `${label} must not contain a secret value`);
}

test('a 0600 secrets file loads values and environment references', () => {
  const p = file('good.json', JSON.stringify({ FIRST: V1, SECOND: V2, THIRD: { env: 'THIRD_VAR' } }));
  const store = SecretStore.load({ file: p, environment: { THIRD_VAR: V3 } });
  assert.deepEqual(store.names(), ['FIRST', 'SECOND', 'THIRD']);
  assert.equal(store.get('FIRST'), V1);
  assert.equal(store.get('THIRD'), V3);
});

test('a secrets file readable or writable by group or others is refused, naming the fix but no value', () => {
  for (const mode of [0o640, 0o604, 0o644, 0o660, 0o620, 0o602, 0o666]) {
    const p = file(`loose-${mode.toString(8)}.json`, JSON.stringify({ FIRST: V1 }), mode);
    assert.throws(
      () => SecretStore.load({ file: p }),
      (e: AuthorityError) => {
        assert.equal(e.code, ErrorCode.CONFIG);
        assert.match(e.message, /chmod 600/);
        assertNoValues(everything(e), `mode ${mode.toString(8)}`);
        return true;
      },
    );
  }
  // Owner-only modes stricter than 0600 are fine.
  for (const mode of [0o400, 0o700]) assert.equal(SecretStore.load({ file: file(`tight-${mode.toString(8)}.json`, JSON.stringify({ FIRST: V1 }), mode) }).size, 1);
});

test('a secrets file owned by another account is refused', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to chown a file to another account');
  const p = file('foreign.json', JSON.stringify({ FIRST: V1 }));
  fs.chownSync(p, 4242, 4242);
  assert.throws(() => SecretStore.load({ file: p }), (e: AuthorityError) => e.code === ErrorCode.CONFIG && /owned by uid 4242/.test(e.message));
});

test('a missing file is an error unless it is optional; a directory is refused', () => {
  const missing = path.join(dir, 'nope.json');
  assert.throws(() => SecretStore.load({ file: missing }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
  assert.equal(SecretStore.load({ file: missing, fileOptional: true }).size, 0);
  const d = path.join(dir, 'a-dir');
  fs.mkdirSync(d, { mode: 0o700 });
  assert.throws(() => SecretStore.load({ file: d }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
});

test('a malformed file says where, never what: the JSON parser message (which quotes the text) is not kept', () => {
  const p = file('broken.json', `{ "FIRST": "${V1}", "SECOND": "${V2}" , }`);
  assert.throws(
    () => SecretStore.load({ file: p }),
    (e: AuthorityError) => {
      assert.equal(e.code, ErrorCode.CONFIG);
      assert.equal(e.cause, undefined);
      assertNoValues(everything(e), 'parse error');
      return true;
    },
  );
  for (const [body, at] of [
    ['[1,2]', '$'],
    [JSON.stringify({ 'bad name': V1 }), '$.bad name'],
    [JSON.stringify({ FIRST: 12345678 }), '$.FIRST'],
    [JSON.stringify({ FIRST: { env: 'X', extra: V2 } }), '$.FIRST'],
    [JSON.stringify({ FIRST: 'short' }), '$.FIRST'],
  ] as const) {
    assert.throws(
      () => SecretStore.load({ file: file('bad.json', body), environment: {} }),
      (e: AuthorityError) => {
        assert.equal(e.data?.['at'], at, body);
        assertNoValues(everything(e), body);
        return true;
      },
    );
  }
});

test('environment mapping reads the named variable and refuses a missing one by name', () => {
  const store = SecretStore.load({ env: { WEATHER_KEY: { env: 'WEATHER_API_KEY' } }, environment: { WEATHER_API_KEY: V3 } });
  assert.equal(store.get('WEATHER_KEY'), V3);
  assert.throws(
    () => SecretStore.load({ env: { WEATHER_KEY: { env: 'WEATHER_API_KEY' } }, environment: {} }),
    (e: AuthorityError) => e.code === ErrorCode.CONFIG && e.message.includes('WEATHER_API_KEY') && e.message.includes('WEATHER_KEY'),
  );
  assert.throws(
    () => SecretStore.load({ env: { SHORT: { env: 'S' } }, environment: { S: 'abc' } }),
    (e: AuthorityError) => e.code === ErrorCode.CONFIG && !e.message.includes('abc'),
  );
});

test('values too short to scan, with CR/LF/NUL, and bad or duplicate names are refused', () => {
  assert.equal(MIN_SECRET_BYTES, 8);
  assert.throws(() => new SecretStore({ SHORT: '1234567' }), (e: AuthorityError) => e.code === ErrorCode.CONFIG && /shorter than 8 bytes/.test(e.message));
  assert.equal(new SecretStore({ EIGHT: '12345678' }).size, 1);
  for (const bad of [`${V1}\r\n`, `a\nb${V1}`, `${V1}\0`]) assert.throws(() => new SecretStore({ X: bad }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
  for (const name of ['', '1ABC', 'a b', 'x/y', 'A'.repeat(129), '{{secret:A}}']) assert.throws(() => new SecretStore({ [name]: V1 }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
  const p = file('dup.json', JSON.stringify({ FIRST: V1 }));
  assert.throws(() => SecretStore.load({ file: p, values: { FIRST: V2 } }), (e: AuthorityError) => e.code === ErrorCode.CONFIG && /twice/.test(e.message));
});

test('get of an unknown name is not-found and names no value', () => {
  const store = new SecretStore({ FIRST: V1 });
  assert.throws(() => store.get('OTHER'), (e: AuthorityError) => e.code === ErrorCode.NOT_FOUND && toGuestError(e).tag === 'not-found');
  assert.throws(() => store.get('../../etc'), (e: AuthorityError) => e.message.includes('(invalid name)'));
});

test('writeSecretsFile creates a 0600 file atomically that loads back', () => {
  const p = path.join(dir, 'written.json');
  writeSecretsFile(p, { FIRST: V1, THIRD: { env: 'THIRD_VAR' } });
  assert.equal(fs.statSync(p).mode & 0o777, 0o600);
  assert.deepEqual(readSecretsFile(p, { environment: { THIRD_VAR: V3 } }), [
    ['FIRST', V1],
    ['THIRD', V3],
  ]);
  assert.throws(() => writeSecretsFile(p, { FIRST: 'short' }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
});

test('no value shows through String, JSON, inspect, format or enumeration of the store or its scanner', () => {
  const store = new SecretStore({ FIRST: V1, SECOND: V2 });
  const views = [
    String(store),
    `${store}`,
    JSON.stringify(store),
    JSON.stringify({ nested: { store } }),
    util.inspect(store, { showHidden: true, depth: null, getters: true }),
    util.format('%o %O %j %s', store, store, store, store),
    JSON.stringify(Object.entries(store)),
    JSON.stringify(Object.getOwnPropertyNames(store)),
    util.inspect(store.scanner, { showHidden: true, depth: null }),
    JSON.stringify(store.scanner),
    util.inspect(structuredClone(store as unknown as object), { showHidden: true }),
  ];
  for (const v of views) assertNoValues(v, v.slice(0, 60));
  assert.match(util.inspect(store), /FIRST, SECOND/, 'names stay visible: they are not secret');
  assert.ok(Object.isFrozen(store));
});

test('pino output never carries a value: the store, its errors, leak refusals and guest errors logged as they come', async () => {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const log = pino({ level: 'trace' }, sink);
  const store = new SecretStore({ FIRST: V1, SECOND: V2 });
  log.info(store, 'store as merging object');
  log.info({ store, scanner: store.scanner }, 'store as a field');
  try {
    store.get('MISSING');
  } catch (err) {
    log.error({ err }, 'get failed');
  }
  try {
    SecretStore.load({ file: file('log-broken.json', `{"FIRST":"${V1}",}`) });
  } catch (err) {
    log.error({ err }, 'load failed');
  }
  try {
    SecretStore.load({ env: { THIRD: { env: 'THIRD_VAR' } }, environment: { THIRD_VAR: 'tiny' } });
  } catch (err) {
    log.error({ err }, 'env too short');
  }
  const redacted = store.redactText(`token ${V1} and ${V2}`);
  log.info({ redacted }, 'redaction report');
  log.info({ guest: toGuestError(new AuthorityError(ErrorCode.SECRET_LEAK, `request carries the value of secret FIRST`)) }, 'guest error');
  await new Promise((r) => setImmediate(r));
  const out = chunks.join('');
  assert.ok(out.includes('store as merging object') && out.includes('FIRST'), 'the log was captured');
  assertNoValues(out, 'pino output');
});

test('tool output is redacted in one pass and the findings reported by name and count', () => {
  const store = new SecretStore({ FIRST: V1, SECOND: V2 });
  const r = store.redactText(`a ${V1} b ${V2} c ${V1}`);
  assert.equal(r.text, 'a [REDACTED:FIRST] b [REDACTED:SECOND] c [REDACTED:FIRST]');
  assert.deepEqual(
    [...r.redactions].sort((x, y) => x.name.localeCompare(y.name)),
    [
      { name: 'FIRST', where: 'output', count: 2 },
      { name: 'SECOND', where: 'output', count: 1 },
    ],
  );
  const clean = 'nothing to see here';
  const c = store.redactText(clean);
  assert.equal(c.text, clean);
  assert.deepEqual(c.redactions, []);
  assert.deepEqual(store.findText(`x${V2}x`), ['SECOND']);
});

test('overlapping and nested values leave no byte of either behind', () => {
  const s = new SecretScanner([
    ['OUTER', 'abcdefghijkl'],
    ['INNER', 'defghijk'],
    ['TAIL', 'ijklmnopqrs'],
  ]);
  const r = s.redactText('xxabcdefghijklmnopqrsyy');
  assert.equal(r.text, 'xx[REDACTED:OUTER]yy');
  assert.deepEqual(new Set(r.redactions.map((x) => x.name)), new Set(['OUTER', 'INNER', 'TAIL']));
  assert.equal(s.redactText('abcdefghijklabcdefghijkl').text, '[REDACTED:OUTER][REDACTED:OUTER]');
});

test('a long value is found whole, and its leading bytes alone are still caught', () => {
  const long = 'L'.repeat(10) + Array.from({ length: 200 }, (_, i) => String.fromCharCode(65 + (i % 26))).join('');
  const s = new SecretScanner([['PEM', long]]);
  assert.equal(s.redactText(`<${long}>`).text, '<[REDACTED:PEM]>');
  const prefixOnly = long.slice(0, 100);
  assert.ok(!s.redactText(prefixOnly).text.includes(long.slice(0, 64)));
});

test('non-ASCII values are redacted on character boundaries', () => {
  const s = new SecretScanner([['UNI', 'pässwörd-ßecret-✓']]);
  const r = s.redactText('before pässwörd-ßecret-✓ after');
  assert.equal(r.text, 'before [REDACTED:UNI] after');
  assert.ok(Buffer.from(r.text, 'utf8').toString('utf8') === r.text);
});

test('property: whatever the text, every inserted value is found and none survives redaction', () => {
  const values = ['k3y#VALUE-one', 'tok#2-abcdef12', 'ΣΣ#unicode-val', 'aaaa#aaaaaaaa'];
  const names = ['A', 'B', 'C', 'D'];
  const s = new SecretScanner(names.map((n, i) => [n, values[i] as string]));
  // Filler never contains '#', which every value does: nothing is found unless it was inserted.
  const filler = fc.string({ unit: fc.constantFrom('a', 'b', 'k', '3', 'y', '-', ' ', 'Σ', 'é', 'ü'), maxLength: 60 });
  fc.assert(
    fc.property(fc.array(fc.tuple(filler, fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined })), { maxLength: 8 }), (parts) => {
      let text = '';
      const inserted = new Set<string>();
      for (const [f, idx] of parts) {
        text += f;
        if (idx !== undefined) {
          text += values[idx];
          inserted.add(names[idx] as string);
        }
      }
      assert.deepEqual(new Set(s.findText(text)), inserted);
      const out = s.redactText(text).text;
      for (const v of values) assert.ok(!out.includes(v));
      if (inserted.size === 0) assert.equal(out, text);
    }),
    { numRuns: 300 },
  );
});
