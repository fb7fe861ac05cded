/**
 * The invariants every fuzz run checks, whatever the reference model says:
 * the audit shape of each call, replies the guest can read, replies that
 * agree with the audit record, no secret value where it may not be, no
 * canary content in a reply, budgets within their limits.
 * @module
 */
import type { ObservedRecord, ObservedReply } from './simulate.ts';
import { guestTag } from './simulate.ts';

/** The invariants, as the report lists them. */
export const INVARIANTS = [
  'settles: every invocation and host call settles within its deadline plus a margin; the host process never crashes or hangs',
  'audit-shape: every host call has one record per hop, intents paired with outcomes ((intent outcome)* then at most one denial), in order',
  'audit-chain: the audit log verifies (verifyAudit) after the run',
  'differential: the gate decides every call as the reference model does (allow/deny and the code)',
  'effects: an allowed effect acts on the target the gate decided on (read bytes, stat, list, written bytes, removal)',
  'no-denied-effect: canary files outside the allowed paths never change or show up in a reply; the canary server sees exactly the requests the model allows',
  'reply-shape: every reply is a well-formed WIT result and agrees with its audit record',
  'budgets: usage is never negative and never over its limit',
  'secrets: no secret value in the audit log, the operational logs, an error message, a response or a tool output (revealed values only where secrets.get returned them)',
  'sandbox: hostile guests (canonical-ABI abuse) trap at worst; the runtime keeps serving',
] as const;

/** Group a run's call records into calls: a call starts with an intent or a denial of hop 0. */
export function groupCalls(records: readonly ObservedRecord[]): ObservedRecord[][] {
  const out: ObservedRecord[][] = [];
  for (const r of records) {
    const hop = r.detail?.['hop'];
    const starts = (r.kind === 'call.intent' || r.kind === 'call.denied') && hop === undefined;
    if (starts || out.length === 0) out.push([r]);
    else (out[out.length - 1] as ObservedRecord[]).push(r);
  }
  return out;
}

/** One call's records: (intent outcome)* then at most one denial, hops numbered 0, 1, 2... */
export function auditShape(records: readonly ObservedRecord[], op: string): string | undefined {
  if (records.length === 0) return 'the call left no audit record';
  let i = 0;
  let hop = 0;
  while (i < records.length) {
    const r = records[i] as ObservedRecord;
    const at = (r.detail?.['hop'] as number | undefined) ?? 0;
    if (r.op !== op) return `record ${i} is for ${String(r.op)}, not ${op}`;
    if (at !== hop) return `record ${i} is for hop ${at}, expected hop ${hop}`;
    if (r.kind === 'call.denied') return i === records.length - 1 ? undefined : 'a denial is followed by more records';
    if (r.kind !== 'call.intent') return `record ${i} is ${r.kind}, expected an intent or a denial`;
    const o = records[i + 1];
    if (o === undefined) return 'an intent has no outcome';
    if (o.kind !== 'call.outcome') return `an intent is followed by ${o.kind}, not its outcome`;
    if (((o.detail?.['hop'] as number | undefined) ?? 0) !== hop) return 'an outcome is for another hop than its intent';
    i += 2;
    hop++;
  }
  return undefined;
}

const STRING_TAGS = new Set(['not-found', 'invalid', 'too-large', 'budget-exhausted', 'io', 'timeout']);
const KINDS = new Set(['file', 'directory', 'symlink', 'other']);

/** A reply the guest can read: the op's ok shape, or a valid error variant. */
export function replyShape(op: string, r: ObservedReply): string | undefined {
  if (r.tag === 'err') {
    const e = r.val;
    if (e.tag === 'denied') {
      const d = e.val as { code?: unknown; message?: unknown };
      return typeof d?.code === 'string' && /^E_[A-Z_]+$/.test(d.code) && typeof d.message === 'string' ? undefined : 'a denied error without a code and a message';
    }
    if (e.tag === 'rate-limited') return typeof e.val === 'bigint' && e.val >= 0n ? undefined : 'rate-limited without a retry time';
    return STRING_TAGS.has(e.tag) && typeof e.val === 'string' ? undefined : `an unknown error ${JSON.stringify(e.tag)}`;
  }
  const v = r.val as Record<string, unknown> | undefined;
  switch (op) {
    case 'fs.read':
      return r.val instanceof Uint8Array ? undefined : 'read-file ok without bytes';
    case 'fs.write':
    case 'fs.remove':
    case 'fs.mkdir':
      return r.val === undefined ? undefined : `${op} ok with a value`;
    case 'fs.list':
      return Array.isArray(r.val) && r.val.every((e: { name?: unknown; kind?: unknown }) => typeof e?.name === 'string' && KINDS.has(e.kind as string)) ? undefined : 'list-dir ok with malformed entries';
    case 'fs.stat':
      return v !== undefined && KINDS.has(v['kind'] as string) && typeof v['size'] === 'bigint' && typeof v['modifiedMs'] === 'bigint' ? undefined : 'stat ok with a malformed record';
    case 'http.fetch':
      return v !== undefined && Number.isInteger(v['status']) && (v['status'] as number) >= 0 && (v['status'] as number) <= 0xffff && Array.isArray(v['headers']) && v['body'] instanceof Uint8Array ? undefined : 'fetch ok with a malformed response';
    case 'secrets.get':
      return typeof r.val === 'string' ? undefined : 'secrets.get ok without a string';
  }
  return `unknown op ${op}`;
}

/** The reply agrees with the call's last audit record. */
export function replyMatchesAudit(records: readonly ObservedRecord[], r: ObservedReply): string | undefined {
  const last = records[records.length - 1];
  if (last === undefined) return undefined;
  if (last.kind === 'call.denied') {
    const tag = guestTag(last.code ?? '');
    if (r.tag !== 'err' || r.val.tag !== tag) return `the audit log denies with ${last.code}, the guest read ${r.tag === 'ok' ? 'ok' : r.val.tag}`;
    if (tag === 'denied' && (r.val.val as { code?: string }).code !== last.code) return `the audit log denies with ${last.code}, the guest read ${(r.val.val as { code?: string }).code}`;
    return undefined;
  }
  if (last.kind === 'call.outcome') {
    if (last.code === 'ok') return undefined; // a 3xx whose Location the host refuses ends as invalid after an ok hop
    const got = r.tag === 'ok' ? 'ok' : r.val.tag === 'denied' ? (r.val.val as { code?: string }).code : r.val.tag;
    if (got !== last.code) return `the audit outcome is ${last.code}, the guest read ${got}`;
  }
  return undefined;
}

/** Every spelling of a secret value worth searching for: raw and JSON-escaped. */
export function secretNeedles(secrets: Readonly<Record<string, string>>): Array<{ name: string; needle: Buffer }> {
  const out: Array<{ name: string; needle: Buffer }> = [];
  for (const [name, value] of Object.entries(secrets)) {
    out.push({ name, needle: Buffer.from(value, 'utf8') });
    const escaped = JSON.stringify(value).slice(1, -1);
    if (escaped !== value) out.push({ name, needle: Buffer.from(escaped, 'utf8') });
  }
  return out;
}

/** Names of the secrets whose values occur in `data`. */
export function secretsIn(data: Buffer | string, needles: ReturnType<typeof secretNeedles>): string[] {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return [...new Set(needles.filter((n) => buf.includes(n.needle)).map((n) => n.name))];
}

/** Secret values in a reply: anywhere but the ok value of an allowed secrets.get. */
export function secretsInReply(op: string, r: ObservedReply, needles: ReturnType<typeof secretNeedles>): string[] {
  if (r.tag === 'err') return secretsIn(JSON.stringify(r.val, (_k, v) => (typeof v === 'bigint' ? String(v) : v)), needles);
  if (op === 'secrets.get') return [];
  if (op === 'http.fetch') {
    const v = r.val as { headers: [string, string][]; body: Uint8Array };
    return [...secretsIn(Buffer.from(v.body), needles), ...secretsIn(JSON.stringify(v.headers), needles)];
  }
  return [];
}

/** Canary content in a read result: a denied file was read. */
export function canaryIn(r: ObservedReply, markers: readonly Buffer[]): boolean {
  if (r.tag !== 'ok' || !(r.val instanceof Uint8Array)) return false;
  const b = Buffer.from(r.val);
  return markers.some((m) => b.includes(m));
}

/** Budget usage within [0, limit]. */
export function budgetProblems(usage: Readonly<Record<string, number>>, limits: Readonly<Record<string, number | undefined>>, scope: string): string[] {
  const out: string[] = [];
  for (const [dim, used] of Object.entries(usage)) {
    const limit = limits[dim];
    if (used < 0) out.push(`${scope} budget ${dim} is negative (${used})`);
    if (limit !== undefined && used > limit) out.push(`${scope} budget ${dim} is over its limit (${used} > ${limit})`);
  }
  return out;
}

/** Race a promise with a deadline: a host call or invocation that never settles is a finding. */
export async function settleWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export class HangError extends Error {
  override name = 'HangError';
}
