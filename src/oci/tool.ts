/**
 * Tool components as OCI artifacts, in the layout the WebAssembly component
 * ecosystem uses (CNCF TAG Runtime "Wasm OCI artifact"; wkg, wasm-pkg-tools,
 * Wassette): an image manifest whose config is `application/vnd.wasm.config.v0+json`
 * (architecture `wasm`, os `wasip2`, the layer digests, the component's
 * imports) and whose one layer is the component, `application/wasm`.
 *
 * Signatures are Sigstore bundles attached as referrers (OCI 1.1 `subject`).
 * A registry without the referrers API gets the spec's tag-schema fallback:
 * an image index under the tag `sha256-<hex of the subject digest>` lists
 * the referrers, and readers look there when the API answers 404.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import { componentImports, isComponent } from '../registry/binary.ts';
import { BUNDLE_MEDIA_TYPE, parseBundle, type SignatureBundle } from '../signing/envelope.ts';
import type { BlobCache } from './cache.ts';
import { EMPTY_JSON, MEDIA_TYPES, parseManifest, sha256Digest, type Descriptor, type ImageManifest, type OciClient } from './client.ts';
import { pinnedReference, type OciReference } from './reference.ts';

export const WASM_CONFIG_MEDIA_TYPE = 'application/vnd.wasm.config.v0+json';
export const WASM_LAYER_MEDIA_TYPE = 'application/wasm';
/** Referrers beyond this many are not read: a registry flooding a subject with referrers gains nothing. */
const MAX_SIGNATURES = 16;

export interface PushedTool {
  manifestDigest: string;
  componentDigest: string;
  /** `oci://host/repo@sha256:<manifest>`. */
  pinned: string;
  size: number;
}

/** Push a component under `ref`'s tag (or only by digest when the reference has none). */
export async function pushTool(client: OciClient, ref: OciReference, bytes: Uint8Array, opts: { created?: Date; annotations?: Record<string, string> } = {}): Promise<PushedTool> {
  if (!isComponent(bytes)) throw new AuthorityError(ErrorCode.COMPONENT_INVALID, 'not a WebAssembly component (wrong magic or version)');
  const componentDigest = sha256Digest(bytes);
  const config = Buffer.from(
    JSON.stringify({
      created: (opts.created ?? new Date()).toISOString(),
      author: null,
      architecture: 'wasm',
      os: 'wasip2',
      layerDigests: [componentDigest],
      component: { exports: ['describe', 'run'], imports: componentImports(bytes).map((i) => i.name), target: null },
    }),
  );
  const layer = await client.pushBlob(ref.repository, bytes);
  const cfg = await client.pushBlob(ref.repository, config);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: WASM_CONFIG_MEDIA_TYPE, digest: cfg.digest, size: cfg.size },
    layers: [{ mediaType: WASM_LAYER_MEDIA_TYPE, digest: layer.digest, size: layer.size }],
    ...(opts.annotations === undefined ? {} : { annotations: opts.annotations }),
  };
  const body = Buffer.from(JSON.stringify(manifest));
  const { digest } = await client.putManifest(ref.repository, ref.tag ?? sha256Digest(body), body, MEDIA_TYPES.ociManifest);
  if (ref.digest !== undefined && ref.digest !== digest) {
    throw new AuthorityError(ErrorCode.DIGEST_MISMATCH, `the reference names ${ref.digest}, but the pushed manifest is ${digest}`, { data: { expected: ref.digest, actual: digest } });
  }
  return { manifestDigest: digest, componentDigest, pinned: pinnedReference(ref, digest), size: bytes.length };
}

export interface PulledTool {
  /** What was asked for. */
  reference: OciReference;
  manifestDigest: string;
  manifestSize: number;
  /** `sha256:<hex>` of the component bytes. */
  componentDigest: string;
  bytes: Buffer;
  /** `oci://host/repo@sha256:<manifest>`: the source the audit log records. */
  pinned: string;
  /** Whether manifest and component came from the local cache. */
  fromCache: boolean;
}

/** The one component layer of a wasm artifact manifest. */
export function componentLayer(manifest: ImageManifest): Descriptor {
  if (manifest.config.mediaType !== WASM_CONFIG_MEDIA_TYPE) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the artifact is not a Wasm component: its config media type is ${JSON.stringify(manifest.config.mediaType)}, not ${WASM_CONFIG_MEDIA_TYPE}`, {
      data: { configMediaType: manifest.config.mediaType },
    });
  }
  const layers = manifest.layers.filter((l) => l.mediaType === WASM_LAYER_MEDIA_TYPE);
  if (layers.length !== 1) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `a Wasm artifact has exactly one ${WASM_LAYER_MEDIA_TYPE} layer; this one has ${layers.length}`, { data: { layers: manifest.layers.length } });
  }
  return layers[0] as Descriptor;
}

/**
 * Pull a component. A reference by digest is served from the cache when it
 * holds it; a tag is always resolved by the registry (tags move). Every byte
 * is checked against its digest before it is returned or cached.
 */
export async function pullTool(client: OciClient, ref: OciReference, cache: BlobCache): Promise<PulledTool> {
  let manifestBytes = ref.digest === undefined ? undefined : cache.get(ref.digest);
  const fromCache = manifestBytes !== undefined;
  let manifestDigest = ref.digest;
  if (manifestBytes === undefined) {
    const m = await client.getManifest(ref.repository, ref.digest ?? (ref.tag as string));
    manifestBytes = m.bytes;
    manifestDigest = m.digest;
  }
  const manifest = parseManifest(manifestBytes);
  const layer = componentLayer(manifest);
  let bytes = cache.get(layer.digest);
  const layerCached = bytes !== undefined;
  if (bytes === undefined) bytes = await client.getBlob(ref.repository, layer);
  if (!isComponent(bytes)) throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the ${WASM_LAYER_MEDIA_TYPE} layer of ${ref.repository} is not a WebAssembly component`, { data: { digest: layer.digest } });
  cache.put(layer.digest, bytes);
  cache.put(manifestDigest as string, manifestBytes);
  return {
    reference: ref,
    manifestDigest: manifestDigest as string,
    manifestSize: manifestBytes.length,
    componentDigest: layer.digest,
    bytes,
    pinned: pinnedReference(ref, manifestDigest as string),
    fromCache: fromCache && layerCached,
  };
}

/** The referrers tag of a subject digest (OCI 1.1 tag schema): `sha256-<hex>`. */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}

/**
 * Attach a signature bundle to a manifest: push the bundle as an artifact
 * whose `subject` is the manifest; when the registry does not keep referrers
 * itself (no `OCI-Subject` answer), add it to the tag-schema index too.
 */
export async function attachSignature(client: OciClient, repository: string, subject: Pick<Descriptor, 'digest' | 'size'>, bundle: SignatureBundle): Promise<{ digest: string; via: 'referrers-api' | 'tag-schema' }> {
  const blob = Buffer.from(JSON.stringify(bundle));
  const layer = await client.pushBlob(repository, blob);
  const empty = await client.pushBlob(repository, EMPTY_JSON);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: BUNDLE_MEDIA_TYPE,
    config: { mediaType: MEDIA_TYPES.empty, digest: empty.digest, size: empty.size },
    layers: [{ mediaType: BUNDLE_MEDIA_TYPE, digest: layer.digest, size: layer.size }],
    subject: { mediaType: MEDIA_TYPES.ociManifest, digest: subject.digest, size: subject.size },
    annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'urn:authority-sandbox:tool-signature:v1' },
  };
  const body = Buffer.from(JSON.stringify(manifest));
  const put = await client.putManifest(repository, sha256Digest(body), body, MEDIA_TYPES.ociManifest);
  if (put.subjectKept) return { digest: put.digest, via: 'referrers-api' };
  const tag = referrersTag(subject.digest);
  const existing = await client.getIndexByTag(repository, tag);
  const entry: Descriptor = { mediaType: MEDIA_TYPES.ociManifest, digest: put.digest, size: body.length, artifactType: BUNDLE_MEDIA_TYPE, annotations: manifest.annotations };
  const manifests = [...(existing?.index.manifests ?? []).filter((d) => d.digest !== put.digest), entry];
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }));
  await client.putManifest(repository, tag, index, MEDIA_TYPES.ociIndex);
  return { digest: put.digest, via: 'tag-schema' };
}

/**
 * The signature bundles attached to a manifest: through the referrers API,
 * else the tag schema. Bundles that do not parse are skipped (and reported):
 * a registry cannot make a good signature fail by adding a bad one.
 */
export async function fetchSignatures(client: OciClient, repository: string, manifestDigest: string): Promise<{ bundles: SignatureBundle[]; skipped: string[]; via: 'referrers-api' | 'tag-schema' }> {
  let via: 'referrers-api' | 'tag-schema' = 'referrers-api';
  let descriptors = await client.referrers(repository, manifestDigest);
  if (descriptors === undefined) {
    via = 'tag-schema';
    descriptors = (await client.getIndexByTag(repository, referrersTag(manifestDigest)))?.index.manifests ?? [];
  }
  const bundles: SignatureBundle[] = [];
  const skipped: string[] = [];
  for (const d of descriptors.filter((x) => x.artifactType === BUNDLE_MEDIA_TYPE).slice(0, MAX_SIGNATURES)) {
    try {
      const m = await client.getManifest(repository, d.digest);
      const manifest = parseManifest(m.bytes);
      if (manifest.subject?.digest !== manifestDigest) throw new AuthorityError(ErrorCode.REGISTRY_PROTOCOL, `referrer ${d.digest} has another subject`);
      const layer = manifest.layers.find((l) => l.mediaType === BUNDLE_MEDIA_TYPE);
      if (layer === undefined) throw new AuthorityError(ErrorCode.REGISTRY_PROTOCOL, `referrer ${d.digest} holds no bundle layer`);
      bundles.push(parseBundle(await client.getBlob(repository, layer, 64 * 1024), `${repository}@${d.digest}`));
    } catch (e) {
      if (!(e instanceof AuthorityError) || e.code === ErrorCode.REGISTRY_UNREACHABLE || e.code === ErrorCode.REGISTRY_UNAUTHORIZED) throw e;
      skipped.push(`${d.digest}: ${e.code}: ${e.message}`);
    }
  }
  return { bundles, skipped, via };
}
