/**
 * An index over the audit log for the console: a few typed columns per
 * record (byte offset, time, kind, tool, op, code, decision, run), the runs,
 * and per-tool counters. Built once, then extended from the last indexed
 * byte on each refresh, so a page never rereads the log: it scans columns and
 * reads only the lines it shows, each by its offset.
 *
 * Lenient like `authority audit show`: a line that is not JSON is indexed as
 * kind "invalid" and shown, never skipped. Strict checking is `verifyAudit`.
 * @module
 */
import fs from 'node:fs';
import { readLines } from '../audit/lines.ts';
import { MAX_LINE_BYTES, type AuditRecord } from '../audit/record.ts';

/** Strings seen in a column, numbered from 1 (0 = absent). */
class Interner {
  readonly #ids = new Map<string, number>();
  readonly names: string[] = [''];
  id(s: string | undefined): number {
    if (s === undefined) return 0;
    let id = this.#ids.get(s);
    if (id === undefined) {
      id = this.names.length;
      this.names.push(s);
      this.#ids.set(s, id);
    }
    return id;
  }
  find(s: string): number {
    return this.#ids.get(s) ?? -1;
  }
}

/** Latency buckets in ms: 0, then powers of two up to ~65 s. Percentiles are read off the bucket edges. */
const EDGES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, Infinity];

export class Histogram {
  readonly counts = new Array<number>(EDGES.length).fill(0);
  total = 0;
  sum = 0;
  add(ms: number): void {
    let i = 0;
    while (ms > (EDGES[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.total++;
    this.sum += ms;
  }
  /** The upper edge of the bucket holding quantile `q` (an upper bound on it). */
  quantile(q: number): number | null {
    if (this.total === 0) return null;
    const want = Math.ceil(q * this.total);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i] as number;
      if (seen >= want) return EDGES[i] === Infinity ? (EDGES[i - 1] as number) : (EDGES[i] as number);
    }
    return null;
  }
  toJSON(): { count: number; meanMs: number | null; p50Ms: number | null; p95Ms: number | null; buckets: { leMs: number | null; count: number }[] } {
    return {
      count: this.total,
      meanMs: this.total === 0 ? null : Math.round((this.sum / this.total) * 10) / 10,
      p50Ms: this.quantile(0.5),
      p95Ms: this.quantile(0.95),
      buckets: this.counts.map((count, i) => ({ leMs: EDGES[i] === Infinity ? null : (EDGES[i] as number), count })),
    };
  }
}

export interface RunEntry {
  id: string;
  tool: string | null;
  startSeq: number;
  startMs: number;
  endMs: number | null;
  /** invoke.end's code, or invoke.start's when admission refused; null while running. */
  outcome: string | null;
  /** Host calls (intent or denial records). */
  calls: number;
  denials: number;
  denialCodes: Map<string, number>;
  /** Code ids of every record of the run, for the code filter. */
  codes: Set<number>;
  /** Seqs of the run's records, in log order. */
  seqs: number[];
  /** fs.write / fs.remove / fs.mkdir outcomes that carry a pre-image. */
  reversible: number;
  /** undo.* records naming this run. */
  undone: number;
}

export interface ToolSummary {
  tool: string;
  invocations: number;
  calls: number;
  denials: number;
  denialsByCode: Record<string, number>;
  callLatency: ReturnType<Histogram['toJSON']>;
  runLatency: ReturnType<Histogram['toJSON']>;
}

interface ToolStats {
  invocations: number;
  calls: number;
  denials: number;
  denialsByCode: Map<string, number>;
  callLatency: Histogram;
  runLatency: Histogram;
}

export interface IndexFilter {
  tool?: string | undefined;
  code?: string | undefined;
  runId?: string | undefined;
  /** Epoch ms, inclusive. */
  fromMs?: number | undefined;
  /** Epoch ms, exclusive. */
  toMs?: number | undefined;
}

const DECISIONS = ['', 'allow', 'deny'] as const;
const UNDO_KINDS: ReadonlySet<string> = new Set(['undo.start', 'undo.restore', 'undo.conflict', 'undo.end']);

function grow<T extends Float64Array | Uint32Array | Uint16Array | Uint8Array | Int32Array>(a: T, need: number): T {
  if (need <= a.length) return a;
  const next = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  next.set(a);
  return next;
}

/**
 * The console's index of one log file.
 *
 * @example
 * ```ts
 * const index = new LogIndex('.authority/audit/log.jsonl');
 * await index.refresh();
 * index.runsPage({ tool: 'write-file' }, undefined, 50);
 * ```
 */
export class LogIndex {
  readonly file: string;
  /** Records indexed (seq of the next one). */
  size = 0;
  /** Bytes indexed: everything before this offset is whole lines. */
  bytes = 0;
  #off = new Float64Array(1024);
  #len = new Uint32Array(1024);
  #time = new Float64Array(1024);
  #kind = new Uint16Array(1024);
  #tool = new Uint16Array(1024);
  #op = new Uint16Array(1024);
  #code = new Uint16Array(1024);
  #decision = new Uint8Array(1024);
  #run = new Int32Array(1024);
  readonly #kinds = new Interner();
  readonly #tools = new Interner();
  readonly #ops = new Interner();
  readonly #codes = new Interner();
  readonly runs: RunEntry[] = [];
  readonly #runIds = new Map<string, number>();
  readonly #toolStats = new Map<string, ToolStats>();
  /** Per run: time of its open intent, to time the call when its outcome comes. */
  readonly #openIntent = new Map<number, number>();
  #refreshing: Promise<number> | null = null;

  constructor(file: string) {
    this.file = file;
  }

  /** Index lines appended since the last refresh; resolves to how many were added. Concurrent callers share one pass. */
  refresh(): Promise<number> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<number> {
    let size: number;
    try {
      size = (await fs.promises.stat(this.file)).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
    if (size < this.bytes) throw new Error(`${this.file} shrank from ${this.bytes} to ${size} bytes since it was indexed; restart the console`);
    if (size === this.bytes) return 0;
    const before = this.size;
    for await (const l of readLines(this.file, this.bytes, size, MAX_LINE_BYTES)) {
      if (!l.complete) break; // still being written: next time
      this.#add(l.bytes, l.offset, l.length);
      this.bytes = l.offset + l.length + 1;
    }
    return this.size - before;
  }

  #add(bytes: Buffer, offset: number, length: number): void {
    const i = this.size;
    const need = i + 1;
    if (need > this.#off.length) {
      this.#off = grow(this.#off, need);
      this.#len = grow(this.#len, need);
      this.#time = grow(this.#time, need);
      this.#kind = grow(this.#kind, need);
      this.#tool = grow(this.#tool, need);
      this.#op = grow(this.#op, need);
      this.#code = grow(this.#code, need);
      this.#decision = grow(this.#decision, need);
      this.#run = grow(this.#run, need);
    }
    this.#off[i] = offset;
    this.#len[i] = length;
    let r: Partial<AuditRecord> | null = null;
    if (length <= MAX_LINE_BYTES) {
      try {
        const parsed: unknown = JSON.parse(bytes.toString('utf8'));
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) r = parsed as Partial<AuditRecord>;
      } catch {
        r = null;
      }
    }
    const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
    const kind = str(r?.kind) ?? 'invalid';
    const time = Date.parse(str(r?.time) ?? '');
    this.#time[i] = Number.isFinite(time) ? time : NaN;
    this.#kind[i] = this.#kinds.id(kind);
    const tool = str(r?.tool);
    this.#tool[i] = this.#tools.id(tool);
    this.#op[i] = this.#ops.id(str(r?.op));
    const code = str(r?.code);
    this.#code[i] = this.#codes.id(code);
    this.#decision[i] = r?.decision === 'allow' ? 1 : r?.decision === 'deny' ? 2 : 0;
    const runId = str(r?.runId);
    let runIdx = -1;
    if (runId !== undefined) {
      runIdx = this.#runIds.get(runId) ?? -1;
      // An undo names the run it undid; it never starts a run of its own.
      if (runIdx === -1 && !UNDO_KINDS.has(kind)) {
        runIdx = this.runs.length;
        this.#runIds.set(runId, runIdx);
        this.runs.push({
          id: runId,
          tool: tool ?? null,
          startSeq: i,
          startMs: this.#time[i] as number,
          endMs: null,
          outcome: null,
          calls: 0,
          denials: 0,
          denialCodes: new Map(),
          codes: new Set(),
          seqs: [],
          reversible: 0,
          undone: 0,
        });
      }
    }
    this.#run[i] = runIdx;
    this.size = i + 1;

    const stats = tool === undefined ? undefined : this.#statsFor(tool);
    const run = runIdx === -1 ? undefined : this.runs[runIdx];
    if (run !== undefined) {
      run.seqs.push(i);
      if (run.tool === null && tool !== undefined) run.tool = tool;
      if (code !== undefined) run.codes.add(this.#code[i] as number);
    }
    switch (kind) {
      case 'invoke.start':
        if (stats !== undefined) stats.invocations++;
        if (run !== undefined && r?.decision === 'deny') {
          run.outcome = code ?? 'deny';
          run.endMs = this.#time[i] as number;
        }
        break;
      case 'invoke.end':
        if (run !== undefined) {
          run.outcome = code ?? 'unknown';
          run.endMs = this.#time[i] as number;
          stats?.runLatency.add(Math.max(0, (run.endMs ?? 0) - run.startMs));
        }
        break;
      case 'call.intent':
        if (run !== undefined) run.calls++;
        if (stats !== undefined) stats.calls++;
        if (runIdx !== -1) this.#openIntent.set(runIdx, this.#time[i] as number);
        break;
      case 'call.outcome': {
        const opened = this.#openIntent.get(runIdx);
        if (opened !== undefined) {
          this.#openIntent.delete(runIdx);
          stats?.callLatency.add(Math.max(0, (this.#time[i] as number) - opened));
        }
        const detail = r?.detail as Record<string, unknown> | undefined;
        if (run !== undefined && detail !== undefined && typeof detail['preImage'] === 'string') run.reversible++;
        break;
      }
      case 'call.denied':
        if (run !== undefined) {
          run.calls++;
          run.denials++;
          run.denialCodes.set(code ?? 'deny', (run.denialCodes.get(code ?? 'deny') ?? 0) + 1);
        }
        if (stats !== undefined) {
          stats.calls++;
          stats.denials++;
          stats.denialsByCode.set(code ?? 'deny', (stats.denialsByCode.get(code ?? 'deny') ?? 0) + 1);
        }
        break;
      case 'undo.end':
        if (run !== undefined) run.undone++;
        break;
    }
  }

  #statsFor(tool: string): ToolStats {
    let s = this.#toolStats.get(tool);
    if (s === undefined) {
      s = { invocations: 0, calls: 0, denials: 0, denialsByCode: new Map(), callLatency: new Histogram(), runLatency: new Histogram() };
      this.#toolStats.set(tool, s);
    }
    return s;
  }

  /** Names seen so far, for the filter menus. */
  facets(): { tools: string[]; codes: string[]; kinds: string[] } {
    const sorted = (i: Interner): string[] => i.names.slice(1).sort();
    return { tools: sorted(this.#tools), codes: sorted(this.#codes), kinds: sorted(this.#kinds) };
  }

  run(id: string): RunEntry | undefined {
    const i = this.#runIds.get(id);
    return i === undefined ? undefined : this.runs[i];
  }

  /**
   * Runs newest first, `limit` of them, starting below run index `before`
   * (the cursor the previous page returned). A filter's code matches any
   * record of the run; its time range matches the run's start.
   */
  runsPage(filter: IndexFilter, before: number | undefined, limit: number): { runs: RunEntry[]; next: number | null; total: number } {
    const toolId = filter.tool === undefined ? 0 : this.#tools.find(filter.tool);
    const codeId = filter.code === undefined ? 0 : this.#codes.find(filter.code);
    const out: RunEntry[] = [];
    if (toolId === -1 || codeId === -1) return { runs: out, next: null, total: this.runs.length };
    let i = Math.min(before ?? this.runs.length, this.runs.length) - 1;
    for (; i >= 0 && out.length < limit; i--) {
      const run = this.runs[i] as RunEntry;
      if (filter.tool !== undefined && run.tool !== filter.tool) continue;
      if (codeId > 0 && !run.codes.has(codeId)) continue;
      if (filter.fromMs !== undefined && !(run.startMs >= filter.fromMs)) continue;
      if (filter.toMs !== undefined && !(run.startMs < filter.toMs)) continue;
      out.push(run);
    }
    return { runs: out, next: i >= 0 ? i + 1 : null, total: this.runs.length };
  }

  /** Seqs of records newest first below `before`, filtered by the columns alone (no line is read). */
  recordsPage(filter: IndexFilter, before: number | undefined, limit: number): { seqs: number[]; next: number | null } {
    const toolId = filter.tool === undefined ? 0 : this.#tools.find(filter.tool);
    const codeId = filter.code === undefined ? 0 : this.#codes.find(filter.code);
    const seqs: number[] = [];
    if (toolId === -1 || codeId === -1) return { seqs, next: null };
    const runIdx = filter.runId === undefined ? -2 : (this.#runIds.get(filter.runId) ?? -3);
    if (runIdx === -3) return { seqs, next: null };
    let i = Math.min(before ?? this.size, this.size) - 1;
    const time = this.#time;
    for (; i >= 0 && seqs.length < limit; i--) {
      if (toolId > 0 && this.#tool[i] !== toolId) continue;
      if (codeId > 0 && this.#code[i] !== codeId) continue;
      if (runIdx >= 0 && this.#run[i] !== runIdx) continue;
      if (filter.fromMs !== undefined && !((time[i] as number) >= filter.fromMs)) continue;
      if (filter.toMs !== undefined && !((time[i] as number) < filter.toMs)) continue;
      seqs.push(i);
    }
    return { seqs, next: i >= 0 ? i + 1 : null };
  }

  /** The indexed facts of record `seq` (no read). */
  brief(seq: number): { seq: number; time: number; kind: string; tool: string | null; op: string | null; code: string | null; decision: string | null; runId: string | null } {
    const name = (i: Interner, id: number): string | null => (id === 0 ? null : (i.names[id] ?? null));
    const run = this.#run[seq] as number;
    return {
      seq,
      time: this.#time[seq] as number,
      kind: this.#kinds.names[this.#kind[seq] as number] as string,
      tool: name(this.#tools, this.#tool[seq] as number),
      op: name(this.#ops, this.#op[seq] as number),
      code: name(this.#codes, this.#code[seq] as number),
      decision: DECISIONS[this.#decision[seq] as number] || null,
      runId: run === -1 ? null : (this.runs[run] as RunEntry).id,
    };
  }

  /** Read the lines of these records (each by its offset; one open file per call). */
  async read(seqs: readonly number[]): Promise<{ seq: number; line: string }[]> {
    if (seqs.length === 0) return [];
    const fh = await fs.promises.open(this.file, 'r');
    try {
      const out: { seq: number; line: string }[] = [];
      for (const seq of seqs) {
        if (!(seq >= 0 && seq < this.size)) continue;
        const len = Math.min(this.#len[seq] as number, MAX_LINE_BYTES + 1);
        const buf = Buffer.allocUnsafe(len);
        const { bytesRead } = await fh.read(buf, 0, len, this.#off[seq] as number);
        out.push({ seq, line: buf.subarray(0, bytesRead).toString('utf8') });
      }
      return out;
    } finally {
      await fh.close();
    }
  }

  toolSummaries(): ToolSummary[] {
    return [...this.#toolStats.entries()]
      .map(([tool, s]) => ({
        tool,
        invocations: s.invocations,
        calls: s.calls,
        denials: s.denials,
        denialsByCode: Object.fromEntries([...s.denialsByCode.entries()].sort((a, b) => b[1] - a[1])),
        callLatency: s.callLatency.toJSON(),
        runLatency: s.runLatency.toJSON(),
      }))
      .sort((a, b) => b.calls - a.calls || a.tool.localeCompare(b.tool));
  }
}
