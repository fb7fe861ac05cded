/**
 * HMAC-SHA256 (RFC 2104) built on Node's one-shot `crypto.hash`.
 *
 * Why not `createHmac`: verification is on the hot path of every run's
 * grant preparation and of `authority cap verify`, and `createHmac` spends
 * most of its time allocating a stateful object and re-deriving the key pads.
 * Here a key's pads are derived once, and each MAC is two one-shot SHA-256
 * calls over a reused scratch buffer. The test suite checks this against
 * `createHmac` and the RFC 4231 vectors.
 * @module
 */
import { hash, timingSafeEqual } from 'node:crypto';

const BLOCK = 64;
export const MAC_BYTES = 32;

/** A key's inner and outer pads: derived once, kept private to their owner. */
export interface HmacPads {
  readonly ipad: Buffer;
  readonly opad: Buffer;
}

/** Derive the pads of `key` (keys longer than a block are hashed first, as RFC 2104 says). */
export function hmacPads(key: Uint8Array): HmacPads {
  const k = key.length > BLOCK ? hash('sha256', key, 'buffer') : key;
  const ipad = Buffer.alloc(BLOCK, 0x36);
  const opad = Buffer.alloc(BLOCK, 0x5c);
  for (let i = 0; i < k.length; i++) {
    ipad[i] = (ipad[i] as number) ^ (k[i] as number);
    opad[i] = (opad[i] as number) ^ (k[i] as number);
  }
  return { ipad, opad };
}

// Scratch space reused across calls. Calls are synchronous, so no two MACs
// share it at once; the pad bytes are wiped after each use.
let inner = Buffer.alloc(BLOCK + 512);
const outer = Buffer.alloc(BLOCK + MAC_BYTES);

/** HMAC-SHA256 of `data` under prepared `pads`. */
export function hmacWithPads(pads: HmacPads, data: Uint8Array): Buffer {
  const need = BLOCK + data.length;
  if (inner.length < need) inner = Buffer.alloc(Math.max(need, inner.length * 2));
  pads.ipad.copy(inner, 0);
  inner.set(data, BLOCK);
  const innerDigest = hash('sha256', inner.subarray(0, need), 'buffer');
  inner.fill(0, 0, BLOCK);
  pads.opad.copy(outer, 0);
  outer.set(innerDigest, BLOCK);
  const mac = hash('sha256', outer, 'buffer');
  outer.fill(0, 0, BLOCK);
  return mac;
}

/** HMAC-SHA256 of `data` under a raw `key` (used for the caveat chain, keyed by the previous MAC). */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Buffer {
  if (key.length > BLOCK) return hmacWithPads(hmacPads(key), data);
  // Pads written straight into the scratch space: no allocation per link.
  const need = BLOCK + data.length;
  if (inner.length < need) inner = Buffer.alloc(Math.max(need, inner.length * 2));
  inner.fill(0x36, 0, BLOCK);
  outer.fill(0x5c, 0, BLOCK);
  for (let i = 0; i < key.length; i++) {
    inner[i] = 0x36 ^ (key[i] as number);
    outer[i] = 0x5c ^ (key[i] as number);
  }
  inner.set(data, BLOCK);
  const innerDigest = hash('sha256', inner.subarray(0, need), 'buffer');
  inner.fill(0, 0, BLOCK);
  outer.set(innerDigest, BLOCK);
  const mac = hash('sha256', outer, 'buffer');
  outer.fill(0, 0, BLOCK);
  return mac;
}

/** Constant-time equality of two MACs; unequal lengths are simply unequal. */
export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
