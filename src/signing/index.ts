/**
 * Tool signatures: signing keys, and Sigstore bundles holding a DSSE-signed
 * in-toto statement about a component's digest. A signature beside a local
 * component lives in `<file>.sig`; in a registry it is a referrer of the
 * component's manifest (see src/oci/).
 * @module
 */
export { KEY_TYPES, generateSigningKey, keyIdOf, parsePublicKey, readKeyFile, readPrivateKey, writeKeyPair, type KeyType, type PrivateKeyInfo, type PublicKeyInfo } from './keys.ts';
export {
  BUNDLE_MEDIA_TYPE,
  DSSE_PAYLOAD_TYPE,
  PREDICATE_TYPE,
  STATEMENT_TYPE,
  MAX_BUNDLE_BYTES,
  checkBundle,
  describeBundle,
  pae,
  parseBundle,
  signDigest,
  type BundleCheck,
  type DsseEnvelope,
  type SignatureBundle,
  type Statement,
} from './envelope.ts';
export { SIDECAR_SUFFIX, readSidecar, writeSidecar } from './sidecar.ts';
