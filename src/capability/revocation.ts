/**
 * Revocation by token id and by run id, persisted as append-only JSONL in the
 * data folder and shared between processes: a revocation that the CLI writes
 * takes effect at the next host call of a run that is already going.
 *
 * One record per line, each written with a single `write` on an append-mode
 * descriptor and fsynced before `revoke*` returns:
 *
 * ```
 * {"v":1,"type":"token","id":"<32 hex>","at":1767225600000,"reason":"leaked in a log"}
 * {"v":1,"type":"run","id":"run-42","at":1767225600000}
 * ```
 *
 * Failing closed:
 * - A corrupt file at load is a configuration error (E_CONFIG naming the line):
 *   the runtime refuses to start rather than guess which tokens are revoked.
 * - A corrupt line that appears while running makes every check answer
 *   "revoked" until the file is repaired: we cannot tell which token the
 *   damaged record named, and an outage is better than honouring a revoked token.
 * - Revocations seen once are never forgotten by a running process, even if
 *   the file is truncated or replaced.
 * - A final line without its newline is a write in progress (or one that a
 *   crash cut short, which its writer never reported as done): it is applied if
 *   it already parses, and read again once the file grows.
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, writeSync, fsyncSync } from 'node:fs';
import { dirname } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { dataPaths, ensurePrivateDir } from '../data-dir.ts';
import { RUN_ID_RE, TOKEN_ID_RE } from './claims.ts';
import { fsyncDir } from './files.ts';

/** What a revocation names. */
export type RevocationType = 'token' | 'run';

export interface RevocationEntry {
  readonly type: RevocationType;
  readonly id: string;
  readonly at: number;
  readonly reason?: string | undefined;
}

/** Why a check found a token revoked. */
export interface RevocationHit {
  /**
   * `corrupt`: the list is damaged, so everything counts as revoked.
   * `unavailable`: a shared list (a fleet's) cannot be confirmed current, so nothing is trusted.
   */
  readonly type: RevocationType | 'corrupt' | 'unavailable';
  /** The revoked token id or run id (`*` when corrupt). */
  readonly id: string;
  /** What the revoker wrote, or what is wrong with the list. */
  readonly reason?: string | undefined;
}

/**
 * What the capability check asks of a revocation store. `RevocationList`
 * implements it; a shared store (Redis) can too, answering from a local mirror.
 */
export interface RevocationChecker {
  /** The first revoked id among a token's chain ids and the run ids, or undefined. Sees the latest state. */
  findRevoked(tokenIds: readonly string[], runIds: readonly string[]): RevocationHit | undefined;
}

const MAX_REASON = 500;
const MAX_LINE = 4096;

function parseRecord(line: string): RevocationEntry | string {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return 'not an object';
  const r = json as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!['v', 'type', 'id', 'at', 'reason'].includes(key)) return `unknown field "${key}"`;
  if (r['v'] !== 1) return 'unsupported version';
  const { type, id, at, reason } = r;
  if (type !== 'token' && type !== 'run') return 'type is not "token" or "run"';
  if (typeof id !== 'string' || !(type === 'token' ? TOKEN_ID_RE : RUN_ID_RE).test(id)) return `not a valid ${type} id`;
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) return 'at is not a time';
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON)) return 'reason is not a short string';
  return Object.freeze({ type, id, at, reason });
}

export interface RevocationListOptions {
  /**
   * How stale the in-memory view may be, in ms: 0 (the default) looks at the
   * file (one `stat`) on every check, which is what makes a revocation reach
   * the very next host call. Raise it only if that stat shows in a profile.
   */
  maxStalenessMs?: number | undefined;
}

/**
 * Revoked token ids and run ids. Revoking a token revokes every token derived
 * from it (its id is in their chain); revoking a run denies every call of that run.
 *
 * @example
 * ```ts
 * const revocations = RevocationList.fromDataDir(resolveDataDir());
 * revocations.revokeToken(inspectToken(token).tokenId, { reason: 'leaked' });
 * checkCapability(grants, request, { runId, revocations }); // -> E_CAP_REVOKED
 * ```
 */
export class RevocationList implements RevocationChecker {
  #path: string | undefined;
  #tokens = new Map<string, RevocationEntry>();
  #runs = new Map<string, RevocationEntry>();
  #maxStalenessMs: number;
  // What we have read: the file's identity and how far (in bytes, up to the last newline).
  #ino = -1;
  #offset = 0;
  #size = 0;
  #mtimeMs = 0;
  #lines = 0;
  #lastCheck = -Infinity;
  #corrupt: { line: number; problem: string } | undefined;

  private constructor(path: string | undefined, options: RevocationListOptions) {
    this.#path = path;
    this.#maxStalenessMs = options.maxStalenessMs ?? 0;
  }

  /** A list that lives in memory only (tests, embedders with their own store). */
  static memory(): RevocationList {
    return new RevocationList(undefined, {});
  }

  /**
   * The list persisted at `path` (created on the first revocation). A corrupt
   * file throws E_CONFIG naming the line.
   */
  static open(path: string, options: RevocationListOptions = {}): RevocationList {
    const list = new RevocationList(path, options);
    list.#sync(true);
    if (list.#corrupt !== undefined) {
      throw new AuthorityError(
        ErrorCode.CONFIG,
        `revocation list ${path} is corrupt at line ${list.#corrupt.line} (${list.#corrupt.problem}); repair that line before starting`,
        { data: { path, line: list.#corrupt.line } },
      );
    }
    return list;
  }

  /** The data folder's list (`revocations.jsonl`). */
  static fromDataDir(dataDir: string, options: RevocationListOptions = {}): RevocationList {
    return RevocationList.open(dataPaths(dataDir).revocations, options);
  }

  /** The file, when persisted. */
  get path(): string | undefined {
    return this.#path;
  }

  /** Revoke a token id, and with it every token derived from it. Durable when this returns. */
  revokeToken(tokenId: string, options: { reason?: string; now?: number } = {}): RevocationEntry {
    if (!TOKEN_ID_RE.test(tokenId)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'tokenId: expected 32 lowercase hex digits', { data: { at: 'tokenId' } });
    return this.#append({ type: 'token', id: tokenId, at: options.now ?? Date.now(), reason: options.reason });
  }

  /** Revoke a run: every token checked for that run id is refused. Durable when this returns. */
  revokeRun(runId: string, options: { reason?: string; now?: number } = {}): RevocationEntry {
    if (!RUN_ID_RE.test(runId)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'runId: not a valid run id', { data: { at: 'runId' } });
    return this.#append({ type: 'run', id: runId, at: options.now ?? Date.now(), reason: options.reason });
  }

  /** Whether `tokenId` itself is revoked (true for everything while the file is corrupt). Sees the latest state. */
  isTokenRevoked(tokenId: string): boolean {
    this.refresh();
    return this.#corrupt !== undefined || this.#tokens.has(tokenId);
  }

  /** Whether `runId` is revoked (true for everything while the file is corrupt). Sees the latest state. */
  isRunRevoked(runId: string): boolean {
    this.refresh();
    return this.#corrupt !== undefined || this.#runs.has(runId);
  }

  findRevoked(tokenIds: readonly string[], runIds: readonly string[]): RevocationHit | undefined {
    this.refresh();
    if (this.#corrupt !== undefined) {
      return { type: 'corrupt', id: '*', reason: `line ${this.#corrupt.line}: ${this.#corrupt.problem}` };
    }
    if (this.#tokens.size > 0) {
      for (const id of tokenIds) {
        const e = this.#tokens.get(id);
        if (e !== undefined) return { type: 'token', id, reason: e.reason };
      }
    }
    if (this.#runs.size > 0) {
      for (const id of runIds) {
        const e = this.#runs.get(id);
        if (e !== undefined) return { type: 'run', id, reason: e.reason };
      }
    }
    return undefined;
  }

  /** Every revocation known, oldest first. */
  list(): RevocationEntry[] {
    this.refresh();
    return [...this.#tokens.values(), ...this.#runs.values()].sort((a, b) => a.at - b.at);
  }

  /** How many distinct ids are revoked, as of the last refresh. */
  get size(): number {
    return this.#tokens.size + this.#runs.size;
  }

  /** Pick up records other processes appended (cheap when nothing changed: one stat). */
  refresh(): void {
    if (this.#path === undefined) return;
    if (this.#maxStalenessMs > 0) {
      const now = performance.now();
      if (now - this.#lastCheck < this.#maxStalenessMs) return;
      this.#lastCheck = now;
    }
    this.#sync(false);
  }

  #apply(e: RevocationEntry): void {
    const map = e.type === 'token' ? this.#tokens : this.#runs;
    if (!map.has(e.id)) map.set(e.id, e);
  }

  #sync(initial: boolean): void {
    const path = this.#path as string;
    const st = statSync(path, { throwIfNoEntry: false });
    if (st === undefined) return; // nothing written yet, or removed: keep what we know
    const changedInPlace = st.size === this.#size && st.mtimeMs !== this.#mtimeMs;
    if (st.ino === this.#ino && st.size === this.#size && !changedInPlace) return;
    // Anything but a plain append (a new file, a shrink, a rewrite, or any change
    // while corrupt) is read again from the start.
    const replaced = st.ino !== this.#ino || st.size < this.#offset || changedInPlace || this.#corrupt !== undefined;
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY);
    } catch (e) {
      if (initial) throw new AuthorityError(ErrorCode.CONFIG, `cannot read revocation list ${path}`, { cause: e, data: { path } });
      this.#corrupt = { line: this.#lines + 1, problem: 'unreadable' };
      return;
    }
    try {
      const fst = fstatSync(fd);
      const from = replaced ? 0 : this.#offset;
      if (replaced) {
        this.#lines = 0;
        this.#corrupt = undefined;
      }
      const length = fst.size - from;
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, got, length - got, from + got);
        if (n === 0) break;
        got += n;
      }
      this.#consume(buf.subarray(0, got), from);
      this.#ino = fst.ino;
      this.#size = from + got;
      this.#mtimeMs = fst.mtimeMs;
    } finally {
      closeSync(fd);
    }
  }

  #consume(buf: Buffer, from: number): void {
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      this.#lines++;
      const line = buf.toString('utf8', start, nl);
      if (line.trim() !== '' && this.#corrupt === undefined) {
        const rec = parseRecord(line);
        if (typeof rec === 'string') this.#corrupt = { line: this.#lines, problem: rec };
        else this.#apply(rec);
      }
      start = nl + 1;
    }
    this.#offset = from + start;
    // An unterminated tail: applied if it is already a whole record (failing
    // closed), and read again from its start once the file grows.
    if (start < buf.length) {
      const rec = parseRecord(buf.toString('utf8', start));
      if (typeof rec !== 'string') this.#apply(rec);
    }
  }

  #append(entry: RevocationEntry): RevocationEntry {
    const record = Object.freeze(entry.reason === undefined ? { type: entry.type, id: entry.id, at: entry.at } : entry);
    if (record.reason !== undefined && record.reason.length > MAX_REASON) {
      throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `reason: at most ${MAX_REASON} characters`, { data: { at: 'reason' } });
    }
    if (this.#path !== undefined) {
      let line = JSON.stringify({ v: 1, ...record }) + '\n';
      if (Buffer.byteLength(line) > MAX_LINE) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'revocation record too long');
      ensurePrivateDir(dirname(this.#path));
      const fd = openSync(this.#path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
      try {
        const size = fstatSync(fd).size;
        if (size > 0) {
          // A torn record left by a crashed writer: end it, so this record stays
          // whole on its own line (the fragment is then reported as corrupt).
          const last = Buffer.alloc(1);
          readSync(fd, last, 0, 1, size - 1);
          if (last[0] !== 0x0a) line = '\n' + line;
        }
        const bytes = Buffer.from(line, 'utf8');
        let written = 0;
        while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
        fsyncSync(fd);
        if (size === 0) fsyncDir(dirname(this.#path));
      } finally {
        closeSync(fd);
      }
    }
    this.#apply(record);
    return record;
  }
}
