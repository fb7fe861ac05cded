/**
 * Audit records: what a caller may hand the log (`AuditEntry`), what one line
 * of the log holds (`AuditRecord`), and the checks a line must pass.
 *
 * A record is one line: the canonical JSON (see canonical-json.ts) of its
 * fields, then `\n`. `hash` = hex SHA-256 of the canonical JSON of the record
 * without its `hash` member; `prev` = the previous record's `hash` (64 zeros
 * for record 0). A line is whole only with its newline, exact canonical form
 * and a matching own hash, so a torn or altered line cannot pass for a record.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import { canonicalJson, canonicalJsonWithout, isSha256Hex, sha256Hex, type Sha256Hex } from './canonical-json.ts';

export const RECORD_VERSION = 1;
/** `prev` of record 0. */
export const GENESIS_PREV = '0'.repeat(64);
/** Kind of record 0, written by the log itself: it carries the log's origin. */
export const GENESIS_KIND = 'genesis';
/** Written by the log itself each time a writer opens it, before anything else. */
export const OPEN_KIND = 'log.open';

/** The record kinds the runtime writes. Others that match `kind`'s pattern are accepted too. */
export const AUDIT_KINDS = [
  'invoke.start',
  'invoke.end',
  'call.intent',
  'call.outcome',
  'call.denied',
  'repair',
  'halt',
  'approval',
] as const;
export type KnownAuditKind = (typeof AUDIT_KINDS)[number];
/** A known kind, or another dotted lowercase name (`[a-z][a-z0-9-]*(.[a-z][a-z0-9-]*)*`, at most 64). */
export type AuditKind = KnownAuditKind | (string & Record<never, never>);

export type AuditDetailValue = string | number | boolean | null | readonly AuditDetailValue[] | { readonly [key: string]: AuditDetailValue };
/** Small structured facts about a record (at most 4 KiB as canonical JSON; integers only). Never a secret. */
export type AuditDetail = { readonly [key: string]: AuditDetailValue };

/**
 * What a caller appends. Only ids, names, codes and hashes: the log never holds
 * a secret's value, a whole token, a request or a response. Hash requests and
 * responses with `hashRequest()` first.
 */
export interface AuditEntry {
  kind: AuditKind;
  /** The run (invocation chain) this record belongs to. */
  runId?: string | undefined;
  /** Tool name as registered. */
  tool?: string | undefined;
  /** Component digest of the tool, e.g. "sha256:<hex>". */
  toolDigest?: string | undefined;
  /** The operation, e.g. "fs.read" or "http.fetch". */
  op?: string | undefined;
  decision?: 'allow' | 'deny' | undefined;
  /** The decision's or outcome's code: an `E_...` code, a guest error tag, or "ok". */
  code?: string | undefined;
  /** The id of the capability token used (never the token). */
  tokenId?: string | undefined;
  /** `hashRequest(request)`. */
  requestHash?: Sha256Hex | undefined;
  /** `hashRequest(response)`. Never the hash of a secret's value alone: a short secret's hash can be guessed. */
  responseHash?: Sha256Hex | undefined;
  /** Why: decisions say which rule, outcomes say what happened. At most 1024 characters. */
  reason?: string | undefined;
  detail?: AuditDetail | undefined;
}

/** One record as it stands in the log. Field names equal AuditEntry's, plus the log's own. */
export interface AuditRecord {
  v: typeof RECORD_VERSION;
  seq: number;
  /** ISO 8601 UTC with milliseconds. */
  time: string;
  kind: string;
  /** Only in record 0: the log's origin. */
  origin?: string;
  runId?: string;
  tool?: string;
  toolDigest?: string;
  op?: string;
  decision?: 'allow' | 'deny';
  code?: string;
  tokenId?: string;
  requestHash?: string;
  responseHash?: string;
  reason?: string;
  detail?: AuditDetail;
  prev: string;
  hash: string;
}

export const MAX_REASON_CHARS = 1024;
export const MAX_DETAIL_BYTES = 4096;
/** No valid record line is longer; readers treat anything longer as damage. */
export const MAX_LINE_BYTES = 16384;

const KIND_RE = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$/;
const DIGEST_RE = /^[A-Za-z0-9][A-Za-z0-9:._+-]{0,159}$/;
// Short on purpose: a token id fits, a whole signed token does not.
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const CODE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Log origins: a fixed prefix and 128 random bits. */
export const ORIGIN_RE = /^authority-audit\/[0-9a-f]{32}$/;

const ENTRY_FIELDS: ReadonlySet<string> = new Set([
  'kind',
  'runId',
  'tool',
  'toolDigest',
  'op',
  'decision',
  'code',
  'tokenId',
  'requestHash',
  'responseHash',
  'reason',
  'detail',
]);
const RECORD_FIELDS: ReadonlySet<string> = new Set([...ENTRY_FIELDS, 'v', 'seq', 'time', 'origin', 'prev', 'hash']);

const STRING_RULES: ReadonlyMap<string, readonly [re: RegExp, what: string]> = new Map<string, readonly [RegExp, string]>([
  ['runId', [NAME_RE, 'a run id (1-128 of A-Z a-z 0-9 . _ : @ / + -)']],
  ['tool', [NAME_RE, 'a tool name (1-128 of A-Z a-z 0-9 . _ : @ / + -)']],
  ['op', [NAME_RE, 'an operation name (1-128 of A-Z a-z 0-9 . _ : @ / + -)']],
  ['toolDigest', [DIGEST_RE, 'a component digest such as "sha256:<hex>"']],
  ['code', [CODE_RE, 'a code such as "E_POLICY_DENY" or "ok" (at most 64 characters)']],
  ['tokenId', [ID_RE, 'a token id (at most 64 of A-Z a-z 0-9 . _ : -), never a whole token']],
]);

/** Why a value is not a valid record field, or null when it is. */
function fieldProblem(field: string, value: unknown): string | null {
  switch (field) {
    case 'kind':
      return typeof value === 'string' && value.length <= 64 && KIND_RE.test(value) ? null : 'must be a dotted lowercase name such as "call.intent"';
    case 'decision':
      return value === 'allow' || value === 'deny' ? null : 'must be "allow" or "deny"';
    case 'requestHash':
    case 'responseHash':
      return isSha256Hex(value) ? null : 'must be a lowercase hex SHA-256 (use hashRequest())';
    case 'reason':
      return typeof value === 'string' && value.length <= MAX_REASON_CHARS ? null : `must be a string of at most ${MAX_REASON_CHARS} characters`;
    case 'detail':
      return detailProblem(value);
    default: {
      const rule = STRING_RULES.get(field);
      if (rule === undefined) return 'is not a field of an audit entry';
      return typeof value === 'string' && rule[0].test(value) ? null : `must be ${rule[1]}`;
    }
  }
}

function detailProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be a plain object';
  const check = (v: unknown, depth: number): string | null => {
    if (depth > 4) return 'must nest at most 4 levels';
    if (typeof v === 'number') return Number.isSafeInteger(v) ? null : 'may hold only safe integers as numbers (write other numbers as strings)';
    if (typeof v === 'string' || typeof v === 'boolean' || v === null) return null;
    if (Array.isArray(v)) {
      for (const item of v) {
        const p = check(item, depth + 1);
        if (p !== null) return p;
      }
      return null;
    }
    if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      for (const item of Object.values(v as Record<string, unknown>)) {
        if (item === undefined) return 'may not hold undefined';
        const p = check(item, depth + 1);
        if (p !== null) return p;
      }
      return null;
    }
    return 'may hold only JSON values';
  };
  const p = check(value, 0);
  if (p !== null) return p;
  let text: string;
  try {
    text = canonicalJson(value);
  } catch (e) {
    return (e as Error).message;
  }
  if (Buffer.byteLength(text) > MAX_DETAIL_BYTES) return `must be at most ${MAX_DETAIL_BYTES} bytes as canonical JSON`;
  checkedDetail.set(value, text);
  return null;
}

/**
 * The canonical text of each detail object `entryFields` checked, so that
 * `buildRecord`, which runs right after on the same object, encodes it once.
 */
const checkedDetail = new WeakMap<object, string>();

function invalid(field: string, message: string): AuthorityError {
  return new AuthorityError(ErrorCode.INVALID_ARGUMENT, `audit entry: \`${field}\` ${message}`, { data: { field } });
}

/**
 * Check an entry and return the record fields it contributes (undefined ones
 * dropped). Unknown fields are refused: the log takes nothing it was not meant to.
 */
export function entryFields(entry: AuditEntry): Record<string, unknown> {
  if (typeof entry !== 'object' || entry === null) throw invalid('(entry)', 'must be an object');
  const out: Record<string, unknown> = {};
  const given = entry as unknown as Record<string, unknown>;
  for (const field of Object.keys(given)) {
    const value = given[field];
    if (!ENTRY_FIELDS.has(field)) throw invalid(field, 'is not a field of an audit entry');
    if (value === undefined) continue;
    const p = fieldProblem(field, value);
    if (p !== null) throw invalid(field, p);
    out[field] = value;
  }
  if (out['kind'] === undefined) throw invalid('kind', 'is required');
  if (out['kind'] === GENESIS_KIND || String(out['kind']).startsWith('log.')) {
    throw invalid('kind', 'may not be "genesis" or "log.*": those are the log\'s own records');
  }
  return out;
}

export interface BuiltRecord {
  /** The line without its newline: the Merkle leaf's data (as UTF-8). */
  text: string;
  /** UTF-8 bytes of the line on disk, newline included. */
  bytes: number;
  hash: string;
}

/** Top-level record members in canonical (UTF-16 code unit) order, split around `hash`. */
const BEFORE_HASH = ['code', 'decision', 'detail'] as const;
const AFTER_HASH = ['kind', 'op', 'origin', 'prev', 'reason', 'requestHash', 'responseHash', 'runId', 'seq', 'time', 'tokenId', 'tool', 'toolDigest', 'v'] as const;
// The writer's serializer relies on this order; the verifier sorts for itself, so a slip here could not pass unnoticed.
if ([...BEFORE_HASH, 'hash', ...AFTER_HASH].join() !== [...BEFORE_HASH, 'hash', ...AFTER_HASH].sort().join() || [...RECORD_FIELDS].length !== BEFORE_HASH.length + AFTER_HASH.length + 1) {
  throw new Error('audit record member order is not canonical');
}

/**
 * One member of a record in canonical form. Free text and detail may hold
 * anything: the canonicalizer refuses what has no exact form. Every other
 * string matched an ASCII pattern already (entry fields when appended; the
 * log's own kind, time, prev and origin by construction) that admits no
 * character JSON escapes, so its canonical form is the string in quotes.
 */
function member(key: string, value: unknown): string {
  if (typeof value === 'number') return `"${key}":${String(value)}`;
  if (key === 'detail') {
    // Taken once: an object's contents could change before a later record uses it again.
    const checked = checkedDetail.get(value as object);
    if (checked !== undefined) checkedDetail.delete(value as object);
    return `"detail":${checked ?? canonicalJson(value)}`;
  }
  if (key === 'reason') return `"reason":${canonicalJson(value)}`;
  return `"${key}":"${value as string}"`;
}

/** A record member's value: the log's own fields, else the entry's. */
function recordValue(key: string, fields: Record<string, unknown>, seq: number, time: string, prev: string, origin: string | undefined): unknown {
  switch (key) {
    case 'v':
      return RECORD_VERSION;
    case 'seq':
      return seq;
    case 'time':
      return time;
    case 'prev':
      return prev;
    case 'origin':
      return origin;
    default:
      return fields[key];
  }
}

/**
 * Assemble, hash and serialize one record. `fields` come from `entryFields()`.
 * Writes the canonical form directly from the fixed member order (the hot
 * path); `parseRecordLine` checks lines with the generic canonicalizer.
 */
export function buildRecord(fields: Record<string, unknown>, seq: number, time: string, prev: string, origin?: string): BuiltRecord {
  let before = '';
  for (const key of BEFORE_HASH) {
    const v = recordValue(key, fields, seq, time, prev, origin);
    if (v !== undefined) before += (before.length === 0 ? '' : ',') + member(key, v);
  }
  let after = '';
  for (const key of AFTER_HASH) {
    const v = recordValue(key, fields, seq, time, prev, origin);
    if (v !== undefined) after += (after.length === 0 ? '' : ',') + member(key, v);
  }
  const hash = sha256Hex(`{${before}${before.length === 0 ? '' : ','}${after}}`);
  const text = `{${before}${before.length === 0 ? '' : ','}"hash":"${hash}",${after}}`;
  const bytes = Buffer.byteLength(text, 'utf8') + 1;
  if (bytes > MAX_LINE_BYTES) throw invalid('(entry)', `makes a record of ${bytes} bytes, over the ${MAX_LINE_BYTES} limit`);
  return { text, bytes, hash };
}

/** What can be wrong with one line on its own. */
export type LineProblemCode = 'malformed' | 'non-canonical' | 'schema' | 'record-hash';

export type ParsedLine = { ok: true; record: AuditRecord } | { ok: false; problem: LineProblemCode; message: string };

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Check one line (without its newline) on its own: UTF-8, JSON, exact canonical
 * form, known fields with valid values, and its own hash. Chain order (seq,
 * prev) is the caller's to check.
 */
export function parseRecordLine(bytes: Uint8Array): ParsedLine {
  if (bytes.length > MAX_LINE_BYTES) return { ok: false, problem: 'malformed', message: `line is ${bytes.length} bytes, longer than any record` };
  let text: string;
  let value: unknown;
  try {
    text = decoder.decode(bytes);
    value = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'malformed', message: 'line is not JSON text' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, problem: 'malformed', message: 'line is not a JSON object' };
  let canonical: { full: string; without: string };
  try {
    canonical = canonicalJsonWithout(value as Record<string, unknown>, 'hash');
  } catch (e) {
    return { ok: false, problem: 'non-canonical', message: (e as Error).message };
  }
  if (canonical.full !== text) return { ok: false, problem: 'non-canonical', message: 'line is not in canonical JSON form (bytes were added, removed or reordered)' };
  const shape = recordShapeProblem(value as Record<string, unknown>);
  if (shape !== null) return { ok: false, problem: 'schema', message: shape };
  if (sha256Hex(canonical.without) !== (value as Record<string, unknown>)['hash']) return { ok: false, problem: 'record-hash', message: 'record hash does not match its content (the record was changed)' };
  return { ok: true, record: value as AuditRecord };
}

function recordShapeProblem(r: Record<string, unknown>): string | null {
  for (const key of Object.keys(r)) if (!RECORD_FIELDS.has(key)) return `unknown field "${key}"`;
  if (r['v'] !== RECORD_VERSION) return `unknown record version ${JSON.stringify(r['v'])}`;
  if (!Number.isSafeInteger(r['seq']) || (r['seq'] as number) < 0) return '`seq` is not a non-negative integer';
  if (typeof r['time'] !== 'string' || !TIME_RE.test(r['time'])) return '`time` is not an ISO 8601 UTC time with milliseconds';
  if (!isSha256Hex(r['prev'])) return '`prev` is not a hex SHA-256';
  if (!isSha256Hex(r['hash'])) return '`hash` is not a hex SHA-256';
  if (typeof r['kind'] !== 'string') return '`kind` is missing';
  if (r['kind'] === GENESIS_KIND) {
    if (typeof r['origin'] !== 'string' || !ORIGIN_RE.test(r['origin'])) return 'genesis record without a valid `origin`';
  } else if (r['origin'] !== undefined) {
    return '`origin` outside the genesis record';
  }
  for (const field of ENTRY_FIELDS) {
    const value = r[field];
    if (value === undefined) continue;
    if (field === 'kind' && value === GENESIS_KIND) continue;
    const p = fieldProblem(field, value);
    if (p !== null) return `\`${field}\` ${p}`;
  }
  return null;
}
