/**
 * The audit log: durable before the reply, hash-chained, Merkle-anchored by
 * signed checkpoints, so that a changed, removed, reordered or inserted record,
 * a cut tail and a restored older copy all show. Its own channel: never pino.
 * See docs/audit.md.
 * @module
 */
export { AuditLog } from './log.ts';
export type { AuditDurability, AuditLogOptions, AuditLogStats, AuditReceipt } from './log.ts';
export { canonicalJson, hashRequest, isSha256Hex, sha256Hex } from './canonical-json.ts';
export type { Sha256Hex } from './canonical-json.ts';
export { AUDIT_KINDS } from './record.ts';
export type { AuditDetail, AuditDetailValue, AuditEntry, AuditKind, AuditRecord, KnownAuditKind } from './record.ts';
export type { Checkpoint } from './checkpoint.ts';
export { verifyAudit } from './verify.ts';
export type { AuditProblem, AuditProblemCode, AuditVerifyReport, VerifyAuditOptions } from './verify.ts';
export { proveConsistency, proveRecord, verifyAuditProof } from './proof.ts';
export type { AuditProofDoc, ConsistencyProofDoc, InclusionProofDoc, ProofCheck, ProveOptions } from './proof.ts';
export { followAuditRecords, matchesFilter, readAuditRecords, tailAuditRecords } from './reader.ts';
export type { AuditLine, AuditRecordFilter } from './reader.ts';
export { auditPaths } from './paths.ts';
export type { AuditLocation, AuditPaths } from './paths.ts';
export type { AuditIo } from './io.ts';
export { nodeAuditIo } from './io.ts';
export {
  CompactRange,
  consistencyProof,
  EMPTY_ROOT,
  inclusionProof,
  leafHash,
  LeafList,
  merkleRoot,
  nodeHash,
  rangeHashOver,
  verifyConsistency,
  verifyInclusion,
} from './merkle.ts';
export type { LeafSource, RangeHash } from './merkle.ts';
