import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { watchToolFolders } from '../src/adapters/tool-folders.ts';
import { main } from '../src/cli/main.ts';
import type { CliIO } from '../src/cli/types.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { loadPolicy } from '../src/policy/index.ts';
import { checkBundle, generateSigningKey, keyIdOf, parseBundle, readSidecar, signDigest, writeSidecar, type PrivateKeyInfo } from '../src/signing/index.ts';
import { exampleTools } from './helpers/fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

let dir: ReturnType<typeof tempDir>;
let echo: string;
let echoHex: string;
let wordCount: string;
let alice: PrivateKeyInfo;
let mallory: PrivateKeyInfo;

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

function trustPolicy(keys: PrivateKeyInfo[], extra: Record<string, unknown> = {}) {
  return { version: '1.0', tools: { allow: ['*'], trust: [{ tools: ['ech*'], keys: keys.map((k) => k.pem) }], ...extra } };
}

/** A fresh copy of echo.wasm in its own folder (so each test has its own .sig). */
function echoCopy(name: string): string {
  const folder = join(dir.path, name);
  mkdirSync(folder, { recursive: true });
  const file = join(folder, 'echo.wasm');
  copyFileSync(echo, file);
  return file;
}

async function refusal(p: Promise<unknown>): Promise<AuthorityError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AuthorityError, String(e));
    return e;
  }
  assert.fail('expected a refusal');
}

before(async () => {
  const tools = await exampleTools(['echo', 'word-count']);
  echo = tools['echo'] as string;
  wordCount = tools['word-count'] as string;
  echoHex = sha(echo);
  dir = tempDir('authority-trust-');
  alice = generateSigningKey('ed25519');
  mallory = generateSigningKey('ecdsa-p256');
});
after(() => dir.cleanup());

test('a signature verifies for its digest and key, and for nothing else', () => {
  for (const key of [alice, mallory]) {
    const bundle = parseBundle(JSON.stringify(signDigest(echoHex, key, { tool: 'echo' })), 'test');
    assert.deepEqual(checkBundle(bundle, echoHex, [key]), { ok: true, keyId: key.keyId, tool: 'echo' });
    const other = key === alice ? mallory : alice;
    const wrongKey = checkBundle(bundle, echoHex, [other]);
    assert.equal(wrongKey.ok, false);
    assert.equal(!wrongKey.ok && wrongKey.why, 'unknown-key');
    const wrongDigest = checkBundle(bundle, 'a'.repeat(64), [key]);
    assert.equal(!wrongDigest.ok && wrongDigest.why, 'wrong-subject');
    // One flipped bit of the statement breaks the signature.
    const payload = Buffer.from(bundle.dsseEnvelope.payload, 'base64');
    payload.writeUInt8((payload.at(-3) as number) ^ 1, payload.length - 3);
    const tampered = { ...bundle, dsseEnvelope: { ...bundle.dsseEnvelope, payload: payload.toString('base64') } };
    const bad = checkBundle(tampered, echoHex, [key]);
    assert.equal(!bad.ok && bad.why, 'bad-signature');
  }
});

test('the bundle is a Sigstore v0.3 bundle holding a DSSE in-toto statement about the digest', () => {
  const b = signDigest(echoHex, alice, { name: 'echo.wasm' });
  assert.equal(b.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
  assert.equal(b.verificationMaterial.publicKey.hint, alice.keyId);
  assert.equal(b.dsseEnvelope.payloadType, 'application/vnd.in-toto+json');
  const st = JSON.parse(Buffer.from(b.dsseEnvelope.payload, 'base64').toString()) as { _type: string; subject: Array<{ name: string; digest: { sha256: string } }> };
  assert.equal(st._type, 'https://in-toto.io/Statement/v1');
  assert.deepEqual(st.subject, [{ name: 'echo.wasm', digest: { sha256: echoHex } }]);
});

test('the Sigstore JS verifier accepts our bundles for both key types, and rejects a tampered one', async () => {
  // sigstore-js is what npm verifies provenance with: if it accepts the bundle, so can any conforming client.
  const { bundleFromJSON } = await import('@sigstore/bundle');
  const { Verifier, toSignedEntity, toTrustMaterial } = await import('@sigstore/verify');
  const artifact = readFileSync(echo);
  for (const key of [alice, mallory]) {
    const json = signDigest(echoHex, key, { name: 'echo.wasm' });
    const root = { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] } as Parameters<typeof toTrustMaterial>[0];
    const trust = toTrustMaterial(root, (hint: string) => {
      assert.equal(hint, key.keyId, 'the bundle names its key');
      return { publicKey: key.key, validFor: () => true };
    });
    // Key-based verification: no transparency log, no certificate, no timestamp authority.
    const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, tsaThreshold: 0 });
    const signer = verifier.verify(toSignedEntity(bundleFromJSON(json), artifact));
    assert.equal(keyIdOf(signer.key), key.keyId);
    const sig = Buffer.from(json.dsseEnvelope.signatures[0]?.sig ?? '', 'base64');
    sig.writeUInt8((sig[10] as number) ^ 1, 10);
    const tampered = { ...json, dsseEnvelope: { ...json.dsseEnvelope, signatures: [{ sig: sig.toString('base64'), keyid: key.keyId }] } };
    assert.throws(() => verifier.verify(toSignedEntity(bundleFromJSON(tampered), artifact)), /signature verification failed/);
  }
});

test('registers a tool signed by a trusted key and audits digest, source and signer', async () => {
  const file = echoCopy('signed');
  writeSidecar(file, signDigest(echoHex, alice));
  const rt = await testRuntime({ policy: trustPolicy([alice]) });
  try {
    const t = await rt.register(file);
    assert.equal(t.digest, echoHex);
    await rt.invoke('echo', { text: 'hi' }).catch(() => undefined);
    const [reg] = await auditRecords(rt.dataDir, (r) => r.kind === 'tool.register');
    assert.equal(reg?.decision, 'allow');
    assert.equal(reg?.toolDigest, `sha256:${echoHex}`);
    assert.equal(reg?.detail?.['source'], file);
    assert.equal(reg?.detail?.['signer'], alice.keyId);
    assert.match(reg?.reason ?? '', /tools\.trust\[0\]\.tools\[0\] 'ech\*' matches echo; signed by key/);
    const [start] = await auditRecords(rt.dataDir, (r) => r.kind === 'invoke.start');
    assert.equal(start?.toolDigest, `sha256:${echoHex}`);
  } finally {
    await rt.cleanup();
  }
});

test('refuses an unsigned tool that a trust rule covers, naming the rule, the tool and the digest', async () => {
  const file = echoCopy('unsigned');
  const rt = await testRuntime({ policy: trustPolicy([alice]) });
  try {
    const e = await refusal(rt.register(file));
    assert.equal(e.code, ErrorCode.TOOL_UNSIGNED);
    assert.equal(e.data?.['path'], 'tools.trust[0]');
    assert.equal(e.data?.['tool'], 'echo');
    assert.equal(e.data?.['digest'], `sha256:${echoHex}`);
    assert.match(e.message, /tools\.trust\[0\]\.tools\[0\] 'ech\*' matches echo, so it must be signed by one of tools\.trust\[0\]\.keys .* carries no signature/);
    assert.equal(rt.tool('echo'), undefined);
    const [reg] = await auditRecords(rt.dataDir, (r) => r.kind === 'tool.register');
    assert.equal(reg?.decision, 'deny');
    assert.equal(reg?.code, ErrorCode.TOOL_UNSIGNED);
    assert.equal(reg?.tool, 'echo');
    assert.equal(reg?.toolDigest, `sha256:${echoHex}`);
  } finally {
    await rt.cleanup();
  }
});

test('refuses a tool signed only by a key the rule does not list', async () => {
  const file = echoCopy('wrong-key');
  writeSidecar(file, signDigest(echoHex, mallory));
  const rt = await testRuntime({ policy: trustPolicy([alice]) });
  try {
    const e = await refusal(rt.register(file));
    assert.equal(e.code, ErrorCode.TOOL_UNTRUSTED);
    assert.match(e.message, new RegExp(`signed by key ${mallory.keyId.slice(0, 16)}, which is not a trusted key`));
  } finally {
    await rt.cleanup();
  }
});

test('refuses a swapped component carrying the original signature', async () => {
  const file = join(dir.path, 'swapped', 'echo.wasm');
  mkdirSync(join(dir.path, 'swapped'));
  // word-count's bytes under echo's signature: the statement names another digest.
  copyFileSync(wordCount, file);
  writeFileSync(`${file}.sig`, JSON.stringify(signDigest(echoHex, alice)));
  const rt = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'], trust: [{ tools: ['*'], keys: [alice.pem] }] } } });
  try {
    const e = await refusal(rt.register(file));
    assert.equal(e.code, ErrorCode.TOOL_UNTRUSTED);
    assert.equal(e.data?.['tool'], 'word-count');
    assert.match(e.message, /is for another component/);
  } finally {
    await rt.cleanup();
  }
});

test('refuses a tool whose digest is not the pinned one, and accepts the pinned one', async () => {
  const file = echoCopy('pinned');
  const wrong = `sha256:${'0'.repeat(64)}`;
  const rt = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'], pin: { echo: wrong } } } });
  try {
    const e = await refusal(rt.register(file));
    assert.equal(e.code, ErrorCode.TOOL_PIN_MISMATCH);
    assert.equal(e.data?.['path'], 'tools.pin.echo');
    assert.match(e.message, new RegExp(`tools\\.pin\\.echo pins echo to ${wrong}, but the component is sha256:${echoHex}`));
  } finally {
    await rt.cleanup();
  }
  const ok = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'], pin: { echo: `sha256:${echoHex}` } } } });
  try {
    assert.equal((await ok.register(file)).name, 'echo');
  } finally {
    await ok.cleanup();
  }
});

test('a tool no trust rule names needs no signature', async () => {
  const rt = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'], trust: [{ tools: ['vendor-*'], keys: [alice.pem] }] } } });
  try {
    assert.equal((await rt.register(echoCopy('uncovered'))).name, 'echo');
  } finally {
    await rt.cleanup();
  }
});

test('a policy with a bad key or digest does not load, and says where', () => {
  assert.throws(
    () => loadPolicy({ version: '1.0', tools: { trust: [{ tools: ['*'], keys: ['not a key'] }] } }),
    (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.POLICY_INVALID && /tools\.trust\[0\]\.keys\[0\]: not a PEM public key/.test(e.message),
  );
  const rsa = '-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL2yzJGTBqt1GahNVCuC2tT5Cr0nXVzOSf2wXhOy8K+kdXfh39s0p5EQNQMd3Y3NyjS2JTezj8AeqrXtj9fBvTUCAwEAAQ==\n-----END PUBLIC KEY-----\n';
  assert.throws(
    () => loadPolicy({ version: '1.0', tools: { trust: [{ tools: ['*'], keys: [rsa] }] } }),
    (e: unknown) => e instanceof AuthorityError && /tools\.trust\[0\]\.keys\[0\]: a rsa key; tool signing keys are Ed25519 or ECDSA P-256/.test(e.message),
  );
  assert.throws(
    () => loadPolicy({ version: '1.0', tools: { pin: { echo: 'sha256:abc' } } }),
    (e: unknown) => e instanceof AuthorityError && /tools\.pin\.echo: expected a component digest/.test(e.message),
  );
  assert.throws(
    () => loadPolicy({ version: '1.0', tools: { trust: [{ tools: ['*'], keys: [alice.pem], key: 'x' }] } }),
    (e: unknown) => e instanceof AuthorityError && /tools\.trust\[0\]/.test(e.message),
  );
});

test('tool folders apply the trust rules on hot reload: refused unsigned, registered once the signature arrives', async () => {
  const folder = join(dir.path, 'watched');
  mkdirSync(folder);
  const rt = await testRuntime({ policy: trustPolicy([alice]) });
  const folders = await watchToolFolders(rt, [folder], { debounceMs: 20, pollMs: 50, logger: pino({ level: 'silent' }) });
  try {
    // The watcher may rescan on its own between steps: read the folders' state, not one scan's changes.
    copyFileSync(echo, join(folder, 'echo.wasm'));
    await folders.rescan();
    assert.deepEqual(folders.refused.map((r) => r.error.code), [ErrorCode.TOOL_UNSIGNED]);
    assert.equal(rt.tool('echo'), undefined);
    writeSidecar(join(folder, 'echo.wasm'), signDigest(echoHex, mallory));
    await folders.rescan();
    assert.deepEqual(folders.refused.map((r) => r.error.code), [ErrorCode.TOOL_UNTRUSTED]);
    assert.equal(rt.tool('echo'), undefined);
    writeSidecar(join(folder, 'echo.wasm'), signDigest(echoHex, alice));
    assert.equal(readSidecar(join(folder, 'echo.wasm')).length, 2);
    await folders.rescan();
    assert.deepEqual(folders.refused, []);
    assert.equal(rt.tool('echo')?.digest, echoHex);
  } finally {
    folders.close();
    await rt.cleanup();
  }
});

function captureIO(): { io: CliIO; out: () => string } {
  let out = '';
  return {
    io: { out: (t) => void (out += t), err: () => {}, log: pino({ level: 'silent' }), env: {}, cwd: dir.path },
    out: () => out,
  };
}

test('policy test explains a trust decision for a component and its signature', async () => {
  const policyFile = join(dir.path, 'trust-policy.json');
  writeFileSync(policyFile, JSON.stringify(trustPolicy([alice], { pin: { 'word-count': `sha256:${'1'.repeat(64)}` } })));
  const file = echoCopy('explained');
  const unsigned = captureIO();
  assert.equal(await main(['policy', 'test', policyFile, '--op', 'tool.register', '--target', 'echo', '--component', file], unsigned.io), 1);
  assert.match(unsigned.out(), /deny \(E_TOOL_UNSIGNED\): tools\.trust\[0\]\.tools\[0\] 'ech\*' matches echo/);
  writeSidecar(file, signDigest(echoHex, alice));
  const signed = captureIO();
  assert.equal(await main(['policy', 'test', policyFile, '--op', 'tool.register', '--target', 'echo', '--component', file, '--json'], signed.io), 0);
  const doc = JSON.parse(signed.out()) as { allow: boolean; signers: string[]; decision: { rule: string; signer: string } };
  assert.equal(doc.allow, true);
  assert.deepEqual(doc.signers, [alice.keyId]);
  assert.equal(doc.decision.rule, 'tools.trust[0]');
  const pinned = captureIO();
  assert.equal(await main(['policy', 'test', policyFile, '--op', 'tool.register', '--target', 'word-count', '--digest', `sha256:${'2'.repeat(64)}`], pinned.io), 1);
  assert.match(pinned.out(), /deny \(E_TOOL_PIN_MISMATCH\): tools\.pin\.word-count pins word-count to sha256:1{64}/);
});

test('tools keygen, sign and verify work on a local file, and verify names the wrong key', async () => {
  const file = echoCopy('cli-signed');
  const gen = captureIO();
  assert.equal(await main(['tools', 'keygen', join(dir.path, 'team'), '--type', 'ecdsa-p256', '--json'], gen.io), 0);
  const keyId = (JSON.parse(gen.out()) as { keyId: string }).keyId;
  assert.equal(await main(['tools', 'keygen', join(dir.path, 'team')], captureIO().io), 2, 'refuses to overwrite a key');
  assert.equal(await main(['tools', 'sign', file, '--key', join(dir.path, 'team.key')], captureIO().io), 0);
  const ok = captureIO();
  assert.equal(await main(['tools', 'verify', file, '--key', join(dir.path, 'team.pub'), '--json'], ok.io), 0);
  assert.equal((JSON.parse(ok.out()) as { signer: string }).signer, keyId);
  const other = join(dir.path, 'other.pub');
  writeFileSync(other, alice.pem);
  const no = captureIO();
  assert.equal(await main(['tools', 'verify', file, '--key', other], no.io), 1);
  assert.match(no.out(), /NOT verified .* signed by key [0-9a-f]{16}, which is not a trusted key/s);
});

test('tools sign refuses a file that is not a component, and tools push refuses a signature for other bytes before pushing anything', async () => {
  const notWasm = join(dir.path, 'notes.wasm');
  writeFileSync(notWasm, 'just text');
  writeFileSync(join(dir.path, 'k.key'), alice.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const signed = captureIO();
  assert.equal(await main(['tools', 'sign', notWasm, '--key', join(dir.path, 'k.key'), '--json'], signed.io), 2);
  assert.equal((JSON.parse(signed.out()) as { error: { code: string } }).error.code, ErrorCode.COMPONENT_INVALID);
  const file = echoCopy('stale-sig');
  writeFileSync(`${file}.sig`, JSON.stringify(signDigest('b'.repeat(64), alice)));
  const pushed = captureIO();
  // The refusal comes before any connection: no registry is needed (and none is reached).
  assert.equal(await main(['tools', 'push', file, 'oci://127.0.0.1:9/tools/echo:1', '--plain-http', '--json'], pushed.io), 1);
  const err = (JSON.parse(pushed.out()) as { error: { code: string; message: string } }).error;
  assert.equal(err.code, ErrorCode.SIGNATURE_INVALID);
  assert.match(err.message, /for another component; sign this one again/);
});
