/**
 * A client for the OCI distribution API (v1.1), enough to push and pull tool
 * components and their signatures: blobs (monolithic POST + PUT upload),
 * manifests by tag or digest, the referrers API and its tag-schema fallback.
 *
 * Everything that comes in is checked before it is used: a manifest's or
 * blob's bytes must hash to the digest asked for (or the one the registry
 * announced), sizes must match descriptors, documents must have the shape
 * the spec gives them. Credentials go only to the registry's own origin and
 * to the token realm it names, never over plain HTTP unless the operator
 * asked for plain HTTP, and never into an error message or a log.
 *
 * This is the operator's client (push, pull, sign): no guest can reach it.
 * @module
 */
import { createHash } from 'node:crypto';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { parseChallenge, type RegistryCredentials } from './auth.ts';

export const MEDIA_TYPES = Object.freeze({
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  empty: 'application/vnd.oci.empty.v1+json',
});

/** `{}`: the OCI empty descriptor's content. */
export const EMPTY_JSON = Buffer.from('{}');
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const MAX_REDIRECTS = 5;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string | undefined;
  annotations?: Record<string, string> | undefined;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface OciClientOptions {
  /** Talk plain HTTP instead of HTTPS (a registry on loopback, or one the operator names as insecure). */
  plainHttp?: boolean;
  credentials?: RegistryCredentials | undefined;
  /** Deadline of each request. Default 30 s. */
  timeoutMs?: number;
  /** Largest manifest read. Default 4 MiB (the distribution spec's limit). */
  maxManifestBytes?: number;
  /** Largest blob read. Default 256 MiB. */
  maxBlobBytes?: number;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function protocol(message: string, data: Record<string, unknown> = {}): AuthorityError {
  return new AuthorityError(ErrorCode.REGISTRY_PROTOCOL, message, { data });
}

/** A descriptor from untrusted JSON, checked. */
export function checkDescriptor(v: unknown, where: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (typeof d !== 'object' || d === null) throw protocol(`${where} is not a descriptor`, { where });
  if (typeof d.mediaType !== 'string' || d.mediaType.length > 255) throw protocol(`${where}.mediaType is missing`, { where });
  if (typeof d.digest !== 'string' || !DIGEST.test(d.digest)) throw protocol(`${where}.digest is not a sha256 digest`, { where });
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw protocol(`${where}.size is not a size`, { where });
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, artifactType: typeof d.artifactType === 'string' ? d.artifactType : undefined, annotations: stringMap(d.annotations) };
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw protocol(`the registry sent a ${what} that is not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw protocol(`the registry sent a ${what} that is not a JSON object`);
  return doc as Record<string, unknown>;
}

/** An image manifest from bytes, checked. */
export function parseManifest(bytes: Uint8Array): ImageManifest {
  const m = parseJson(bytes, 'manifest');
  if (m['schemaVersion'] !== 2) throw protocol('the manifest is not schemaVersion 2');
  if (m['mediaType'] !== undefined && m['mediaType'] !== MEDIA_TYPES.ociManifest && m['mediaType'] !== MEDIA_TYPES.dockerManifest) {
    throw protocol(`the manifest's mediaType is ${JSON.stringify(m['mediaType'])}, not an image manifest (an index is not a tool)`, { mediaType: m['mediaType'] });
  }
  if (!Array.isArray(m['layers'])) throw protocol('the manifest has no layers list');
  return {
    schemaVersion: 2,
    mediaType: m['mediaType'] as string | undefined,
    artifactType: typeof m['artifactType'] === 'string' ? m['artifactType'] : undefined,
    config: checkDescriptor(m['config'], 'config'),
    layers: (m['layers'] as unknown[]).map((l, i) => checkDescriptor(l, `layers[${i}]`)),
    subject: m['subject'] === undefined ? undefined : checkDescriptor(m['subject'], 'subject'),
    annotations: stringMap(m['annotations']),
  } as ImageManifest;
}

/** An image index from bytes, checked. */
export function parseIndex(bytes: Uint8Array): ImageIndex {
  const m = parseJson(bytes, 'index');
  if (m['schemaVersion'] !== 2 || !Array.isArray(m['manifests'])) throw protocol('the registry sent an index without schemaVersion 2 and a manifests list');
  return { schemaVersion: 2, mediaType: m['mediaType'] as string | undefined, manifests: (m['manifests'] as unknown[]).map((d, i) => checkDescriptor(d, `manifests[${i}]`)) };
}

/** The registry's own error code from an error body (`{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`), if any. */
function registryErrorCode(text: string): string | undefined {
  try {
    const code = (JSON.parse(text) as { errors?: Array<{ code?: unknown }> }).errors?.[0]?.code;
    return typeof code === 'string' ? code.slice(0, 64) : undefined;
  } catch {
    return undefined;
  }
}

/** Read a response body up to `max` bytes; more is an error, never a truncation. */
async function readCapped(res: Response, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => {});
    throw new AuthorityError(ErrorCode.TOO_LARGE, `the registry's ${what} is ${declared} bytes, over the limit of ${max}`, { data: { bytes: declared, max } });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (res.body === null) return Buffer.alloc(0);
  const reader = res.body.getReader();
  for (;;) {
    let r: { done: boolean; value?: Uint8Array | undefined };
    try {
      r = await reader.read();
    } catch (e) {
      throw new AuthorityError(ErrorCode.REGISTRY_UNREACHABLE, `the connection broke while reading the ${what}: ${(e as Error).message}`, { cause: e });
    }
    if (r.done) break;
    const chunk = r.value ?? new Uint8Array(0);
    total += chunk.length;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw new AuthorityError(ErrorCode.TOO_LARGE, `the registry's ${what} is over the limit of ${max} bytes`, { data: { max } });
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** The token scope this request needs, e.g. `repository:tools/echo:pull`. */
  scope: string;
  /** Statuses the caller handles itself; anything else unexpected is mapped to an error. */
  ok: readonly number[];
  /** What is asked for, for messages: `manifest tools/echo:1.0`. */
  what: string;
}

/** A client for one registry (host[:port]). */
export class OciClient {
  readonly registry: string;
  readonly base: string;
  readonly #opts: Required<Pick<OciClientOptions, 'timeoutMs' | 'maxManifestBytes' | 'maxBlobBytes'>> & OciClientOptions;
  /** `Authorization` values by scope (a bearer token), or for every scope (basic). */
  readonly #auth = new Map<string, string>();
  #basic: string | undefined;

  constructor(registry: string, opts: OciClientOptions = {}) {
    this.registry = registry;
    this.base = `${opts.plainHttp === true ? 'http' : 'https'}://${registry}`;
    this.#opts = { timeoutMs: 30_000, maxManifestBytes: 4 * 1024 * 1024, maxBlobBytes: 256 * 1024 * 1024, ...opts };
  }

  /** Scheme and authority of the registry; credentials go to no other origin except the token realm. */
  get #origin(): string {
    return new URL(this.base).origin;
  }

  async #fetch(url: URL, init: { method: string; headers: Record<string, string>; body?: Uint8Array | undefined }, what: string): Promise<Response> {
    let current = url;
    let headers = init.headers;
    for (let hop = 0; ; hop++) {
      let res: Response;
      try {
        res = await fetch(current, { method: init.method, headers, body: init.body, redirect: 'manual', signal: AbortSignal.timeout(this.#opts.timeoutMs) });
      } catch (e) {
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        const why = cause?.code ?? cause?.message ?? (e as Error).message;
        const hint = current.protocol === 'https:' && /SSL|TLS|EPROTO/i.test(why) ? ' (if this registry speaks plain HTTP, say so with --plain-http)' : '';
        throw new AuthorityError(ErrorCode.REGISTRY_UNREACHABLE, `cannot reach ${current.origin} for the ${what}: ${why}${hint}`, { data: { registry: this.registry, origin: current.origin }, cause: e });
      }
      const location = res.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(res.status) || location === null || !['GET', 'HEAD'].includes(init.method)) return res;
      await res.body?.cancel().catch(() => {});
      if (hop >= MAX_REDIRECTS) throw protocol(`more than ${MAX_REDIRECTS} redirects for the ${what}`, { registry: this.registry });
      const next = new URL(location, current);
      if (next.protocol !== 'https:' && !(next.protocol === 'http:' && this.#opts.plainHttp === true)) {
        throw protocol(`the registry redirected the ${what} to ${next.protocol} (only https${this.#opts.plainHttp === true ? ' or http' : ''} is followed)`, { registry: this.registry });
      }
      // Blob storage often lives elsewhere: the registry's credentials stay with the registry.
      if (next.origin !== this.#origin) {
        const { authorization: _dropped, ...rest } = headers;
        headers = rest;
      }
      current = next;
    }
  }

  async #token(challenge: Record<string, string>, scope: string, what: string): Promise<string> {
    const realm = challenge['realm'];
    if (realm === undefined) throw protocol(`the registry asked for a bearer token without a realm (${what})`, { registry: this.registry });
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw protocol(`the registry's token realm is not a URL (${what})`, { registry: this.registry });
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.#opts.plainHttp === true)) {
      throw protocol(`the registry's token realm is ${url.protocol}; credentials are sent only over https (or http when plain HTTP was asked for)`, { registry: this.registry });
    }
    if (challenge['service'] !== undefined) url.searchParams.set('service', challenge['service']);
    url.searchParams.set('scope', challenge['scope'] ?? scope);
    const headers: Record<string, string> = { accept: 'application/json' };
    const creds = this.#opts.credentials;
    let res: Response;
    if (creds?.identityToken === true) {
      // An identity (refresh) token is exchanged with the OAuth2 form POST of the distribution token spec.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.refreshToken(), client_id: 'authority-sandbox', scope: url.searchParams.get('scope') ?? scope });
      if (challenge['service'] !== undefined) form.set('service', challenge['service']);
      url.search = '';
      res = await this.#fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()) }, `token for ${what}`);
    } else {
      if (creds !== undefined) headers['authorization'] = creds.basic();
      res = await this.#fetch(url, { method: 'GET', headers }, `token for ${what}`);
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel().catch(() => {});
      throw new AuthorityError(ErrorCode.REGISTRY_UNAUTHORIZED, `the registry's token service refused ${creds === undefined ? 'an anonymous request (no credentials are configured)' : `the credentials from ${creds.source}`} for ${what}`, {
        data: { registry: this.registry, status: res.status },
      });
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw protocol(`the token service answered ${res.status} for ${what}`, { registry: this.registry, status: res.status });
    }
    const doc = parseJson(await readCapped(res, 64 * 1024, 'token'), 'token response');
    const token = typeof doc['token'] === 'string' ? doc['token'] : doc['access_token'];
    if (typeof token !== 'string' || token.length === 0 || /[\r\n]/.test(token)) throw protocol(`the token service sent no token for ${what}`, { registry: this.registry });
    return token;
  }

  /** One request with the auth dance: anonymous first, then the scheme the 401 challenge names. */
  async request(path: string, o: RequestOptions): Promise<Response> {
    const url = new URL(path, this.base);
    const method = o.method ?? 'GET';
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers: Record<string, string> = { 'user-agent': 'authority-sandbox', ...o.headers };
      const auth = this.#auth.get(o.scope) ?? this.#basic;
      // Only the registry's own origin gets its credentials (an upload Location may name another).
      if (auth !== undefined && url.origin === this.#origin) headers['authorization'] = auth;
      const res = await this.#fetch(url, { method, headers, body: o.body }, o.what);
      if (res.status === 401 && attempt === 0 && url.origin === this.#origin) {
        await res.body?.cancel().catch(() => {});
        const challenge = parseChallenge(res.headers.get('www-authenticate') ?? '');
        if (challenge?.scheme === 'bearer') {
          this.#auth.set(o.scope, `Bearer ${await this.#token(challenge.params, o.scope, o.what)}`);
          continue;
        }
        if (challenge?.scheme === 'basic' && this.#opts.credentials !== undefined && this.#basic === undefined) {
          this.#basic = this.#opts.credentials.basic();
          continue;
        }
        throw this.#unauthorized(401, o.what);
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel().catch(() => {});
        throw this.#unauthorized(res.status, o.what);
      }
      if (o.ok.includes(res.status)) return res;
      const text = (await readCapped(res, 64 * 1024, 'error').catch(() => Buffer.alloc(0))).toString('utf8');
      const code = registryErrorCode(text);
      if (res.status === 404) {
        throw new AuthorityError(ErrorCode.REGISTRY_NOT_FOUND, `${this.registry} has no ${o.what}${code === undefined ? '' : ` (${code})`}`, { data: { registry: this.registry, status: 404, registryCode: code ?? null } });
      }
      throw protocol(`${this.registry} answered ${res.status}${code === undefined ? '' : ` ${code}`} for the ${o.what}`, { registry: this.registry, status: res.status, registryCode: code ?? null });
    }
    throw this.#unauthorized(401, o.what);
  }

  #unauthorized(status: number, what: string): AuthorityError {
    const creds = this.#opts.credentials;
    const who = creds === undefined ? 'no credentials are configured (docker-style config.json auths, or AUTHORITY_REGISTRY_USERNAME/PASSWORD)' : `the credentials from ${creds.source} were refused`;
    return new AuthorityError(ErrorCode.REGISTRY_UNAUTHORIZED, `${this.registry} refused access to the ${what} (${status}): ${who}`, { data: { registry: this.registry, status } });
  }

  /**
   * Fetch a manifest by tag or digest. Its digest is computed from the bytes:
   * it must equal the digest asked for, and the one the registry announces.
   */
  async getManifest(repository: string, reference: string, accept: readonly string[] = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]): Promise<{ digest: string; mediaType: string; bytes: Buffer }> {
    const what = `manifest ${repository}${DIGEST.test(reference) ? '@' : ':'}${reference}`;
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, { scope: `repository:${repository}:pull`, ok: [200], what, headers: { accept: accept.join(', ') } });
    const bytes = await readCapped(res, this.#opts.maxManifestBytes, what);
    const digest = sha256Digest(bytes);
    if (DIGEST.test(reference) && digest !== reference) {
      throw new AuthorityError(ErrorCode.DIGEST_MISMATCH, `the ${what} the registry sent hashes to ${digest}`, { data: { expected: reference, actual: digest, registry: this.registry } });
    }
    const announced = res.headers.get('docker-content-digest');
    if (announced !== null && DIGEST.test(announced) && announced !== digest) {
      throw new AuthorityError(ErrorCode.DIGEST_MISMATCH, `the registry announced ${announced} for the ${what}, but its bytes hash to ${digest}`, { data: { expected: announced, actual: digest, registry: this.registry } });
    }
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    return { digest, mediaType, bytes };
  }

  /** Fetch a blob and check it against its descriptor (digest and size). */
  async getBlob(repository: string, desc: Pick<Descriptor, 'digest' | 'size'>, max = this.#opts.maxBlobBytes): Promise<Buffer> {
    const what = `blob ${repository}@${desc.digest}`;
    if (desc.size > max) throw new AuthorityError(ErrorCode.TOO_LARGE, `the ${what} is ${desc.size} bytes, over the limit of ${max}`, { data: { bytes: desc.size, max } });
    const res = await this.request(`/v2/${repository}/blobs/${desc.digest}`, { scope: `repository:${repository}:pull`, ok: [200], what });
    const bytes = await readCapped(res, Math.min(max, desc.size), what);
    const digest = sha256Digest(bytes);
    if (digest !== desc.digest || bytes.length !== desc.size) {
      throw new AuthorityError(ErrorCode.DIGEST_MISMATCH, `the ${what} the registry sent is ${bytes.length} bytes hashing to ${digest}; expected ${desc.size} bytes`, {
        data: { expected: desc.digest, actual: digest, registry: this.registry },
      });
    }
    return bytes;
  }

  async hasBlob(repository: string, digest: string, scope = `repository:${repository}:pull`): Promise<boolean> {
    const res = await this.request(`/v2/${repository}/blobs/${digest}`, { method: 'HEAD', scope, ok: [200, 404], what: `blob ${repository}@${digest}` });
    await res.body?.cancel().catch(() => {});
    return res.status === 200;
  }

  /** Upload a blob (monolithic: POST for a session, PUT with the digest), unless the registry has it. */
  async pushBlob(repository: string, bytes: Uint8Array): Promise<Descriptor & { uploaded: boolean }> {
    const digest = sha256Digest(bytes);
    const scope = `repository:${repository}:pull,push`;
    if (await this.hasBlob(repository, digest, scope)) return { mediaType: 'application/octet-stream', digest, size: bytes.length, uploaded: false };
    const what = `upload to ${repository}`;
    const start = await this.request(`/v2/${repository}/blobs/uploads/`, { method: 'POST', scope, ok: [202], what, body: new Uint8Array(0) });
    await start.body?.cancel().catch(() => {});
    const location = start.headers.get('location');
    if (location === null) throw protocol(`${this.registry} started an upload without a Location`, { registry: this.registry });
    const url = new URL(location, this.base);
    url.searchParams.set('digest', digest);
    const put = await this.request(url.href, {
      method: 'PUT',
      scope,
      ok: [201],
      what,
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    await put.body?.cancel().catch(() => {});
    const stored = put.headers.get('docker-content-digest');
    if (stored !== null && stored !== digest) throw new AuthorityError(ErrorCode.DIGEST_MISMATCH, `${this.registry} stored the blob as ${stored}, not ${digest}`, { data: { expected: digest, actual: stored } });
    return { mediaType: 'application/octet-stream', digest, size: bytes.length, uploaded: true };
  }

  /** PUT a manifest under a tag or its digest. Says whether the registry took a `subject` (OCI-Subject: it keeps referrers itself). */
  async putManifest(repository: string, reference: string, bytes: Uint8Array, mediaType: string): Promise<{ digest: string; subjectKept: boolean }> {
    const digest = sha256Digest(bytes);
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      scope: `repository:${repository}:pull,push`,
      ok: [201],
      what: `manifest ${repository}:${reference}`,
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    await res.body?.cancel().catch(() => {});
    const stored = res.headers.get('docker-content-digest');
    if (stored !== null && DIGEST.test(stored) && stored !== digest) throw new AuthorityError(ErrorCode.DIGEST_MISMATCH, `${this.registry} stored the manifest as ${stored}, not ${digest}`, { data: { expected: digest, actual: stored } });
    return { digest, subjectKept: res.headers.has('oci-subject') };
  }

  /**
   * The referrers of a manifest through the referrers API, or undefined when
   * the registry has no such API (it answers 404), so the caller falls back
   * to the tag schema.
   */
  async referrers(repository: string, digest: string): Promise<Descriptor[] | undefined> {
    const what = `referrers of ${repository}@${digest}`;
    const res = await this.request(`/v2/${repository}/referrers/${digest}`, { scope: `repository:${repository}:pull`, ok: [200, 404], what, headers: { accept: MEDIA_TYPES.ociIndex } });
    if (res.status === 404) {
      await res.body?.cancel().catch(() => {});
      return undefined;
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0]?.trim();
    const bytes = await readCapped(res, this.#opts.maxManifestBytes, what);
    // A registry without the API may answer 200 with something else entirely.
    if (type !== MEDIA_TYPES.ociIndex) return undefined;
    return parseIndex(bytes).manifests;
  }

  /** The index stored under a tag (the referrers tag schema), or undefined when the tag does not exist. */
  async getIndexByTag(repository: string, tag: string): Promise<{ index: ImageIndex; digest: string } | undefined> {
    try {
      const m = await this.getManifest(repository, tag, [MEDIA_TYPES.ociIndex]);
      return { index: parseIndex(m.bytes), digest: m.digest };
    } catch (e) {
      if (e instanceof AuthorityError && e.code === ErrorCode.REGISTRY_NOT_FOUND) return undefined;
      throw e;
    }
  }
}
