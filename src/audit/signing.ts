/**
 * The Ed25519 key that signs checkpoints. The private key lives in the data
 * folder (0600) or comes from the embedder; the public key is written beside
 * the checkpoints so that verifying needs no secret.
 * @module
 */
import fs from 'node:fs';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { dirname } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';

export interface AuditSigner {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** First 16 hex digits of SHA-256 over the public key's SPKI DER: names the key in each checkpoint. */
  readonly keyId: string;
  readonly publicKeyPem: string;
}

export interface AuditPublicKey {
  readonly publicKey: KeyObject;
  readonly keyId: string;
  readonly publicKeyPem: string;
}

/** The key id of an Ed25519 public key. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

function requireEd25519(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AuthorityError(ErrorCode.CONFIG, `${what} must be an Ed25519 key, not ${key.asymmetricKeyType ?? key.type}`);
  }
}

/** A signer from an embedder's private key (KeyObject or PKCS#8 PEM). */
export function signerFromKey(key: KeyObject | string): AuditSigner {
  let privateKey: KeyObject;
  try {
    privateKey = typeof key === 'string' ? createPrivateKey(key) : key;
  } catch (e) {
    throw new AuthorityError(ErrorCode.CONFIG, 'the audit signing key is not a readable private key', { cause: e });
  }
  if (privateKey.type !== 'private') throw new AuthorityError(ErrorCode.CONFIG, 'the audit signing key must be a private key');
  requireEd25519(privateKey, 'the audit signing key');
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** A public key from SPKI PEM (or a KeyObject), for verifiers. */
export function publicKeyFrom(key: KeyObject | string): AuditPublicKey {
  let publicKey: KeyObject;
  try {
    publicKey = typeof key === 'string' ? createPublicKey(key) : key.type === 'private' ? createPublicKey(key) : key;
  } catch (e) {
    throw new AuthorityError(ErrorCode.CONFIG, 'the audit public key is not readable', { cause: e });
  }
  requireEd25519(publicKey, 'the audit public key');
  return { publicKey, keyId: keyIdOf(publicKey), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/**
 * Load the signing key from `path`, or create it (0600, never overwriting one
 * that appears meanwhile). A key file readable by others is refused.
 */
export function loadOrCreateSigningKey(path: string): AuditSigner {
  try {
    const st = fs.statSync(path);
    if ((st.mode & 0o077) !== 0) {
      throw new AuthorityError(ErrorCode.CONFIG, `the audit signing key ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`, {
        data: { file: path },
      });
    }
    return signerFromKey(fs.readFileSync(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  fs.mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Written aside and linked into place: the key file is whole or absent, never half-written,
  // and a key another opener linked first is never overwritten.
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, pem);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return signerFromKey(fs.readFileSync(path, 'utf8'));
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  syncDirSync(dirname(path));
  return signerFromKey(pem);
}

/**
 * Make sure `path` holds this signer's public key: write it (atomically) when
 * missing; refuse with E_CONFIG when it holds another key, since checkpoints
 * signed by two keys in one folder could not all be verified.
 */
export function ensurePublicKeyFile(path: string, signer: AuditSigner): void {
  let existing: string | undefined;
  try {
    existing = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (existing !== undefined) {
    let other: AuditPublicKey;
    try {
      other = publicKeyFrom(existing);
    } catch (e) {
      throw new AuthorityError(ErrorCode.CONFIG, `${path} does not hold a readable Ed25519 public key`, { cause: e, data: { file: path } });
    }
    if (other.keyId !== signer.keyId) {
      throw new AuthorityError(
        ErrorCode.CONFIG,
        `${path} holds the public key ${other.keyId}, but the audit signing key is ${signer.keyId}; one checkpoint folder serves one key`,
        { data: { file: path, expected: other.keyId, actual: signer.keyId } },
      );
    }
    return;
  }
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, signer.publicKeyPem, { mode: 0o644 });
  const fd = fs.openSync(tmp, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
  syncDirSync(dirname(path));
}

function syncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
