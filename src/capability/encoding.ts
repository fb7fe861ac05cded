/**
 * The canonical byte encoding of a token and its text form.
 *
 * ```
 * token   = version:u8(=1) caveat-count:u8 root-block caveat-block{count} mac:32
 * block   = type:u8 (1 root, 2 caveat) length:u16be field{...}   (length = bytes of the fields)
 * field   = tag:u8 value                                          (tags strictly ascending)
 * ```
 *
 * | tag | field      | value                          | root     | caveat   |
 * |-----|------------|--------------------------------|----------|----------|
 * | 1   | kind       | u8 (1 fs, 2 net, 3 secrets, 4 tool) | required | -   |
 * | 2   | key id     | u8 length + ASCII              | required | -        |
 * | 3   | token id   | 16 bytes                       | required | required |
 * | 4   | issued-at  | u64be ms since the epoch       | required | -        |
 * | 5   | not-before | u64be ms                       | required | optional |
 * | 6   | expires-at | u64be ms                       | required | optional |
 * | 7   | methods    | u8 bit mask (claims.METHODS)   | required | optional |
 * | 8   | resource   | u16be length + UTF-8 (NFC)     | required | optional |
 * | 9   | rate       | u32be count + u32be period ms  | optional | optional |
 * | 10  | run id     | u8 length + ASCII              | optional | optional |
 *
 * Every value has exactly one encoding and every field at most one place, so
 * a token has exactly one byte sequence: the decoder rejects anything else
 * (duplicate or out-of-order tags, unknown tags, a block length that does not
 * match its fields, bytes after the MAC, a short or long MAC). The MAC of
 * link i covers its whole block, type and length included.
 *
 * Text form: `acap1.` + base64url(bytes), without padding, and only the one
 * canonical base64url spelling (no stray bits in the last character).
 * @module
 */
import { isUtf8 } from 'node:buffer';
import { AuthorityError, ErrorCode } from '../errors.ts';
import {
  ALL_METHODS,
  KEY_ID_RE,
  KIND_BY_CODE,
  KIND_CODE,
  MAX_TIME,
  MAX_U32,
  RUN_ID_RE,
  TOKEN_ID_BYTES,
  type CapabilityKind,
  type Rate,
} from './claims.ts';
import { MAC_BYTES } from './hmac.ts';
import { MAX_PATTERN_BYTES, patternProblem } from './patterns.ts';

export const TEXT_PREFIX = 'acap1.';
export const FORMAT_VERSION = 1;
export const MAX_CAVEATS = 16;
export const MAX_TEXT_LENGTH = 16_384;

export const BLOCK_ROOT = 1;
export const BLOCK_CAVEAT = 2;

export const TAG = {
  kind: 1,
  keyId: 2,
  tokenId: 3,
  issuedAt: 4,
  notBefore: 5,
  expiresAt: 6,
  methods: 7,
  resource: 8,
  rate: 9,
  runId: 10,
} as const;
type TagName = keyof typeof TAG;
const TAG_NAME: ReadonlyArray<TagName | undefined> = (() => {
  const names: Array<TagName | undefined> = [];
  for (const [name, tag] of Object.entries(TAG)) names[tag] = name as TagName;
  return names;
})();

const ROOT_REQUIRED: readonly TagName[] = ['kind', 'keyId', 'tokenId', 'issuedAt', 'notBefore', 'expiresAt', 'methods', 'resource'];
const CAVEAT_REQUIRED: readonly TagName[] = ['tokenId'];
const ROOT_ALLOWED = new Set<TagName>([...ROOT_REQUIRED, 'rate', 'runId']);
const CAVEAT_ALLOWED = new Set<TagName>(['tokenId', 'notBefore', 'expiresAt', 'methods', 'resource', 'rate', 'runId']);

/** The fields one link of the chain sets (the root sets all required ones). */
export interface LinkFields {
  tokenId: string;
  notBefore?: number | undefined;
  expiresAt?: number | undefined;
  methods?: number | undefined;
  resource?: string | undefined;
  rate?: Rate | undefined;
  runId?: string | undefined;
}

export interface RootFields extends LinkFields {
  kind: CapabilityKind;
  keyId: string;
  issuedAt: number;
  notBefore: number;
  expiresAt: number;
  methods: number;
  resource: string;
}

export interface DecodedToken {
  root: RootFields;
  caveats: LinkFields[];
  /** Each link's whole block, as MACed: root first. Views into the decoded bytes. */
  blocks: Buffer[];
  mac: Buffer;
}

function invalid(message: string, at: string, offset?: number): AuthorityError {
  return new AuthorityError(ErrorCode.CAP_INVALID, `token is not valid: ${message}`, {
    data: offset === undefined ? { at } : { at, offset },
  });
}

// ---------------------------------------------------------------- encoding

class Writer {
  #buf = Buffer.alloc(256);
  #len = 0;
  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.alloc(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }
  u8(v: number): void {
    this.#reserve(1);
    this.#buf[this.#len++] = v;
  }
  u16(v: number): void {
    this.#reserve(2);
    this.#buf.writeUInt16BE(v, this.#len);
    this.#len += 2;
  }
  u32(v: number): void {
    this.#reserve(4);
    this.#buf.writeUInt32BE(v, this.#len);
    this.#len += 4;
  }
  u64(v: number): void {
    this.#reserve(8);
    this.#buf.writeUInt32BE(Math.floor(v / 0x1_0000_0000), this.#len);
    this.#buf.writeUInt32BE(v % 0x1_0000_0000, this.#len + 4);
    this.#len += 8;
  }
  bytes(b: Uint8Array): void {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }
  get length(): number {
    return this.#len;
  }
  patchU16(at: number, v: number): void {
    this.#buf.writeUInt16BE(v, at);
  }
  done(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#len));
  }
}

function writeStr8(w: Writer, s: string): void {
  const b = Buffer.from(s, 'utf8');
  w.u8(b.length);
  w.bytes(b);
}

function writeStr16(w: Writer, s: string): void {
  const b = Buffer.from(s, 'utf8');
  w.u16(b.length);
  w.bytes(b);
}

function encodeBlock(type: number, fields: Partial<RootFields>): Buffer {
  const w = new Writer();
  w.u8(type);
  w.u16(0);
  const start = w.length;
  if (fields.kind !== undefined) {
    w.u8(TAG.kind);
    w.u8(KIND_CODE[fields.kind]);
  }
  if (fields.keyId !== undefined) {
    w.u8(TAG.keyId);
    writeStr8(w, fields.keyId);
  }
  if (fields.tokenId !== undefined) {
    w.u8(TAG.tokenId);
    w.bytes(Buffer.from(fields.tokenId, 'hex'));
  }
  if (fields.issuedAt !== undefined) {
    w.u8(TAG.issuedAt);
    w.u64(fields.issuedAt);
  }
  if (fields.notBefore !== undefined) {
    w.u8(TAG.notBefore);
    w.u64(fields.notBefore);
  }
  if (fields.expiresAt !== undefined) {
    w.u8(TAG.expiresAt);
    w.u64(fields.expiresAt);
  }
  if (fields.methods !== undefined) {
    w.u8(TAG.methods);
    w.u8(fields.methods);
  }
  if (fields.resource !== undefined) {
    w.u8(TAG.resource);
    writeStr16(w, fields.resource);
  }
  if (fields.rate !== undefined) {
    w.u8(TAG.rate);
    w.u32(fields.rate.count);
    w.u32(fields.rate.periodMs);
  }
  if (fields.runId !== undefined) {
    w.u8(TAG.runId);
    writeStr8(w, fields.runId);
  }
  const length = w.length - start;
  if (length > 0xffff) throw invalid('block is longer than 65535 bytes', 'block');
  w.patchU16(1, length);
  return w.done();
}

/** The root block. Callers validate the fields first (issueToken does). */
export function encodeRoot(fields: RootFields): Buffer {
  return encodeBlock(BLOCK_ROOT, fields);
}

/** A caveat block. Callers validate the fields first (attenuateToken does). */
export function encodeCaveat(fields: LinkFields): Buffer {
  return encodeBlock(BLOCK_CAVEAT, fields);
}

/** The whole token: header, blocks (root first), MAC. */
export function assembleToken(blocks: readonly Uint8Array[], mac: Uint8Array): Buffer {
  const caveats = blocks.length - 1;
  if (caveats < 0 || caveats > MAX_CAVEATS) throw invalid(`a token has 0 to ${MAX_CAVEATS} caveats`, 'caveats');
  return Buffer.concat([Buffer.from([FORMAT_VERSION, caveats]), ...blocks, mac]);
}

export function bytesToText(bytes: Uint8Array): string {
  return TEXT_PREFIX + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

// ---------------------------------------------------------------- decoding

const B64URL = /^[A-Za-z0-9_-]*$/;
const B64_VALUE = (c: number): number => {
  if (c >= 65 && c <= 90) return c - 65;
  if (c >= 97 && c <= 122) return c - 71;
  if (c >= 48 && c <= 57) return c + 4;
  return c === 45 ? 62 : 63;
};

/** The token's bytes from its text form; only the one canonical spelling is accepted. */
export function textToBytes(text: unknown): Buffer {
  if (typeof text !== 'string') throw invalid('a token is a string', 'text');
  if (text.length > MAX_TEXT_LENGTH) throw invalid(`longer than ${MAX_TEXT_LENGTH} characters`, 'text');
  if (!text.startsWith(TEXT_PREFIX)) throw invalid(`does not start with "${TEXT_PREFIX}"`, 'text.prefix');
  const body = text.slice(TEXT_PREFIX.length);
  if (!B64URL.test(body)) throw invalid('body is not unpadded base64url', 'text.body');
  const rem = body.length % 4;
  if (rem === 1) throw invalid('body has an impossible base64url length', 'text.body');
  if (rem !== 0) {
    const last = B64_VALUE(body.charCodeAt(body.length - 1));
    if ((rem === 2 && (last & 0x0f) !== 0) || (rem === 3 && (last & 0x03) !== 0)) {
      throw invalid('body is not canonical base64url (non-zero padding bits)', 'text.body');
    }
  }
  return Buffer.from(body, 'base64url');
}

function readUtf8(buf: Buffer, start: number, end: number, at: string): string {
  // ASCII is the common case and needs no validation; anything else must be well-formed UTF-8.
  let ascii = true;
  for (let i = start; i < end; i++) {
    if ((buf[i] as number) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return buf.toString('latin1', start, end);
  if (!isUtf8(buf.subarray(start, end))) throw invalid('resource pattern is not UTF-8', at, start);
  return buf.toString('utf8', start, end);
}

function readU64(buf: Buffer, at: number): number {
  const hi = buf.readUInt32BE(at);
  const lo = buf.readUInt32BE(at + 4);
  return hi * 0x1_0000_0000 + lo;
}

function readAscii(buf: Buffer, start: number, end: number, re: RegExp, at: string): string {
  const s = buf.toString('latin1', start, end);
  if (!re.test(s)) throw invalid('is not a valid identifier', at, start);
  return s;
}

function need(p: number, n: number, end: number, at: string, field: string): void {
  if (p + n > end) throw invalid('field runs past the end of its block', `${at}.${field}`, p);
}

function decodeBlock(buf: Buffer, offset: number, type: number, kind: CapabilityKind | undefined, at: string): { fields: Partial<RootFields>; end: number } {
  if (offset + 3 > buf.length) throw invalid('truncated block header', at, offset);
  if (buf[offset] !== type) throw invalid(`block type ${buf[offset]} where ${type} was expected`, at, offset);
  const length = buf.readUInt16BE(offset + 1);
  const end = offset + 3 + length;
  if (end > buf.length) throw invalid('block is longer than the token', at, offset);
  const allowed = type === BLOCK_ROOT ? ROOT_ALLOWED : CAVEAT_ALLOWED;
  // One object shape for every block keeps this monomorphic.
  const fields: Partial<RootFields> = {
    kind: undefined,
    keyId: undefined,
    tokenId: undefined,
    issuedAt: undefined,
    notBefore: undefined,
    expiresAt: undefined,
    methods: undefined,
    resource: undefined,
    rate: undefined,
    runId: undefined,
  };
  let p = offset + 3;
  let lastTag = 0;
  while (p < end) {
    const tag = buf[p] as number;
    const name = TAG_NAME[tag];
    if (name === undefined || !allowed.has(name)) throw invalid(`unknown field tag ${tag}`, at, p);
    if (tag === lastTag) throw invalid('duplicate field', `${at}.${name}`, p);
    if (tag < lastTag) throw invalid('fields out of canonical order', `${at}.${name}`, p);
    lastTag = tag;
    p += 1;
    switch (tag) {
      case TAG.kind: {
        need(p, 1, end, at, name);
        const k = KIND_BY_CODE[buf[p] as number];
        if (k === undefined) throw invalid('unknown kind', `${at}.${name}`, p);
        fields.kind = k;
        kind = k;
        p += 1;
        break;
      }
      case TAG.keyId:
      case TAG.runId: {
        need(p, 1, end, at, name);
        const n = buf[p] as number;
        need(p, 1 + n, end, at, name);
        const value = readAscii(buf, p + 1, p + 1 + n, tag === TAG.keyId ? KEY_ID_RE : RUN_ID_RE, `${at}.${name}`);
        if (tag === TAG.keyId) fields.keyId = value;
        else fields.runId = value;
        p += 1 + n;
        break;
      }
      case TAG.tokenId:
        need(p, TOKEN_ID_BYTES, end, at, name);
        fields.tokenId = buf.toString('hex', p, p + TOKEN_ID_BYTES);
        p += TOKEN_ID_BYTES;
        break;
      case TAG.issuedAt:
      case TAG.notBefore:
      case TAG.expiresAt: {
        need(p, 8, end, at, name);
        const value = readU64(buf, p);
        if (value > MAX_TIME) throw invalid('time is out of range', `${at}.${name}`, p);
        if (tag === TAG.issuedAt) fields.issuedAt = value;
        else if (tag === TAG.notBefore) fields.notBefore = value;
        else fields.expiresAt = value;
        p += 8;
        break;
      }
      case TAG.methods: {
        need(p, 1, end, at, name);
        const mask = buf[p] as number;
        if (kind === undefined) throw invalid('methods before kind', `${at}.${name}`, p);
        if (mask === 0 || (mask & ~ALL_METHODS[kind]) !== 0) throw invalid(`not a valid ${kind} method mask`, `${at}.${name}`, p);
        fields.methods = mask;
        p += 1;
        break;
      }
      case TAG.resource: {
        need(p, 2, end, at, name);
        const n = buf.readUInt16BE(p);
        if (n > MAX_PATTERN_BYTES) throw invalid('resource pattern is too long', `${at}.${name}`, p);
        need(p, 2 + n, end, at, name);
        if (kind === undefined) throw invalid('resource before kind', `${at}.${name}`, p);
        const value = readUtf8(buf, p + 2, p + 2 + n, `${at}.${name}`);
        const problem = patternProblem(kind, value);
        if (problem !== undefined) throw invalid(`resource pattern ${problem}`, `${at}.${name}`, p);
        fields.resource = value;
        p += 2 + n;
        break;
      }
      case TAG.rate: {
        need(p, 8, end, at, name);
        const count = buf.readUInt32BE(p);
        const periodMs = buf.readUInt32BE(p + 4);
        if (count === 0 || periodMs === 0) throw invalid('rate count and period must be at least 1', `${at}.${name}`, p);
        fields.rate = { count, periodMs };
        p += 8;
        break;
      }
    }
  }
  const required = type === BLOCK_ROOT ? ROOT_REQUIRED : CAVEAT_REQUIRED;
  for (const name of required) {
    if (fields[name] === undefined) throw invalid('required field is missing', `${at}.${name}`, offset);
  }
  return { fields, end };
}

/** Decode a token's bytes, rejecting every non-canonical form. Throws E_CAP_INVALID with the location. */
export function decodeToken(buf: Buffer): DecodedToken {
  if (buf.length < 2) throw invalid('truncated header', 'header', 0);
  if (buf[0] !== FORMAT_VERSION) throw invalid(`unsupported format version ${buf[0]}`, 'header.version', 0);
  const count = buf[1] as number;
  if (count > MAX_CAVEATS) throw invalid(`more than ${MAX_CAVEATS} caveats`, 'header.caveats', 1);
  const rootBlock = decodeBlock(buf, 2, BLOCK_ROOT, undefined, 'root');
  const root = rootBlock.fields as RootFields;
  const blocks = [buf.subarray(2, rootBlock.end)];
  const caveats: LinkFields[] = [];
  let p = rootBlock.end;
  for (let i = 0; i < count; i++) {
    const block = decodeBlock(buf, p, BLOCK_CAVEAT, root.kind, `caveats[${i}]`);
    caveats.push(block.fields as LinkFields);
    blocks.push(buf.subarray(p, block.end));
    p = block.end;
  }
  const macLength = buf.length - p;
  if (macLength !== MAC_BYTES) throw invalid(`MAC is ${macLength} bytes, expected ${MAC_BYTES}`, 'mac', p);
  return { root, caveats, blocks, mac: buf.subarray(p) };
}

/** Check a value fits its wire type; used by the issuing and attenuating side before encoding. */
export function checkWireRanges(fields: Partial<RootFields>, at: string): void {
  const bad = (field: string, why: string): AuthorityError =>
    new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${at}.${field}: ${why}`, { data: { at: `${at}.${field}` } });
  for (const name of ['issuedAt', 'notBefore', 'expiresAt'] as const) {
    const v = fields[name];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0 || v > MAX_TIME)) throw bad(name, 'must be a non-negative integer of milliseconds since the epoch, at most 8.64e15');
  }
  if (fields.rate !== undefined) {
    const { count, periodMs } = fields.rate;
    if (!Number.isInteger(count) || count < 1 || count > MAX_U32) throw bad('rate.count', `must be an integer from 1 to ${MAX_U32}`);
    if (!Number.isInteger(periodMs) || periodMs < 1 || periodMs > MAX_U32) throw bad('rate.periodMs', `must be an integer from 1 to ${MAX_U32}`);
  }
  if (fields.keyId !== undefined && !KEY_ID_RE.test(fields.keyId)) throw bad('keyId', 'must match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}');
  if (fields.runId !== undefined && !RUN_ID_RE.test(fields.runId)) throw bad('runId', 'must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
  if (fields.resource !== undefined && Buffer.byteLength(fields.resource) > MAX_PATTERN_BYTES) {
    throw bad('resource', `must be at most ${MAX_PATTERN_BYTES} bytes`);
  }
}
