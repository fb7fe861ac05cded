import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  CompactRange,
  consistencyProof,
  EMPTY_ROOT,
  inclusionProof,
  leafHash,
  LeafList,
  merkleRoot,
  rangeHashOver,
  verifyConsistency,
  verifyInclusion,
} from '../src/audit/index.ts';
import { frontierRanges, rangeHashFromFrontier, rootFromInclusionProof } from '../src/audit/merkle.ts';

const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./fixtures/merkle/${name}`, import.meta.url), 'utf8')) as T;
const rfc = fixture<{ leaves: string[]; roots: string[] }>('rfc6962-roots.json');
const inclusionVectors = fixture<{ vectors: Array<{ leafIndex: number; treeSize: number; root: string; leafHash: string; proof: string[] }> }>('inclusion.json').vectors;
const consistencyVectors = fixture<{ vectors: Array<{ size1: number; size2: number; root1: string; root2: string; proof: string[] }> }>('consistency.json').vectors;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s, 'hex');
const rfcLeaves = rfc.leaves.map((l) => leafHash(unhex(l)));

// An independent, naive reading of RFC 6962 §2.1: everything recomputed from the full leaf list by slicing.
const sha = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const k = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);
function naiveRoot(d: Buffer[]): Buffer {
  if (d.length === 0) return sha();
  if (d.length === 1) return d[0] as Buffer;
  const s = k(d.length);
  return sha(Buffer.from([1]), naiveRoot(d.slice(0, s)), naiveRoot(d.slice(s)));
}
function naivePath(m: number, d: Buffer[]): Buffer[] {
  if (d.length <= 1) return [];
  const s = k(d.length);
  return m < s ? [...naivePath(m, d.slice(0, s)), naiveRoot(d.slice(s))] : [...naivePath(m - s, d.slice(s)), naiveRoot(d.slice(0, s))];
}
function naiveSubproof(m: number, d: Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [naiveRoot(d)];
  const s = k(d.length);
  return m <= s ? [...naiveSubproof(m, d.slice(0, s), b), naiveRoot(d.slice(s))] : [...naiveSubproof(m - s, d.slice(s), false), naiveRoot(d.slice(0, s))];
}
const naiveConsistency = (m: number, d: Buffer[]): Buffer[] => (m === 0 || m === d.length ? [] : naiveSubproof(m, d, true));
const leavesOf = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`record ${i}`)));

test('the naive reference agrees with k = largest power of two below n', () => {
  assert.deepEqual([2, 3, 4, 5, 8, 9].map(k), [1, 2, 2, 4, 4, 8]);
});

test('roots of the RFC 6962 reference leaves match the published roots for sizes 0 to 8', () => {
  assert.equal(hex(EMPTY_ROOT), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  for (let n = 0; n <= 8; n++) {
    assert.equal(hex(merkleRoot(rfcLeaves.slice(0, n))), rfc.roots[n], `merkleRoot of ${n}`);
    const range = new CompactRange();
    for (const l of rfcLeaves.slice(0, n)) range.append(l);
    assert.equal(hex(range.root()), rfc.roots[n], `compact range of ${n}`);
    assert.equal(hex(naiveRoot(rfcLeaves.slice(0, n))), rfc.roots[n], `naive root of ${n}`);
  }
});

test('published inclusion proofs verify, and ours for the same leaf are identical', () => {
  for (const v of inclusionVectors) {
    const proof = v.proof.map(unhex);
    assert.ok(verifyInclusion(unhex(v.leafHash), v.leafIndex, v.treeSize, proof, unhex(v.root)), `leaf ${v.leafIndex} of ${v.treeSize}`);
    assert.equal(hex(rfcLeaves[v.leafIndex] as Buffer), v.leafHash);
    const ours = inclusionProof(v.leafIndex, v.treeSize, rangeHashOver(rfcLeaves));
    assert.deepEqual(ours.map(hex), v.proof, `our proof for leaf ${v.leafIndex} of ${v.treeSize}`);
  }
});

test('published consistency proofs verify, and ours for the same sizes are identical', () => {
  for (const v of consistencyVectors) {
    const proof = v.proof.map(unhex);
    assert.ok(verifyConsistency(v.size1, v.size2, proof, unhex(v.root1), unhex(v.root2)), `${v.size1} -> ${v.size2}`);
    const ours = consistencyProof(v.size1, v.size2, rangeHashOver(rfcLeaves));
    assert.deepEqual(ours.map(hex), v.proof, `our proof ${v.size1} -> ${v.size2}`);
  }
});

test('every altered published inclusion proof is rejected', () => {
  for (const v of inclusionVectors) {
    const leaf = unhex(v.leafHash);
    const root = unhex(v.root);
    const proof = v.proof.map(unhex);
    const rejects = (l: Buffer, i: number, n: number, p: Buffer[], r: Buffer, what: string): void =>
      assert.equal(verifyInclusion(l, i, n, p, r), false, `${what} (leaf ${v.leafIndex} of ${v.treeSize})`);
    rejects(sha(Buffer.from('wrong leaf')), v.leafIndex, v.treeSize, proof, root, 'wrong leaf');
    rejects(leaf, v.leafIndex, v.treeSize, proof, sha(Buffer.from('random root')), 'random root');
    rejects(leaf, v.leafIndex, v.treeSize, proof, EMPTY_ROOT, 'empty root');
    rejects(leaf, v.leafIndex + 1, v.treeSize, proof, root, 'index + 1');
    if (v.leafIndex > 0) rejects(leaf, v.leafIndex - 1, v.treeSize, proof, root, 'index - 1');
    rejects(leaf, v.leafIndex ^ 2, v.treeSize, proof, root, 'index ^ 2');
    rejects(leaf, v.leafIndex, v.treeSize * 2, proof, root, 'size * 2');
    if (v.treeSize > 1) rejects(leaf, v.leafIndex, Math.floor(v.treeSize / 2), proof, root, 'size / 2');
    rejects(leaf, v.leafIndex, v.treeSize, [...proof, root], root, 'trailing root');
    rejects(leaf, v.leafIndex, v.treeSize, [root, ...proof], root, 'preceding root');
    rejects(leaf, v.leafIndex, v.treeSize, [...proof, Buffer.alloc(32)], root, 'trailing garbage');
    if (proof.length > 0) rejects(leaf, v.leafIndex, v.treeSize, proof.slice(1), root, 'removed component');
    for (let i = 0; i < proof.length; i++) {
      for (const bit of [0, 3, 255]) {
        const bad = proof.map((p) => Buffer.from(p));
        const b = bad[i] as Buffer;
        b.writeUInt8((b.readUInt8(bit >> 3) ^ (1 << (bit & 7))) & 0xff, bit >> 3);
        rejects(leaf, v.leafIndex, v.treeSize, bad, root, `bit ${bit} of proof[${i}]`);
      }
    }
  }
});

test('every altered published consistency proof is rejected', () => {
  for (const v of consistencyVectors) {
    const proof = v.proof.map(unhex);
    const r1 = unhex(v.root1);
    const r2 = unhex(v.root2);
    const rejects = (m: number, n: number, p: Buffer[], a: Buffer, b: Buffer, what: string): void =>
      assert.equal(verifyConsistency(m, n, p, a, b), false, `${what} (${v.size1} -> ${v.size2})`);
    rejects(v.size1, v.size2, proof, sha(Buffer.from('wrong')), r2, 'wrong root1');
    rejects(v.size1, v.size2, proof, r1, sha(Buffer.from('wrong')), 'wrong root2');
    if (v.size1 !== v.size2) rejects(v.size1, v.size2, proof, r2, r1, 'swapped roots');
    rejects(v.size1 + 1, v.size2, proof, r1, r2, 'size1 + 1');
    rejects(v.size1, v.size2 * 2, proof, r1, r2, 'size2 * 2');
    if (v.size2 > 1) rejects(v.size1, Math.floor(v.size2 / 2), proof, r1, r2, 'size2 / 2');
    rejects(v.size1, v.size2, [...proof, r1], r1, r2, 'trailing root1');
    rejects(v.size1, v.size2, [r1, ...proof], r1, r2, 'preceding root1');
    rejects(v.size1, v.size2, [...proof, Buffer.alloc(32)], r1, r2, 'trailing garbage');
    if (proof.length > 0) {
      rejects(v.size1, v.size2, [], r1, r2, 'empty proof');
      rejects(v.size1, v.size2, proof.slice(0, -1), r1, r2, 'truncated proof');
    }
    for (let i = 0; i < proof.length; i++) {
      const bad = proof.map((p) => Buffer.from(p));
      const b = bad[i] as Buffer;
      b.writeUInt8(b.readUInt8(0) ^ 0x10, 0);
      rejects(v.size1, v.size2, bad, r1, r2, `modified proof[${i}]`);
    }
  }
});

test('inclusion proofs for every leaf of every tree up to 64 leaves equal the naive ones and verify', () => {
  const all = leavesOf(64);
  for (let n = 1; n <= 64; n++) {
    const d = all.slice(0, n);
    const root = naiveRoot(d);
    assert.equal(hex(merkleRoot(d)), hex(root), `root of ${n}`);
    const hashOf = rangeHashOver(d);
    for (let m = 0; m < n; m++) {
      const proof = inclusionProof(m, n, hashOf);
      assert.deepEqual(proof.map(hex), naivePath(m, d).map(hex), `path of ${m} in ${n}`);
      assert.ok(verifyInclusion(d[m] as Buffer, m, n, proof, root), `verify ${m} in ${n}`);
      if (n > 1) assert.equal(verifyInclusion(d[(m + 1) % n] as Buffer, m, n, proof, root), false, `another leaf at ${m} in ${n}`);
      assert.equal(verifyInclusion(d[m] as Buffer, m, n * 2, proof, root), false, `${m} in a tree twice as large as ${n}`);
    }
  }
});

test('consistency proofs between every pair of sizes up to 64 equal the naive ones and verify', () => {
  const all = leavesOf(64);
  for (let n = 0; n <= 64; n++) {
    const d = all.slice(0, n);
    const newRoot = naiveRoot(d);
    const hashOf = rangeHashOver(d);
    for (let m = 0; m <= n; m++) {
      const oldRoot = naiveRoot(d.slice(0, m));
      const proof = consistencyProof(m, n, hashOf);
      assert.deepEqual(proof.map(hex), naiveConsistency(m, d).map(hex), `proof ${m} -> ${n}`);
      assert.ok(verifyConsistency(m, n, proof, oldRoot, newRoot), `verify ${m} -> ${n}`);
      if (m > 0 && m < n) {
        // A tree that was rewritten rather than extended: change an old leaf.
        const rewritten = d.slice();
        rewritten[m - 1] = leafHash(Buffer.from('rewritten'));
        assert.equal(verifyConsistency(m, n, consistencyProof(m, n, rangeHashOver(rewritten)), oldRoot, naiveRoot(rewritten)), false, `rewrite ${m} -> ${n}`);
      }
    }
  }
});

test('proofs hold for sizes around powers of two well past 64', () => {
  const all = leavesOf(1025);
  const hashOf = rangeHashOver(all);
  for (const n of [127, 128, 129, 255, 256, 257, 1023, 1024, 1025]) {
    const d = all.slice(0, n);
    const root = merkleRoot(d);
    assert.equal(hex(root), hex(naiveRoot(d)));
    for (const m of [0, 1, n >> 1, n - 2, n - 1]) {
      assert.ok(verifyInclusion(d[m] as Buffer, m, n, inclusionProof(m, n, hashOf), root), `inclusion ${m} of ${n}`);
    }
    for (const m of [1, 2, 64, 127, 128, n - 1]) {
      if (m > n) continue;
      assert.ok(verifyConsistency(m, n, consistencyProof(m, n, hashOf), merkleRoot(d.slice(0, m)), root), `consistency ${m} -> ${n}`);
    }
  }
});

test('the empty tree: no inclusion proof, and consistency from size 0 needs an empty proof', () => {
  assert.throws(() => inclusionProof(0, 0, rangeHashOver([])), /outside a tree of 0/);
  assert.equal(verifyInclusion(EMPTY_ROOT, 0, 0, [], EMPTY_ROOT), false);
  assert.deepEqual(consistencyProof(0, 0, rangeHashOver([])), []);
  assert.ok(verifyConsistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT));
  assert.equal(verifyConsistency(0, 0, [], EMPTY_ROOT, sha(Buffer.from('x'))), false);
  const d = leavesOf(5);
  assert.deepEqual(consistencyProof(0, 5, rangeHashOver(d)), []);
  assert.ok(verifyConsistency(0, 5, [], EMPTY_ROOT, merkleRoot(d)));
  assert.equal(verifyConsistency(0, 5, [d[0] as Buffer], EMPTY_ROOT, merkleRoot(d)), false, 'a non-empty proof from size 0');
  assert.equal(verifyConsistency(5, 4, [], merkleRoot(d), merkleRoot(d.slice(0, 4))), false, 'a shrinking tree');
});

test('inclusion verification rejects malformed input instead of throwing', () => {
  const d = leavesOf(4);
  const root = merkleRoot(d);
  const proof = inclusionProof(1, 4, rangeHashOver(d));
  assert.equal(verifyInclusion(d[1] as Buffer, -1, 4, proof, root), false);
  assert.equal(verifyInclusion(d[1] as Buffer, 1.5, 4, proof, root), false);
  assert.equal(verifyInclusion(d[1] as Buffer, 4, 4, proof, root), false);
  assert.equal(verifyInclusion((d[1] as Buffer).subarray(0, 31), 1, 4, proof, root), false);
  assert.equal(verifyInclusion(d[1] as Buffer, 1, 4, [Buffer.alloc(31), ...proof.slice(1)], root), false);
  assert.equal(rootFromInclusionProof(d[1] as Buffer, 1, 4, proof)?.toString('hex'), hex(root));
});

test('a compact range appends in O(log n) state and matches the naive root at every size to 300', () => {
  const d = leavesOf(300);
  const range = new CompactRange();
  for (let n = 1; n <= 300; n++) {
    range.append(d[n - 1] as Buffer);
    assert.equal(hex(range.root()), hex(naiveRoot(d.slice(0, n))), `size ${n}`);
    const ranges = frontierRanges(n);
    assert.equal(range.nodes().length, ranges.length);
    // Each frontier node is the root of its subtree, largest first.
    range.nodes().forEach((node, i) => {
      const [s, e] = ranges[i] as [number, number];
      assert.equal(hex(node), hex(naiveRoot(d.slice(s, e))), `node ${i} of size ${n}`);
    });
  }
  const resumed = new CompactRange(range.size, range.nodes());
  resumed.append(leafHash(Buffer.from('next')));
  range.append(leafHash(Buffer.from('next')));
  assert.equal(hex(resumed.root()), hex(range.root()));
  assert.throws(() => new CompactRange(5, [EMPTY_ROOT]), /has 2 nodes/);
});

test('consistency proofs built from an old frontier and the new leaves equal those built from all leaves', () => {
  const d = leavesOf(40);
  for (let m = 1; m <= 40; m++) {
    const old = new CompactRange();
    for (const l of d.slice(0, m)) old.append(l);
    const fresh = new LeafList();
    for (let n = m; n <= 40; n++) {
      if (n > m) fresh.push(d[n - 1] as Buffer);
      const fromFrontier = consistencyProof(m, n, rangeHashFromFrontier(old, fresh));
      assert.deepEqual(fromFrontier.map(hex), naiveConsistency(m, d.slice(0, n)).map(hex), `${m} -> ${n}`);
    }
  }
});

test('a leaf list keeps every hash as it grows past its first allocation', () => {
  const list = new LeafList();
  const d = leavesOf(3000);
  for (const l of d) list.push(l);
  assert.equal(list.length, 3000);
  assert.equal(hex(list.at(0) as Buffer), hex(d[0] as Buffer));
  assert.equal(hex(list.at(2999) as Buffer), hex(d[2999] as Buffer));
  assert.equal(list.at(3000), undefined);
  assert.equal(hex(merkleRoot(list)), hex(naiveRoot(d)));
});
