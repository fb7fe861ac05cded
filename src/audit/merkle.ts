/**
 * The RFC 6962 / RFC 9162 Merkle tree over audit records: leaf and node
 * hashing, an incremental compact range, inclusion and consistency proofs and
 * their verification.
 *
 * leaf hash = SHA-256(0x00 || leaf data), node hash = SHA-256(0x01 || left || right),
 * the root of the empty tree = SHA-256(""). A tree of n leaves splits at k,
 * the largest power of two below n: MTH(D[n]) = node(MTH(D[0:k]), MTH(D[k:n])).
 * @module
 */
import { createHash, hash } from 'node:crypto';
import { AuthorityError, ErrorCode } from '../errors.ts';

export const HASH_BYTES = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** The root of the empty tree: SHA-256 of the empty string. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

// One-shot hashing over a reused scratch buffer: a stateful Hash object per
// node costs more than the hashing itself, and every append hashes a leaf
// and its share of nodes. Calls are synchronous, so the buffers are never shared.
let leafScratch = Buffer.alloc(4096);
const nodeScratch = Buffer.alloc(65);

/** SHA-256(0x00 || data); a string is hashed as its UTF-8 bytes. */
export function leafHash(data: Uint8Array | string): Buffer {
  if (typeof data === 'string') return createHash('sha256').update(LEAF_PREFIX).update(data).digest();
  const need = data.length + 1;
  if (leafScratch.length < need) leafScratch = Buffer.alloc(Math.max(need, leafScratch.length * 2));
  leafScratch[0] = 0x00;
  leafScratch.set(data, 1);
  return hash('sha256', leafScratch.subarray(0, need), 'buffer');
}

/** SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== 32 || right.length !== 32) return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
  nodeScratch[0] = 0x01;
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 33);
  return hash('sha256', nodeScratch, 'buffer');
}

/** The largest power of two strictly below n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function assertSize(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${name} must be a non-negative integer`, { data: { field: name } });
  }
}

/**
 * MTH over a range of leaf hashes, hashed as a tree of its own: the hash of
 * leaves [start, end) of a tree always means this (RFC 6962 §2.1).
 */
export type RangeHash = (start: number, end: number) => Buffer;

/** Leaf hashes by index: an array of hashes, or a LeafList. */
export interface LeafSource {
  readonly length: number;
  at(index: number): Uint8Array | undefined;
}

/** Leaf hashes packed in one growing buffer (no object per leaf). */
export class LeafList implements LeafSource {
  #buf = Buffer.allocUnsafe(HASH_BYTES * 1024);
  #n = 0;

  get length(): number {
    return this.#n;
  }

  push(hash: Uint8Array): void {
    if ((this.#n + 1) * HASH_BYTES > this.#buf.length) {
      const bigger = Buffer.allocUnsafe(this.#buf.length * 2);
      this.#buf.copy(bigger, 0, 0, this.#n * HASH_BYTES);
      this.#buf = bigger;
    }
    this.#buf.set(hash, this.#n * HASH_BYTES);
    this.#n += 1;
  }

  at(index: number): Buffer | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.#n) return undefined;
    return this.#buf.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES);
  }

  clear(): void {
    this.#n = 0;
  }
}

/** A RangeHash over leaf hashes held in memory; `offset` is the tree index of `leaves.at(0)`. */
export function rangeHashOver(leaves: LeafSource, offset = 0): RangeHash {
  const get = (start: number, end: number): Buffer => {
    const n = end - start;
    if (n <= 0 || start < offset || end - offset > leaves.length) {
      throw new AuthorityError(ErrorCode.INTERNAL, `leaf range [${start}, ${end}) is not available`);
    }
    if (n === 1) return Buffer.from(leaves.at(start - offset) as Uint8Array);
    const k = splitPoint(n);
    return nodeHash(get(start, start + k), get(start + k, end));
  };
  return get;
}

/** The Merkle tree hash of a list of leaf hashes (EMPTY_ROOT for none). */
export function merkleRoot(leafHashes: LeafSource): Buffer {
  const range = new CompactRange();
  for (let i = 0; i < leafHashes.length; i++) range.append(leafHashes.at(i) as Uint8Array);
  return range.root();
}

/**
 * The "frontier" of a tree of `size` leaves: the roots of its perfect
 * subtrees, largest (leftmost) first, one per set bit of `size`. Appending a
 * leaf merges equal-sized neighbours, so appends cost O(log n) amortised O(1)
 * hashes and the state is at most 53 hashes.
 */
export class CompactRange {
  #size: number;
  #nodes: Buffer[];

  constructor(size = 0, nodes: readonly Uint8Array[] = []) {
    assertSize('size', size);
    if (nodes.length !== popcount(size)) {
      throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `a compact range of size ${size} has ${popcount(size)} nodes, not ${nodes.length}`);
    }
    this.#size = size;
    this.#nodes = nodes.map((n) => Buffer.from(n));
  }

  get size(): number {
    return this.#size;
  }

  /** A copy of the frontier hashes, largest subtree first. */
  nodes(): Buffer[] {
    return this.#nodes.slice();
  }

  /** Subtree boundaries of the frontier: [start, end) of each node, in order. */
  ranges(): Array<[number, number]> {
    return frontierRanges(this.#size);
  }

  append(leaf: Uint8Array): void {
    let h: Buffer = Buffer.from(leaf);
    let s = this.#size;
    // Each trailing 1 bit of the old size is a subtree as large as the one being built: merge it.
    while (s % 2 === 1) {
      const left = this.#nodes.pop() as Buffer;
      h = nodeHash(left, h);
      s = (s - 1) / 2;
    }
    this.#nodes.push(h);
    this.#size += 1;
  }

  root(): Buffer {
    return rootFromFrontier(this.#nodes);
  }

  clone(): CompactRange {
    return new CompactRange(this.#size, this.#nodes);
  }
}

/** The root of a tree from its frontier: fold right to left. */
export function rootFromFrontier(nodes: readonly Uint8Array[]): Buffer {
  if (nodes.length === 0) return Buffer.from(EMPTY_ROOT);
  let r: Buffer = Buffer.from(nodes[nodes.length - 1] as Uint8Array);
  for (let i = nodes.length - 2; i >= 0; i--) r = nodeHash(nodes[i] as Uint8Array, r);
  return r;
}

function popcount(n: number): number {
  let c = 0;
  while (n > 0) {
    c += n % 2;
    n = Math.floor(n / 2);
  }
  return c;
}

/** [start, end) of each perfect subtree in the frontier of a tree of `size` leaves. */
export function frontierRanges(size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let bit = 1;
  while (bit * 2 <= size) bit *= 2;
  let start = 0;
  for (; bit >= 1; bit /= 2) {
    if (start + bit <= size) {
      out.push([start, start + bit]);
      start += bit;
    }
  }
  return out;
}

function isPowerOfTwo(n: number): boolean {
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}

/**
 * The inclusion proof (audit path) of leaf `index` in the tree of `size`
 * leaves, RFC 6962 §2.1.1 PATH(m, D[n]), nearest sibling first.
 */
export function inclusionProof(index: number, size: number, hashOf: RangeHash): Buffer[] {
  assertSize('index', index);
  assertSize('size', size);
  if (index >= size) {
    throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `leaf ${index} is outside a tree of ${size}`, { data: { field: 'index' } });
  }
  const path: Buffer[] = [];
  // Walk down from the root, collecting the sibling of each subtree the leaf is in.
  const walk = (m: number, start: number, end: number): void => {
    const n = end - start;
    if (n <= 1) return;
    const k = splitPoint(n);
    if (m < k) {
      walk(m, start, start + k);
      path.push(hashOf(start + k, end));
    } else {
      walk(m - k, start + k, end);
      path.push(hashOf(start, start + k));
    }
  };
  walk(index, 0, size);
  return path;
}

/**
 * The consistency proof between the tree of `oldSize` leaves and that of
 * `newSize` leaves, RFC 6962 §2.1.2 PROOF(m, D[n]).
 * Empty when the sizes are equal or `oldSize` is 0.
 */
export function consistencyProof(oldSize: number, newSize: number, hashOf: RangeHash): Buffer[] {
  assertSize('oldSize', oldSize);
  assertSize('newSize', newSize);
  if (oldSize > newSize) {
    throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `old size ${oldSize} is larger than new size ${newSize}`, { data: { field: 'oldSize' } });
  }
  if (oldSize === 0 || oldSize === newSize) return [];
  const proof: Buffer[] = [];
  const sub = (m: number, start: number, end: number, complete: boolean): void => {
    const n = end - start;
    if (m === n) {
      if (!complete) proof.push(hashOf(start, end));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, start, start + k, complete);
      proof.push(hashOf(start + k, end));
    } else {
      sub(m - k, start + k, end, false);
      proof.push(hashOf(start, start + k));
    }
  };
  sub(oldSize, 0, newSize, true);
  return proof;
}

/**
 * A RangeHash for consistency proofs from an old tree to a newer one when only
 * the old tree's frontier and the leaves appended since are known: every node
 * such a proof needs is either a frontier subtree of the old tree or lies
 * wholly among the new leaves.
 */
export function rangeHashFromFrontier(old: CompactRange, newLeaves: LeafSource): RangeHash {
  const oldSize = old.size;
  const frontier = old.nodes();
  const ranges = old.ranges();
  const fresh = rangeHashOver(newLeaves, oldSize);
  return (start, end) => {
    if (start >= oldSize) return fresh(start, end);
    const i = ranges.findIndex(([s, e]) => s === start && e === end);
    if (i < 0) throw new AuthorityError(ErrorCode.INTERNAL, `subtree [${start}, ${end}) is not in the frontier of a tree of ${oldSize}`);
    return frontier[i] as Buffer;
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * The root an inclusion proof leads to, RFC 9162 §2.1.3.2, or null when the
 * proof cannot belong to a tree of that size (too long, too short, index out
 * of range).
 */
export function rootFromInclusionProof(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[]): Buffer | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  if (leaf.length !== HASH_BYTES || proof.some((p) => p.length !== HASH_BYTES)) return null;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** Whether `proof` shows leaf hash `leaf` at `index` in the tree of `size` with root `root` (RFC 9162 §2.1.3.2). */
export function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  const r = rootFromInclusionProof(leaf, index, size, proof);
  return r !== null && bytesEqual(r, root);
}

/**
 * Whether `proof` shows that the tree of `newSize` leaves with root `newRoot`
 * extends the tree of `oldSize` leaves with root `oldRoot` (RFC 9162 §2.1.4.2).
 * Equal sizes need an empty proof and equal roots; from size 0 any tree
 * extends the empty one and the proof must be empty.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  proof: readonly Uint8Array[],
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
): boolean {
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || newSize < oldSize) return false;
  if (proof.some((p) => p.length !== HASH_BYTES)) return false;
  if (oldSize === newSize) return proof.length === 0 && bytesEqual(oldRoot, newRoot);
  if (oldSize === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  let path = proof;
  // A power-of-two old tree is itself a node of the new one; its root opens the path.
  if (isPowerOfTwo(oldSize)) path = [oldRoot, ...proof];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr: Buffer = Buffer.from(path[0] as Uint8Array);
  let sr: Buffer = Buffer.from(path[0] as Uint8Array);
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && bytesEqual(fr, oldRoot) && bytesEqual(sr, newRoot);
}
