/**
 * The generic cell rate algorithm: one number per key, the theoretical
 * arrival time (TAT) of the next call at the sustained rate. A call is
 * admitted when it is no earlier than TAT minus the burst tolerance; it then
 * moves TAT one emission interval on. The exact retry-after is the distance
 * to the first instant that would have been admitted.
 *
 * All times are integer microseconds so the arithmetic is exact.
 * @module
 */

export interface GcraStep {
  readonly allowed: boolean;
  /** The TAT to store when allowed (unchanged when refused). */
  readonly tat: number;
  /** When refused: microseconds until the call would be admitted. */
  readonly retryAfterUs: number;
}

/**
 * One GCRA decision. `storedTat` is undefined for a key never seen (or expired).
 *
 * @example
 * ```ts
 * // 10/s with burst 10: interval 100,000 us; the 11th call at t=0 waits 100 ms.
 * gcraStep(1_000_000, 0, 100_000, 10); // { allowed: false, retryAfterUs: 100000, ... }
 * ```
 */
export function gcraStep(storedTat: number | undefined, nowUs: number, intervalUs: number, burst: number, cost = 1): GcraStep {
  const tat = storedTat === undefined || storedTat < nowUs ? nowUs : storedTat;
  const next = tat + cost * intervalUs;
  const allowAt = next - burst * intervalUs;
  if (nowUs < allowAt) return { allowed: false, tat: storedTat ?? nowUs, retryAfterUs: allowAt - nowUs };
  return { allowed: true, tat: next, retryAfterUs: 0 };
}
