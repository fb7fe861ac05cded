/**
 * Tools from OCI registries: references, credentials, the distribution API
 * client, the local content-addressed cache, and the Wasm artifact layout
 * with signatures as referrers.
 * @module
 */
export { OCI_SCHEME, formatReference, isOciReference, parseReference, pinnedReference, type OciReference } from './reference.ts';
export { CONFIG_ENV, PASSWORD_ENV, USERNAME_ENV, RegistryCredentials, credentialsFile, findCredentials, parseChallenge, type Challenge, type CredentialOptions } from './auth.ts';
export { EMPTY_JSON, MEDIA_TYPES, OciClient, checkDescriptor, parseIndex, parseManifest, sha256Digest, type Descriptor, type ImageIndex, type ImageManifest, type OciClientOptions } from './client.ts';
export { BlobCache } from './cache.ts';
export { WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE, attachSignature, componentLayer, fetchSignatures, pullTool, pushTool, referrersTag, type PulledTool, type PushedTool } from './tool.ts';

export { clientFor, pullWithSignatures, registerReference, type PulledWithSignatures, type RegistryAccess } from './register.ts';
