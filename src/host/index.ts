/**
 * The host effects: the only code that touches the world for a guest. The
 * gate calls these after its checks, passing its decisions as plain values
 * and callbacks; every failure is an AuthorityError that `toGuestError` maps
 * to the WIT `error` variant.
 * @module
 */
export { DEFAULT_FS_LIMITS, DEFAULT_HTTP_LIMITS, resolveLimits } from './limits.ts';
export type { FsLimits, HttpLimits } from './limits.ts';
export { toGuestError } from './guest-error.ts';

export { HostFs } from './fs.ts';
export type { DirEntry, FileKind, FileStat, FsScope, HostFsOptions, WriteSource } from './fs.ts';
export { checkGuestPath, MAX_NAME_BYTES, MAX_PATH_BYTES } from './fs-path.ts';
export type { FsRoot } from './fs-path.ts';

export { HttpClient } from './http-client.ts';
export type { HttpCallContext, HttpClientOptions, HttpResult, LookupFn, MayUse } from './http-client.ts';
export { parseGuestUrl } from './http-url.ts';
export type { GuestUrl } from './http-url.ts';
export { embeddedIPv4 } from './http-address.ts';
export type { AddressTarget, CheckAddress } from './http-address.ts';
export { ALLOWED_METHODS, DROPPED_RESPONSE_HEADERS, FORBIDDEN_REQUEST_HEADERS } from './http-headers.ts';
export { MAX_REDIRECTS, REDIRECT_STATUSES, nextHop } from './http-redirect.ts';
export type { HttpRequest } from './http-redirect.ts';

export { SECRET_NAME, SecretStore, readSecretsFile, writeSecretsFile } from './secret-store.ts';
export type { SecretSource, SecretStoreOptions } from './secret-store.ts';
export { MIN_SECRET_BYTES, SecretScanner, percentDecodeLenient } from './secret-scan.ts';
export type { Redaction } from './secret-scan.ts';

export { canonicalisePath, resolvePath, resolvePathSync, MAX_SYMLINK_HOPS } from './fs-resolve.ts';
export type { ResolveOptions } from './fs-resolve.ts';
