/**
 * Reading records for people: `show`, `tail` and `tail --follow`. Lenient:
 * a line that is not a valid record is passed on with what is wrong with it,
 * never skipped in silence. (`verifyAudit` is the strict reader.)
 * @module
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { readLines, readLinesBackward } from './lines.ts';
import { auditPaths, type AuditLocation } from './paths.ts';
import { MAX_LINE_BYTES, parseRecordLine, type AuditRecord } from './record.ts';

export interface AuditRecordFilter {
  runId?: string | undefined;
  tool?: string | undefined;
  decision?: 'allow' | 'deny' | undefined;
  /** Kinds to keep: exact names, or a prefix ending in `*` ("call.*"). */
  kinds?: readonly string[] | undefined;
}

/** One line of the log as read: a valid record, or the reason it is not one. */
export interface AuditLine {
  /** 1-based line number, when read from the start (null when read backward). */
  line: number | null;
  offset: number;
  /** Byte offset just past the line's newline. */
  end: number;
  record: AuditRecord | null;
  problem?: string | undefined;
}

/** Whether a record passes a filter (an unreadable line passes only an empty filter). */
export function matchesFilter(entry: AuditLine, filter: AuditRecordFilter): boolean {
  const r = entry.record;
  const empty = filter.runId === undefined && filter.tool === undefined && filter.decision === undefined && (filter.kinds?.length ?? 0) === 0;
  if (r === null) return empty;
  if (filter.runId !== undefined && r.runId !== filter.runId) return false;
  if (filter.tool !== undefined && r.tool !== filter.tool) return false;
  if (filter.decision !== undefined && r.decision !== filter.decision) return false;
  if (filter.kinds !== undefined && filter.kinds.length > 0) {
    const ok = filter.kinds.some((k) => (k.endsWith('*') ? r.kind.startsWith(k.slice(0, -1)) : r.kind === k));
    if (!ok) return false;
  }
  return true;
}

function view(bytes: Buffer, offset: number, length: number, line: number | null, complete = true): AuditLine {
  const end = offset + length + (complete ? 1 : 0);
  if (!complete) return { line, offset, end, record: null, problem: `unfinished last line (${length} bytes without a newline)` };
  const parsed = parseRecordLine(bytes);
  return parsed.ok ? { line, offset, end, record: parsed.record } : { line, offset, end, record: null, problem: parsed.message };
}

/**
 * Records in log order, from seq `fromSeq` (default 0), filtered.
 *
 * @example
 * ```ts
 * for await (const { record } of readAuditRecords({ dir: '.authority' }, { filter: { decision: 'deny' } })) console.log(record?.reason);
 * ```
 */
export async function* readAuditRecords(
  loc: AuditLocation,
  options: { fromSeq?: number | undefined; filter?: AuditRecordFilter | undefined } = {},
): AsyncGenerator<AuditLine> {
  const { logFile } = auditPaths(loc);
  const filter = options.filter ?? {};
  let n = 0;
  for await (const l of readLines(logFile, 0, undefined, MAX_LINE_BYTES)) {
    n += 1;
    const v = view(l.bytes, l.offset, l.length, n, l.complete);
    if (options.fromSeq !== undefined && v.record !== null && v.record.seq < options.fromSeq) continue;
    if (matchesFilter(v, filter)) yield v;
  }
}

/** The last `count` records that pass the filter, oldest first, reading from the end of the log. */
export async function tailAuditRecords(loc: AuditLocation, count: number, filter: AuditRecordFilter = {}): Promise<AuditLine[]> {
  const { logFile } = auditPaths(loc);
  const out: AuditLine[] = [];
  if (count <= 0) return out;
  for await (const { bytes, offset } of readLinesBackward(logFile)) {
    const v = view(bytes, offset, bytes.length, null);
    if (!matchesFilter(v, filter)) continue;
    out.push(v);
    if (out.length >= count) break;
  }
  return out.reverse();
}

/**
 * Records appended after byte `fromOffset` (default: the current end), as they
 * become whole lines, until `signal` aborts. Polls every `pollMs`.
 */
export async function* followAuditRecords(
  loc: AuditLocation,
  options: { signal: AbortSignal; filter?: AuditRecordFilter | undefined; fromOffset?: number | undefined; pollMs?: number | undefined },
): AsyncGenerator<AuditLine> {
  const { logFile } = auditPaths(loc);
  const filter = options.filter ?? {};
  let pos = options.fromOffset ?? (await fs.promises.stat(logFile)).size;
  while (!options.signal.aborted) {
    const size = (await fs.promises.stat(logFile)).size;
    if (size < pos) {
      yield { line: null, offset: size, end: size, record: null, problem: `the log shrank from ${pos} to ${size} bytes (a torn tail cut at open, or tampering)` };
      pos = size;
    }
    if (size > pos) {
      for await (const l of readLines(logFile, pos, size, MAX_LINE_BYTES)) {
        if (!l.complete) break; // not whole yet: read it again next time
        pos = l.offset + l.length + 1;
        const v = view(l.bytes, l.offset, l.length, null);
        if (matchesFilter(v, filter)) yield v;
      }
    }
    try {
      await sleep(options.pollMs ?? 250, undefined, { signal: options.signal });
    } catch {
      return;
    }
  }
}
