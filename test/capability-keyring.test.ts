import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { dataPaths } from '../src/data-dir.ts';
import { Keyring, issueToken, verifyToken } from '../src/capability/index.ts';

const root = mkdtempSync(join(tmpdir(), 'authority-keyring-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `d${n++}`, 'data');

const claims = { kind: 'fs' as const, resource: '/data/**', methods: ['read'], ttlMs: 3_600_000 };
const ctx = { revocations: null };

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof AuthorityError, String(e));
    return e.code;
  }
  return 'no error';
};

/** Every 8-character window of every secret in a keyring file, as stored and in the encodings a leak might use. */
function secretsIn(path: string): string[] {
  const doc = JSON.parse(readFileSync(path, 'utf8')) as { keys: Array<{ secret: string }> };
  return doc.keys.flatMap((k) => {
    const bytes = Buffer.from(k.secret, 'base64url');
    return [k.secret, bytes.toString('hex'), bytes.toString('base64')].flatMap((s) => Array.from({ length: s.length - 7 }, (_, i) => s.slice(i, i + 8)));
  });
}

function assertNoSecrets(text: string, secrets: readonly string[]): void {
  for (const s of secrets) assert.ok(!text.includes(s), 'key material leaked');
}

describe('keyring in the data folder', () => {
  test('is created with mode 0600 inside a 0700 folder, atomically (no temp files left)', () => {
    const dir = freshDir();
    const ring = Keyring.fromDataDir(dir, { create: true });
    const path = dataPaths(dir).keyring;
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(dir), ['keys.json']);
    assert.equal(ring.list().length, 1);
    assert.equal(ring.list()[0]?.status, 'active');
    assert.equal(ring.source, 'file');
  });

  test('tokens issued before a reload verify after it', () => {
    const dir = freshDir();
    const token = issueToken(Keyring.fromDataDir(dir, { create: true }), claims);
    const again = Keyring.fromDataDir(dir);
    assert.ok(verifyToken(again, token, ctx).tokenId.length === 32);
  });

  test('rotation issues with the new key and still verifies tokens of the old one', () => {
    const dir = freshDir();
    const ring = Keyring.fromDataDir(dir, { create: true });
    const oldId = ring.activeKeyId as string;
    const oldToken = issueToken(ring, claims);
    const info = ring.rotate();
    assert.notEqual(info.id, oldId);
    assert.equal(ring.activeKeyId, info.id);
    assert.equal(ring.status(oldId), 'retired');
    const newToken = issueToken(ring, claims);
    assert.equal(verifyToken(ring, newToken, ctx).keyId, info.id);
    assert.equal(verifyToken(ring, oldToken, ctx).keyId, oldId);
    // The rotation is on disk: another process sees both keys.
    const reread = Keyring.fromDataDir(dir);
    assert.equal(reread.activeKeyId, info.id);
    assert.equal(verifyToken(reread, oldToken, ctx).keyId, oldId);
    assert.equal(statSync(dataPaths(dir).keyring).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['keys.json']);
  });

  test('a retired key that is removed makes its tokens fail as unknown key', () => {
    const dir = freshDir();
    const ring = Keyring.fromDataDir(dir, { create: true });
    const first = ring.activeKeyId as string;
    const oldToken = issueToken(ring, claims);
    ring.rotate();
    ring.rotate({ dropRetired: true }); // drops `first`, which was retired by the first rotation
    assert.equal(ring.has(first), false);
    assert.equal(ring.list().length, 2);
    assert.equal(codeOf(() => verifyToken(ring, oldToken, ctx)), ErrorCode.CAP_UNKNOWN_KEY);
    assert.equal(codeOf(() => verifyToken(Keyring.fromDataDir(dir), oldToken, ctx)), ErrorCode.CAP_UNKNOWN_KEY);
  });

  test('remove takes a key out at once', () => {
    const ring = Keyring.fromDataDir(freshDir(), { create: true });
    const token = issueToken(ring, claims);
    ring.rotate();
    ring.remove(verifyToken(ring, token, ctx).keyId);
    assert.equal(codeOf(() => verifyToken(ring, token, ctx)), ErrorCode.CAP_UNKNOWN_KEY);
  });

  test('a keyring readable by group or others is refused, unless the embedder opts out', () => {
    const dir = freshDir();
    Keyring.fromDataDir(dir, { create: true });
    const path = dataPaths(dir).keyring;
    chmodSync(path, 0o644);
    const err = (() => {
      try {
        Keyring.fromDataDir(dir);
      } catch (e) {
        return e as AuthorityError;
      }
      return undefined;
    })();
    assert.equal(err?.code, ErrorCode.CONFIG);
    assert.match(err?.message ?? '', /chmod 600/);
    assert.equal(Keyring.fromFile(path, { checkMode: false }).list().length, 1);
  });

  test('a missing keyring is a configuration error that says how to create one', () => {
    assert.throws(() => Keyring.fromDataDir(freshDir()), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && /keys new/.test(e.message));
  });

  test('a rotation by another process is not overwritten by a stale keyring', () => {
    const dir = freshDir();
    const a = Keyring.fromDataDir(dir, { create: true });
    const b = Keyring.fromDataDir(dir);
    a.rotate();
    assert.equal(codeOf(() => b.rotate()), ErrorCode.CONFIG);
    b.reload();
    b.rotate();
    assert.equal(Keyring.fromDataDir(dir).list().length, 3, 'no key was lost');
  });

  test('a corrupt keyring file is refused without quoting its content', () => {
    const dir = freshDir();
    Keyring.fromDataDir(dir, { create: true });
    const path = dataPaths(dir).keyring;
    // A secret that starts with a letter, unquoted: V8's JSON.parse message quotes
    // the text around such a token, so a careless error would carry key material.
    const secret = Buffer.alloc(32, 0x41).toString('base64url');
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    doc.keys[0].secret = secret;
    writeFileSync(path, JSON.stringify(doc, null, 2).replace(`"${secret}"`, secret), { mode: 0o600 });
    try {
      Keyring.fromDataDir(dir);
      assert.fail('expected E_CONFIG');
    } catch (e) {
      assert.ok(e instanceof AuthorityError && e.code === ErrorCode.CONFIG);
      assertNoSecrets(JSON.stringify({ m: e.message, d: e.data, s: e.stack, c: String(e.cause) }), [secret.slice(0, 8), secret.slice(2, 10)]);
    }
  });

  test('an unknown field in the keyring file is refused with its location', () => {
    const dir = freshDir();
    Keyring.fromDataDir(dir, { create: true });
    const path = dataPaths(dir).keyring;
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    doc.keys[0].comment = 'hi';
    writeFileSync(path, JSON.stringify(doc), { mode: 0o600 });
    assert.throws(() => Keyring.fromDataDir(dir), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && String(e.data?.['at']).startsWith('$.keys.0'));
  });
});

describe('keys from the environment and from a file', () => {
  const s1 = Buffer.alloc(32, 0x11).toString('base64url');
  const s2 = Buffer.alloc(32, 0x22).toString('base64url');

  test('AUTHORITY_KEYS in compact form: the first key is active, the rest verify only', () => {
    const ring = Keyring.fromEnv({ AUTHORITY_KEYS: `new-key:${s1}, old-key:${s2}` }) as Keyring;
    assert.equal(ring.source, 'env');
    assert.equal(ring.activeKeyId, 'new-key');
    assert.equal(ring.status('old-key'), 'retired');
    const oldRing = Keyring.fromKeys([{ id: 'old-key', secret: s2 }]);
    const oldToken = issueToken(oldRing, claims);
    assert.equal(verifyToken(ring, oldToken, ctx).keyId, 'old-key');
    assert.equal(verifyToken(ring, issueToken(ring, claims), ctx).keyId, 'new-key');
  });

  test('AUTHORITY_KEYS may hold the keyring JSON', () => {
    const dir = freshDir();
    const fileRing = Keyring.fromDataDir(dir, { create: true });
    const token = issueToken(fileRing, claims);
    const ring = Keyring.fromEnv({ AUTHORITY_KEYS: readFileSync(dataPaths(dir).keyring, 'utf8') }) as Keyring;
    assert.equal(verifyToken(ring, token, ctx).keyId, fileRing.activeKeyId);
  });

  test('an unset or empty variable gives no keyring', () => {
    assert.equal(Keyring.fromEnv({}), undefined);
    assert.equal(Keyring.fromEnv({ AUTHORITY_KEYS: '  ' }), undefined);
  });

  test('keys from the environment are read-only', () => {
    const ring = Keyring.fromEnv({ AUTHORITY_KEYS: `k:${s1}` }) as Keyring;
    assert.equal(codeOf(() => ring.rotate()), ErrorCode.CONFIG);
  });

  const badEnv: Array<[string, string]> = [
    ['a short secret', `k:${Buffer.alloc(16, 1).toString('base64url')}`],
    ['a secret that is not base64url', `k:${s1.slice(0, -2)}+/`],
    ['a non-canonical secret', `k:${s1.slice(0, -1)}B`],
    ['a missing id', `:${s1}`],
    ['a bad id', `k y:${s1}`],
    ['a duplicate id', `k:${s1},k:${s2}`],
  ];
  for (const [what, value] of badEnv) {
    test(`AUTHORITY_KEYS with ${what} is a configuration error that never quotes the secret`, () => {
      try {
        Keyring.fromEnv({ AUTHORITY_KEYS: value });
        assert.fail('expected E_CONFIG');
      } catch (e) {
        assert.ok(e instanceof AuthorityError && e.code === ErrorCode.CONFIG, String(e));
        assertNoSecrets(JSON.stringify({ m: e.message, d: e.data, s: e.stack }), [s1, s2, s1.slice(0, 20), s2.slice(0, 20)]);
      }
    });
  }

  test('load prefers the embedder file, then the environment, then the data folder', () => {
    const dirA = freshDir();
    const dirB = freshDir();
    const a = Keyring.fromDataDir(dirA, { create: true });
    const b = Keyring.fromDataDir(dirB, { create: true });
    const env = { AUTHORITY_KEYS: `env-key:${s1}` };
    assert.equal(Keyring.load({ file: dataPaths(dirA).keyring, env, dataDir: dirB }).activeKeyId, a.activeKeyId);
    assert.equal(Keyring.load({ env, dataDir: dirB }).activeKeyId, 'env-key');
    assert.equal(Keyring.load({ env: {}, dataDir: dirB }).activeKeyId, b.activeKeyId);
  });
});

describe('key material stays inside the keyring', () => {
  test('inspect, JSON, list and errors show ids only', () => {
    const dir = freshDir();
    const ring = Keyring.fromDataDir(dir, { create: true });
    ring.rotate();
    const secrets = secretsIn(dataPaths(dir).keyring);
    const shown = [
      inspect(ring, { depth: 10, showHidden: true }),
      JSON.stringify(ring),
      JSON.stringify(ring.list()),
      String(ring),
      JSON.stringify(Object.entries(ring)),
      JSON.stringify({ ...ring }),
    ].join('\n');
    assertNoSecrets(shown, secrets);
    assert.ok(shown.includes(ring.activeKeyId as string), 'ids are shown');
    const err = (() => {
      try {
        ring.remove('nope');
      } catch (e) {
        return e as AuthorityError;
      }
      return undefined;
    })();
    assert.ok(err !== undefined);
    assertNoSecrets(JSON.stringify({ m: err.message, d: err.data, s: err.stack }), secrets);
  });
});
