/**
 * OCI references as Authority writes them: `oci://HOST[:PORT]/REPO[:TAG]` or
 * `oci://HOST[:PORT]/REPO@sha256:HEX` (a tag and a digest together mean the
 * digest, and the tag is kept for display). Grammar from the OCI
 * distribution spec: repository components are lowercase, tags at most 128.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';

export const OCI_SCHEME = 'oci://';
const REPO_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/;

export interface OciReference {
  /** host[:port] as written. */
  readonly registry: string;
  readonly repository: string;
  readonly tag: string | undefined;
  /** `sha256:<hex>`. */
  readonly digest: string | undefined;
}

export function isOciReference(s: string): boolean {
  return s.startsWith(OCI_SCHEME);
}

function invalid(ref: string, why: string): AuthorityError {
  return new AuthorityError(ErrorCode.USAGE, `${JSON.stringify(ref.slice(0, 300))} is not an OCI reference: ${why} (expected oci://HOST[:PORT]/REPO[:TAG|@sha256:HEX])`, { data: { reference: ref.slice(0, 300) } });
}

/** Parse `oci://...`; throws E_USAGE naming what is wrong. With no tag and no digest the tag is `latest`. */
export function parseReference(ref: string): OciReference {
  if (!isOciReference(ref)) throw invalid(ref, `it does not start with ${OCI_SCHEME}`);
  const rest = ref.slice(OCI_SCHEME.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) throw invalid(ref, 'no registry host');
  const registry = rest.slice(0, slash);
  const m = HOST.exec(registry);
  if (m === null || (m[1] !== undefined && Number(m[1]) > 65535)) throw invalid(ref, `bad registry host ${JSON.stringify(registry)}`);
  let path = rest.slice(slash + 1);
  let digest: string | undefined;
  const at = path.indexOf('@');
  if (at >= 0) {
    digest = path.slice(at + 1);
    path = path.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(ref, `bad digest ${JSON.stringify(digest.slice(0, 80))} (sha256:<64 lowercase hex>)`);
  }
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/')) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, `bad tag ${JSON.stringify(tag.slice(0, 80))}`);
  }
  if (path.length === 0 || path.length > 255 || !path.split('/').every((c) => REPO_COMPONENT.test(c))) throw invalid(ref, `bad repository ${JSON.stringify(path.slice(0, 80))} (lowercase [a-z0-9] components with . _ - separators)`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  return Object.freeze({ registry, repository: path, tag, digest });
}

/** The reference as text: `oci://host/repo:tag`, `oci://host/repo@sha256:...`, or both. */
export function formatReference(r: OciReference): string {
  return `${OCI_SCHEME}${r.registry}/${r.repository}${r.tag === undefined ? '' : `:${r.tag}`}${r.digest === undefined ? '' : `@${r.digest}`}`;
}

/** The same reference pinned to a digest (no tag): what the audit log records as the source. */
export function pinnedReference(r: OciReference, digest: string): string {
  return `${OCI_SCHEME}${r.registry}/${r.repository}@${digest}`;
}
