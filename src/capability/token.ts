/**
 * Capability tokens: issue, parse, inspect, verify, attenuate.
 *
 * A token is a root block signed with a keyring key, then any number of
 * caveats, each chained from the previous MAC (macaroon style):
 * `mac_0 = HMAC(key, root)`, `mac_i = HMAC(mac_{i-1}, caveat_i)`. Only the last
 * MAC travels, so a holder can add a caveat without the key but can never
 * remove one. A request must satisfy the root and every caveat.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { z } from 'zod';
import { AuthorityError, ErrorCode } from '../errors.ts';
import {
  ALL_METHODS,
  KINDS,
  TOKEN_ID_BYTES,
  TOKEN_ID_RE,
  maskToMethods,
  methodsToMask,
  rateIsHigher,
  type CapabilityKind,
  type KeyedRate,
  type Rate,
} from './claims.ts';
import {
  MAX_CAVEATS,
  assembleToken,
  bytesToText,
  checkWireRanges,
  decodeToken,
  encodeCaveat,
  encodeRoot,
  textToBytes,
  type DecodedToken,
  type LinkFields,
  type RootFields,
} from './encoding.ts';
import { hmacSha256, macEqual } from './hmac.ts';
import type { Keyring } from './keyring.ts';
import { normalizePattern, patternProblem } from './patterns.ts';
import type { RevocationChecker } from './revocation.ts';

/**
 * How far in the future a token's issued-at may be before it is refused
 * (E_CAP_NOT_YET_VALID): tolerance for clocks that disagree a little.
 */
export const CLOCK_SKEW_MS = 60_000;

/** What one link of the chain restricts, as shown to people (methods by name). */
export interface LinkClaims {
  readonly tokenId: string;
  readonly resource?: string | undefined;
  readonly methods?: readonly string[] | undefined;
  readonly notBefore?: number | undefined;
  readonly expiresAt?: number | undefined;
  readonly rate?: Rate | undefined;
  readonly runId?: string | undefined;
}

export interface RootClaims extends LinkClaims {
  readonly resource: string;
  readonly methods: readonly string[];
  readonly notBefore: number;
  readonly expiresAt: number;
}

/** What the whole chain allows: the intersection of the root and every caveat. */
export interface EffectiveClaims {
  /** Every pattern a request's resource must match (root first). */
  readonly resources: readonly string[];
  readonly methods: readonly string[];
  /** Valid when `notBefore <= now < expiresAt`. */
  readonly notBefore: number;
  readonly expiresAt: number;
  /** Every rate in the chain, each keyed by the link that declared it; the limiter enforces all of them. */
  readonly rates: readonly KeyedRate[];
  /** Distinct run bindings; the token is valid only in a run whose id equals each of them. */
  readonly runIds: readonly string[];
}

/** Everything a token says, without its MAC (so never enough to rebuild the token). */
export interface TokenInfo {
  readonly format: 'acap1';
  readonly kind: CapabilityKind;
  readonly keyId: string;
  /** This token's id: the root's, or the last caveat's. */
  readonly tokenId: string;
  readonly rootTokenId: string;
  readonly issuedAt: number;
  readonly root: RootClaims;
  readonly caveats: readonly LinkClaims[];
  /** Token ids from the root to this token: revoking any of them revokes this token. */
  readonly chain: readonly string[];
  readonly effective: EffectiveClaims;
}

interface Internals {
  decoded: DecodedToken;
  methodMask: number;
  notBefore: number;
  expiresAt: number;
  runIds: readonly string[];
}
// Module-private access to a token's internals (set in ParsedToken's static block).
let internalsOf: (token: ParsedToken) => Internals;
// Only parseToken may build a ParsedToken: claims must come from the bytes the MAC covers.
const CONSTRUCT = Symbol('ParsedToken');
const NO_RUNS: readonly string[] = Object.freeze([]);

function linkClaims(kind: CapabilityKind, f: LinkFields): LinkClaims {
  const out: {
    tokenId: string;
    resource?: string;
    methods?: readonly string[];
    notBefore?: number;
    expiresAt?: number;
    rate?: Rate;
    runId?: string;
  } = { tokenId: f.tokenId };
  if (f.resource !== undefined) out.resource = f.resource;
  if (f.methods !== undefined) out.methods = Object.freeze(maskToMethods(kind, f.methods));
  if (f.notBefore !== undefined) out.notBefore = f.notBefore;
  if (f.expiresAt !== undefined) out.expiresAt = f.expiresAt;
  if (f.rate !== undefined) out.rate = Object.freeze({ count: f.rate.count, periodMs: f.rate.periodMs });
  if (f.runId !== undefined) out.runId = f.runId;
  return Object.freeze(out);
}

/**
 * A token that parsed (structure and encoding only: not yet verified).
 * Frozen; its MAC and bytes stay private, so logging or serialising it never
 * reveals the bearer credential.
 */
export class ParsedToken implements TokenInfo {
  readonly format = 'acap1' as const;
  readonly kind: CapabilityKind;
  readonly keyId: string;
  readonly tokenId: string;
  readonly rootTokenId: string;
  readonly issuedAt: number;
  readonly chain: readonly string[];
  #internals: Internals;
  // The views below are built on first use: verification needs none of them.
  #root: RootClaims | undefined;
  #caveats: readonly LinkClaims[] | undefined;
  #effective: EffectiveClaims | undefined;

  /** @internal Use {@link parseToken}; any other caller gets an error. */
  constructor(decoded: DecodedToken, construct?: symbol) {
    if (construct !== CONSTRUCT) throw new AuthorityError(ErrorCode.INTERNAL, 'a ParsedToken comes from parseToken()');
    const { root, caveats } = decoded;
    this.kind = root.kind;
    this.keyId = root.keyId;
    this.rootTokenId = root.tokenId;
    this.issuedAt = root.issuedAt;
    let mask = root.methods;
    let notBefore = root.notBefore;
    let expiresAt = root.expiresAt;
    let runIds = root.runId === undefined ? NO_RUNS : [root.runId];
    const chain = [root.tokenId];
    for (const c of caveats) {
      chain.push(c.tokenId);
      if (c.methods !== undefined) mask &= c.methods;
      if (c.notBefore !== undefined && c.notBefore > notBefore) notBefore = c.notBefore;
      if (c.expiresAt !== undefined && c.expiresAt < expiresAt) expiresAt = c.expiresAt;
      if (c.runId !== undefined && !runIds.includes(c.runId)) runIds = [...runIds, c.runId];
    }
    this.chain = Object.freeze(chain);
    this.tokenId = chain[chain.length - 1] as string;
    this.#internals = { decoded, methodMask: mask, notBefore, expiresAt, runIds: Object.freeze(runIds) };
    Object.freeze(this);
  }

  static {
    internalsOf = (token) => token.#internals;
  }

  /** What the root (the issuer) granted. */
  get root(): RootClaims {
    this.#root ??= linkClaims(this.kind, this.#internals.decoded.root) as RootClaims;
    return this.#root;
  }

  /** What each holder added, oldest first. */
  get caveats(): readonly LinkClaims[] {
    this.#caveats ??= Object.freeze(this.#internals.decoded.caveats.map((c) => linkClaims(this.kind, c)));
    return this.#caveats;
  }

  /** The intersection of the root and every caveat. */
  get effective(): EffectiveClaims {
    if (this.#effective === undefined) {
      const { decoded, methodMask, notBefore, expiresAt, runIds } = this.#internals;
      const { root, caveats } = decoded;
      const resources = [root.resource];
      const rates: KeyedRate[] = root.rate === undefined ? [] : [Object.freeze({ ...root.rate, key: root.tokenId })];
      for (const c of caveats) {
        if (c.resource !== undefined) resources.push(c.resource);
        if (c.rate !== undefined) rates.push(Object.freeze({ ...c.rate, key: c.tokenId }));
      }
      this.#effective = Object.freeze({
        resources: Object.freeze(resources),
        methods: Object.freeze(maskToMethods(this.kind, methodMask)),
        notBefore,
        expiresAt,
        rates: Object.freeze(rates),
        runIds,
      });
    }
    return this.#effective;
  }

  /** The token's fields as a plain object (no MAC). */
  toJSON(): TokenInfo {
    const { format, kind, keyId, tokenId, rootTokenId, issuedAt, root, caveats, chain, effective } = this;
    return { format, kind, keyId, tokenId, rootTokenId, issuedAt, root, caveats, chain, effective };
  }

  [inspect.custom](_depth: number, options: object): string {
    return `ParsedToken ${inspect(this.toJSON(), { ...options, depth: 4 })}`;
  }
}

/** The method mask of the whole chain (intersection). */
export function effectiveMethodMask(token: ParsedToken): number {
  return internalsOf(token).methodMask;
}

/** The token's canonical text (the same text it was parsed from). */
export function tokenText(token: ParsedToken): string {
  const { blocks, mac } = internalsOf(token).decoded;
  return bytesToText(assembleToken(blocks, mac));
}

/**
 * Parse a token's text: structure and canonical encoding only; the MAC is not
 * checked. Throws E_CAP_INVALID with the location of the problem.
 *
 * @example
 * ```ts
 * const t = parseToken(text);
 * t.kind; t.tokenId; t.effective.expiresAt;
 * ```
 */
export function parseToken(text: string): ParsedToken {
  return new ParsedToken(decodeToken(textToBytes(text)), CONSTRUCT);
}

/** A token's fields, caveats and effective scope, without verifying it. Never includes the MAC. */
export function inspectToken(text: string): TokenInfo {
  return parseToken(text).toJSON();
}

// ------------------------------------------------------------ verification

/** The context a verification runs in. */
export interface VerifyContext {
  /** ms since the epoch; default `Date.now()`. */
  now?: number | undefined;
  /** The run the call belongs to; a run-bound token needs it. */
  runId?: string | undefined;
  /** Where revocations are looked up. `null` states that none are checked. */
  revocations: RevocationChecker | null;
}

/** Why a token failed, without throwing (the per-call path cannot afford exceptions). */
export interface Failure {
  readonly code: ErrorCode;
  readonly reason: string;
  /** How far verification got: a higher step is a candidate closer to valid. */
  readonly step: number;
}

export const STEP = { parse: 0, key: 1, mac: 2, notBefore: 3, expiry: 4, run: 5, revoked: 6 } as const;

const iso = (ms: number): string => new Date(ms).toISOString();

/** Check the key id and the MAC chain. */
export function macFailure(keyring: Keyring, token: ParsedToken): Failure | undefined {
  const { blocks, mac } = internalsOf(token).decoded;
  let m = keyring.hmac(token.keyId, blocks[0] as Buffer);
  if (m === undefined) {
    return { code: ErrorCode.CAP_UNKNOWN_KEY, reason: `token ${token.tokenId}: key "${token.keyId}" is not in the keyring`, step: STEP.key };
  }
  for (let i = 1; i < blocks.length; i++) m = hmacSha256(m, blocks[i] as Buffer);
  if (!macEqual(m, mac)) return { code: ErrorCode.CAP_INVALID, reason: `token ${token.tokenId}: MAC does not verify`, step: STEP.mac };
  return undefined;
}

/** Check time, run binding and revocation (everything that can change during a run). */
export function validityFailure(token: ParsedToken, now: number, runId: string | undefined, revocations: RevocationChecker | null): Failure | undefined {
  const id = token.tokenId;
  const e = internalsOf(token);
  if (token.issuedAt > now + CLOCK_SKEW_MS) {
    return {
      code: ErrorCode.CAP_NOT_YET_VALID,
      reason: `token ${id}: issued at ${iso(token.issuedAt)}, more than ${CLOCK_SKEW_MS / 1000} s in the future (now ${iso(now)})`,
      step: STEP.notBefore,
    };
  }
  if (now < e.notBefore) {
    return { code: ErrorCode.CAP_NOT_YET_VALID, reason: `token ${id}: not valid before ${iso(e.notBefore)} (now ${iso(now)})`, step: STEP.notBefore };
  }
  if (now >= e.expiresAt) {
    return { code: ErrorCode.CAP_EXPIRED, reason: `token ${id}: expired at ${iso(e.expiresAt)} (now ${iso(now)})`, step: STEP.expiry };
  }
  for (const bound of e.runIds) {
    if (bound !== runId) {
      return {
        code: ErrorCode.CAP_RUN_MISMATCH,
        reason: runId === undefined ? `token ${id}: bound to run ${bound}, and the call names no run` : `token ${id}: bound to run ${bound}, not run ${runId}`,
        step: STEP.run,
      };
    }
  }
  if (revocations !== null) {
    const hit = revocations.findRevoked(token.chain, runId === undefined ? [] : [runId]);
    if (hit?.type === 'unavailable') {
      return { code: ErrorCode.STATE_UNAVAILABLE, reason: `token ${id}: revocations cannot be checked: ${hit.reason ?? 'shared state unknown'}`, step: STEP.revoked };
    }
    if (hit !== undefined) {
      const why = hit.reason === undefined ? '' : `: ${hit.reason}`;
      let reason: string;
      if (hit.type === 'corrupt') reason = `treated as revoked because the revocation list is corrupt (${hit.reason ?? 'unreadable'}); repair it`;
      else if (hit.type === 'run') reason = `run ${hit.id} is revoked${why}`;
      else if (hit.id === id) reason = `revoked${why}`;
      else reason = `revoked through token ${hit.id}, from which it derives${why}`;
      return { code: ErrorCode.CAP_REVOKED, reason: `token ${id}: ${reason}`, step: STEP.revoked };
    }
  }
  return undefined;
}

/** A token that passed every check at the time it was verified. */
export type VerifiedToken = ParsedToken;

function failureError(f: Failure, tokenId: string | undefined): AuthorityError {
  return new AuthorityError(f.code, f.reason, { data: tokenId === undefined ? { step: f.step } : { tokenId, step: f.step } });
}

/**
 * Verify a token completely: encoding, key id, MAC chain, issued-at,
 * not-before, expiry, run binding, revocation. Throws the precise code
 * (E_CAP_INVALID, E_CAP_UNKNOWN_KEY, E_CAP_NOT_YET_VALID, E_CAP_EXPIRED,
 * E_CAP_RUN_MISMATCH, E_CAP_REVOKED); messages name the token id, never its text.
 *
 * @example
 * ```ts
 * const t = verifyToken(keyring, text, { runId, revocations });
 * ```
 */
export function verifyToken(keyring: Keyring, token: string | ParsedToken, context: VerifyContext): VerifiedToken {
  const parsed = typeof token === 'string' ? parseToken(token) : token;
  const failure =
    macFailure(keyring, parsed) ?? validityFailure(parsed, context.now ?? Date.now(), context.runId, context.revocations);
  if (failure !== undefined) throw failureError(failure, parsed.tokenId);
  return parsed;
}

// ---------------------------------------------------------------- issuing

const RATE_SCHEMA = z.strictObject({ count: z.number(), periodMs: z.number() });

const ISSUE_SCHEMA = z.strictObject({
  kind: z.enum(KINDS),
  resource: z.string(),
  methods: z.array(z.string()),
  ttlMs: z.number().optional(),
  expiresAt: z.number().optional(),
  notBefore: z.number().optional(),
  issuedAt: z.number().optional(),
  rate: RATE_SCHEMA.optional(),
  runId: z.string().optional(),
  keyId: z.string().optional(),
  tokenId: z.string().optional(),
});

/** What an issuer grants. Times are ms since the epoch. */
export interface IssueClaims {
  kind: CapabilityKind;
  /** A pattern of the kind (docs/capabilities.md): `/data/**`, `https://api.example.com/v1/**`, `OPENAI_*`, `word-count`. */
  resource: string;
  /** e.g. `['read', 'list']`; `['*']` for every HTTP method. */
  methods: readonly string[];
  /** Lifetime from `issuedAt`; give this or `expiresAt`. */
  ttlMs?: number | undefined;
  expiresAt?: number | undefined;
  /**
   * Default: `issuedAt - CLOCK_SKEW_MS`, so a verifier whose clock is a little
   * behind the issuer's accepts the token at once.
   */
  notBefore?: number | undefined;
  /** Default: now. */
  issuedAt?: number | undefined;
  rate?: Rate | undefined;
  /** Valid only in this run. */
  runId?: string | undefined;
  /** Default: the keyring's active key. */
  keyId?: string | undefined;
  /** Default: 16 random bytes. Set only for reproducible fixtures. */
  tokenId?: string | undefined;
}

function argError(message: string, at: string): AuthorityError {
  return new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${at}: ${message}`, { data: { at } });
}

function shape<T>(schema: z.ZodType<T>, input: unknown, at: string): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = [at, ...(issue?.path ?? []).map(String)].join('.');
  throw argError(issue?.message ?? 'invalid', where);
}

function checkTokenId(tokenId: string | undefined, at: string): string {
  if (tokenId === undefined) return randomBytes(TOKEN_ID_BYTES).toString('hex');
  if (!TOKEN_ID_RE.test(tokenId)) throw argError('must be 32 lowercase hex digits', at);
  return tokenId;
}

function checkPattern(kind: CapabilityKind, raw: string, at: string): string {
  const pattern = normalizePattern(kind, raw);
  const problem = patternProblem(kind, pattern);
  if (problem !== undefined) throw argError(`${kind} pattern ${problem}`, at);
  return pattern;
}

/**
 * Issue a token signed with the keyring's active key (or `claims.keyId`).
 *
 * @example
 * ```ts
 * const token = issueToken(keyring, { kind: 'fs', resource: '/data/**', methods: ['read', 'list'], ttlMs: 15 * 60_000 });
 * ```
 */
export function issueToken(keyring: Keyring, claims: IssueClaims): string {
  const c = shape(ISSUE_SCHEMA, claims, 'claims');
  const keyId = c.keyId ?? keyring.activeKeyId;
  if (keyId === undefined) throw new AuthorityError(ErrorCode.CONFIG, 'the keyring has no active key to issue with; run `authority keys rotate`');
  const status = keyring.status(keyId);
  if (status === undefined) throw new AuthorityError(ErrorCode.CAP_UNKNOWN_KEY, `no key "${keyId}" in the keyring`, { data: { keyId } });
  if (status !== 'active') throw new AuthorityError(ErrorCode.CONFIG, `key "${keyId}" is retired: it verifies old tokens but issues none`, { data: { keyId } });
  const issuedAt = c.issuedAt ?? Date.now();
  if (c.ttlMs !== undefined && c.expiresAt !== undefined) throw argError('give ttlMs or expiresAt, not both', 'claims.ttlMs');
  if (c.ttlMs !== undefined && (!Number.isSafeInteger(c.ttlMs) || c.ttlMs <= 0)) throw argError('must be a positive integer', 'claims.ttlMs');
  const expiresAt = c.expiresAt ?? (c.ttlMs === undefined ? undefined : issuedAt + c.ttlMs);
  if (expiresAt === undefined) throw argError('a token needs a lifetime: give ttlMs or expiresAt', 'claims.ttlMs');
  const notBefore = c.notBefore ?? Math.max(0, issuedAt - CLOCK_SKEW_MS);
  const fields: RootFields = {
    kind: c.kind,
    keyId,
    tokenId: checkTokenId(c.tokenId, 'claims.tokenId'),
    issuedAt,
    notBefore,
    expiresAt,
    methods: methodsToMask(c.kind, c.methods, 'claims.methods'),
    resource: checkPattern(c.kind, c.resource, 'claims.resource'),
    rate: c.rate,
    runId: c.runId,
  };
  checkWireRanges(fields, 'claims');
  if (expiresAt <= notBefore) throw argError('expiry must be after not-before', 'claims.expiresAt');
  const block = encodeRoot(fields);
  const mac = keyring.hmac(keyId, block) as Buffer;
  return bytesToText(assembleToken([block], mac));
}

// ------------------------------------------------------------ attenuation

const CAVEAT_SCHEMA = z.strictObject({
  resource: z.string().optional(),
  methods: z.array(z.string()).optional(),
  ttlMs: z.number().optional(),
  expiresAt: z.number().optional(),
  notBefore: z.number().optional(),
  rate: RATE_SCHEMA.optional(),
  runId: z.string().optional(),
  tokenId: z.string().optional(),
});

/** What a holder adds when deriving a narrower token. Every field is optional. */
export interface CaveatInput {
  /** A narrower pattern; a request must match it and every earlier pattern. */
  resource?: string | undefined;
  /** A subset of the parent's methods. */
  methods?: readonly string[] | undefined;
  /** Lifetime from `now`; give this or `expiresAt`. Must not outlive the parent. */
  ttlMs?: number | undefined;
  expiresAt?: number | undefined;
  /** Not earlier than the parent's. */
  notBefore?: number | undefined;
  /** No higher (on average) than any rate already in the chain. */
  rate?: Rate | undefined;
  /** Bind to one run; a token bound already can only keep its run. */
  runId?: string | undefined;
  /** Default: 16 random bytes. Set only for reproducible fixtures. */
  tokenId?: string | undefined;
}

function widening(message: string, at: string, parentId: string): AuthorityError {
  return new AuthorityError(ErrorCode.CAP_WIDENING, `${at}: ${message} (parent ${parentId})`, { data: { at, parentTokenId: parentId } });
}

/**
 * Derive a narrower child token, offline: no key is needed. The child carries
 * its own token id, and its MAC is chained from the parent's. Refuses obvious
 * widening with E_CAP_WIDENING; whatever a caveat says, verification still
 * requires a request to satisfy every link, so a child is never wider.
 *
 * @example
 * ```ts
 * const child = attenuateToken(parent, { resource: '/data/reports/**', methods: ['read'], ttlMs: 60_000 });
 * ```
 */
export function attenuateToken(parent: string | ParsedToken, caveat: CaveatInput, options: { now?: number } = {}): string {
  const p = typeof parent === 'string' ? parseToken(parent) : parent;
  const c = shape(CAVEAT_SCHEMA, caveat, 'caveat');
  const { decoded } = internalsOf(p);
  if (decoded.caveats.length >= MAX_CAVEATS) throw argError(`a token carries at most ${MAX_CAVEATS} caveats`, 'caveat');
  const now = options.now ?? Date.now();
  const e = p.effective;
  const fields: LinkFields = { tokenId: checkTokenId(c.tokenId, 'caveat.tokenId') };

  if (c.resource !== undefined) fields.resource = checkPattern(p.kind, c.resource, 'caveat.resource');
  if (c.methods !== undefined) {
    const mask = methodsToMask(p.kind, c.methods, 'caveat.methods');
    const parentMask = effectiveMethodMask(p);
    if ((mask & ~parentMask) !== 0) {
      const extra = maskToMethods(p.kind, mask & ~parentMask).join(', ');
      throw widening(`methods ${extra} are not granted by the parent (${e.methods.join(', ')})`, 'caveat.methods', p.tokenId);
    }
    fields.methods = mask & ALL_METHODS[p.kind];
  }
  if (c.ttlMs !== undefined && c.expiresAt !== undefined) throw argError('give ttlMs or expiresAt, not both', 'caveat.ttlMs');
  if (c.ttlMs !== undefined && (!Number.isSafeInteger(c.ttlMs) || c.ttlMs <= 0)) throw argError('must be a positive integer', 'caveat.ttlMs');
  const expiresAt = c.expiresAt ?? (c.ttlMs === undefined ? undefined : now + c.ttlMs);
  if (expiresAt !== undefined) {
    if (expiresAt > e.expiresAt) {
      throw widening(`expiry ${iso(expiresAt)} is later than the parent's ${iso(e.expiresAt)}`, c.ttlMs === undefined ? 'caveat.expiresAt' : 'caveat.ttlMs', p.tokenId);
    }
    fields.expiresAt = expiresAt;
  }
  if (c.notBefore !== undefined) {
    if (c.notBefore < e.notBefore) throw widening(`not-before ${iso(c.notBefore)} is earlier than the parent's ${iso(e.notBefore)}`, 'caveat.notBefore', p.tokenId);
    fields.notBefore = c.notBefore;
  }
  if (c.rate !== undefined) {
    const wider = e.rates.find((r) => rateIsHigher(c.rate as Rate, r));
    if (wider !== undefined) {
      throw widening(`rate ${c.rate.count}/${c.rate.periodMs}ms is higher than ${wider.count}/${wider.periodMs}ms already granted`, 'caveat.rate', p.tokenId);
    }
    fields.rate = { count: c.rate.count, periodMs: c.rate.periodMs };
  }
  if (c.runId !== undefined) {
    const other = e.runIds.find((r) => r !== c.runId);
    if (other !== undefined) throw widening(`the parent is bound to run ${other}`, 'caveat.runId', p.tokenId);
    fields.runId = c.runId;
  }
  checkWireRanges(fields, 'caveat');
  const notBefore = Math.max(e.notBefore, fields.notBefore ?? 0);
  if (Math.min(e.expiresAt, fields.expiresAt ?? Infinity) <= notBefore) throw argError('the child would never be valid (expiry not after not-before)', 'caveat');

  const block = encodeCaveat(fields);
  const mac = hmacSha256(decoded.mac, block);
  return bytesToText(assembleToken([...decoded.blocks, block], mac));
}
