/**
 * Human spellings of durations, rates and times, as the CLI and config files
 * write them: `90s`, `1h30m`, `10/s`, `100/5m`, `+15m`, `2026-01-01T00:00:00Z`.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { Rate } from './claims.ts';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+)(ms|min|s|m|h|d)/y;

function bad(what: string, text: string, at: string): AuthorityError {
  return new AuthorityError(ErrorCode.USAGE, `${at}: ${JSON.stringify(text)} is not ${what}`, { data: { at } });
}

/** `500ms`, `90s`, `15m`, `1h30m`, `7d` to milliseconds (positive). */
export function parseDuration(text: string, at = 'duration'): number {
  let total = 0;
  let i = 0;
  PART.lastIndex = 0;
  while (i < text.length) {
    PART.lastIndex = i;
    const m = PART.exec(text);
    if (m === null) throw bad('a duration like 90s, 15m, 1h30m, 7d', text, at);
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    i = PART.lastIndex;
  }
  if (text.length === 0 || total <= 0 || !Number.isSafeInteger(total)) throw bad('a positive duration', text, at);
  return total;
}

/** `10/s`, `100/min`, `5/10s`, `1000/1h` to a rate (count per period). */
export function parseRate(text: string, at = 'rate'): Rate {
  const m = /^(\d+)\/(\d*)(ms|min|s|m|h|d)$/.exec(text);
  if (m === null) throw bad('a rate like 10/s, 100/min or 5/10s', text, at);
  const count = Number(m[1]);
  const periodMs = (m[2] === '' ? 1 : Number(m[2])) * (UNIT_MS[m[3] as string] as number);
  if (count < 1 || count > 0xffff_ffff || periodMs < 1 || periodMs > 0xffff_ffff) throw bad('a rate with count and period in range', text, at);
  return { count, periodMs };
}

/** `+15m` (from `now`), an ISO 8601 date-time, or ms since the epoch. */
export function parseTime(text: string, now: number, at = 'time'): number {
  if (text.startsWith('+')) return now + parseDuration(text.slice(1), at);
  if (/^\d+$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || Number.isNaN(ms)) throw bad('+DURATION, an ISO 8601 date-time or ms since the epoch', text, at);
  return ms;
}

/** A rate back to its shortest spelling: `10/s`, `100/min`, `5/10s`. */
export function formatRate(rate: Rate): string {
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['min', 60_000],
    ['s', 1000],
    ['ms', 1],
  ];
  for (const [unit, ms] of units) {
    if (rate.periodMs % ms === 0) {
      const n = rate.periodMs / ms;
      return `${rate.count}/${n === 1 ? '' : n}${unit}`;
    }
  }
  return `${rate.count}/${rate.periodMs}ms`;
}
