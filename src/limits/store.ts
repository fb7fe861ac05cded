/**
 * The state behind rate limits and budgets, as a small async interface so a
 * shared store (Redis) can replace the in-memory one without changing
 * callers. Every method is one atomic step: a check and its update happen
 * together or not at all, whatever else runs concurrently.
 *
 * Two implementations: MemoryLimitStore (one process, the default) and
 * RedisLimitStore (a fleet on one Redis: each method one Lua script, the keys
 * of one call in one hash slot, Redis's clock). The limits tests run against both.
 * @module
 */

/** One key to rate-limit with GCRA. */
export interface RateRequest {
  readonly key: string;
  /** Microseconds between calls at the sustained rate. */
  readonly intervalUs: number;
  /** Calls that may arrive at once. */
  readonly burst: number;
}

export type RateResult =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly key: string; readonly retryAfterMs: number };

/** One counter to add to, if it stays within its limit. */
export interface CounterRequest {
  readonly key: string;
  /** What to add. */
  readonly amount: number;
  /** The counter may never exceed this. */
  readonly limit: number;
  /**
   * Counters with the same group receive the same grant: the least of
   * `amount` and what every counter in the group has left. Without a group,
   * a counter receives exactly `amount` or the reservation fails.
   */
  readonly group?: string | undefined;
  /** With a group: the smallest grant worth having (default `amount`). */
  readonly min?: number | undefined;
  /** Forget the counter this long after its last change (run-scoped keys). */
  readonly ttlMs?: number | undefined;
}

/** A time window that must still be open: its start is set on first use. */
export interface WindowRequest {
  readonly key: string;
  readonly durationMs: number;
  readonly ttlMs?: number | undefined;
}

export type ReserveResult =
  | { readonly ok: true; readonly granted: readonly number[] }
  | {
      readonly ok: false;
      /** The counter (or window) that refused. */
      readonly key: string;
      readonly reason: 'exhausted' | 'window-closed';
      readonly used: number;
      readonly limit: number;
    };

export interface LimitStore {
  /** GCRA over every request: all admit and all advance, or none changes. */
  acquire(requests: readonly RateRequest[]): Promise<RateResult>;
  /**
   * Add to every counter if each stays within its limit (and the window, when
   * given, is still open), else change nothing. Never goes over a limit.
   */
  reserve(counters: readonly CounterRequest[], window?: WindowRequest): Promise<ReserveResult>;
  /** Subtract from counters (unused reservations), never below zero. */
  release(entries: readonly { readonly key: string; readonly amount: number }[]): Promise<void>;
  /** Current counter values (0 when absent). */
  read(keys: readonly string[]): Promise<number[]>;
  /** When a window started, if it has. */
  windowStart(key: string): Promise<number | undefined>;
  /** Forget keys (the end of a run). */
  delete(keys: readonly string[]): Promise<void>;
}
