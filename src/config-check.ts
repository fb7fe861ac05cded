/**
 * Checks for options where they enter (createRuntime, new WorkerPool): a
 * wrong type or an impossible number is an `E_CONFIG` error naming the field,
 * never a silent fallback (`Math.max(1, NaN)` is NaN: a pool of no workers).
 * @module
 */
import { AuthorityError, ErrorCode } from './errors.ts';

function fail(field: string, expected: string, got: unknown): never {
  const shown = typeof got === 'number' || typeof got === 'boolean' ? String(got) : got === null ? 'null' : typeof got;
  throw new AuthorityError(ErrorCode.CONFIG, `${field} must be ${expected}, got ${shown}`, { data: { field } });
}

/** An optional whole number in [min, max] (Infinity allowed when max is). */
export function optionalInt(obj: Record<string, unknown>, key: string, at: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  const v = obj[key];
  if (v === undefined) return;
  const ok = typeof v === 'number' && (Number.isInteger(v) || v === max) && v >= min && v <= max;
  if (!ok) fail(`${at}${key}`, max === Number.MAX_SAFE_INTEGER ? `a whole number >= ${min}` : `a whole number from ${min} to ${max}`, v);
}

/** An optional value of one of the `typeof` kinds (or a check of its own). */
export function optionalOf(obj: Record<string, unknown>, key: string, at: string, expected: string, ok: (v: unknown) => boolean): void {
  const v = obj[key];
  if (v !== undefined && !ok(v)) fail(`${at}${key}`, expected, v);
}

/** The options object itself: undefined or a plain object. */
export function optionsObject(v: unknown, at: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(at, 'an object', v);
  return v as Record<string, unknown>;
}

export const isString = (v: unknown): boolean => typeof v === 'string' && v.length > 0;
export const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isFunction = (v: unknown): boolean => typeof v === 'function';
export const isBoolean = (v: unknown): boolean => typeof v === 'boolean';
