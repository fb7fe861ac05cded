/**
 * Canonical JSON and SHA-256 helpers for the audit log.
 *
 * The rule is RFC 8785 (JSON Canonicalization Scheme) as ECMAScript's
 * `JSON.stringify` already implements most of it: object members sorted by the
 * UTF-16 code units of their names, no whitespace, strings escaped the way
 * `JSON.stringify` escapes them (`\b \t \n \f \r \" \\`, other controls as
 * lowercase `\u00xx`, everything else literal), numbers in ECMAScript
 * `Number#toString` form. Audit records only ever hold safe integers, so a
 * verifier in another language needs nothing more than integer formatting.
 *
 * Byte strings (`Uint8Array`) have no JSON form; for request and response
 * hashing they are written as `{"$base64":"<standard base64>"}`.
 * @module
 */
import { hash } from 'node:crypto';
import { AuthorityError, ErrorCode } from '../errors.ts';

/**
 * A lowercase hex SHA-256 digest. Branded so that an audit entry's request and
 * response fields take only what `hashRequest()` / `sha256Hex()` produce, not
 * the raw request text.
 */
export type Sha256Hex = string & { readonly __brand: 'Sha256Hex' };

const HEX64 = /^[0-9a-f]{64}$/;
const MAX_DEPTH = 64;

/** Whether `s` is a lowercase hex SHA-256 digest. */
export function isSha256Hex(s: unknown): s is Sha256Hex {
  return typeof s === 'string' && HEX64.test(s);
}

/** Hex SHA-256 of bytes or of a string's UTF-8 encoding. */
export function sha256Hex(data: Uint8Array | string): Sha256Hex {
  return hash('sha256', data, 'hex') as Sha256Hex;
}

/**
 * The canonical JSON text of `value` (RFC 8785 rules, see the module notes).
 * Throws `E_INVALID_ARGUMENT` naming the JSON path of anything it cannot
 * represent exactly: non-finite numbers, bigints, functions, symbols, class
 * instances, lone surrogates, `undefined` inside arrays, cycles.
 * Object members whose value is `undefined` are left out, as `JSON.stringify` does.
 *
 * @example
 * ```ts
 * canonicalJson({ b: [true, null], a: 1 }); // '{"a":1,"b":[true,null]}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '$', 0);
}

function fail(path: string, what: string): never {
  throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `cannot canonicalize ${what} at ${path}`, { data: { path } });
}

function encodeString(s: string, path: string): string {
  if (!s.isWellFormed()) fail(path, 'a string with a lone surrogate');
  return JSON.stringify(s);
}

function encode(value: unknown, path: string, depth: number): string {
  if (depth > MAX_DEPTH) fail(path, `nesting deeper than ${MAX_DEPTH}`);
  switch (typeof value) {
    case 'string':
      return encodeString(value, path);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) fail(path, String(value));
      // Number#toString is the JCS number form; -0 prints as "0" as JCS requires.
      return Object.is(value, -0) ? '0' : String(value);
    case 'object': {
      if (value === null) return 'null';
      if (value instanceof Uint8Array) return `{"$base64":${JSON.stringify(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'))}}`;
      if (Array.isArray(value)) {
        const parts = new Array<string>(value.length);
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) fail(`${path}[${i}]`, 'undefined');
          parts[i] = encode(item, `${path}[${i}]`, depth + 1);
        }
        return `[${parts.join(',')}]`;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) fail(path, 'a class instance');
      return joinMembers(members(value as Record<string, unknown>, path, depth));
    }
    default:
      return fail(path, typeof value);
  }
}

type Member = [key: string, text: string];

function members(obj: Record<string, unknown>, path: string, depth: number): Member[] {
  // Default sort compares UTF-16 code units: exactly the JCS member order.
  const keys = Object.keys(obj).sort();
  const out: Member[] = [];
  for (const key of keys) {
    const v = obj[key];
    if (v === undefined) continue;
    const at = `${path}.${key}`;
    out.push([key, `${encodeString(key, at)}:${encode(v, at, depth + 1)}`]);
  }
  return out;
}

function joinMembers(m: readonly Member[]): string {
  let s = '{';
  for (let i = 0; i < m.length; i++) s += (i === 0 ? '' : ',') + (m[i] as Member)[1];
  return s + '}';
}

/**
 * The canonical JSON of a plain object, and of the same object without member
 * `omit`, encoding each member once (a record and the body its hash covers).
 */
export function canonicalJsonWithout(obj: Record<string, unknown>, omit: string): { full: string; without: string } {
  const m = members(obj, '$', 0);
  return { full: joinMembers(m), without: joinMembers(m.filter(([k]) => k !== omit)) };
}

/**
 * SHA-256 (hex) of the canonical JSON of `value`: how callers hash a request or
 * a response before handing it to the audit log, which never stores either.
 *
 * @example
 * ```ts
 * const requestHash = hashRequest({ op: 'fs.read', path: '/data/a.txt' });
 * await log.append({ kind: 'call.intent', op: 'fs.read', requestHash });
 * ```
 */
export function hashRequest(value: unknown): Sha256Hex {
  return sha256Hex(canonicalJson(value));
}
