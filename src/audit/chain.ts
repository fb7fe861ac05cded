/**
 * Walking the log in order: each line must be a valid record on its own
 * (record.ts) and the next link of the chain (seq + 1, prev = hash before).
 * Feeds the Merkle compact range as it goes. Shared by the writer's recovery
 * and by the verifier.
 * @module
 */
import { CompactRange, leafHash } from './merkle.ts';
import { GENESIS_KIND, GENESIS_PREV, parseRecordLine, type AuditRecord, type LineProblemCode } from './record.ts';

/** `prev` after a line that could not be read: the next record's link cannot be checked. */
const UNKNOWN = '?';

export type ChainProblemCode = LineProblemCode | 'torn-tail' | 'seq' | 'chain' | 'genesis';

export type ChainStep = { ok: true; record: AuditRecord } | { ok: false; problem: ChainProblemCode; message: string; record?: AuditRecord };

/** Where a walk stands: the next seq, the last hash, the byte offset after the last record and the tree so far. */
export class ChainCursor {
  seq: number;
  prev: string;
  offset: number;
  tree: CompactRange;
  origin: string | null;

  constructor(init?: { seq: number; prev: string; offset: number; tree: CompactRange; origin: string }) {
    this.seq = init?.seq ?? 0;
    this.prev = init?.prev ?? GENESIS_PREV;
    this.offset = init?.offset ?? 0;
    this.tree = init?.tree ?? new CompactRange();
    this.origin = init?.origin ?? null;
  }

  /**
   * Check `bytes` (one line without its newline, starting at `offset`,
   * `complete` when the newline was there) as the next record. On success the
   * cursor moves past it; on failure it stays put.
   */
  step(bytes: Buffer, offset: number, complete: boolean): ChainStep {
    if (!complete) return { ok: false, problem: 'torn-tail', message: `the last line has no newline: ${bytes.length} bytes of an unfinished record` };
    const parsed = parseRecordLine(bytes);
    if (!parsed.ok) return parsed;
    const r = parsed.record;
    if (r.seq !== this.seq) {
      const what = r.seq < this.seq ? 'repeats or goes back' : 'skips ahead: records are missing before it';
      return { ok: false, problem: 'seq', message: `expected seq ${this.seq}, found seq ${r.seq} (the sequence ${what})`, record: r };
    }
    if ((r.seq === 0) !== (r.kind === GENESIS_KIND)) {
      return { ok: false, problem: 'genesis', message: r.seq === 0 ? 'record 0 is not the genesis record' : 'a genesis record after record 0', record: r };
    }
    if (this.prev !== UNKNOWN && r.prev !== this.prev) {
      return { ok: false, problem: 'chain', message: `prev does not match the hash of record ${this.seq - 1} (a record before it was changed, removed or replaced)`, record: r };
    }
    if (r.seq === 0) this.origin = r.origin ?? null;
    this.seq += 1;
    this.prev = r.hash;
    this.offset = offset + bytes.length + 1;
    this.tree.append(leafHash(bytes));
    return { ok: true, record: r };
  }

  /** Continue past a line that is not a readable record, as if it had held the next seq. */
  skipUnreadable(bytes: Buffer, offset: number): void {
    this.seq += 1;
    this.prev = UNKNOWN;
    this.offset = offset + bytes.length + 1;
  }

  /** Continue from a record that broke the chain, to report later problems on their own. */
  resyncAfter(record: AuditRecord, bytes: Buffer, offset: number): void {
    this.seq = record.seq + 1;
    this.prev = record.hash;
    this.offset = offset + bytes.length + 1;
  }
}
