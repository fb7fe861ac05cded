/**
 * `authority cache`: what the compile cache holds, and bringing it under a
 * size (least recently used entries go first; a runtime also does this by
 * itself after each new entry).
 */
import { resolve } from 'node:path';
import { dataPaths, resolveDataDir } from '../../data-dir.ts';
import { CACHE_MAX_ENV, cacheMaxBytes, listCache, pruneCache, type CacheEntry } from '../../registry/cache.ts';
import { emit, parse, usageError } from '../output.ts';
import { EXIT_OK, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage: authority cache list [--cache-dir DIR] [--data-dir DIR] [--json]
       authority cache prune [--max-mb N | --all] [--cache-dir DIR] [--data-dir DIR] [--json]

The compile cache keeps each tool transpiled for this host (12-17 MB for a
JavaScript tool, a few KB for a WAT one), so a second start skips that work.
It is bounded: after each new entry a runtime removes the least recently used
ones until the cache is under its cap, $${CACHE_MAX_ENV} MiB (default 512).

  list                 every entry, least recently used first, with its size
  prune                remove least recently used entries down to the cap
  --max-mb N           the cap for this prune, in MiB (default $${CACHE_MAX_ENV} or 512)
  --all                remove every entry
  --cache-dir DIR      the cache (default <data-dir>/cache)
  --data-dir DIR       state folder (default $AUTHORITY_DATA_DIR or ./.authority)
  --json               print exactly one JSON document on stdout
`;

function mb(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function row(e: CacheEntry): string {
  return `  ${e.digest.slice(0, 16)}  ${mb(e.bytes).padStart(9)}  last used ${new Date(e.lastUsed).toISOString()}`;
}

export const cacheCommand: Command = {
  name: 'cache',
  summary: summaryOf('cache'),
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parse({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        'cache-dir': { type: 'string' },
        'data-dir': { type: 'string' },
        'max-mb': { type: 'string' },
        all: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
    const [sub, ...extra] = positionals;
    if (extra.length > 0) throw usageError(`cache ${sub ?? ''} takes no further arguments\n\n${USAGE}`);
    const dir = values['cache-dir'] !== undefined ? resolve(io.cwd, values['cache-dir']) : dataPaths(resolveDataDir(values['data-dir'], io.env, io.cwd)).cacheDir;
    const json = values.json;
    if (sub === 'list') {
      if (values['max-mb'] !== undefined || values.all) throw usageError('--max-mb and --all go with `cache prune`');
      const entries = listCache(dir);
      const total = entries.reduce((n, e) => n + e.bytes, 0);
      const cap = cacheMaxBytes(io.env[CACHE_MAX_ENV]);
      const human = [`${dir}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, ${mb(total)} of ${mb(cap)}`, ...entries.map(row)].join('\n');
      emit(io, json, { ok: true, dir, bytes: total, maxBytes: cap, entries }, human);
      return EXIT_OK;
    }
    if (sub === 'prune') {
      if (values.all && values['max-mb'] !== undefined) throw usageError('give --all or --max-mb, not both');
      let maxBytes: number;
      try {
        maxBytes = values.all ? 0 : values['max-mb'] !== undefined ? cacheMaxBytes(values['max-mb'], '--max-mb') : cacheMaxBytes(io.env[CACHE_MAX_ENV]);
      } catch (e) {
        throw usageError((e as Error).message);
      }
      const r = pruneCache(dir, { maxBytes });
      const human = `${dir}: removed ${r.removed.length} entr${r.removed.length === 1 ? 'y' : 'ies'} (${mb(r.bytesBefore - r.bytesAfter)}); ${r.kept.length} left, ${mb(r.bytesAfter)}`;
      emit(io, json, { ok: true, dir, maxBytes, removed: r.removed, kept: r.kept, bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter }, human);
      return EXIT_OK;
    }
    throw usageError(sub === undefined ? `cache needs list or prune\n\n${USAGE}` : `unknown cache command ${JSON.stringify(sub)}: list or prune`);
  },
};
