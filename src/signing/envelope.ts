/**
 * Tool signatures: an in-toto Statement (v1) whose subject is the component's
 * SHA-256, signed as a DSSE envelope, carried in a Sigstore bundle (v0.3)
 * with key-based verification material (a public key hint, no certificate,
 * no transparency log entry). These are the published formats Sigstore
 * clients use for key-based attestations: sigstore-js's verifier accepts
 * these bundles with the public key alone (a test checks it), so they can be
 * checked outside Authority.
 *
 * The signature covers DSSE's pre-authentication encoding (PAE) of the
 * payload type and payload, so neither can be swapped. Ed25519 signs the PAE
 * itself; ECDSA P-256 signs its SHA-256, DER-encoded, as Sigstore does.
 * @module
 */
import { sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { PrivateKeyInfo, PublicKeyInfo } from './keys.ts';

export const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const DSSE_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** What the statement says: "this component is a tool I vouch for". */
export const PREDICATE_TYPE = 'urn:authority-sandbox:tool-signature:v1';
/** Largest bundle read: a bundle is a few hundred bytes. */
export const MAX_BUNDLE_BYTES = 64 * 1024;

const HEX64 = /^[0-9a-f]{64}$/;

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: Array<{ name: string; digest: { sha256: string } }>;
  predicateType: string;
  predicate: { tool?: string; signedAt: string };
}

export interface DsseEnvelope {
  payload: string;
  payloadType: string;
  signatures: Array<{ sig: string; keyid?: string }>;
}

export interface SignatureBundle {
  mediaType: typeof BUNDLE_MEDIA_TYPE;
  verificationMaterial: { publicKey: { hint: string }; tlogEntries: unknown[]; timestampVerificationData?: unknown };
  dsseEnvelope: DsseEnvelope;
}

/** DSSE v1 pre-authentication encoding. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

function rawSign(key: PrivateKeyInfo, data: Buffer): Buffer {
  return cryptoSign(key.type === 'ed25519' ? null : 'sha256', data, key.privateKey);
}

function rawVerify(key: PublicKeyInfo, data: Buffer, sig: Buffer): boolean {
  try {
    return cryptoVerify(key.type === 'ed25519' ? null : 'sha256', data, key.key, sig);
  } catch {
    return false;
  }
}

/**
 * Sign a component digest (hex SHA-256). `name` is the subject's name (a file
 * name or reference, informational); `tool` the tool's name if known.
 */
export function signDigest(digestHex: string, key: PrivateKeyInfo, opts: { name?: string; tool?: string; now?: Date } = {}): SignatureBundle {
  if (!HEX64.test(digestHex)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'a component digest is 64 lowercase hex digits', { data: { field: 'digest' } });
  const statement: Statement = {
    _type: STATEMENT_TYPE,
    subject: [{ name: opts.name ?? 'component.wasm', digest: { sha256: digestHex } }],
    predicateType: PREDICATE_TYPE,
    predicate: { ...(opts.tool === undefined ? {} : { tool: opts.tool }), signedAt: (opts.now ?? new Date()).toISOString() },
  };
  const payload = Buffer.from(JSON.stringify(statement), 'utf8');
  const sig = rawSign(key, pae(DSSE_PAYLOAD_TYPE, payload));
  return {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint: key.keyId }, tlogEntries: [] },
    dsseEnvelope: { payload: payload.toString('base64'), payloadType: DSSE_PAYLOAD_TYPE, signatures: [{ sig: sig.toString('base64'), keyid: key.keyId }] },
  };
}

function bad(message: string, where: string): AuthorityError {
  return new AuthorityError(ErrorCode.SIGNATURE_INVALID, `${where}: ${message}`, { data: { where } });
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Parse and shape-check a bundle (text or bytes). Throws E_SIGNATURE_INVALID naming `where`. */
export function parseBundle(input: string | Uint8Array, where: string): SignatureBundle {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
  if (Buffer.byteLength(text) > MAX_BUNDLE_BYTES) throw bad(`larger than ${MAX_BUNDLE_BYTES} bytes`, where);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON: ${(e as Error).message}`, where);
  }
  const o = doc as Partial<SignatureBundle> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad('not a Sigstore bundle object', where);
  if (o.mediaType !== BUNDLE_MEDIA_TYPE) throw bad(`mediaType is ${JSON.stringify(o.mediaType)}, expected ${BUNDLE_MEDIA_TYPE}`, where);
  const env = o.dsseEnvelope;
  if (typeof env !== 'object' || env === null) throw bad('no dsseEnvelope (only DSSE bundles are accepted)', where);
  if (env.payloadType !== DSSE_PAYLOAD_TYPE) throw bad(`payloadType is ${JSON.stringify(env.payloadType)}, expected ${DSSE_PAYLOAD_TYPE}`, where);
  if (typeof env.payload !== 'string' || !B64.test(env.payload)) throw bad('payload is not base64', where);
  if (!Array.isArray(env.signatures) || env.signatures.length !== 1) throw bad('a bundle carries exactly one signature', where);
  const s = env.signatures[0] as { sig?: unknown; keyid?: unknown };
  if (typeof s.sig !== 'string' || !B64.test(s.sig) || s.sig.length === 0) throw bad('signatures[0].sig is not base64', where);
  if (s.keyid !== undefined && typeof s.keyid !== 'string') throw bad('signatures[0].keyid is not a string', where);
  const hint = o.verificationMaterial?.publicKey?.hint;
  if (typeof hint !== 'string') throw bad('verificationMaterial.publicKey.hint is missing (only key-based bundles are accepted)', where);
  return o as SignatureBundle;
}

function statementOf(bundle: SignatureBundle, where: string): Statement {
  let st: unknown;
  try {
    st = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString('utf8'));
  } catch (e) {
    throw bad(`the payload is not a JSON statement: ${(e as Error).message}`, where);
  }
  const s = st as Partial<Statement> | null;
  if (typeof s !== 'object' || s === null || s._type !== STATEMENT_TYPE) throw bad(`the payload is not an in-toto ${STATEMENT_TYPE} statement`, where);
  if (s.predicateType !== PREDICATE_TYPE) throw bad(`predicateType is ${JSON.stringify(s.predicateType)}, expected ${PREDICATE_TYPE}`, where);
  if (!Array.isArray(s.subject) || s.subject.length === 0) throw bad('the statement has no subject', where);
  return s as Statement;
}

/** What a bundle claims, without checking its signature: for display only. */
export function describeBundle(bundle: SignatureBundle, where = 'bundle'): { keyHint: string; subjects: string[]; tool?: string | undefined; signedAt?: string | undefined } {
  const st = statementOf(bundle, where);
  return {
    keyHint: bundle.verificationMaterial.publicKey.hint,
    subjects: st.subject.map((x) => x?.digest?.sha256).filter((d): d is string => typeof d === 'string'),
    tool: st.predicate?.tool,
    signedAt: st.predicate?.signedAt,
  };
}

/** Why a bundle did not verify for a digest against a set of keys. */
export type BundleCheck = { ok: true; keyId: string; tool?: string | undefined } | { ok: false; why: 'unknown-key' | 'bad-signature' | 'wrong-subject'; message: string; keyHint: string };

/**
 * Check one bundle: its signature must verify under one of `keys`, and its
 * statement's subject must name `digestHex`. Never throws for a bundle that
 * is merely wrong; a malformed one throws E_SIGNATURE_INVALID.
 */
export function checkBundle(bundle: SignatureBundle, digestHex: string, keys: readonly PublicKeyInfo[], where = 'bundle'): BundleCheck {
  const env = bundle.dsseEnvelope;
  const sig = Buffer.from((env.signatures[0] as { sig: string }).sig, 'base64');
  const signed = pae(env.payloadType, Buffer.from(env.payload, 'base64'));
  const hint = bundle.verificationMaterial.publicKey.hint;
  // The hint is unsigned: try the hinted key first, then every other one.
  const ordered = [...keys].sort((a, b) => Number(b.keyId === hint) - Number(a.keyId === hint));
  const signer = ordered.find((k) => rawVerify(k, signed, sig));
  if (signer === undefined) {
    const known = keys.some((k) => k.keyId === hint);
    return known
      ? { ok: false, why: 'bad-signature', message: `the signature does not verify under key ${hint.slice(0, 16)} (tampered or corrupt)`, keyHint: hint }
      : { ok: false, why: 'unknown-key', message: `signed by key ${hint.slice(0, 16)}, which is not a trusted key`, keyHint: hint };
  }
  // Only a verified payload is read for its meaning.
  const st = statementOf(bundle, where);
  if (!st.subject.some((s) => s?.digest?.sha256 === digestHex)) {
    return { ok: false, why: 'wrong-subject', message: `the signature by key ${signer.keyId.slice(0, 16)} is for another component (sha256:${String(st.subject[0]?.digest?.sha256).slice(0, 16)}...)`, keyHint: hint };
  }
  return { ok: true, keyId: signer.keyId, tool: st.predicate?.tool };
}
