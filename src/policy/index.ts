/**
 * The deployment policy: the most the operator allows, whatever capability
 * tokens say. Deny by default; every decision carries its reason.
 * @module
 */
export { parsePolicy, loadPolicy, loadPolicyFile, formatIssue, MAX_POLICY_BYTES, type LoadOptions, type LoadedPolicy } from './load.ts';
export {
  Policy,
  toPolicyRequest,
  DEFAULT_CAPS,
  FS_OPS,
  POLICY_OPS,
  type FsOp,
  type PolicyOp,
  type PolicyRequest,
  type PolicyDecision,
  type PolicyCaps,
  type PolicyIssue,
  type PolicyApprovals,
  type ApprovalRule,
  type ApprovalSubject,
} from './policy.ts';
export { PolicySchema, POLICY_VERSION, DEFAULT_APPROVAL_TIMEOUT_MS, MAX_RULES, TOOL_NAME, SECRET_NAME, CAP_CEILINGS, parseBytes } from './schema.ts';
export { decideTrust, trustedKeys, NO_TRUST, type ToolTrust, type TrustRule, type TrustSubject, type TrustDecision } from './trust.ts';
export { canonicalisePath, resolvePath, resolvePathSync, MAX_PATH_BYTES, MAX_SYMLINK_HOPS, type ResolveOptions } from './paths.ts';
export { canonicaliseUrl, canonicaliseHostName, isLoopbackName, MAX_URL_LENGTH, type CanonicalUrl, type HostKind } from './url.ts';
export {
  parseIp,
  formatIp,
  sameIp,
  unmapIp,
  parseCidr,
  formatCidr,
  cidrContains,
  classifyIp,
  ADDRESS_CLASSES,
  type IpAddress,
  type Cidr,
  type AddressClass,
  type AddressInfo,
  type Embedding,
} from './ip.ts';
export { GLOB_LIMITS, compilePathGlob, type CompiledPathGlob, type PathAlternative } from './glob.ts';
export { parseNetRule, parseHostPattern, type NetRule, type HostPattern } from './net-rules.ts';
