/**
 * Proofs a third party can check without the log: that a record is in the
 * log a signed checkpoint commits to (inclusion), and that a later checkpoint
 * extends an earlier tree size (consistency).
 * @module
 */
import fs from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { checkpointLine, parseCheckpointLine, readLatestCheckpoint, type Checkpoint } from './checkpoint.ts';
import { readLines } from './lines.ts';
import { consistencyProof, inclusionProof, leafHash, LeafList, merkleRoot, rangeHashOver, verifyConsistency, verifyInclusion } from './merkle.ts';
import { auditPaths, checkpointFileFor, type AuditLocation } from './paths.ts';
import { MAX_LINE_BYTES, parseRecordLine } from './record.ts';
import { publicKeyFrom, type AuditPublicKey } from './signing.ts';

export const INCLUSION_PROOF_TYPE = 'authority-audit/inclusion-proof';
export const CONSISTENCY_PROOF_TYPE = 'authority-audit/consistency-proof';

/** A record, its audit path, and the signed checkpoint whose root the path leads to. */
export interface InclusionProofDoc {
  type: typeof INCLUSION_PROOF_TYPE;
  v: 1;
  seq: number;
  /** The record's line without its newline: the Merkle leaf's data. */
  record: string;
  /** Hex SHA-256(0x00 || record). */
  leafHash: string;
  treeSize: number;
  /** Hex audit path, nearest sibling first (RFC 6962 PATH). */
  path: string[];
  checkpoint: Checkpoint;
  /** SPKI PEM of the key that signed the checkpoint. A proof carrying its own key proves nothing until that key is pinned. */
  publicKey: string;
}

/** Proof that the signed tree of `newSize` records extends the tree of `oldSize` records with root `oldRoot`. */
export interface ConsistencyProofDoc {
  type: typeof CONSISTENCY_PROOF_TYPE;
  v: 1;
  oldSize: number;
  oldRoot: string;
  newSize: number;
  /** Hex nodes (RFC 6962 PROOF). */
  proof: string[];
  /** The checkpoint of `newSize` records. */
  checkpoint: Checkpoint;
  publicKey: string;
}

export type AuditProofDoc = InclusionProofDoc | ConsistencyProofDoc;

export interface ProveOptions extends AuditLocation {
  /** The key to check the checkpoint with; default: the one beside the checkpoints. */
  publicKey?: KeyObject | string | undefined;
}

async function latestFor(options: ProveOptions): Promise<{ cp: Checkpoint; key: AuditPublicKey; logFile: string }> {
  const paths = auditPaths(options);
  const key = publicKeyFrom(options.publicKey ?? readKeyFile(paths.publicKeyFile));
  let origin: string | null = null;
  for await (const first of readLines(paths.logFile, 0, undefined, MAX_LINE_BYTES)) {
    const parsed = first.complete ? parseRecordLine(first.bytes) : null;
    if (parsed?.ok === true) origin = parsed.record.origin ?? null;
    break;
  }
  if (origin === null) throw new AuthorityError(ErrorCode.AUDIT_TAMPERED, `${paths.logFile} does not start with a valid genesis record`, { data: { logFile: paths.logFile } });
  const { latest } = await readLatestCheckpoint(checkpointFileFor(paths.checkpointDir, origin), key.publicKey, key.keyId);
  if (latest === null) throw new AuthorityError(ErrorCode.NOT_FOUND, 'the audit log has no checkpoint yet', { data: { checkpointDir: paths.checkpointDir } });
  return { cp: latest, key, logFile: paths.logFile };
}

function readKeyFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new AuthorityError(ErrorCode.CONFIG, `cannot read the audit public key ${file}`, { cause: e, data: { file } });
  }
}

/** Leaf hashes of the first `size` lines, and the line at `want` if asked; checked against the checkpoint. */
async function leavesUpTo(logFile: string, cp: Checkpoint, want?: number): Promise<{ leaves: LeafList; line: Buffer | null }> {
  const leaves = new LeafList();
  let line: Buffer | null = null;
  for await (const l of readLines(logFile, 0, cp.offset, MAX_LINE_BYTES)) {
    if (!l.complete || leaves.length === cp.size) break;
    if (leaves.length === want) line = l.bytes;
    leaves.push(leafHash(l.bytes));
  }
  if (leaves.length !== cp.size || merkleRoot(leaves).toString('hex') !== cp.root) {
    throw new AuthorityError(
      ErrorCode.AUDIT_TAMPERED,
      `the log's first ${cp.size} records do not match the checkpoint of ${cp.time}; run \`authority audit verify\``,
      { data: { logFile, checkpointSize: cp.size } },
    );
  }
  return { leaves, line };
}

/**
 * The inclusion proof of record `seq` against the latest checkpoint, checked
 * before it is returned. E_NOT_FOUND when no checkpoint covers `seq` yet.
 *
 * @example
 * ```ts
 * const proof = await proveRecord({ dir: '.authority' }, 42);
 * verifyAuditProof(proof, { publicKey: pinnedPem }).ok; // true
 * ```
 */
export async function proveRecord(options: ProveOptions, seq: number): Promise<InclusionProofDoc> {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'seq must be a non-negative integer', { data: { field: 'seq' } });
  const { cp, key, logFile } = await latestFor(options);
  if (seq >= cp.size) {
    throw new AuthorityError(ErrorCode.NOT_FOUND, `record ${seq} is not covered by the latest checkpoint (records 0 to ${cp.size - 1}) yet`, {
      data: { seq, checkpointSize: cp.size },
    });
  }
  const { leaves, line } = await leavesUpTo(logFile, cp, seq);
  const path = inclusionProof(seq, cp.size, rangeHashOver(leaves));
  const doc: InclusionProofDoc = {
    type: INCLUSION_PROOF_TYPE,
    v: 1,
    seq,
    record: (line as Buffer).toString('utf8'),
    leafHash: (leaves.at(seq) as Buffer).toString('hex'),
    treeSize: cp.size,
    path: path.map((p) => p.toString('hex')),
    checkpoint: cp,
    publicKey: key.publicKeyPem,
  };
  const check = verifyAuditProof(doc, { publicKey: key.publicKey });
  if (!check.ok) throw new AuthorityError(ErrorCode.INTERNAL, `built an inclusion proof that does not verify: ${check.problems.join('; ')}`);
  return doc;
}

/**
 * The consistency proof from the log's first `oldSize` records to the latest
 * checkpoint, for someone who holds an older checkpoint (or root) and wants
 * to know the log only grew since.
 */
export async function proveConsistency(options: ProveOptions, oldSize: number): Promise<ConsistencyProofDoc> {
  if (!Number.isSafeInteger(oldSize) || oldSize < 0) {
    throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'oldSize must be a non-negative integer', { data: { field: 'oldSize' } });
  }
  const { cp, key, logFile } = await latestFor(options);
  if (oldSize > cp.size) {
    throw new AuthorityError(ErrorCode.NOT_FOUND, `the latest checkpoint covers ${cp.size} records, fewer than ${oldSize}`, { data: { oldSize, checkpointSize: cp.size } });
  }
  const { leaves } = await leavesUpTo(logFile, cp);
  const hashOf = rangeHashOver(leaves);
  const doc: ConsistencyProofDoc = {
    type: CONSISTENCY_PROOF_TYPE,
    v: 1,
    oldSize,
    oldRoot: (oldSize === 0 ? merkleRoot(new LeafList()) : hashOf(0, oldSize)).toString('hex'),
    newSize: cp.size,
    proof: consistencyProof(oldSize, cp.size, hashOf).map((p) => p.toString('hex')),
    checkpoint: cp,
    publicKey: key.publicKeyPem,
  };
  const check = verifyAuditProof(doc, { publicKey: key.publicKey });
  if (!check.ok) throw new AuthorityError(ErrorCode.INTERNAL, `built a consistency proof that does not verify: ${check.problems.join('; ')}`);
  return doc;
}

export interface ProofCheck {
  ok: boolean;
  type: string | null;
  /** Problems found; empty when ok. */
  problems: string[];
  /** Key id the checkpoint was checked with, and whether that key came from the caller or from the proof itself. */
  keyId: string | null;
  keySource: 'given' | 'embedded' | null;
  checkpoint: { origin: string; size: number; root: string; time: string } | null;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Check a proof document (parsed JSON) completely: its shape, the checkpoint's
 * signature, and the Merkle proof against the checkpoint's root. Never throws
 * for a bad proof: `ok` is false and `problems` say why.
 */
export function verifyAuditProof(doc: unknown, options: { publicKey?: KeyObject | string | undefined } = {}): ProofCheck {
  const out: ProofCheck = { ok: false, type: null, problems: [], keyId: null, keySource: null, checkpoint: null };
  const problem = (m: string): ProofCheck => {
    out.problems.push(m);
    return out;
  };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return problem('the proof is not a JSON object');
  const d = doc as Record<string, unknown>;
  out.type = typeof d['type'] === 'string' ? d['type'] : null;
  if (d['type'] !== INCLUSION_PROOF_TYPE && d['type'] !== CONSISTENCY_PROOF_TYPE) return problem(`unknown proof type ${JSON.stringify(d['type'])}`);
  if (d['v'] !== 1) return problem(`unknown proof version ${JSON.stringify(d['v'])}`);

  let key: AuditPublicKey;
  try {
    if (options.publicKey !== undefined) {
      key = publicKeyFrom(options.publicKey);
      out.keySource = 'given';
    } else {
      if (typeof d['publicKey'] !== 'string') return problem('the proof carries no public key and none was given');
      key = publicKeyFrom(d['publicKey']);
      out.keySource = 'embedded';
    }
  } catch (e) {
    return problem((e as Error).message);
  }
  out.keyId = key.keyId;
  if (typeof d['checkpoint'] !== 'object' || d['checkpoint'] === null) return problem('the proof has no checkpoint');
  let cpBytes: Buffer;
  try {
    cpBytes = checkpointLine(d['checkpoint'] as Checkpoint).subarray(0, -1);
  } catch {
    return problem('the checkpoint is not JSON-representable');
  }
  const parsed = parseCheckpointLine(cpBytes, key.publicKey, key.keyId);
  if (!parsed.ok) return problem(parsed.message);
  const cp = parsed.checkpoint;
  out.checkpoint = { origin: cp.origin, size: cp.size, root: cp.root, time: cp.time };
  const root = Buffer.from(cp.root, 'hex');
  const hexList = (v: unknown): Buffer[] | null =>
    Array.isArray(v) && v.every((x) => typeof x === 'string' && HEX64.test(x)) ? v.map((x) => Buffer.from(x as string, 'hex')) : null;

  if (d['type'] === INCLUSION_PROOF_TYPE) {
    const seq = d['seq'];
    const size = d['treeSize'];
    const path = hexList(d['path']);
    if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(size)) return problem('`seq` and `treeSize` must be integers');
    if (path === null) return problem('`path` must be a list of hex SHA-256 hashes');
    if (size !== cp.size) return problem(`the proof is for a tree of ${String(size)} records, the checkpoint covers ${cp.size}`);
    if (typeof d['record'] !== 'string') return problem('the proof has no record line');
    const line = Buffer.from(d['record'], 'utf8');
    const rec = parseRecordLine(line);
    if (!rec.ok) return problem(`the record is not valid: ${rec.message}`);
    if (rec.record.seq !== seq) return problem(`the record is seq ${rec.record.seq}, the proof says ${String(seq)}`);
    const leaf = leafHash(line);
    if (d['leafHash'] !== leaf.toString('hex')) return problem('`leafHash` is not the hash of the record');
    if (!verifyInclusion(leaf, seq as number, cp.size, path, root)) return problem(`the audit path does not lead from record ${String(seq)} to the checkpoint's root`);
  } else {
    const oldSize = d['oldSize'];
    const newSize = d['newSize'];
    const proof = hexList(d['proof']);
    if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize)) return problem('`oldSize` and `newSize` must be integers');
    if (typeof d['oldRoot'] !== 'string' || !HEX64.test(d['oldRoot'])) return problem('`oldRoot` must be a hex SHA-256');
    if (proof === null) return problem('`proof` must be a list of hex SHA-256 hashes');
    if (newSize !== cp.size) return problem(`the proof is to a tree of ${String(newSize)} records, the checkpoint covers ${cp.size}`);
    if (!verifyConsistency(oldSize as number, cp.size, proof, Buffer.from(d['oldRoot'], 'hex'), root)) {
      return problem(`the proof does not show that the checkpoint's tree extends the tree of ${String(oldSize)} records with that root`);
    }
  }
  out.ok = true;
  return out;
}
