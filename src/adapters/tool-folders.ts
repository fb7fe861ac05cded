/**
 * Keep a runtime's tools in step with folders of components: every `*.wasm`
 * in them is registered; a file added, replaced or removed while running is
 * registered, re-registered or unregistered (and the runtime emits
 * `tools-changed`, which the MCP server turns into `list_changed`).
 *
 * Changes are seen with `fs.watch` and a short debounce, so a burst of events
 * (an editor's save, a copy) causes one rescan; a folder that cannot be
 * watched (missing, or a file system without notifications) is polled.
 * A file that fails to register (half-written, not a component, importing
 * something outside authority:sandbox) is reported and retried when it
 * changes again.
 * @module
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { toAuthorityError, type AuthorityError } from '../errors.ts';
import type { RegisterOptions } from '../registry/index.ts';
import type { Runtime } from '../runtime.ts';

export interface ToolFolderOptions {
  /** Quiet time after the last change before a rescan. Default 150 ms. */
  debounceMs?: number;
  /** Rescan period for folders that cannot be watched. Default 1000 ms. */
  pollMs?: number;
  /** Limits for every tool registered from the folders. */
  limits?: RegisterOptions['limits'];
  logger?: Logger;
}

interface Entry {
  /** size, mtime and inode: a change of any is a new file. */
  key: string;
  /** The tool it registered, if it did. */
  name?: string | undefined;
  error?: AuthorityError | undefined;
}

/** What one rescan did. */
export interface ToolFolderChanges {
  registered: string[];
  removed: string[];
  refused: Array<{ file: string; code: string; message: string }>;
}

/**
 * Tool folders kept in step with a runtime. Create with {@link watchToolFolders}.
 */
export class ToolFolders {
  readonly dirs: readonly string[];
  readonly #runtime: Runtime;
  readonly #opts: ToolFolderOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** @internal use watchToolFolders() */
  constructor(runtime: Runtime, dirs: readonly string[], opts: ToolFolderOptions) {
    this.#runtime = runtime;
    this.dirs = [...dirs];
    this.#opts = opts;
  }

  /** Files that failed to register at the last scan, with why. */
  get refused(): Array<{ file: string; error: AuthorityError }> {
    return [...this.#entries].filter(([, e]) => e.error !== undefined).map(([file, e]) => ({ file, error: e.error as AuthorityError }));
  }

  /** @internal */
  start(): void {
    let unwatched = false;
    for (const dir of this.dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#schedule());
        w.on('error', () => this.#startPolling());
        this.#watchers.push(w);
      } catch {
        unwatched = true;
      }
    }
    if (unwatched) this.#startPolling();
  }

  #startPolling(): void {
    if (this.#poll !== undefined || this.#closed) return;
    this.#poll = setInterval(() => this.#schedule(0), this.#opts.pollMs ?? 1000);
    this.#poll.unref();
  }

  #schedule(delay = this.#opts.debounceMs ?? 150): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.rescan().catch((e: unknown) => this.#opts.logger?.error({ err: e }, 'tool folder rescan failed')), delay);
    this.#debounce.unref();
  }

  /** Rescan now (scans never overlap); resolves with what changed. */
  rescan(): Promise<ToolFolderChanges> {
    const next = this.#chain.then(() => this.#scan());
    this.#chain = next.catch(() => {});
    return next;
  }

  async #list(): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const dir of this.dirs) {
      let names: string[];
      try {
        names = (await readdir(dir)).filter((n) => n.endsWith('.wasm')).sort();
      } catch {
        continue;
      }
      for (const n of names) {
        const file = join(dir, n);
        try {
          const st = await stat(file);
          // A signature added or changed beside a component (`<file>.sig`) is a new registration too.
          const sig = await stat(`${file}.sig`).then((x) => `:${x.size}:${x.mtimeMs}:${x.ino}`, () => '');
          if (st.isFile()) found.set(file, `${st.size}:${st.mtimeMs}:${st.ino}${sig}`);
        } catch {
          // Gone between readdir and stat: the next scan sees it missing.
        }
      }
    }
    return found;
  }

  async #scan(): Promise<ToolFolderChanges> {
    const changes: ToolFolderChanges = { registered: [], removed: [], refused: [] };
    if (this.#closed) return changes;
    const found = await this.#list();
    const log = this.#opts.logger;
    for (const [file, entry] of [...this.#entries]) {
      if (found.has(file)) continue;
      this.#entries.delete(file);
      if (entry.name !== undefined && this.#release(entry.name)) changes.removed.push(entry.name);
    }
    for (const [file, key] of found) {
      const before = this.#entries.get(file);
      if (before?.key === key) continue;
      try {
        const tool = await this.#runtime.register(file, { source: file, limits: this.#opts.limits });
        this.#entries.set(file, { key, name: tool.name });
        if (before?.name !== undefined && before.name !== tool.name && this.#release(before.name)) changes.removed.push(before.name);
        changes.registered.push(tool.name);
        log?.info({ tool: tool.name, file }, before === undefined ? 'tool registered' : 'tool re-registered');
      } catch (e) {
        const err = toAuthorityError(e);
        this.#entries.set(file, { key, error: err });
        // A file that no longer holds a valid tool no longer provides one.
        if (before?.name !== undefined && this.#release(before.name)) changes.removed.push(before.name);
        changes.refused.push({ file, code: err.code, message: err.message });
        log?.warn({ file, code: err.code, reason: err.message }, 'tool component refused');
      }
    }
    return changes;
  }

  /** Unregister `name` unless another file still provides it. */
  #release(name: string): boolean {
    for (const e of this.#entries.values()) if (e.name === name) return false;
    const removed = this.#runtime.unregister(name);
    if (removed) this.#opts.logger?.info({ tool: name }, 'tool removed');
    return removed;
  }

  /** Stop watching. Registered tools stay registered. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#poll);
    for (const w of this.#watchers) w.close();
    this.#watchers.length = 0;
  }
}

/**
 * Register every component in `dirs` and keep watching them.
 *
 * @example
 * ```ts
 * const folders = await watchToolFolders(runtime, ['./tools'], { logger });
 * runtime.on('tools-changed', (c) => console.error('tools changed', c));
 * // ... later
 * folders.close();
 * ```
 */
export async function watchToolFolders(runtime: Runtime, dirs: readonly string[], opts: ToolFolderOptions = {}): Promise<ToolFolders> {
  const folders = new ToolFolders(runtime, dirs, opts);
  await folders.rescan();
  folders.start();
  return folders;
}
