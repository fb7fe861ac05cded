/**
 * Grants files: the capabilities a server gives each session it serves
 * (`authority mcp --grants FILE`). A file lists claims; at session start each
 * claim becomes a capability token, signed with the runtime's keyring and
 * bound to the session's run id, so it is worthless in any other run.
 *
 * ```json
 * {
 *   "grants": [
 *     { "kind": "fs", "resource": "/workspace/**", "methods": ["read", "list"], "ttl": "8h" },
 *     { "kind": "net", "resource": "https://api.weather.test/**", "methods": ["GET"], "rate": "10/s" },
 *     { "kind": "secrets", "resource": "WEATHER_KEY", "methods": ["use"] }
 *   ]
 * }
 * ```
 *
 * A grant never widens the policy: the gate requires both a token and the
 * policy's permission for every host call, so a grant broader than the
 * policy is cut down to it.
 * @module
 */
import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { KINDS, METHODS, parseDuration, parseRate, type CapabilityKind, type Rate } from '../capability/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { Runtime } from '../runtime.ts';

/** Lifetime of a minted token when a claim gives no `ttl`. */
export const DEFAULT_GRANT_TTL = '24h';
/** Largest grants file read. */
export const MAX_GRANTS_FILE_BYTES = 256 * 1024;
const MAX_CLAIMS = 64;

/** One claim of a grants file, parsed. */
export interface GrantClaim {
  kind: CapabilityKind;
  resource: string;
  methods: readonly string[];
  ttlMs: number;
  rate?: Rate | undefined;
}

const claimSchema = z.strictObject({
  kind: z.enum(KINDS, { error: `expected one of ${KINDS.join(', ')}` }),
  resource: z.string({ error: 'expected a resource pattern (a string)' }).min(1, { error: 'must not be empty' }).max(2048),
  methods: z.array(z.string({ error: 'expected a method name' }), { error: 'expected a list of methods' }).min(1, { error: 'at least one method' }).max(16),
  ttl: z.string({ error: 'expected a duration like "8h"' }).optional(),
  rate: z.string({ error: 'expected a rate like "10/s"' }).optional(),
  description: z.string().max(1024).optional(),
});

const fileSchema = z.strictObject({
  description: z.string().max(4096).optional(),
  grants: z.array(claimSchema, { error: 'expected a list of claims' }).max(MAX_CLAIMS, { error: `at most ${MAX_CLAIMS} claims` }),
});

function pathOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out === '' ? '' : '.'}${String(p)}`;
  return out || '(root)';
}

function invalid(problems: string[], source: string | undefined): AuthorityError {
  const where = source === undefined ? 'grants' : `grants file ${source}`;
  return new AuthorityError(ErrorCode.CONFIG, `invalid ${where}:\n${problems.map((p) => `  ${p}`).join('\n')}`, { data: { problems, ...(source === undefined ? {} : { source }) } });
}

/**
 * Validate a grants document. Throws `E_CONFIG` listing every problem at its
 * path (`grants[1].methods[0]: "wirte" is not a fs method ...`).
 *
 * @example
 * ```ts
 * const claims = parseGrants({ grants: [{ kind: 'fs', resource: '/data/**', methods: ['read'] }] });
 * ```
 */
export function parseGrants(document: unknown, source?: string): GrantClaim[] {
  const r = fileSchema.safeParse(document);
  if (!r.success) throw invalid(r.error.issues.map((i) => `${pathOf(i.path)}: ${i.message}`), source);
  const problems: string[] = [];
  const claims: GrantClaim[] = [];
  r.data.grants.forEach((c, i) => {
    const at = `grants[${i}]`;
    const allowed: readonly string[] = [...METHODS[c.kind], ...(c.kind === 'net' ? ['*'] : [])];
    c.methods.forEach((m, j) => {
      if (!allowed.includes(m)) problems.push(`${at}.methods[${j}]: "${m}" is not a ${c.kind} method (one of ${allowed.join(', ')})`);
    });
    let ttlMs = 0;
    let rate: Rate | undefined;
    try {
      ttlMs = parseDuration(c.ttl ?? DEFAULT_GRANT_TTL, `${at}.ttl`);
    } catch (e) {
      problems.push((e as Error).message);
    }
    try {
      rate = c.rate === undefined ? undefined : parseRate(c.rate, `${at}.rate`);
    } catch (e) {
      problems.push((e as Error).message);
    }
    claims.push({ kind: c.kind, resource: c.resource, methods: c.methods, ttlMs, rate });
  });
  if (problems.length > 0) throw invalid(problems, source);
  return claims;
}

/** Read and validate a grants file (JSON, at most 256 KiB). A missing or unreadable file is `E_CONFIG`. */
export async function loadGrantsFile(path: string): Promise<GrantClaim[]> {
  let text: string;
  try {
    if ((await stat(path)).size > MAX_GRANTS_FILE_BYTES) throw invalid([`(root): the file is larger than ${MAX_GRANTS_FILE_BYTES} bytes`], path);
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof AuthorityError) throw e;
    const code = (e as { code?: unknown }).code;
    throw new AuthorityError(ErrorCode.CONFIG, `cannot read grants file ${path}: ${typeof code === 'string' ? code : (e as Error).message}`, { cause: e, data: { file: path } });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    throw invalid([`(root): not JSON: ${(e as Error).message}`], path);
  }
  return parseGrants(doc, path);
}

/**
 * Turn claims into capability tokens for one run: each is signed with the
 * runtime's active key and bound to `runId`. A claim the token format
 * refuses (a bad resource pattern) is `E_CONFIG` naming the claim.
 *
 * @example
 * ```ts
 * const tokens = mintGrants(runtime, await loadGrantsFile('grants.json'), { runId: session.runId });
 * ```
 */
export function mintGrants(runtime: Runtime, claims: readonly GrantClaim[], opts: { runId: string }): string[] {
  return claims.map((c, i) => {
    try {
      return runtime.issueToken({ kind: c.kind, resource: c.resource, methods: c.methods, ttlMs: c.ttlMs, rate: c.rate, runId: opts.runId });
    } catch (e) {
      throw new AuthorityError(ErrorCode.CONFIG, `grants[${i}]: ${(e as Error).message}`, { cause: e, data: { at: `grants[${i}]` } });
    }
  });
}
