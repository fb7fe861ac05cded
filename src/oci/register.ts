/**
 * Registering a tool straight from a registry reference: pull (checked
 * against every digest), fetch its signatures (referrers, or the tag-schema
 * fallback), and register the bytes with the reference pinned to the
 * manifest digest as their source, so the audit log says exactly which
 * bytes came from where.
 * @module
 */
import { dataPaths } from '../data-dir.ts';
import type { RegisterOptions, ToolInfo } from '../registry/index.ts';
import type { Runtime } from '../runtime.ts';
import type { SignatureBundle } from '../signing/envelope.ts';
import { findCredentials, type CredentialOptions } from './auth.ts';
import { BlobCache } from './cache.ts';
import { OciClient, type OciClientOptions } from './client.ts';
import { formatReference, parseReference, type OciReference } from './reference.ts';
import { fetchSignatures, pullTool, type PulledTool } from './tool.ts';

/** A client for the reference's registry, with the credentials configured for it. */
export function clientFor(ref: OciReference, opts: Omit<OciClientOptions, 'credentials'> & CredentialOptions = {}): OciClient {
  const { configFile, env, ...client } = opts;
  return new OciClient(ref.registry, { ...client, credentials: findCredentials(ref.registry, { configFile, env }) });
}

/** How to reach registries. */
export interface RegistryAccess extends CredentialOptions {
  /** Plain HTTP for these registries (host:port), or for every one with `true`. Default: HTTPS only. */
  plainHttp?: boolean | readonly string[] | undefined;
  timeoutMs?: number | undefined;
}

export interface PulledWithSignatures extends PulledTool {
  signatures: SignatureBundle[];
  /** Referrers that were not usable signatures, with why. */
  skipped: string[];
  via: 'referrers-api' | 'tag-schema';
}

function plain(access: RegistryAccess, registry: string): boolean {
  const p = access.plainHttp;
  return p === true || (Array.isArray(p) && p.includes(registry));
}

/** Pull a component and its signatures into the data folder's cache. */
export async function pullWithSignatures(reference: string, dataDir: string, access: RegistryAccess = {}): Promise<PulledWithSignatures> {
  const ref = parseReference(reference);
  const client = clientFor(ref, { plainHttp: plain(access, ref.registry), configFile: access.configFile, env: access.env, ...(access.timeoutMs === undefined ? {} : { timeoutMs: access.timeoutMs }) });
  const pulled = await pullTool(client, ref, new BlobCache(dataPaths(dataDir).ociCache));
  const sigs = await fetchSignatures(client, ref.repository, pulled.manifestDigest);
  return { ...pulled, signatures: sigs.bundles, skipped: sigs.skipped, via: sigs.via };
}

/**
 * Register the tool an `oci://` reference names. Its signatures are checked
 * against the runtime's policy (`tools.trust`, `tools.pin`) like any other.
 *
 * @example
 * ```ts
 * const tool = await registerReference(runtime, 'oci://registry.example/tools/echo:1.0');
 * ```
 */
export async function registerReference(runtime: Runtime, reference: string, access: RegistryAccess = {}, opts: Pick<RegisterOptions, 'limits'> = {}): Promise<ToolInfo & { pulled: PulledWithSignatures }> {
  const pulled = await pullWithSignatures(reference, runtime.dataDir, access);
  const tool = await runtime.register(pulled.bytes, { ...opts, source: pulled.pinned, reference: formatReference(pulled.reference), signatures: pulled.signatures });
  return { ...tool, pulled };
}
