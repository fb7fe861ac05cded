/**
 * `authority tools push|pull|sign|verify|keygen`: tools from registries, and
 * their signatures. Loaded only when one of these subcommands runs.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { dataPaths, resolveDataDir } from '../../data-dir.ts';
import { AuthorityError, ErrorCode } from '../../errors.ts';
import { BlobCache, attachSignature, clientFor, isOciReference, parseReference, pullTool, pullWithSignatures, pushTool, type OciReference } from '../../oci/index.ts';
import { loadPolicyFile } from '../../policy/index.ts';
import { isComponent } from '../../registry/binary.ts';
import {
  KEY_TYPES,
  checkBundle,
  describeBundle,
  generateSigningKey,
  readKeyFile,
  readPrivateKey,
  readSidecar,
  signDigest,
  writeKeyPair,
  writeSidecar,
  type KeyType,
  type PublicKeyInfo,
  type SignatureBundle,
} from '../../signing/index.ts';
import { emit, parse, usageError } from '../output.ts';
import { EXIT_FAIL, EXIT_OK, type CliIO } from '../types.ts';
import { REGISTRY_USAGE } from './tools-usage.ts';


const FLAGS = {
  'plain-http': { type: 'boolean', default: false },
  'registry-config': { type: 'string' },
  'data-dir': { type: 'string' },
  key: { type: 'string', multiple: true },
  policy: { type: 'string' },
  output: { type: 'string', short: 'o' },
  type: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

type Values = ReturnType<typeof parse<{ args: string[]; strict: true; allowPositionals: true; options: typeof FLAGS }>>['values'];

function access(values: Values, io: CliIO) {
  return { plainHttp: values['plain-http'], configFile: values['registry-config'] === undefined ? undefined : resolve(io.cwd, values['registry-config']), env: io.env };
}

function client(ref: OciReference, values: Values, io: CliIO) {
  const a = access(values, io);
  return clientFor(ref, { plainHttp: a.plainHttp, configFile: a.configFile, env: a.env });
}

function readComponent(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new AuthorityError(ErrorCode.TOOL_NOT_FOUND, `cannot read ${file}: ${(e as Error).message}`, { data: { file }, cause: e });
  }
}

const hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The public keys to verify against: --key files, else the policy's tools.trust keys. */
async function verifyKeys(values: Values, io: CliIO): Promise<PublicKeyInfo[]> {
  if (values.key !== undefined && values.key.length > 0) return values.key.map((k) => readKeyFile(resolve(io.cwd, k)));
  if (values.policy !== undefined) {
    const keys = (await loadPolicyFile(resolve(io.cwd, values.policy))).policy.trustedKeys();
    if (keys.length === 0) throw usageError(`the policy ${values.policy} trusts no keys (tools.trust is empty)`);
    return keys;
  }
  throw usageError('verify needs --key PUB (repeatable) or --policy FILE (its tools.trust keys)');
}

function checkAll(bundles: readonly SignatureBundle[], digestHex: string, keys: readonly PublicKeyInfo[]) {
  return bundles.map((b) => {
    const claim = describeBundle(b);
    return { keyHint: claim.keyHint, signedAt: claim.signedAt ?? null, result: checkBundle(b, digestHex, keys) };
  });
}

function writeAtomic(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
}

async function push(positionals: string[], values: Values, io: CliIO): Promise<number> {
  if (positionals.length !== 2 || !isOciReference(positionals[1] as string)) throw usageError(`tools push takes <tool.wasm> oci://HOST/REPO:TAG\n\n${REGISTRY_USAGE}`);
  const file = resolve(io.cwd, positionals[0] as string);
  const ref = parseReference(positionals[1] as string);
  const bytes = readComponent(file);
  const bundles = readSidecar(file);
  const digestHex = hex(bytes);
  // A signature about other bytes would only fail later, at every consumer: refuse it before anything is pushed.
  for (const b of bundles) {
    if (!describeBundle(b, `${file}.sig`).subjects.includes(digestHex)) {
      throw new AuthorityError(ErrorCode.SIGNATURE_INVALID, `${file}.sig holds a signature by key ${b.verificationMaterial.publicKey.hint.slice(0, 16)} for another component; sign this one again (authority tools sign)`, { data: { file: `${file}.sig` } });
    }
  }
  const c = client(ref, values, io);
  const pushed = await pushTool(c, ref, bytes);
  const manifestSize = (await c.getManifest(ref.repository, pushed.manifestDigest)).bytes.length;
  const attached = [];
  for (const b of bundles) attached.push(await attachSignature(c, ref.repository, { digest: pushed.manifestDigest, size: manifestSize }, b));
  io.log.info({ reference: pushed.pinned, component: pushed.componentDigest }, 'pushed');
  emit(
    io,
    values.json,
    { ok: true, reference: positionals[1], pinned: pushed.pinned, manifestDigest: pushed.manifestDigest, componentDigest: pushed.componentDigest, size: pushed.size, signatures: attached },
    [`pushed ${positionals[1]}`, `  ${pushed.pinned}`, `  component ${pushed.componentDigest}  ${pushed.size} bytes`, ...attached.map((a) => `  signature ${a.digest} (${a.via})`)].join('\n'),
  );
  return EXIT_OK;
}

async function pull(positionals: string[], values: Values, io: CliIO): Promise<number> {
  if (positionals.length !== 1 || !isOciReference(positionals[0] as string)) throw usageError(`tools pull takes one oci:// reference\n\n${REGISTRY_USAGE}`);
  const dataDir = resolveDataDir(values['data-dir'], io.env, io.cwd);
  const pulled = await pullWithSignatures(positionals[0] as string, dataDir, access(values, io));
  const digestHex = pulled.componentDigest.slice('sha256:'.length);
  const keys = values.key === undefined ? [] : values.key.map((k) => readKeyFile(resolve(io.cwd, k)));
  const checks = keys.length > 0 ? checkAll(pulled.signatures, digestHex, keys) : [];
  const verified = checks.find((c) => c.result.ok);
  let output: string | undefined;
  if (values.output !== undefined && (keys.length === 0 || verified !== undefined)) {
    output = resolve(io.cwd, values.output);
    writeAtomic(output, pulled.bytes);
    if (pulled.signatures.length > 0) writeAtomic(`${output}.sig`, Buffer.from(JSON.stringify(pulled.signatures.length === 1 ? pulled.signatures[0] : pulled.signatures, null, 2) + '\n'));
  }
  const ok = keys.length === 0 || verified !== undefined;
  const doc = {
    ok,
    reference: positionals[0],
    pinned: pulled.pinned,
    manifestDigest: pulled.manifestDigest,
    componentDigest: pulled.componentDigest,
    size: pulled.bytes.length,
    cached: new BlobCache(dataPaths(dataDir).ociCache).path(pulled.componentDigest),
    fromCache: pulled.fromCache,
    output: output ?? null,
    signatures: pulled.signatures.map((b) => describeBundle(b).keyHint),
    signaturesVia: pulled.via,
    skipped: pulled.skipped,
    ...(keys.length > 0 ? { verification: checks.map((c) => ({ keyHint: c.keyHint, ...c.result })) } : {}),
    ...(verified?.result.ok ? { signer: verified.result.keyId } : {}),
  };
  const lines = [
    `pulled ${pulled.pinned}${pulled.fromCache ? ' (from cache)' : ''}`,
    `  component ${pulled.componentDigest}  ${pulled.bytes.length} bytes`,
    `  ${pulled.signatures.length} signature(s) (${pulled.via})${pulled.skipped.length > 0 ? `; ${pulled.skipped.length} unusable referrer(s) skipped` : ''}`,
    ...(keys.length > 0 ? [verified?.result.ok ? `  verified: signed by key ${verified.result.keyId}` : `  NOT verified: ${checks.map((c) => (c.result.ok ? '' : c.result.message)).join('; ') || 'no signature'}`] : []),
    ...(output !== undefined ? [`  wrote ${output}${pulled.signatures.length > 0 ? ` and ${output}.sig` : ''}`] : []),
  ];
  emit(io, values.json, doc, lines.join('\n'));
  return ok ? EXIT_OK : EXIT_FAIL;
}

async function sign(positionals: string[], values: Values, io: CliIO): Promise<number> {
  if (positionals.length !== 1) throw usageError(`tools sign takes one component file or oci:// reference\n\n${REGISTRY_USAGE}`);
  if (values.key === undefined || values.key.length !== 1) throw usageError('tools sign needs exactly one --key PRIVATE_KEY');
  const key = readPrivateKey(resolve(io.cwd, values.key[0] as string));
  const target = positionals[0] as string;
  if (!isOciReference(target)) {
    const file = resolve(io.cwd, target);
    const bytes = readComponent(file);
    if (!isComponent(bytes)) throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `${file} is not a WebAssembly component`, { data: { file } });
    const digestHex = hex(bytes);
    const bundle = signDigest(digestHex, key, { name: file.split('/').pop() });
    const sig = writeSidecar(file, bundle);
    emit(io, values.json, { ok: true, file, componentDigest: `sha256:${digestHex}`, keyId: key.keyId, signature: sig }, `signed sha256:${digestHex} with key ${key.keyId}\n  wrote ${sig}`);
    return EXIT_OK;
  }
  const ref = parseReference(target);
  const c = client(ref, values, io);
  const dataDir = resolveDataDir(values['data-dir'], io.env, io.cwd);
  // Pull first: what is signed is the component digest, checked on the way in.
  const pulled = await pullTool(c, ref, new BlobCache(dataPaths(dataDir).ociCache));
  const bundle = signDigest(pulled.componentDigest.slice('sha256:'.length), key, { name: pulled.pinned });
  const attached = await attachSignature(c, ref.repository, { digest: pulled.manifestDigest, size: pulled.manifestSize }, bundle);
  emit(
    io,
    values.json,
    { ok: true, reference: target, pinned: pulled.pinned, componentDigest: pulled.componentDigest, keyId: key.keyId, signature: attached.digest, via: attached.via },
    `signed ${pulled.pinned}\n  component ${pulled.componentDigest} with key ${key.keyId}\n  signature ${attached.digest} (${attached.via})`,
  );
  return EXIT_OK;
}

async function verify(positionals: string[], values: Values, io: CliIO): Promise<number> {
  if (positionals.length !== 1) throw usageError(`tools verify takes one component file or oci:// reference\n\n${REGISTRY_USAGE}`);
  const keys = await verifyKeys(values, io);
  const target = positionals[0] as string;
  let digestHex: string;
  let bundles: SignatureBundle[];
  let subject: string;
  if (isOciReference(target)) {
    const pulled = await pullWithSignatures(target, resolveDataDir(values['data-dir'], io.env, io.cwd), access(values, io));
    digestHex = pulled.componentDigest.slice('sha256:'.length);
    bundles = pulled.signatures;
    subject = pulled.pinned;
  } else {
    const file = resolve(io.cwd, target);
    digestHex = hex(readComponent(file));
    bundles = readSidecar(file);
    subject = file;
  }
  const checks = checkAll(bundles, digestHex, keys);
  const good = checks.find((c) => c.result.ok);
  const ok = good !== undefined;
  const why = bundles.length === 0 ? `no signature (${isOciReference(target) ? 'no referrer' : `no ${subject}.sig`})` : checks.map((c) => (c.result.ok ? '' : c.result.message)).filter(Boolean).join('; ');
  emit(
    io,
    values.json,
    { ok, subject, componentDigest: `sha256:${digestHex}`, ...(good?.result.ok ? { signer: good.result.keyId } : { code: bundles.length === 0 ? ErrorCode.TOOL_UNSIGNED : ErrorCode.TOOL_UNTRUSTED, reason: why }), signatures: checks.map((c) => ({ keyHint: c.keyHint, signedAt: c.signedAt, ...c.result })) },
    good?.result.ok ? `verified ${subject}\n  component sha256:${digestHex}\n  signed by key ${good.result.keyId}` : `NOT verified ${subject}\n  component sha256:${digestHex}\n  ${why}`,
  );
  return ok ? EXIT_OK : EXIT_FAIL;
}

function keygen(positionals: string[], values: Values, io: CliIO): number {
  if (positionals.length !== 1) throw usageError(`tools keygen takes one NAME (writes NAME.key and NAME.pub)\n\n${REGISTRY_USAGE}`);
  const type = (values.type ?? 'ed25519') as KeyType;
  if (!(KEY_TYPES as readonly string[]).includes(type)) throw usageError(`--type is one of ${KEY_TYPES.join(', ')}`);
  const key = generateSigningKey(type);
  const files = writeKeyPair(key, resolve(io.cwd, positionals[0] as string));
  emit(
    io,
    values.json,
    { ok: true, type, keyId: key.keyId, ...files, publicKeyPem: key.pem },
    [`wrote ${files.privateFile} (private: keep it secret) and ${files.publicFile}`, `key id ${key.keyId} (${type})`, 'for a policy\'s tools.trust[].keys:', `  ${JSON.stringify(key.pem)}`].join('\n'),
  );
  return EXIT_OK;
}

/** Run one of the registry subcommands. */
export async function runRegistryCommand(sub: string, argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse({ args: argv, strict: true, allowPositionals: true, options: FLAGS });
  switch (sub) {
    case 'push':
      return push(positionals, values, io);
    case 'pull':
      return pull(positionals, values, io);
    case 'sign':
      return sign(positionals, values, io);
    case 'verify':
      return verify(positionals, values, io);
    default:
      return keygen(positionals, values, io);
  }
}
