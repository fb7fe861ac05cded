/**
 * The audit log writer: write-ahead, group-committed, hash-chained records
 * feeding a Merkle tree, with signed checkpoints kept apart from the log.
 *
 * `append()` resolves only once the record's bytes are covered by a completed
 * fdatasync of the log file. Appends made while a sync is in flight queue and
 * are written and synced together next, so concurrent callers share one sync.
 * The first write or sync error stops the log for good: every waiting and
 * every later append fails with E_AUDIT_WRITE.
 * @module
 */
import fs from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { basename, join } from 'node:path';
import { ensurePrivateDir } from '../data-dir.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { sha256Hex } from './canonical-json.ts';
import { ChainCursor } from './chain.ts';
import { checkpointLine, readLatestCheckpoint, signCheckpoint, type Checkpoint } from './checkpoint.ts';
import { nodeAuditIo, syncDir, writeFully, writeFullySync, type AuditIo } from './io.ts';
import { readLines } from './lines.ts';
import { acquireLock, type LogLock } from './lock.ts';
import { leafHash, rootFromFrontier, type CompactRange } from './merkle.ts';
import { auditPaths, checkpointFileFor, type AuditLocation, type AuditPaths } from './paths.ts';
import { buildRecord, entryFields, OPEN_KIND, type AuditEntry, type BuiltRecord } from './record.ts';
import {
  checkAgainst,
  checkpointFiles,
  createLog,
  fsyncFile,
  pendingRepairs,
  quarantineTail,
  readOrigin,
  readState,
  resumeFrom,
} from './recovery.ts';
import { ensurePublicKeyFile, loadOrCreateSigningKey, signerFromKey, type AuditSigner } from './signing.ts';

/**
 * `'fsync'` (default): an append resolves once fdatasync covered its record.
 * `'none'`: an append resolves at once; records are written in order, a
 * batch per turn of the event loop, and never fdatasync'd (`flushed()`
 * waits for the writes). A crash of the process can lose the last records, a
 * crash of the machine more, and the log can then end before its latest
 * checkpoint, which the next open refuses. Only for tests, benchmarks, tmpfs,
 * or an operator who accepts that loss.
 */
export type AuditDurability = 'fsync' | 'none';

const NOOP = (): void => {};
const defaultNow = (): Date => new Date();
/** With durability 'none', how many records may wait for their write before appends wait too. */
const NONE_MAX_QUEUED = 4096;

export interface AuditLogOptions extends AuditLocation {
  /** Ed25519 private key (KeyObject or PKCS#8 PEM). Default: `dataPaths(dir).auditSigningKey`, created 0600 if missing. */
  signingKey?: KeyObject | string | undefined;
  durability?: AuditDurability | undefined;
  /** Checkpoint when this many records are new, or this often while any are (defaults 1000 records, 1000 ms). */
  checkpointEvery?: { records?: number | undefined; ms?: number | undefined } | undefined;
  /**
   * `'resume'` (default): start from the tree state saved at the last clean
   * close when it matches a signed checkpoint, and check only what follows.
   * `'full'`: rehash the whole log.
   */
  openScan?: 'resume' | 'full' | undefined;
  /** The file operations of the write path (tests inject faults and counters here). */
  io?: AuditIo | undefined;
  /** Clock for record and checkpoint times. */
  now?: (() => Date) | undefined;
}

/** What a durable append returns. */
export interface AuditReceipt {
  seq: number;
  /** The record's hash (hex). */
  hash: string;
}

export interface AuditLogStats {
  origin: string;
  /** Records durable in the log (the next seq once nothing is pending). */
  records: number;
  /** Records accepted so far, durable or not. */
  appended: number;
  /** Bytes durable in the log. */
  bytes: number;
  /** fdatasync calls on the log file since open. */
  syncs: number;
  /** Write batches since open, and the largest one. */
  batches: number;
  maxBatch: number;
  /** Checkpoints written since open. */
  checkpoints: number;
  /** Size covered by the latest checkpoint. */
  checkpointSize: number;
  /** Bytes of torn tail cut at open. */
  repairedBytes: number;
  failed: boolean;
  closed: boolean;
}

interface Pending {
  /** The line without its newline. */
  text: string;
  seq: number;
  hash: string;
  end: number;
  resolve: (r: AuditReceipt) => void;
  reject: (e: unknown) => void;
}

/** The tree over a durable prefix of the log. */
interface TreeState {
  size: number;
  offset: number;
  last: string;
  nodes: Buffer[];
}

const STATE_EVERY_MS = 60_000;
/** More unacknowledged bytes than any crash leaves behind (a batch is at most callers x 16 KiB): open refuses to cut that much. */
const MAX_TORN_BYTES = 64 * 1024 * 1024;

/**
 * The audit log. One writer per log (a lock file keeps it so).
 *
 * @example
 * ```ts
 * const log = await AuditLog.open({ dir: '.authority' });
 * const { seq } = await log.append({
 *   kind: 'call.intent', runId, tool: 'fetcher', op: 'http.fetch', decision: 'allow',
 *   code: 'ok', tokenId, requestHash: hashRequest(call), reason: 'rule net.allow[0]',
 * });
 * // only now perform the effect
 * await log.close();
 * ```
 */
export class AuditLog {
  readonly origin: string;
  readonly paths: AuditPaths;
  readonly durability: AuditDurability;
  /** The file this log's checkpoints are appended to. */
  readonly checkpointFile: string;

  #io: AuditIo;
  #fd: number;
  #cpFd: number;
  #cpFileSize: number;
  #lock: LogLock;
  #signer: AuditSigner;
  #now: () => Date;
  /** `#now` in epoch ms; Date.now itself unless a clock was given. */
  #nowMs: () => number;
  #lastMs = -1;
  #lastIso = '';
  #everyRecords: number;

  // Assigned (accepted) state: everything appended, durable or not.
  #nextSeq: number;
  #prevHash: string;
  #tree: CompactRange;
  #assignedEnd: number;

  #queue: Pending[] = [];
  #flushing = false;
  #scheduled = false;
  #idleWaiters: Array<() => void> = [];
  #durable: TreeState;

  #lastCp: Checkpoint | null;
  /** The tree frontier at #lastCp, for the resume state. */
  #cpNodes: Buffer[] | null = null;
  #cpRunning: Promise<void> | null = null;
  #cpAgain = false;
  #lastStateWrite = 0;

  #failure: AuthorityError | null = null;
  #closing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stats = { syncs: 0, batches: 0, maxBatch: 0, checkpoints: 0, repairedBytes: 0 };

  private constructor(init: {
    paths: AuditPaths;
    origin: string;
    durability: AuditDurability;
    io: AuditIo;
    fd: number;
    cpFd: number;
    cpFile: string;
    cpFileSize: number;
    lock: LogLock;
    signer: AuditSigner;
    now: () => Date;
    everyRecords: number;
    cursor: ChainCursor;
    lastCp: Checkpoint | null;
  }) {
    this.paths = init.paths;
    this.origin = init.origin;
    this.durability = init.durability;
    this.#io = init.io;
    this.#fd = init.fd;
    this.#cpFd = init.cpFd;
    this.checkpointFile = init.cpFile;
    this.#cpFileSize = init.cpFileSize;
    this.#lock = init.lock;
    this.#signer = init.signer;
    this.#now = init.now;
    this.#nowMs = init.now === defaultNow ? Date.now : () => init.now().getTime();
    this.#everyRecords = init.everyRecords;
    const c = init.cursor;
    this.#nextSeq = c.seq;
    this.#prevHash = c.prev;
    this.#tree = c.tree.clone();
    this.#assignedEnd = c.offset;
    this.#durable = { size: c.seq, offset: c.offset, last: c.prev, nodes: c.tree.nodes() };
    this.#lastCp = init.lastCp;
  }

  /**
   * Open (or create) the log: take the lock, load the signing key, check the
   * log against its latest checkpoint, cut a torn tail (recording a `repair`
   * record), and checkpoint what no checkpoint covers yet.
   *
   * Fails with E_CONFIG when another writer holds the log, and with
   * E_AUDIT_TAMPERED when the log is shorter than, or differs from, its latest
   * checkpoint (an older copy restored, a cut tail, a rewrite), or is missing
   * while checkpoints exist. It never repairs those: `authority audit verify` explains.
   */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const paths = auditPaths(options);
    const durability = options.durability ?? 'fsync';
    if (durability !== 'fsync' && durability !== 'none') {
      throw new AuthorityError(ErrorCode.CONFIG, `durability must be "fsync" or "none", not ${JSON.stringify(durability)}`, { data: { field: 'durability' } });
    }
    const everyRecords = options.checkpointEvery?.records ?? 1000;
    const everyMs = options.checkpointEvery?.ms ?? 1000;
    if (!Number.isSafeInteger(everyRecords) || everyRecords < 1 || !Number.isSafeInteger(everyMs) || everyMs < 1) {
      throw new AuthorityError(ErrorCode.CONFIG, 'checkpointEvery.records and .ms must be positive integers', { data: { field: 'checkpointEvery' } });
    }
    const io = options.io ?? nodeAuditIo;
    const now = options.now ?? defaultNow;
    ensurePrivateDir(paths.auditDir);
    ensurePrivateDir(paths.checkpointDir);
    const lock = acquireLock(paths.lockFile);
    let fd = -1;
    let cpFd = -1;
    try {
      let signer: AuditSigner;
      if (options.signingKey !== undefined) signer = signerFromKey(options.signingKey);
      else if (paths.signingKeyFile !== undefined) signer = loadOrCreateSigningKey(paths.signingKeyFile);
      else throw new AuthorityError(ErrorCode.CONFIG, 'the audit log needs a signing key: pass `signingKey` or a data folder `dir`', { data: { field: 'signingKey' } });
      ensurePublicKeyFile(paths.publicKeyFile, signer);

      if (!fs.existsSync(paths.logFile)) {
        const orphans = checkpointFiles(paths.checkpointDir).filter((f) => fs.statSync(join(paths.checkpointDir, f)).size > 0);
        if (orphans.length > 0) {
          throw new AuthorityError(
            ErrorCode.AUDIT_TAMPERED,
            `there is no audit log at ${paths.logFile}, but ${paths.checkpointDir} holds checkpoints of a log (${orphans.join(', ')}): ` +
              'the log was removed or moved. Restore it; to start a new log on purpose, move those checkpoints away first.',
            { data: { logFile: paths.logFile, checkpoints: orphans } },
          );
        }
        await createLog(paths, io, now);
      }

      const origin = await readOrigin(paths.logFile);
      const cpFile = checkpointFileFor(paths.checkpointDir, origin);
      const foreign = checkpointFiles(paths.checkpointDir).filter((f) => f !== basename(cpFile));
      if (foreign.length > 0) {
        throw new AuthorityError(
          ErrorCode.AUDIT_TAMPERED,
          `${paths.checkpointDir} holds checkpoints of another log (${foreign.join(', ')}) besides this log (${origin}): ` +
            'the log may have been replaced. One checkpoint folder serves one log; move the others away if that is intended.',
          { data: { checkpointDir: paths.checkpointDir, foreign } },
        );
      }
      const tail = await readLatestCheckpoint(cpFile, signer.publicKey, signer.keyId);
      const latest = tail.latest;
      if (latest !== null && latest.origin !== origin) {
        throw new AuthorityError(ErrorCode.AUDIT_TAMPERED, `${cpFile} holds checkpoints of ${latest.origin}, not of this log (${origin})`, { data: { file: cpFile } });
      }
      let cpFileSize = tail.size;
      if (tail.tornBytes > 0) {
        // A checkpoint append cut short by a crash: it was never acknowledged to anyone.
        cpFileSize -= tail.tornBytes;
        await fs.promises.truncate(cpFile, cpFileSize);
        await fsyncFile(cpFile);
      }

      const saved = await readState(paths, signer, origin);
      if (latest === null && saved !== null) {
        throw new AuthorityError(
          ErrorCode.AUDIT_TAMPERED,
          `${cpFile} is missing or empty, but this log was checkpointed before (size ${saved.checkpoint.size}, ${saved.checkpoint.time}): the checkpoints were removed`,
          { data: { file: cpFile } },
        );
      }
      const resumed = options.openScan === 'full' || latest === null || saved === null ? null : await resumeFrom(paths, saved, latest, origin);
      const start = resumed === null ? null : { seq: resumed.seq };
      const cursor = resumed ?? new ChainCursor();
      const logSize = (await fs.promises.stat(paths.logFile)).size;
      for await (const line of readLines(paths.logFile, cursor.offset, logSize)) {
        if (!cursor.step(line.bytes, line.offset, line.complete).ok) break;
        if (latest !== null && cursor.seq === latest.size) checkAgainst(cursor, latest, paths.logFile);
      }
      if (latest !== null && cursor.seq < latest.size) {
        throw new AuthorityError(
          ErrorCode.AUDIT_TAMPERED,
          `the audit log holds ${cursor.seq} valid records but its latest checkpoint (${latest.time}) covers ${latest.size}: ` +
            'its tail was cut, an older copy was restored, or a record was changed. Run `authority audit verify` for details.',
          { data: { logFile: paths.logFile, records: cursor.seq, checkpointSize: latest.size } },
        );
      }
      const tornBytes = logSize - cursor.offset;
      if (tornBytes > MAX_TORN_BYTES) {
        throw new AuthorityError(
          ErrorCode.AUDIT_TAMPERED,
          `the audit log has ${tornBytes} bytes after its last valid record (seq ${cursor.seq - 1}): far more than a crash leaves. Run \`authority audit verify\``,
          { data: { logFile: paths.logFile, offset: cursor.offset, tornBytes } },
        );
      }
      if (tornBytes > 0) await quarantineTail(paths, cursor.offset, logSize);

      fd = await io.open(paths.logFile, 'r+');
      cpFd = await io.open(cpFile, 'a+');
      if (tail.size === 0) await syncDir(paths.checkpointDir);
      const log = new AuditLog({
        paths,
        origin,
        durability,
        io,
        fd,
        cpFd,
        cpFile,
        cpFileSize,
        lock,
        signer,
        now,
        everyRecords,
        cursor,
        lastCp: latest,
      });
      log.#stats.repairedBytes = tornBytes;
      await log.#recordRepairs();
      // Every open leaves a mark and anchors it at once: after a final (clean close)
      // checkpoint, nothing but these records may appear unanchored.
      await log.#enqueue({
        kind: OPEN_KIND,
        reason: 'log opened for writing',
        detail: { pid: process.pid, durability, checkedFrom: start?.seq ?? 0, checkedRecords: cursor.seq - (start?.seq ?? 0) },
      });
      await log.checkpoint();
      log.#timer = setInterval(() => {
        if (log.#durable.size > (log.#lastCp?.size ?? 0)) log.#checkpointSoon();
      }, everyMs);
      log.#timer.unref();
      return log;
    } catch (e) {
      if (fd >= 0) await io.close(fd).catch(() => undefined);
      if (cpFd >= 0) await io.close(cpFd).catch(() => undefined);
      lock.release();
      throw e;
    }
  }

  /**
   * Append one record; resolves once it is durable (see AuditDurability) with
   * its seq and hash. Rejects with E_INVALID_ARGUMENT for a bad entry (the log
   * carries on) and with E_AUDIT_WRITE once the log has failed or is closed.
   */
  append(entry: AuditEntry): Promise<AuditReceipt> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#closing !== null) return Promise.reject(new AuthorityError(ErrorCode.AUDIT_WRITE, 'the audit log is closed'));
    let fields: Record<string, unknown>;
    try {
      fields = entryFields(entry);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#enqueue(fields);
  }

  /** Build, chain and queue a record; the log's own records (log.open, repair) come here directly. */
  #enqueue(fields: Record<string, unknown>): Promise<AuditReceipt> {
    let built: BuiltRecord;
    try {
      built = buildRecord(fields, this.#nextSeq, this.#time(), this.#prevHash);
    } catch (e) {
      return Promise.reject(e);
    }
    const { text, hash } = built;
    const seq = this.#nextSeq;
    this.#nextSeq += 1;
    this.#prevHash = hash;
    this.#assignedEnd += built.bytes;
    const end = this.#assignedEnd;
    if (this.durability === 'none' && this.#queue.length < NONE_MAX_QUEUED) {
      // Nothing is promised about the disk: acknowledge now, write in order at the end of this turn.
      // Past NONE_MAX_QUEUED records waiting, appends wait for their write: memory never grows without bound.
      // `flushed()` waits for the writes; a write failure stops the log and every later append fails.
      this.#queue.push({ text, seq, hash, end, resolve: NOOP, reject: NOOP });
      this.#schedule();
      return Promise.resolve({ seq, hash });
    }
    return new Promise<AuditReceipt>((resolve, reject) => {
      this.#queue.push({ text, seq, hash, end, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Resolves once every record appended so far is written (and with
   * `'fsync'`, synced); rejects with E_AUDIT_WRITE if the log failed. With
   * `'none'` an append does not wait for its write, so a caller that must
   * know its records reached the OS (the end of an invocation) awaits this.
   */
  async flushed(): Promise<void> {
    // Without fsync a flush is one write: do it now rather than a turn of the event loop later.
    if (this.durability === 'none' && this.#io.writeSync !== undefined && !this.#flushing && this.#queue.length > 0 && this.#failure === null) void this.#flush();
    while (this.#flushing || this.#scheduled || this.#queue.length > 0) {
      if (this.#failure !== null) break;
      await new Promise<void>((r) => this.#idleWaiters.push(r));
    }
    if (this.#failure !== null) throw this.#failure;
  }

  /** Counters for monitoring and benchmarks. */
  get stats(): AuditLogStats {
    return {
      origin: this.origin,
      records: this.#durable.size,
      appended: this.#nextSeq,
      bytes: this.#durable.offset,
      syncs: this.#stats.syncs,
      batches: this.#stats.batches,
      maxBatch: this.#stats.maxBatch,
      checkpoints: this.#stats.checkpoints,
      checkpointSize: this.#lastCp?.size ?? 0,
      repairedBytes: this.#stats.repairedBytes,
      failed: this.#failure !== null,
      closed: this.#closing !== null,
    };
  }

  /** The latest checkpoint written or found at open, or null. */
  get latestCheckpoint(): Checkpoint | null {
    return this.#lastCp;
  }

  /**
   * Write a checkpoint now for every durable record not yet covered; resolves
   * with the latest checkpoint once it is durable.
   */
  async checkpoint(): Promise<Checkpoint | null> {
    if (this.#failure !== null) throw this.#failure;
    this.#checkpointSoon();
    while (this.#cpRunning !== null) await this.#cpRunning;
    if (this.#failure !== null) throw this.#failure;
    return this.#lastCp;
  }

  /**
   * Flush what is pending, write a final checkpoint and the resume state,
   * close the files and release the lock. Appends after close() fail with
   * E_AUDIT_WRITE. Rejects with the log's failure if it failed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    while (this.#flushing || this.#scheduled || this.#queue.length > 0) await new Promise<void>((r) => this.#idleWaiters.push(r));
    if (this.#timer !== null) clearInterval(this.#timer);
    try {
      if (this.#failure === null) {
        try {
          while (this.#cpRunning !== null) await this.#cpRunning;
          await this.#writeCheckpoints(true);
          await this.#writeState();
        } catch (e) {
          this.#fail(e, []);
        }
      }
    } finally {
      await this.#io.close(this.#fd).catch(() => undefined);
      await this.#io.close(this.#cpFd).catch(() => undefined);
      this.#lock.release();
    }
    if (this.#failure !== null) throw this.#failure;
  }

  /** The record time; one Date and string per millisecond rather than per record. */
  #time(): string {
    const ms = this.#nowMs();
    if (ms !== this.#lastMs) {
      this.#lastMs = ms;
      this.#lastIso = new Date(ms).toISOString();
    }
    return this.#lastIso;
  }

  #schedule(): void {
    if (this.#flushing || this.#scheduled) return;
    this.#scheduled = true;
    // Defer to let every caller woken by the last acknowledgement append first:
    // their records then share the next write and sync instead of trickling in
    // one by one (without fsync nobody waits for the write, so it batches too).
    setImmediate(() => void this.#flush());
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#flushing) return;
    if (this.#queue.length === 0 || this.#failure !== null) {
      this.#wakeIdle();
      return;
    }
    this.#flushing = true;
    const batch = this.#queue;
    this.#queue = [];
    const last = batch[batch.length - 1] as Pending;
    let after: TreeState;
    try {
      // One buffer per batch, not one per record; the Merkle leaves are hashed from it.
      const base = this.#durable.offset;
      const data = Buffer.from(batch.map((p) => p.text).join('\n') + '\n', 'utf8');
      if (data.length !== last.end - base) throw new Error(`batch of ${data.length} bytes does not end at ${last.end}`);
      // A write to the page cache takes microseconds; a round trip through the thread pool, tens.
      if (this.#io.writeSync !== undefined) writeFullySync(this.#io.writeSync, this.#fd, data, this.#durable.offset);
      else await writeFully(this.#io, this.#fd, data, this.#durable.offset);
      const synced = this.durability === 'fsync' ? this.#io.fdatasync(this.#fd) : undefined;
      synced?.catch(() => {}); // awaited below; a failure then stops the log
      // The tree needs only the bytes: hash the leaves while the disk syncs.
      let start = 0;
      for (const p of batch) {
        this.#tree.append(leafHash(data.subarray(start, p.end - base - 1)));
        start = p.end - base;
      }
      after = { size: last.seq + 1, offset: last.end, last: last.hash, nodes: this.#tree.nodes() };
      if (synced !== undefined) {
        await synced;
        this.#stats.syncs += 1;
      }
    } catch (e) {
      this.#fail(e, batch);
      return;
    }
    if (this.#failure !== null) {
      // A checkpoint failed meanwhile: the log is stopped, and stopped means no more acknowledgements.
      for (const p of batch) p.reject(this.#failure);
      return;
    }
    this.#durable = after;
    this.#stats.batches += 1;
    if (batch.length > this.#stats.maxBatch) this.#stats.maxBatch = batch.length;
    for (const p of batch) p.resolve({ seq: p.seq, hash: p.hash });
    this.#flushing = false;
    if (after.size - (this.#lastCp?.size ?? 0) >= this.#everyRecords) this.#checkpointSoon();
    if (this.#queue.length > 0) this.#schedule();
    else this.#wakeIdle();
  }

  #wakeIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Stop for good: fail everything waiting and everything after. Never retried. */
  #fail(cause: unknown, batch: Pending[]): void {
    if (this.#failure === null) {
      const why = cause instanceof Error ? cause.message : String(cause);
      this.#failure = new AuthorityError(ErrorCode.AUDIT_WRITE, `audit log write failed (${why}); the log is stopped and every append fails`, {
        cause,
        data: { logFile: this.paths.logFile },
      });
    }
    const waiting = [...batch, ...this.#queue];
    this.#queue = [];
    this.#flushing = false;
    if (this.#timer !== null) clearInterval(this.#timer);
    for (const p of waiting) p.reject(this.#failure);
    this.#wakeIdle();
  }

  #checkpointSoon(): void {
    if (this.#failure !== null) return;
    if (this.#cpRunning !== null) {
      this.#cpAgain = true;
      return;
    }
    this.#cpRunning = this.#writeCheckpoints()
      .catch((e: unknown) => this.#fail(e, []))
      .finally(() => {
        this.#cpRunning = null;
      });
  }

  /** Checkpoint the durable records; `final` (at close) checkpoints even when none are new, to mark the clean close. */
  async #writeCheckpoints(final = false): Promise<void> {
    do {
      this.#cpAgain = false;
      const st = this.#durable;
      if (st.size <= (this.#lastCp?.size ?? 0) && !final) continue;
      const body = { origin: this.origin, size: st.size, root: rootFromFrontier(st.nodes).toString('hex'), time: this.#now().toISOString(), offset: st.offset, last: st.last };
      const cp = signCheckpoint(final ? { ...body, final: true } : body, this.#signer);
      const line = checkpointLine(cp);
      await writeFully(this.#io, this.#cpFd, line, this.#cpFileSize);
      if (this.durability === 'fsync') await this.#io.fdatasync(this.#cpFd);
      this.#cpFileSize += line.length;
      this.#lastCp = cp;
      this.#cpNodes = st.nodes;
      this.#stats.checkpoints += 1;
      if (Date.now() - this.#lastStateWrite >= STATE_EVERY_MS) await this.#writeState();
    } while (this.#cpAgain && this.#failure === null);
  }

  /** Save the tree at the latest checkpoint so the next open can start there (see `openScan`). */
  async #writeState(): Promise<void> {
    const cp = this.#lastCp;
    const nodes = this.#cpNodes;
    if (cp === null || nodes === null) return;
    const doc = { v: 1, checkpoint: cp, nodes: nodes.map((n) => n.toString('hex')) };
    const tmp = `${this.paths.stateFile}.tmp`;
    await fs.promises.writeFile(tmp, JSON.stringify(doc) + '\n', { mode: 0o600 });
    await fsyncFile(tmp);
    await fs.promises.rename(tmp, this.paths.stateFile);
    await syncDir(this.paths.auditDir);
    this.#lastStateWrite = Date.now();
  }

  /** Append a `repair` record for each torn tail cut (this open's, or one cut by an open that crashed before recording it). */
  async #recordRepairs(): Promise<void> {
    for (const name of pendingRepairs(this.paths.auditDir)) {
      const file = join(this.paths.auditDir, name);
      const bytes = await fs.promises.readFile(file);
      const cutOffset = Number(/^torn-(\d+)-/.exec(name)?.[1]);
      const done = name.replace(/\.pending$/, '.bin');
      await this.#enqueue({
        kind: 'repair',
        reason: `cut a torn tail of ${bytes.length} bytes at byte ${cutOffset} when opening the log (a write or sync interrupted by a crash; never acknowledged)`,
        detail: { cutBytes: bytes.length, cutOffset, cutSha256: sha256Hex(bytes), savedAs: done },
      });
      await fs.promises.rename(file, join(this.paths.auditDir, done));
    }
    await syncDir(this.paths.auditDir);
  }
}
