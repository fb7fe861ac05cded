/**
 * Capability tokens: HMAC-SHA256 signed, attenuable offline, revocable, and
 * checked at every host call. See docs/capabilities.md.
 *
 * @example
 * ```ts
 * import { Keyring, RevocationList, issueToken, attenuateToken, prepareGrants, checkCapability } from './capability/index.ts';
 * const keyring = Keyring.fromDataDir(dataDir, { create: true });
 * const revocations = RevocationList.fromDataDir(dataDir);
 * const token = issueToken(keyring, { kind: 'fs', resource: '/data/**', methods: ['read', 'list'], ttlMs: 3_600_000 });
 * const child = attenuateToken(token, { resource: '/data/reports/**', methods: ['read'] });
 * const grants = prepareGrants(keyring, [child]);
 * checkCapability(grants, { kind: 'fs', resource: '/data/reports/q1.csv', method: 'read' }, { runId, revocations }); // allow
 * ```
 * @module
 */
export { METHODS, KINDS, type CapabilityKind, type Rate, type KeyedRate } from './claims.ts';
export { TEXT_PREFIX, MAX_CAVEATS } from './encoding.ts';
export { Keyring, KEYS_ENV, type KeyInfo, type KeyInput, type KeyStatus, type KeyringSource, type KeyringFileOptions, type KeyringLoadOptions } from './keyring.ts';
export {
  RevocationList,
  type RevocationChecker,
  type RevocationEntry,
  type RevocationHit,
  type RevocationListOptions,
  type RevocationType,
} from './revocation.ts';
export {
  CLOCK_SKEW_MS,
  ParsedToken,
  attenuateToken,
  inspectToken,
  issueToken,
  parseToken,
  verifyToken,
  type CaveatInput,
  type EffectiveClaims,
  type IssueClaims,
  type LinkClaims,
  type RootClaims,
  type TokenInfo,
  type VerifiedToken,
  type VerifyContext,
} from './token.ts';
export {
  GrantSet,
  checkCapability,
  prepareGrants,
  requestForHostCall,
  type CapabilityDecision,
  type CapabilityRequest,
  type GrantSummary,
} from './grants.ts';
export { MINIMATCH_OPTIONS, normalizePattern } from './patterns.ts';
export { formatRate, parseDuration, parseRate, parseTime } from './units.ts';
