/**
 * Who may use `authority serve`, and with which grants: an access file maps
 * bearer tokens (stored as SHA-256 hashes, never in clear) to grants
 * profiles. Each MCP session gets the grants of its token's profile, minted
 * for the session's own run id.
 *
 * ```json
 * {
 *   "profiles": {
 *     "reader": { "grants": [{ "kind": "fs", "resource": "/data/**", "methods": ["read"] }] },
 *     "fetcher": { "grants": [{ "kind": "net", "resource": "https://api.example.com/**", "methods": ["GET"] }] }
 *   },
 *   "tokens": [
 *     { "name": "agent-a", "sha256": "<64 hex digits>", "profile": "reader" }
 *   ]
 * }
 * ```
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { parseGrants, type GrantClaim } from '../adapters/grants.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';

const MAX_ACCESS_FILE_BYTES = 1024 * 1024;
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** The prefix of every bearer token `authority serve token` makes (so a leaked one is recognisable in a scan). */
export const BEARER_PREFIX = 'asv_';

export interface AccessEntry {
  readonly name: string;
  readonly profile: string;
}

export interface Access {
  readonly profiles: ReadonlyMap<string, readonly GrantClaim[]>;
  /** Token hash (hex) -> who and which profile. */
  readonly tokens: ReadonlyMap<string, AccessEntry>;
}

const fileSchema = z.strictObject({
  profiles: z.record(z.string().regex(NAME, { error: 'profile names are letters, digits and ._- (at most 64)' }), z.unknown()),
  tokens: z
    .array(
      z.strictObject({
        name: z.string().regex(NAME, { error: 'letters, digits and ._- (at most 64)' }),
        sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected the token\'s SHA-256 as 64 lowercase hex digits' }),
        profile: z.string(),
      }),
    )
    .max(10_000),
});

/** The hash an access file stores for a bearer token. */
export function hashBearer(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Validate an access document; E_CONFIG lists every problem at its path. */
export function parseAccess(doc: unknown, source = 'access file'): Access {
  const r = fileSchema.safeParse(doc);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new AuthorityError(ErrorCode.CONFIG, `invalid ${source}:\n${problems.map((p) => `  ${p}`).join('\n')}`, { data: { problems } });
  }
  const profiles = new Map<string, readonly GrantClaim[]>();
  for (const [name, p] of Object.entries(r.data.profiles)) profiles.set(name, Object.freeze(parseGrants(p, `${source} profiles.${name}`)));
  const tokens = new Map<string, AccessEntry>();
  r.data.tokens.forEach((t, i) => {
    if (!profiles.has(t.profile)) throw new AuthorityError(ErrorCode.CONFIG, `invalid ${source}: tokens[${i}].profile: no profile named ${JSON.stringify(t.profile)}`, { data: { at: `tokens[${i}].profile` } });
    if (tokens.has(t.sha256)) throw new AuthorityError(ErrorCode.CONFIG, `invalid ${source}: tokens[${i}].sha256: the same token is listed twice`, { data: { at: `tokens[${i}].sha256` } });
    tokens.set(t.sha256, Object.freeze({ name: t.name, profile: t.profile }));
  });
  return Object.freeze({ profiles, tokens });
}

function readDoc(path: string): unknown {
  let text: string;
  try {
    if (statSync(path).size > MAX_ACCESS_FILE_BYTES) throw new AuthorityError(ErrorCode.CONFIG, `access file ${path} is larger than ${MAX_ACCESS_FILE_BYTES} bytes`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof AuthorityError) throw e;
    throw new AuthorityError(ErrorCode.CONFIG, `cannot read access file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e, data: { file: path } });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AuthorityError(ErrorCode.CONFIG, `access file ${path} is not JSON: ${(e as Error).message}`, { cause: e, data: { file: path } });
  }
}

export function loadAccessFile(path: string): Access {
  return parseAccess(readDoc(path), `access file ${path}`);
}

/** Who a bearer token is, or undefined. The lookup is by hash: the token's text is never compared. */
export function authenticate(access: Access, authorization: string | undefined): AccessEntry | undefined {
  if (authorization === undefined) return undefined;
  const m = /^Bearer ([A-Za-z0-9._~+/=-]{16,512})$/.exec(authorization);
  if (m === null) return undefined;
  return access.tokens.get(hashBearer(m[1] as string));
}

/**
 * Add a new token for `profile` to the access file (created if missing, with
 * the profile's grants when given), and return the token: shown once, stored
 * only as its hash.
 */
export function addBearerToken(path: string, opts: { name: string; profile: string }): string {
  let doc: { profiles: Record<string, unknown>; tokens: Array<Record<string, unknown>> };
  try {
    doc = readDoc(path) as typeof doc;
  } catch (e) {
    if ((e as AuthorityError).cause !== undefined && ((e as AuthorityError).cause as NodeJS.ErrnoException).code === 'ENOENT') doc = { profiles: {}, tokens: [] };
    else throw e;
  }
  const token = BEARER_PREFIX + randomBytes(32).toString('base64url');
  const next = { ...doc, tokens: [...(doc.tokens ?? []), { name: opts.name, sha256: hashBearer(token), profile: opts.profile }] };
  parseAccess(next, `access file ${path}`);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
  return token;
}
