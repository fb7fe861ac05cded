import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { findCredentials, formatReference, parseChallenge, parseManifest, parseReference } from '../src/oci/index.ts';
import { parseBundle } from '../src/signing/index.ts';
import { tempDir } from './helpers/runtime.ts';

const dir = tempDir('authority-oci-parts-');
after(() => dir.cleanup());

test('parses oci:// references by tag, by digest, both, and none (latest)', () => {
  const d = `sha256:${'a'.repeat(64)}`;
  const cases: Array<[string, { registry: string; repository: string; tag: string | undefined; digest: string | undefined }]> = [
    ['oci://ghcr.io/acme/tools/echo:1.2.3', { registry: 'ghcr.io', repository: 'acme/tools/echo', tag: '1.2.3', digest: undefined }],
    ['oci://127.0.0.1:5000/echo', { registry: '127.0.0.1:5000', repository: 'echo', tag: 'latest', digest: undefined }],
    [`oci://localhost:5000/a/b@${d}`, { registry: 'localhost:5000', repository: 'a/b', tag: undefined, digest: d }],
    [`oci://r.example/a__b/c-d:v1@${d}`, { registry: 'r.example', repository: 'a__b/c-d', tag: 'v1', digest: d }],
    ['oci://[::1]:5000/x:y', { registry: '[::1]:5000', repository: 'x', tag: 'y', digest: undefined }],
  ];
  for (const [text, want] of cases) {
    assert.deepEqual({ ...parseReference(text) }, want, text);
  }
  assert.equal(formatReference(parseReference(`oci://r.example/a:v1@${d}`)), `oci://r.example/a:v1@${d}`);
});

test('refuses malformed references with E_USAGE saying what is wrong', () => {
  const cases: Array<[string, RegExp]> = [
    ['ghcr.io/acme/echo:1', /does not start with oci:\/\//],
    ['oci://ghcr.io', /no registry host/],
    ['oci:///echo', /no registry host/],
    ['oci://ghcr.io/Acme/echo', /bad repository/],
    ['oci://ghcr.io/acme//echo', /bad repository/],
    ['oci://ghcr.io/acme/echo:-bad', /bad tag/],
    ['oci://ghcr.io/acme/echo@sha256:abc', /bad digest/],
    ['oci://ghcr.io/acme/echo@md5:' + 'a'.repeat(32), /bad digest/],
    ['oci://host:99999/echo', /bad registry host/],
    ['oci://us er@host/echo', /bad registry host/],
  ];
  for (const [text, why] of cases) {
    assert.throws(() => parseReference(text), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.USAGE && why.test(e.message), text);
  }
});

test('parses WWW-Authenticate challenges, quoted commas and escapes included', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
  });
  assert.deepEqual(parseChallenge('Basic realm="a \\"quoted\\" realm"'), { scheme: 'basic', params: { realm: 'a "quoted" realm' } });
  assert.deepEqual(parseChallenge('Bearer realm=unquoted, service=s'), { scheme: 'bearer', params: { realm: 'unquoted', service: 's' } });
  assert.equal(parseChallenge(''), undefined);
});

test('finds credentials in env first, then a docker config, matching the registry host only', () => {
  const config = join(dir.path, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      auths: {
        'https://r.example/v1/': { auth: Buffer.from('u1:p1').toString('base64') },
        'other.example:5000': { username: 'u2', password: 'p2' },
        'token.example': { auth: Buffer.from('<token>:').toString('base64'), identitytoken: 'refresh-1' },
      },
    }),
  );
  const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  assert.equal(findCredentials('r.example', { configFile: config, env: {} })?.basic(), basic('u1', 'p1'));
  assert.equal(findCredentials('other.example:5000', { configFile: config, env: {} })?.basic(), basic('u2', 'p2'));
  const token = findCredentials('token.example', { configFile: config, env: {} });
  assert.equal(token?.identityToken, true);
  assert.equal(token?.refreshToken(), 'refresh-1');
  assert.equal(findCredentials('r.example:443', { configFile: config, env: {} }), undefined, 'another port is another registry');
  assert.equal(findCredentials('evil.example', { configFile: config, env: {} }), undefined);
  const env = { AUTHORITY_REGISTRY_USERNAME: 'e', AUTHORITY_REGISTRY_PASSWORD: 'x' };
  assert.equal(findCredentials('r.example', { configFile: config, env })?.basic(), basic('e', 'x'));
  assert.throws(() => findCredentials('r.example', { env: { AUTHORITY_REGISTRY_USERNAME: 'e' } }), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG);
  // No file given and none in the default places: no credentials, not an error.
  assert.equal(findCredentials('r.example', { env: { HOME: dir.path } }), undefined);
  const broken = join(dir.path, 'broken.json');
  writeFileSync(broken, '{"auths": {"r.example": {"auth": "c2VjcmV0LXdpdGhvdXQtY29sb24="}}}');
  assert.throws(
    () => findCredentials('r.example', { configFile: broken, env: {} }),
    (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && !e.message.includes('secret-without-colon'),
  );
});

test('a manifest or bundle of the wrong shape is refused with its own code, naming the field', () => {
  const cases: Array<[string, RegExp]> = [
    ['[]', /not a JSON object/],
    ['{"schemaVersion":1}', /schemaVersion 2/],
    ['{"schemaVersion":2,"layers":[]}', /config is not a descriptor/],
    ['{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}', /config\.digest/],
    [`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:${'a'.repeat(64)}","size":-1},"layers":[]}`, /config\.size/],
  ];
  for (const [text, why] of cases) {
    assert.throws(() => parseManifest(Buffer.from(text)), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.REGISTRY_PROTOCOL && why.test(e.message), text);
  }
  const bundles: Array<[unknown, RegExp]> = [
    [{}, /mediaType/],
    [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json' }, /no dsseEnvelope/],
    [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', dsseEnvelope: { payloadType: 'text/plain' } }, /payloadType/],
    [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', dsseEnvelope: { payloadType: 'application/vnd.in-toto+json', payload: 'e30=', signatures: [] } }, /exactly one signature/],
    [{ mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', dsseEnvelope: { payloadType: 'application/vnd.in-toto+json', payload: 'e30=', signatures: [{ sig: 'AA==' }] } }, /publicKey\.hint/],
  ];
  for (const [doc, why] of bundles) {
    assert.throws(() => parseBundle(JSON.stringify(doc), 'x.sig'), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.SIGNATURE_INVALID && why.test(e.message), JSON.stringify(doc));
  }
});

test('hostile input to the parsers yields their own error code, never a crash or another error', async () => {
  const fc = (await import('fast-check')).default;
  const only = (code: string, f: () => unknown): void => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof AuthorityError) || e.code !== code) throw e;
    }
  };
  const jsonish = fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v)), fc.constant('{"schemaVersion":2,"config":{},"layers":[{}]}'));
  fc.assert(fc.property(fc.string(), (s) => only(ErrorCode.USAGE, () => parseReference(`oci://${s}`))), { numRuns: 2000 });
  fc.assert(fc.property(fc.string(), (s) => void parseChallenge(s)), { numRuns: 2000 });
  fc.assert(fc.property(jsonish, (s) => only(ErrorCode.REGISTRY_PROTOCOL, () => parseManifest(Buffer.from(s)))), { numRuns: 2000 });
  fc.assert(fc.property(jsonish, (s) => only(ErrorCode.SIGNATURE_INVALID, () => parseBundle(s, 'x'))), { numRuns: 2000 });
  // A bundle of the right shape with hostile contents: parse, then check against a key; never throws but E_SIGNATURE_INVALID.
  const { checkBundle, generateSigningKey } = await import('../src/signing/index.ts');
  const key = generateSigningKey('ed25519');
  fc.assert(
    fc.property(fc.base64String(), fc.base64String({ minLength: 4 }), fc.string(), (payload, sig, hint) => {
      const doc = { mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json', verificationMaterial: { publicKey: { hint } }, dsseEnvelope: { payloadType: 'application/vnd.in-toto+json', payload, signatures: [{ sig }] } };
      only(ErrorCode.SIGNATURE_INVALID, () => {
        const r = checkBundle(parseBundle(JSON.stringify(doc), 'x'), 'a'.repeat(64), [key]);
        assert.equal(r.ok, false);
      });
    }),
    { numRuns: 1000 },
  );
});
