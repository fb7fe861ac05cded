/**
 * Signing keys for tool components: Ed25519 or ECDSA P-256, kept as PEM
 * (PKCS#8 private, SPKI public) so other tools (openssl, cosign) read them
 * too. A key's id is the hex SHA-256 of its SPKI DER encoding: the same public
 * key always has the same id, whichever file or policy it comes from.
 * @module
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { AuthorityError, ErrorCode } from '../errors.ts';

export const KEY_TYPES = ['ed25519', 'ecdsa-p256'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

/** A public key a verifier trusts. */
export interface PublicKeyInfo {
  readonly type: KeyType;
  /** Hex SHA-256 of the SPKI DER. */
  readonly keyId: string;
  readonly key: KeyObject;
  /** The SPKI PEM, as it would be written to a file or a policy. */
  readonly pem: string;
}

export interface PrivateKeyInfo extends PublicKeyInfo {
  readonly privateKey: KeyObject;
}

function typeOf(key: KeyObject, where: string): KeyType {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  const what = key.asymmetricKeyType === 'ec' ? `ec ${key.asymmetricKeyDetails?.namedCurve ?? '?'}` : (key.asymmetricKeyType ?? 'unknown');
  throw new AuthorityError(ErrorCode.CONFIG, `${where}: a ${what} key; tool signing keys are Ed25519 or ECDSA P-256`, { data: { where } });
}

/** The key id of a public key: hex SHA-256 of its SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

function publicInfo(key: KeyObject, where: string): PublicKeyInfo {
  const type = typeOf(key, where);
  return Object.freeze({ type, keyId: keyIdOf(key), key, pem: key.export({ type: 'spki', format: 'pem' }).toString() });
}

/** Parse a public key from PEM text (SPKI), e.g. a `tools.trust` entry. `where` names it in errors. */
export function parsePublicKey(pem: string, where: string): PublicKeyInfo {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new AuthorityError(ErrorCode.CONFIG, `${where}: not a PEM public key: ${(e as Error).message}`, { data: { where }, cause: e });
  }
  return publicInfo(key, where);
}

/** Read a key file: a private key (PKCS#8 PEM) yields both halves; a public key only the public half. */
export function readKeyFile(file: string): PublicKeyInfo | PrivateKeyInfo {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new AuthorityError(ErrorCode.CONFIG, `cannot read key ${file}: ${(e as Error).message}`, { data: { file }, cause: e });
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: text, format: 'pem' });
    } catch (e) {
      // Never echo the file: it holds a secret.
      throw new AuthorityError(ErrorCode.CONFIG, `${file} is not a usable PEM private key (encrypted keys are not supported)`, { data: { file }, cause: e });
    }
    return Object.freeze({ ...publicInfo(createPublicKey(privateKey), file), privateKey });
  }
  return parsePublicKey(text, file);
}

/** Read a private signing key; a public key file is a usage error. */
export function readPrivateKey(file: string): PrivateKeyInfo {
  const k = readKeyFile(file);
  if (!('privateKey' in k)) throw new AuthorityError(ErrorCode.USAGE, `${file} holds a public key; signing needs the private key`, { data: { file } });
  return k;
}

/** Make a new key pair. */
export function generateSigningKey(type: KeyType = 'ed25519'): PrivateKeyInfo {
  const { privateKey, publicKey } = type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return Object.freeze({ ...publicInfo(publicKey, 'new key'), privateKey });
}

/**
 * Write a key pair as `<base>.key` (PKCS#8, mode 0600) and `<base>.pub`
 * (SPKI). Refuses to overwrite: losing a signing key is not undoable.
 */
export function writeKeyPair(key: PrivateKeyInfo, base: string): { privateFile: string; publicFile: string } {
  const privateFile = `${base}.key`;
  const publicFile = `${base}.pub`;
  for (const f of [privateFile, publicFile]) {
    if (existsSync(f)) throw new AuthorityError(ErrorCode.CONFIG, `${f} exists; refusing to overwrite a key`, { data: { file: f } });
  }
  const tmp = `${privateFile}.${process.pid}.tmp`;
  writeFileSync(tmp, key.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  chmodSync(tmp, 0o600);
  renameSync(tmp, privateFile);
  writeFileSync(publicFile, key.pem, { mode: 0o644, flag: 'wx' });
  return { privateFile, publicFile };
}
