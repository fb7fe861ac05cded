/**
 * Authority: run agent tools as sandboxed WebAssembly components behind one
 * capability- and policy-checked, audited gate.
 *
 * This file is the public contract. Any name exported here is public API;
 * adding one is a deliberate act (a test lists them).
 *
 * @example
 * ```ts
 * import { createRuntime } from 'authority-sandbox';
 * const rt = await createRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } } });
 * await rt.register('build/tools/word-count.wasm');
 * console.log((await rt.invoke('word-count', { text: 'hello world' })).output);
 * await rt.close();
 * ```
 * @module
 */

// The runtime
export { createRuntime, Runtime, DEFAULT_POLICY_NAME, type RuntimeOptions, type InvokeOptions, type InvokeResult, type InvokeStats, type RuntimeEvents, type Approver, type ApprovalRequest, type ApprovalDecision } from './runtime.ts';
export { AuthorityError, ErrorCode, isErrorCode, toAuthorityError, type AuthorityErrorOptions } from './errors.ts';
export { resolveDataDir, dataPaths, DEFAULT_DATA_DIR } from './data-dir.ts';

// Tools
export { DEFAULT_LIMITS, TOOL_NAME_RE, buildTool, type ToolInfo, type ToolLimits, type RegisterOptions, type BuildResult } from './registry/index.ts';
export type { PoolOptions } from './sandbox/index.ts';
export type { Denial } from './gate/index.ts';
export { HOST_OPS, type HostOp, type HostCall, type Decision } from './host-call.ts';

// Capabilities
export {
  Keyring,
  RevocationList,
  issueToken,
  attenuateToken,
  inspectToken,
  parseToken,
  verifyToken,
  prepareGrants,
  checkCapability,
  type IssueClaims,
  type CaveatInput,
  type TokenInfo,
  type VerifiedToken,
  type CapabilityKind,
  type CapabilityRequest,
  type CapabilityDecision,
} from './capability/index.ts';

// Policy and limits
export { Policy, loadPolicy, loadPolicyFile, parsePolicy, type LoadedPolicy, type PolicyRequest, type PolicyDecision } from './policy/index.ts';
export { MemoryLimitStore, type LimitStore } from './limits/index.ts';
export { RedisLimitStore, type RedisLimitStoreOptions } from './fleet/redis-store.ts';
export { Fleet, type FleetOptions, type FleetHalt, type FleetRevocation, type FleetState } from './fleet/fleet.ts';
export { connectRedis, type RedisClient, type RedisConnectionOptions } from './fleet/redis.ts';

// Audit
export { AuditLog, verifyAudit, readAuditRecords, proveRecord, verifyAuditProof, type AuditRecord, type AuditEntry, type AuditVerifyReport } from './audit/index.ts';

// Secrets
export { SecretStore, type SecretStoreOptions } from './host/index.ts';
