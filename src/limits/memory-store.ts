/**
 * The in-memory LimitStore: one process, exact, atomic because each method's
 * check and update run in one synchronous step after a single await.
 * @module
 */
import { gcraStep } from './gcra.ts';
import type { CounterRequest, LimitStore, RateRequest, RateResult, ReserveResult, WindowRequest } from './store.ts';

interface Entry {
  value: number;
  /** Epoch ms after which the entry is as good as absent; Infinity = never. */
  expiresAt: number;
}

export interface MemoryLimitStoreOptions {
  /** Milliseconds since the epoch; tests pass a fake clock. Default Date.now. */
  now?: () => number;
  /** Sweep expired entries every this many writes (default 4096). */
  sweepEvery?: number;
}

/**
 * A LimitStore kept in a Map. Rate keys expire when their TAT has passed (an
 * absent key and a past TAT decide the same), counters after their `ttlMs`.
 *
 * @example
 * ```ts
 * const store = new MemoryLimitStore();
 * await store.reserve([{ key: 'run:r1:tool_calls', amount: 1, limit: 50 }]);
 * ```
 */
export class MemoryLimitStore implements LimitStore {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  readonly #sweepEvery: number;
  #writes = 0;

  constructor(options: MemoryLimitStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#sweepEvery = options.sweepEvery ?? 4096;
  }

  /** Entries currently held (expired ones may linger until the next sweep). */
  get size(): number {
    return this.#entries.size;
  }

  async acquire(requests: readonly RateRequest[]): Promise<RateResult> {
    await undefined;
    const nowMs = this.#now();
    const nowUs = Math.round(nowMs * 1000);
    const next: number[] = [];
    let worst: { key: string; retryAfterUs: number } | undefined;
    for (const r of requests) {
      const step = gcraStep(this.#get(r.key, nowMs), nowUs, r.intervalUs, r.burst);
      if (!step.allowed) {
        if (worst === undefined || step.retryAfterUs > worst.retryAfterUs) worst = { key: r.key, retryAfterUs: step.retryAfterUs };
      }
      next.push(step.tat);
    }
    if (worst !== undefined) return { allowed: false, key: worst.key, retryAfterMs: Math.ceil(worst.retryAfterUs / 1000) };
    requests.forEach((r, i) => {
      const tat = next[i] as number;
      this.#set(r.key, tat, tat / 1000);
    });
    return { allowed: true };
  }

  async reserve(counters: readonly CounterRequest[], window?: WindowRequest): Promise<ReserveResult> {
    await undefined;
    const nowMs = this.#now();
    if (window !== undefined) {
      const start = this.#get(window.key, nowMs);
      if (start !== undefined && nowMs - start > window.durationMs) {
        return { ok: false, key: window.key, reason: 'window-closed', used: nowMs - start, limit: window.durationMs };
      }
    }
    const used = counters.map((c) => this.#get(c.key, nowMs) ?? 0);
    // A group's grant is the least that every member can still take.
    const groupGrant = new Map<string, number>();
    counters.forEach((c, i) => {
      if (c.group === undefined) return;
      const left = Math.max(0, c.limit - (used[i] as number));
      const prev = groupGrant.get(c.group) ?? c.amount;
      groupGrant.set(c.group, Math.min(prev, left, c.amount));
    });
    const granted: number[] = [];
    for (const [i, c] of counters.entries()) {
      const u = used[i] as number;
      const want = c.group === undefined ? c.amount : (groupGrant.get(c.group) as number);
      const min = c.group === undefined ? c.amount : Math.min(c.min ?? c.amount, c.amount);
      if (want < min || u + want > c.limit) return { ok: false, key: c.key, reason: 'exhausted', used: u, limit: c.limit };
      granted.push(want);
    }
    counters.forEach((c, i) => {
      const expiresAt = c.ttlMs === undefined ? Number.POSITIVE_INFINITY : nowMs + c.ttlMs;
      this.#set(c.key, (used[i] as number) + (granted[i] as number), expiresAt);
    });
    if (window !== undefined && this.#get(window.key, nowMs) === undefined) {
      this.#set(window.key, nowMs, window.ttlMs === undefined ? Number.POSITIVE_INFINITY : nowMs + window.ttlMs);
    }
    return { ok: true, granted };
  }

  async release(entries: readonly { readonly key: string; readonly amount: number }[]): Promise<void> {
    await undefined;
    const nowMs = this.#now();
    for (const e of entries) {
      const entry = this.#entries.get(e.key);
      if (entry === undefined || entry.expiresAt <= nowMs) continue;
      entry.value = Math.max(0, entry.value - e.amount);
    }
  }

  async read(keys: readonly string[]): Promise<number[]> {
    await undefined;
    const nowMs = this.#now();
    return keys.map((k) => this.#get(k, nowMs) ?? 0);
  }

  async windowStart(key: string): Promise<number | undefined> {
    await undefined;
    return this.#get(key, this.#now());
  }

  async delete(keys: readonly string[]): Promise<void> {
    await undefined;
    for (const k of keys) this.#entries.delete(k);
  }

  #get(key: string, nowMs: number): number | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= nowMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  #set(key: string, value: number, expiresAt: number): void {
    const e = this.#entries.get(key);
    if (e === undefined) this.#entries.set(key, { value, expiresAt });
    else {
      e.value = value;
      e.expiresAt = expiresAt;
    }
    if (++this.#writes % this.#sweepEvery === 0) this.#sweep();
  }

  #sweep(): void {
    const nowMs = this.#now();
    for (const [k, e] of this.#entries) if (e.expiresAt <= nowMs) this.#entries.delete(k);
  }
}
