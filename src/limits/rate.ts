/**
 * Rates as a policy writes them (`"10/s"`, `{ "rate": "100/m", "burst": 20 }`)
 * and as the limiter uses them (an emission interval and a burst).
 * @module
 */

/** A parsed rate: `count` events per `periodMs`, at most `burst` at once. */
export interface RateSpec {
  /** As written, for reasons and `policy validate` output (e.g. `"10/s"`). */
  readonly text: string;
  readonly count: number;
  readonly periodMs: number;
  /** How many calls may arrive at the same instant; defaults to `count`. */
  readonly burst: number;
  /**
   * Time between two calls at the sustained rate, in whole microseconds,
   * rounded up: the limiter is never looser than the rate as written.
   */
  readonly emissionIntervalUs: number;
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const RATE = /^\s*(\d{1,15})\s*\/\s*(\d{1,9})?\s*(ms|s|m|h|d)\s*$/;

/** The largest count or burst a rate may name; larger numbers are a typo, not a limit. */
export const MAX_RATE_COUNT = 1_000_000_000;

/**
 * Parse `"<count>/<unit>"` or `"<count>/<n><unit>"` (units ms, s, m, h, d).
 * Returns the spec, or a message saying what is wrong.
 *
 * @example
 * ```ts
 * parseRate('10/s');      // { count: 10, periodMs: 1000, burst: 10, ... }
 * parseRate('5/10s', 1);  // 5 per 10 seconds, one at a time
 * ```
 */
export function parseRate(text: string, burst?: number): RateSpec | string {
  const m = RATE.exec(text);
  if (m === null) return `rate must look like "10/s" or "100/5m" (units ms, s, m, h, d), got ${JSON.stringify(text)}`;
  const count = Number(m[1]);
  const times = m[2] === undefined ? 1 : Number(m[2]);
  const periodMs = times * (UNIT_MS[m[3] as string] as number);
  if (count < 1) return 'rate count must be at least 1 (to forbid an operation, leave it out of the policy)';
  if (times < 1) return 'rate period must be at least 1';
  if (count > MAX_RATE_COUNT) return `rate count must be at most ${MAX_RATE_COUNT}`;
  const b = burst ?? count;
  if (!Number.isInteger(b) || b < 1 || b > MAX_RATE_COUNT) return `burst must be an integer from 1 to ${MAX_RATE_COUNT}`;
  const emissionIntervalUs = Math.max(1, Math.ceil((periodMs * 1000) / count));
  return Object.freeze({ text: text.trim(), count, periodMs, burst: b, emissionIntervalUs });
}
