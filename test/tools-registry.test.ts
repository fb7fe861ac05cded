/**
 * Tools from a real OCI registry (Debian's docker-registry, the CNCF
 * distribution registry 2.8, on loopback): push, pull by tag and digest,
 * auth, tampering, signatures through the tag-schema fallback, and a
 * registry of the test's own that answers garbage.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import {
  BlobCache,
  OciClient,
  RegistryCredentials,
  WASM_CONFIG_MEDIA_TYPE,
  WASM_LAYER_MEDIA_TYPE,
  attachSignature,
  clientFor,
  fetchSignatures,
  parseManifest,
  parseReference,
  pullTool,
  pushTool,
  referrersTag,
  registerReference,
} from '../src/oci/index.ts';
import { generateSigningKey, signDigest } from '../src/signing/index.ts';
import { exampleTools } from './helpers/fixtures.ts';
import { selfSignedCert, startRegistry, type TestRegistry } from './helpers/oci-registry.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'authority.js');
const USER = 'alice';
const PASSWORD = 'registry-pass-7f3a9c';

let open: TestRegistry;
let locked: TestRegistry;
let dir: ReturnType<typeof tempDir>;
let echo: Buffer;
let echoFile: string;
let echoDigest: string;

const digestOf = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const plain = (ref: string, env: Record<string, string | undefined> = {}, configFile?: string) => clientFor(parseReference(ref), { plainHttp: true, env, configFile });
const caches: Array<ReturnType<typeof tempDir>> = [];
function freshCache(): BlobCache {
  const d = tempDir('authority-oci-cache-');
  caches.push(d);
  return new BlobCache(d.path);
}

async function refusal(p: Promise<unknown>): Promise<AuthorityError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AuthorityError, String(e));
    return e;
  }
  assert.fail('expected an error');
}

before(async () => {
  const tools = await exampleTools(['echo']);
  echoFile = tools['echo'] as string;
  echo = readFileSync(echoFile);
  echoDigest = digestOf(echo);
  dir = tempDir('authority-registry-');
  [open, locked] = await Promise.all([startRegistry(), startRegistry({ auth: { user: USER, password: PASSWORD } })]);
});
after(async () => {
  await Promise.all([open?.stop(), locked?.stop()]);
  dir?.cleanup();
  for (const c of caches) c.cleanup();
});

test('pushes a component as a Wasm OCI artifact and pulls it back by tag and by digest', async () => {
  const ref = `oci://${open.host}/tools/echo:1.0`;
  const pushed = await pushTool(plain(ref), parseReference(ref), echo);
  assert.equal(pushed.componentDigest, echoDigest);
  assert.equal(pushed.pinned, `oci://${open.host}/tools/echo@${pushed.manifestDigest}`);

  // The layout the component ecosystem reads: wasm config, one application/wasm layer.
  const c = plain(ref);
  const m = await c.getManifest('tools/echo', '1.0');
  assert.equal(m.digest, pushed.manifestDigest);
  const manifest = parseManifest(m.bytes);
  assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(manifest.config.mediaType, WASM_CONFIG_MEDIA_TYPE);
  assert.deepEqual(
    manifest.layers.map((l) => [l.mediaType, l.digest, l.size]),
    [[WASM_LAYER_MEDIA_TYPE, echoDigest, echo.length]],
  );
  const config = JSON.parse((await c.getBlob('tools/echo', manifest.config)).toString()) as Record<string, unknown>;
  assert.equal(config['architecture'], 'wasm');
  assert.equal(config['os'], 'wasip2');
  assert.deepEqual(config['layerDigests'], [echoDigest]);

  const cache = freshCache();
  const byTag = await pullTool(plain(ref), parseReference(ref), cache);
  assert.deepEqual(byTag.bytes, echo);
  assert.equal(byTag.manifestDigest, pushed.manifestDigest);
  assert.equal(byTag.fromCache, false);
  const byDigest = await pullTool(plain(pushed.pinned), parseReference(pushed.pinned), cache);
  assert.deepEqual(byDigest.bytes, echo);
  assert.equal(byDigest.fromCache, true, 'a digest already pulled is served from the cache');
  assert.deepEqual(readFileSync(cache.path(echoDigest)), echo);
});

test('a cached file changed on disk is not served: it is fetched again', async () => {
  const ref = `oci://${open.host}/tools/cached:1`;
  const pushed = await pushTool(plain(ref), parseReference(ref), echo);
  const cache = freshCache();
  await pullTool(plain(ref), parseReference(ref), cache);
  const file = cache.path(echoDigest);
  const bad = Buffer.from(echo);
  bad.writeUInt8((bad.at(-1) as number) ^ 0xff, bad.length - 1);
  writeFileSync(file, bad);
  const again = await pullTool(plain(pushed.pinned), parseReference(pushed.pinned), cache);
  assert.deepEqual(again.bytes, echo);
  assert.equal(again.fromCache, false);
  assert.deepEqual(readFileSync(file), echo);
});

test('a blob tampered with in the registry storage is refused with E_DIGEST_MISMATCH', async () => {
  const ref = `oci://${open.host}/tools/tampered:1`;
  // Bytes of its own, so no other test shares the blob.
  const own = Buffer.concat([echo, Buffer.from([0, 0x04, 0x6e, 0x6f, 0x74, 0x65])]);
  const pushed = await pushTool(plain(ref), parseReference(ref), own);
  const hex = pushed.componentDigest.slice(7);
  const data = join(open.storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  assert.ok(existsSync(data), `the registry stores the blob at ${data}`);
  const evil = Buffer.from(own);
  evil.writeUInt8((evil[20] as number) ^ 0x01, 20);
  writeFileSync(data, evil);
  const e = await refusal(pullTool(plain(ref), parseReference(ref), freshCache()));
  assert.equal(e.code, ErrorCode.DIGEST_MISMATCH);
  assert.equal(e.data?.['expected'], pushed.componentDigest);
  assert.equal(e.data?.['actual'], digestOf(evil));
});

test('an unknown tag, repository or digest is E_REGISTRY_NOT_FOUND', async () => {
  await pushTool(plain(`oci://${open.host}/tools/known:1`), parseReference(`oci://${open.host}/tools/known:1`), echo);
  for (const ref of [`oci://${open.host}/tools/known:2`, `oci://${open.host}/tools/nobody:1`, `oci://${open.host}/tools/known@sha256:${'5'.repeat(64)}`]) {
    const e = await refusal(pullTool(plain(ref), parseReference(ref), freshCache()));
    assert.equal(e.code, ErrorCode.REGISTRY_NOT_FOUND, ref);
    assert.equal(e.data?.['status'], 404);
  }
});

test('basic auth: refused without or with wrong credentials, accepted from env or a docker config, never echoing the password', async () => {
  const ref = `oci://${locked.host}/team/echo:1.0`;
  const none = await refusal(pushTool(plain(ref, {}), parseReference(ref), echo));
  assert.equal(none.code, ErrorCode.REGISTRY_UNAUTHORIZED);
  assert.match(none.message, /no credentials are configured/);
  const wrong = await refusal(pushTool(plain(ref, { AUTHORITY_REGISTRY_USERNAME: USER, AUTHORITY_REGISTRY_PASSWORD: 'not-it' }), parseReference(ref), echo));
  assert.equal(wrong.code, ErrorCode.REGISTRY_UNAUTHORIZED);
  assert.match(wrong.message, /credentials from env AUTHORITY_REGISTRY_USERNAME were refused/);

  const pushed = await pushTool(plain(ref, { AUTHORITY_REGISTRY_USERNAME: USER, AUTHORITY_REGISTRY_PASSWORD: PASSWORD }), parseReference(ref), echo);
  const config = join(dir.path, 'docker-config.json');
  writeFileSync(config, JSON.stringify({ auths: { [`http://${locked.host}`]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
  const pulled = await pullTool(plain(ref, {}, config), parseReference(ref), freshCache());
  assert.equal(pulled.manifestDigest, pushed.manifestDigest);

  const creds = new RegistryCredentials(USER, PASSWORD, 'test');
  for (const shown of [JSON.stringify(creds), String(creds), (await import('node:util')).inspect(creds), JSON.stringify(wrong), wrong.message]) {
    assert.ok(!shown.includes(PASSWORD) && !shown.includes(Buffer.from(`${USER}:${PASSWORD}`).toString('base64')), shown);
  }
});

test('signatures attach through the tag-schema fallback on a registry without the referrers API', async () => {
  const ref = `oci://${open.host}/tools/signed:1.0`;
  const c = plain(ref);
  const pushed = await pushTool(c, parseReference(ref), echo);
  const size = (await c.getManifest('tools/signed', pushed.manifestDigest)).bytes.length;
  const alice = generateSigningKey('ed25519');
  const bob = generateSigningKey('ecdsa-p256');
  assert.equal((await fetchSignatures(c, 'tools/signed', pushed.manifestDigest)).bundles.length, 0, 'no signature yet');
  const a = await attachSignature(c, 'tools/signed', { digest: pushed.manifestDigest, size }, signDigest(echoDigest.slice(7), alice));
  const b = await attachSignature(c, 'tools/signed', { digest: pushed.manifestDigest, size }, signDigest(echoDigest.slice(7), bob));
  assert.equal(a.via, 'tag-schema');
  assert.equal(b.via, 'tag-schema');
  // The fallback index is a real OCI index under sha256-<hex>, listing both referrers.
  const index = await c.getIndexByTag('tools/signed', referrersTag(pushed.manifestDigest));
  assert.deepEqual(index?.index.manifests.map((d) => d.digest).sort(), [a.digest, b.digest].sort());
  const found = await fetchSignatures(c, 'tools/signed', pushed.manifestDigest);
  assert.equal(found.via, 'tag-schema');
  assert.deepEqual(found.bundles.map((x) => x.verificationMaterial.publicKey.hint).sort(), [alice.keyId, bob.keyId].sort());
});

/** A registry of the test's own, answering what `answer` says. */
async function fakeRegistry(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ host: string; server: Server }> {
  const server = createServer(answer);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('a registry that answers garbage gets E_REGISTRY_PROTOCOL or E_DIGEST_MISMATCH, never a tool', async () => {
  const wasmManifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: WASM_CONFIG_MEDIA_TYPE, digest: `sha256:${'c'.repeat(64)}`, size: 2 },
    layers: [{ mediaType: WASM_LAYER_MEDIA_TYPE, digest: echoDigest, size: echo.length }],
  });
  const cases: Array<{ name: string; answer: (req: IncomingMessage, res: ServerResponse) => void; code: string; ref?: string }> = [
    { name: 'HTML instead of a manifest', answer: (_q, s) => void s.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>'), code: ErrorCode.REGISTRY_PROTOCOL },
    { name: 'JSON of the wrong shape', answer: (_q, s) => void s.writeHead(200).end('{"schemaVersion":2,"layers":"no"}'), code: ErrorCode.REGISTRY_PROTOCOL },
    { name: 'a server error', answer: (_q, s) => void s.writeHead(500).end('{"errors":[{"code":"UNKNOWN"}]}'), code: ErrorCode.REGISTRY_PROTOCOL },
    { name: 'an index instead of a manifest', answer: (_q, s) => void s.writeHead(200).end('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'), code: ErrorCode.REGISTRY_PROTOCOL },
    {
      name: 'a manifest whose digest header lies',
      answer: (_q, s) => void s.writeHead(200, { 'docker-content-digest': `sha256:${'d'.repeat(64)}` }).end(wasmManifest),
      code: ErrorCode.DIGEST_MISMATCH,
    },
    { name: 'other bytes for a digest reference', answer: (_q, s) => void s.writeHead(200).end(wasmManifest), code: ErrorCode.DIGEST_MISMATCH, ref: `tools/x@sha256:${'e'.repeat(64)}` },
    {
      name: 'a layer whose bytes are not the component',
      answer: (q, s) => void (q.url?.includes('/manifests/') ? s.writeHead(200).end(wasmManifest) : s.writeHead(200).end(Buffer.alloc(echo.length, 7))),
      code: ErrorCode.DIGEST_MISMATCH,
    },
    {
      name: 'an endless blob',
      answer: (q, s) => {
        if (q.url?.includes('/manifests/')) return void s.writeHead(200).end(wasmManifest);
        s.writeHead(200);
        const chunk = Buffer.alloc(64 * 1024, 1);
        let sent = 0;
        const pump = (): void => {
          while (sent < 64 && s.write(chunk)) sent++;
          if (sent < 64) s.once('drain', pump);
          else s.end();
        };
        pump();
      },
      code: ErrorCode.TOO_LARGE,
    },
    { name: 'a bearer challenge without a realm', answer: (_q, s) => void s.writeHead(401, { 'www-authenticate': 'Bearer service="x"' }).end(), code: ErrorCode.REGISTRY_PROTOCOL },
  ];
  for (const c of cases) {
    const fake = await fakeRegistry(c.answer);
    try {
      const ref = `oci://${fake.host}/${c.ref ?? 'tools/x:1'}`;
      const e = await refusal(pullTool(plain(ref), parseReference(ref), freshCache()));
      assert.equal(e.code, c.code, `${c.name}: ${e.message}`);
    } finally {
      fake.server.closeAllConnections();
      await new Promise((r) => fake.server.close(r));
    }
  }
  // Nothing listening: unreachable, not a hang.
  const gone = await fakeRegistry(() => {});
  const host = gone.host;
  await new Promise((r) => gone.server.close(r));
  const e = await refusal(pullTool(plain(`oci://${host}/tools/x:1`), parseReference(`oci://${host}/tools/x:1`), freshCache()));
  assert.equal(e.code, ErrorCode.REGISTRY_UNREACHABLE);
});

test('bearer token auth: the challenge is answered with a token fetched with the credentials, or exchanged for an identity token', async () => {
  const ref = `oci://${open.host}/tools/behind-token:1`;
  const pushed = await pushTool(plain(ref), parseReference(ref), echo);
  const token = 'tok-' + createHash('sha256').update(PASSWORD).digest('hex').slice(0, 16);
  const scopes: string[] = [];
  // A token service and an API front of the test's own, in front of the real registry.
  const front = await fakeRegistry((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token' && req.method === 'POST') {
      // The OAuth2 refresh-token exchange a docker config's identitytoken gets.
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        scopes.push(form.get('scope') ?? '');
        const ok = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === PASSWORD && form.get('service') === 'test-registry';
        res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? JSON.stringify({ access_token: token }) : '{}');
      });
      return;
    }
    if (url.pathname === '/token') {
      scopes.push(url.searchParams.get('scope') ?? '');
      const ok = req.headers.authorization === `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
      return void res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? JSON.stringify({ token }) : '{}');
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      return void res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="test-registry",scope="repository:tools/behind-token:pull"` }).end();
    }
    void fetch(`http://${open.host}${req.url}`, { headers: { accept: String(req.headers.accept ?? '*/*') } }).then(async (r) => {
      const headers: Record<string, string> = {};
      for (const h of ['content-type', 'docker-content-digest']) if (r.headers.get(h) !== null) headers[h] = r.headers.get(h) as string;
      res.writeHead(r.status, headers).end(Buffer.from(await r.arrayBuffer()));
    });
  });
  try {
    const via = `oci://${front.host}/tools/behind-token:1`;
    const anonymous = await refusal(pullTool(plain(via), parseReference(via), freshCache()));
    assert.equal(anonymous.code, ErrorCode.REGISTRY_UNAUTHORIZED);
    const pulled = await pullTool(plain(via, { AUTHORITY_REGISTRY_USERNAME: USER, AUTHORITY_REGISTRY_PASSWORD: PASSWORD }), parseReference(via), freshCache());
    assert.equal(pulled.manifestDigest, pushed.manifestDigest);
    assert.deepEqual(pulled.bytes, echo);
    const config = join(dir.path, 'identity-config.json');
    writeFileSync(config, JSON.stringify({ auths: { [front.host]: { auth: Buffer.from('<token>:').toString('base64'), identitytoken: PASSWORD } } }));
    const viaIdentity = await pullTool(plain(via, {}, config), parseReference(via), freshCache());
    assert.equal(viaIdentity.manifestDigest, pushed.manifestDigest);
    assert.ok(scopes.length >= 2 && scopes.every((s) => s === 'repository:tools/behind-token:pull'), scopes.join(','));
  } finally {
    front.server.closeAllConnections();
    await new Promise((r) => front.server.close(r));
  }
});

test('credentials are not sent over plain HTTP unless plain HTTP was asked for', async () => {
  // https is the default: a plain-HTTP registry is then unreachable, and nothing was sent in the clear.
  const seen: string[] = [];
  const fake = await fakeRegistry((req, res) => {
    seen.push(req.headers.authorization ?? '');
    res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
  });
  try {
    const ref = parseReference(`oci://${fake.host}/tools/x:1`);
    const c = new OciClient(ref.registry, { credentials: new RegistryCredentials(USER, PASSWORD, 'test') });
    const e = await refusal(c.getManifest('tools/x', '1'));
    assert.equal(e.code, ErrorCode.REGISTRY_UNREACHABLE);
    assert.ok(seen.every((h) => h === ''), 'no credentials reached the server');
  } finally {
    await new Promise((r) => fake.server.close(r));
  }
});

test('registering from a reference: unsigned, wrong key and missing signature are refused; the trusted signer is audited', async () => {
  const ref = `oci://${open.host}/tools/trusted:1.0`;
  const c = plain(ref);
  const pushed = await pushTool(c, parseReference(ref), echo);
  const alice = generateSigningKey('ed25519');
  const mallory = generateSigningKey('ed25519');
  const policy = { version: '1.0', tools: { allow: ['*'], trust: [{ tools: ['*'], keys: [alice.pem] }] } };
  const access = { plainHttp: [open.host], env: {} };

  const rt = await testRuntime({ policy });
  try {
    const unsigned = await refusal(registerReference(rt, ref, access));
    assert.equal(unsigned.code, ErrorCode.TOOL_UNSIGNED);
    assert.equal(unsigned.data?.['source'], pushed.pinned);
    const size = (await c.getManifest('tools/trusted', pushed.manifestDigest)).bytes.length;
    await attachSignature(c, 'tools/trusted', { digest: pushed.manifestDigest, size }, signDigest(echoDigest.slice(7), mallory));
    const wrongKey = await refusal(registerReference(rt, ref, access));
    assert.equal(wrongKey.code, ErrorCode.TOOL_UNTRUSTED);
    await attachSignature(c, 'tools/trusted', { digest: pushed.manifestDigest, size }, signDigest(echoDigest.slice(7), alice));
    const tool = await registerReference(rt, ref, access);
    assert.equal(tool.name, 'echo');
    const regs = await auditRecords(rt.dataDir, (r) => r.kind === 'tool.register');
    assert.deepEqual(
      regs.map((r) => r.code),
      [ErrorCode.TOOL_UNSIGNED, ErrorCode.TOOL_UNTRUSTED, 'ok'],
    );
    const ok = regs[2];
    assert.equal(ok?.toolDigest, echoDigest);
    assert.equal(ok?.detail?.['source'], pushed.pinned);
    assert.equal(ok?.detail?.['reference'], ref);
    assert.equal(ok?.detail?.['signer'], alice.keyId);
    assert.equal(ok?.detail?.['signatures'], 2);
  } finally {
    await rt.cleanup();
  }
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string>): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir.path, env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('round trip with the CLI: keygen, sign, push; then on a fresh data folder pull, verify and run, audited with digest, reference and signer', async () => {
  const publisher = join(dir.path, 'publisher');
  const consumer = join(dir.path, 'consumer');
  const env = { AUTHORITY_DATA_DIR: publisher, AUTHORITY_REGISTRY_USERNAME: USER, AUTHORITY_REGISTRY_PASSWORD: PASSWORD };
  const wasm = join(dir.path, 'echo.wasm');
  writeFileSync(wasm, echo);
  const keygen = await cli(['tools', 'keygen', join(dir.path, 'release'), '--json'], env);
  assert.equal(keygen.code, 0, keygen.stderr);
  const { keyId, publicKeyPem } = JSON.parse(keygen.stdout) as { keyId: string; publicKeyPem: string };
  assert.equal((await cli(['tools', 'sign', wasm, '--key', join(dir.path, 'release.key')], env)).code, 0);
  const ref = `oci://${locked.host}/team/echo:2.0`;
  const push = await cli(['tools', 'push', wasm, ref, '--plain-http', '--json'], env);
  assert.equal(push.code, 0, push.stderr);
  const pushed = JSON.parse(push.stdout) as { pinned: string; componentDigest: string; signatures: Array<{ via: string }> };
  assert.equal(pushed.componentDigest, echoDigest);
  assert.deepEqual(pushed.signatures.map((s) => s.via), ['tag-schema']);
  assert.ok(!push.stdout.includes(PASSWORD) && !push.stderr.includes(PASSWORD));

  // The consumer: its own data folder, a policy that trusts the release key only.
  const policy = join(dir.path, 'consumer-policy.json');
  writeFileSync(policy, JSON.stringify({ version: '1.0', tools: { allow: ['echo'], trust: [{ tools: ['*'], keys: [publicKeyPem] }] } }));
  const cenv = { ...env, AUTHORITY_DATA_DIR: consumer };
  const pulled = await cli(['tools', 'pull', ref, '--plain-http', '--key', join(dir.path, 'release.pub'), '-o', join(dir.path, 'pulled.wasm'), '--json'], cenv);
  assert.equal(pulled.code, 0, pulled.stdout + pulled.stderr);
  assert.equal((JSON.parse(pulled.stdout) as { signer: string }).signer, keyId);
  assert.deepEqual(readFileSync(join(dir.path, 'pulled.wasm')), echo);
  assert.ok(readdirSync(join(consumer, 'oci', 'blobs', 'sha256')).includes(echoDigest.slice(7)), 'the component is cached by digest');
  const verified = await cli(['tools', 'verify', join(dir.path, 'pulled.wasm'), '--policy', policy], cenv);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  assert.match(verified.stdout, new RegExp(`signed by key ${keyId}`));

  const run = await cli(['run', ref, '--plain-http', '--policy', policy, '--input', '{"text":"from the registry"}', '--json'], cenv);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match((JSON.parse(run.stdout) as { output: string }).output, /from the registry/);
  const [reg] = await auditRecords(consumer, (r) => r.kind === 'tool.register');
  assert.equal(reg?.decision, 'allow');
  assert.equal(reg?.toolDigest, echoDigest);
  assert.equal(reg?.detail?.['source'], pushed.pinned);
  assert.equal(reg?.detail?.['reference'], ref);
  assert.equal(reg?.detail?.['signer'], keyId);
  const [start] = await auditRecords(consumer, (r) => r.kind === 'invoke.start');
  assert.equal(start?.toolDigest, echoDigest);

  // Another key's policy refuses the same reference, naming the rule, the tool and the digest.
  const other = generateSigningKey('ecdsa-p256');
  const strict = join(dir.path, 'strict-policy.json');
  writeFileSync(strict, JSON.stringify({ version: '1.0', tools: { allow: ['echo'], trust: [{ tools: ['echo'], keys: [other.pem] }] } }));
  const refused = await cli(['run', ref, '--plain-http', '--policy', strict, '--input', '{}', '--json'], cenv);
  assert.equal(refused.code, 1);
  const err = (JSON.parse(refused.stdout) as { error: { code: string; message: string; data: Record<string, unknown> } }).error;
  assert.equal(err.code, ErrorCode.TOOL_UNTRUSTED);
  assert.equal(err.data['path'], 'tools.trust[0]');
  assert.equal(err.data['digest'], echoDigest);
  assert.equal(err.data['source'], pushed.pinned);
});

test('authority mcp serves a tool straight from an oci:// reference, and refuses one the policy does not trust', async () => {
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
  const key = generateSigningKey('ed25519');
  const good = `oci://${open.host}/mcp/echo:1`;
  const c = plain(good);
  const pushed = await pushTool(c, parseReference(good), echo);
  const size = (await c.getManifest('mcp/echo', pushed.manifestDigest)).bytes.length;
  await attachSignature(c, 'mcp/echo', { digest: pushed.manifestDigest, size }, signDigest(echoDigest.slice(7), key));
  // The same bytes, unsigned, under another repository: the policy's trust rule covers the name, not the place.
  const unsigned = `oci://${open.host}/mcp/echo-unsigned:1`;
  await pushTool(plain(unsigned), parseReference(unsigned), echo);
  const folder = join(dir.path, 'mcp');
  const policy = join(dir.path, 'mcp-policy.json');
  writeFileSync(policy, JSON.stringify({ version: '1.0', tools: { allow: ['*'], trust: [{ tools: ['echo'], keys: [key.pem] }] } }));
  for (const [ref, served] of [
    [good, true],
    [unsigned, false],
  ] as const) {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [BIN, 'mcp', '--tools', ref, '--plain-http', '--policy', policy, '--data-dir', join(folder, served ? 'a' : 'b')],
      cwd: dir.path,
      stderr: 'pipe',
      env: { PATH: process.env['PATH'] ?? '' },
    });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const client = new Client({ name: 'authority-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const { tools: listed } = await client.listTools();
      if (served) {
        assert.deepEqual(listed.map((t) => t.name), ['echo'], stderr);
        const r = (await client.callTool({ name: 'echo', arguments: { text: 'over mcp' } })) as { content: Array<{ text: string }> };
        assert.match(r.content[0]?.text ?? '', /over mcp/);
      } else {
        assert.deepEqual(listed, []);
        assert.match(stderr, new RegExp(`refused ${unsigned.replace(/[.:/]/g, '\\$&')}: E_TOOL_UNSIGNED: refused to register echo: tools\\.trust\\[0\\]`));
      }
    } finally {
      await client.close();
    }
  }
});

/**
 * A registry with the OCI 1.1 referrers API, of the test's own (in memory):
 * distribution 2.8 has none, so this is what exercises the API path. Its
 * blobs are served by a redirect to a second origin, which must never see
 * the registry's credentials.
 */
async function referrersRegistry(storage: { seenAuth: string[] }): Promise<{ host: string; close: () => Promise<void> }> {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { type: string; body: Buffer }>();
  const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
  const storageServer = await fakeRegistry((req, res) => {
    storage.seenAuth.push(req.headers.authorization ?? '');
    const body = blobs.get(new URL(req.url ?? '/', 'http://x').pathname.slice(1));
    res.writeHead(body === undefined ? 404 : 200).end(body);
  });
  const api = await fakeRegistry((req, res) => {
    if (req.headers.authorization !== auth) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"' }).end();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
      const body = Buffer.concat(chunks);
      let m: RegExpExecArray | null;
      if ((m = /^\/v2\/(.+)\/blobs\/uploads\/$/.exec(url.pathname)) && req.method === 'POST') return void res.writeHead(202, { location: `/upload/${m[1]}` }).end();
      if (url.pathname.startsWith('/upload/') && req.method === 'PUT') {
        const digest = url.searchParams.get('digest') ?? '';
        if (digestOf(body) !== digest) return void res.writeHead(400).end('{"errors":[{"code":"DIGEST_INVALID"}]}');
        blobs.set(digest, body);
        return void res.writeHead(201, { 'docker-content-digest': digest }).end();
      }
      if ((m = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname))) {
        if (!blobs.has(m[1] as string)) return void res.writeHead(404).end();
        if (req.method === 'HEAD') return void res.writeHead(200).end();
        return void res.writeHead(307, { location: `http://${storageServer.host}/${m[1]}` }).end();
      }
      if ((m = /^\/v2\/.+\/manifests\/(.+)$/.exec(url.pathname))) {
        const ref = m[1] as string;
        if (req.method === 'PUT') {
          const digest = digestOf(body);
          const entry = { type: String(req.headers['content-type']), body };
          manifests.set(digest, entry);
          manifests.set(ref, entry);
          const subject = (JSON.parse(body.toString()) as { subject?: { digest: string } }).subject;
          return void res.writeHead(201, { 'docker-content-digest': digest, ...(subject === undefined ? {} : { 'oci-subject': subject.digest }) }).end();
        }
        const found = manifests.get(ref);
        if (found === undefined) return void res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return void res.writeHead(200, { 'content-type': found.type, 'docker-content-digest': digestOf(found.body) }).end(found.body);
      }
      if ((m = /^\/v2\/.+\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url.pathname))) {
        const list = [...new Set([...manifests.values()])].flatMap(({ type, body }) => {
          const doc = JSON.parse(body.toString()) as { subject?: { digest: string }; artifactType?: string };
          return doc.subject?.digest === m?.[1] ? [{ mediaType: type, digest: digestOf(body), size: body.length, artifactType: doc.artifactType }] : [];
        });
        return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json' }).end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: list }));
      }
      res.writeHead(404).end();
    });
  });
  return {
    host: api.host,
    close: async () => {
      for (const s of [api.server, storageServer.server]) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
    },
  };
}

test('on a registry with the referrers API, signatures attach and are found through it, and redirected blobs get no credentials', async () => {
  const storage = { seenAuth: [] as string[] };
  const reg = await referrersRegistry(storage);
  try {
    const ref = `oci://${reg.host}/tools/echo:1`;
    const env = { AUTHORITY_REGISTRY_USERNAME: USER, AUTHORITY_REGISTRY_PASSWORD: PASSWORD };
    const c = plain(ref, env);
    const pushed = await pushTool(c, parseReference(ref), echo);
    const key = generateSigningKey('ed25519');
    const size = (await c.getManifest('tools/echo', pushed.manifestDigest)).bytes.length;
    const attached = await attachSignature(c, 'tools/echo', { digest: pushed.manifestDigest, size }, signDigest(echoDigest.slice(7), key));
    assert.equal(attached.via, 'referrers-api');
    // No fallback tag was written: the registry keeps the referrers itself.
    assert.equal(await c.getIndexByTag('tools/echo', referrersTag(pushed.manifestDigest)), undefined);
    const found = await fetchSignatures(plain(ref, env), 'tools/echo', pushed.manifestDigest);
    assert.equal(found.via, 'referrers-api');
    assert.deepEqual(found.bundles.map((b) => b.verificationMaterial.publicKey.hint), [key.keyId]);
    const pulled = await pullTool(plain(ref, env), parseReference(ref), freshCache());
    assert.deepEqual(pulled.bytes, echo);
    assert.ok(storage.seenAuth.length >= 2, 'blobs were fetched from the storage origin');
    assert.deepEqual([...new Set(storage.seenAuth)], [''], 'the storage origin never saw the registry credentials');
  } finally {
    await reg.close();
  }
});

test('HTTPS is the default: a registry with a certificate the system trusts works, an untrusted one is refused, and basic auth rides on TLS', async () => {
  const certs = selfSignedCert(dir.path);
  const tls = await startRegistry({ tls: certs, auth: { user: USER, password: PASSWORD } });
  try {
    const ref = `oci://${tls.host}/secure/echo:1`;
    const env = { AUTHORITY_DATA_DIR: join(dir.path, 'tls-data'), AUTHORITY_REGISTRY_USERNAME: USER, AUTHORITY_REGISTRY_PASSWORD: PASSWORD };
    const untrusted = await cli(['tools', 'push', echoFile, ref, '--json'], env);
    assert.equal(untrusted.code, 1, untrusted.stdout + untrusted.stderr);
    const err = (JSON.parse(untrusted.stdout) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, ErrorCode.REGISTRY_UNREACHABLE);
    assert.match(err.message, /https:\/\/127\.0\.0\.1:\d+ .*(SELF_SIGNED|self.signed|CERT)/i);
    // The operator's CA store decides (NODE_EXTRA_CA_CERTS adds to it): nothing of ours relaxes certificate checks.
    const trusted = { ...env, NODE_EXTRA_CA_CERTS: certs.cert };
    const push = await cli(['tools', 'push', echoFile, ref, '--json'], trusted);
    assert.equal(push.code, 0, push.stdout + push.stderr);
    const pull = await cli(['tools', 'pull', ref, '--json'], trusted);
    assert.equal(pull.code, 0, pull.stdout + pull.stderr);
    assert.equal((JSON.parse(pull.stdout) as { componentDigest: string }).componentDigest, echoDigest);
    // Plain HTTP to a TLS registry is a protocol error, not a silent downgrade.
    const plainToTls = await cli(['tools', 'pull', ref, '--plain-http', '--json'], trusted);
    assert.equal(plainToTls.code, 1);
    assert.equal((JSON.parse(plainToTls.stdout) as { error: { code: string } }).error.code, ErrorCode.REGISTRY_PROTOCOL);
  } finally {
    await tls.stop();
  }
});

test('pulls a component laid out as the component ecosystem pushes it (wkg-style manifest with annotations)', async () => {
  const ref = `oci://${open.host}/ecosystem/echo:0.1.0`;
  const c = plain(ref);
  // What wasm-pkg-tools writes: a wasm config with the component's world, an annotated manifest.
  const config = Buffer.from(
    JSON.stringify({
      created: '2026-01-01T00:00:00Z',
      author: null,
      architecture: 'wasm',
      os: 'wasip2',
      layerDigests: [echoDigest],
      component: { exports: ['describe', 'run'], imports: ['authority:sandbox/types@0.1.0'], target: 'authority:sandbox/tool@0.1.0' },
    }),
  );
  const layer = await c.pushBlob('ecosystem/echo', echo);
  const cfg = await c.pushBlob('ecosystem/echo', config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: WASM_CONFIG_MEDIA_TYPE, digest: cfg.digest, size: cfg.size },
      layers: [{ mediaType: WASM_LAYER_MEDIA_TYPE, digest: layer.digest, size: layer.size, annotations: { 'org.opencontainers.image.title': 'echo.wasm' } }],
      annotations: { 'org.opencontainers.image.version': '0.1.0', 'org.opencontainers.image.description': 'echo' },
    }),
  );
  await c.putManifest('ecosystem/echo', '0.1.0', manifest, 'application/vnd.oci.image.manifest.v1+json');
  const pulled = await pullTool(plain(ref), parseReference(ref), freshCache());
  assert.deepEqual(pulled.bytes, echo);
  assert.equal(pulled.manifestDigest, digestOf(manifest));

  // And one with two layers, or a config of another kind, is not taken for a tool.
  const image = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfg.digest, size: cfg.size }, layers: [{ mediaType: WASM_LAYER_MEDIA_TYPE, digest: layer.digest, size: layer.size }] }));
  await c.putManifest('ecosystem/echo', 'container', image, 'application/vnd.oci.image.manifest.v1+json');
  const e = await refusal(pullTool(plain(ref), parseReference(`oci://${open.host}/ecosystem/echo:container`), freshCache()));
  assert.equal(e.code, ErrorCode.COMPONENT_INVALID);
  assert.match(e.message, /config media type is "application\/vnd\.oci\.image\.config\.v1\+json"/);
});
