/**
 * The compile cache's bound. Every transpiled component is a folder
 * `<digest>.v<format>/` (12-17 MB for a JavaScript tool), so a folder of
 * tools that keeps changing would grow without end. Each use marks its entry
 * (the manifest's modification time), and after each new entry the least
 * recently used entries are removed until the cache is under its cap.
 * @module
 */
import { existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';

/** The cap when none is configured: 512 MiB, about thirty JavaScript tools. */
export const DEFAULT_CACHE_MAX_BYTES = 512 * 1024 * 1024;
/** The environment variable that sets the cap, in MiB (the CLI and the library both read it). */
export const CACHE_MAX_ENV = 'AUTHORITY_CACHE_MAX_MB';

/** `<digest>.v<format>`, with `-<WIT digest>` since format 3. */
const ENTRY_RE = /^([0-9a-f]{64})\.v(\d+)(?:-[0-9a-f]+)?$/;
const STALE_TMP_MS = 60 * 60 * 1000;

export interface CacheEntry {
  /** The component's sha256. */
  digest: string;
  /** Folder name inside the cache. */
  name: string;
  /** Cache layout version the entry was written with. */
  format: number;
  bytes: number;
  /** When a runtime last used it (ms since the epoch). */
  lastUsed: number;
}

/** The cap in bytes: `value` (MiB, a string from a flag or the environment) checked, or the default. */
export function cacheMaxBytes(value: string | undefined = process.env[CACHE_MAX_ENV], from = CACHE_MAX_ENV): number {
  if (value === undefined || value === '') return DEFAULT_CACHE_MAX_BYTES;
  const mb = Number(value);
  if (!Number.isFinite(mb) || mb < 0 || value.trim() === '') {
    throw new AuthorityError(ErrorCode.CONFIG, `${from} takes a size in MiB (a number, 0 or more), got ${JSON.stringify(value)}`, { data: { field: from } });
  }
  return Math.floor(mb * 1024 * 1024);
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? folderBytes(p) : statSync(p).size;
  }
  return total;
}

/** Every entry in the cache, least recently used first. */
export function listCache(cacheDir: string): CacheEntry[] {
  if (!existsSync(cacheDir)) return [];
  const out: CacheEntry[] = [];
  for (const name of readdirSync(cacheDir)) {
    const m = ENTRY_RE.exec(name);
    if (m === null) continue;
    const dir = join(cacheDir, name);
    try {
      const manifest = join(dir, 'manifest.json');
      const lastUsed = existsSync(manifest) ? statSync(manifest).mtimeMs : statSync(dir).mtimeMs;
      out.push({ digest: m[1] as string, name, format: Number(m[2]), bytes: folderBytes(dir), lastUsed });
    } catch {
      // Removed by another process while we looked: not an entry any more.
    }
  }
  return out.sort((a, b) => a.lastUsed - b.lastUsed || a.name.localeCompare(b.name));
}

/** Mark an entry as used now (its manifest's modification time), so pruning keeps it longest. */
export function touchEntry(entryDir: string): void {
  try {
    const now = new Date();
    utimesSync(join(entryDir, 'manifest.json'), now, now);
  } catch {
    // A read-only cache still works; it just cannot order its entries.
  }
}

export interface PruneOptions {
  /** Remove least recently used entries until the cache holds at most this many bytes. */
  maxBytes: number;
  /** Entry folder names never removed (the one just written, the ones this process uses). */
  keep?: ReadonlySet<string>;
  /**
   * Entries used more recently than this are kept even over the cap, since
   * another process may be loading them (default 0; a runtime's own pruning
   * passes DEFAULT_PRUNE_GRACE_MS).
   */
  graceMs?: number;
}

/** How recently used an entry must be for a runtime's automatic pruning to leave it to other processes: 10 minutes. */
export const DEFAULT_PRUNE_GRACE_MS = 10 * 60 * 1000;

export interface PruneResult {
  removed: CacheEntry[];
  kept: CacheEntry[];
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * Bring the cache under `maxBytes`, least recently used first; also removes
 * half-written folders an interrupted process left more than an hour ago.
 */
export function pruneCache(cacheDir: string, opts: PruneOptions): PruneResult {
  if (existsSync(cacheDir)) {
    for (const name of readdirSync(cacheDir)) {
      if (!name.includes('.tmp-')) continue;
      const p = join(cacheDir, name);
      try {
        if (Date.now() - statSync(p).mtimeMs > STALE_TMP_MS) rmSync(p, { recursive: true, force: true });
      } catch {
        // gone already
      }
    }
  }
  const entries = listCache(cacheDir);
  const bytesBefore = entries.reduce((n, e) => n + e.bytes, 0);
  let total = bytesBefore;
  const removed: CacheEntry[] = [];
  const kept: CacheEntry[] = [];
  const freshSince = Date.now() - (opts.graceMs ?? 0);
  for (const e of entries) {
    if (total > opts.maxBytes && !(opts.keep?.has(e.name) ?? false) && e.lastUsed < freshSince) {
      rmSync(join(cacheDir, e.name), { recursive: true, force: true });
      total -= e.bytes;
      removed.push(e);
    } else {
      kept.push(e);
    }
  }
  return { removed, kept, bytesBefore, bytesAfter: total };
}
