/**
 * The capability stage of the gate: the tokens granted to one run, prepared
 * once, then asked at every host call whether one of them covers it.
 *
 * Preparing parses each token and checks its MAC once (the expensive part);
 * a check then costs a method bit test, one compiled glob match per link, the
 * time and run checks and a revocation lookup. A bad token never spoils the
 * set: it surfaces, with its precise code, at the call that needed it.
 * @module
 */
import { inspect } from 'node:util';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { deny, type Decision, type HostCall } from '../host-call.ts';
import { isKind, methodBit, type CapabilityKind, type KeyedRate } from './claims.ts';
import type { Keyring } from './keyring.ts';
import { compilePattern, prepareResource, type ResourceMatcher } from './patterns.ts';
import { effectiveMethodMask, macFailure, parseToken, validityFailure, type Failure, type ParsedToken, type VerifyContext } from './token.ts';

/** What a host call needs: a kind, a canonical resource, a method of that kind. */
export interface CapabilityRequest {
  readonly kind: CapabilityKind;
  /** fs: canonical absolute path; net: canonical URL (WHATWG href); secrets: name; tool: name. */
  readonly resource: string;
  /** fs: read|list|write|remove; net: the HTTP method; secrets: get|use; tool: invoke. */
  readonly method: string;
}

/** The capability stage's decision: on allow, the token used and the rates the limiter must enforce. */
export type CapabilityDecision = Decision & {
  /** The token that allowed the call (allow), or the one whose failure is reported (deny). */
  readonly tokenId?: string | undefined;
  /** Allow only: every rate in the token's chain, each keyed by the link that declared it. */
  readonly rates?: readonly KeyedRate[] | undefined;
};

interface Grant {
  readonly index: number;
  readonly token: ParsedToken | undefined;
  readonly parseError: AuthorityError | undefined;
  readonly matchers: readonly ResourceMatcher[];
  readonly methodMask: number;
  macGeneration: number;
  macFailure: Failure | undefined;
}

/** A grant's state, for logs and the audit record: never the token text. */
export interface GrantSummary {
  readonly index: number;
  readonly tokenId?: string | undefined;
  readonly kind?: CapabilityKind | undefined;
  /** Set when the token did not parse or its key/MAC did not verify when prepared. */
  readonly error?: { readonly code: ErrorCode; readonly message: string } | undefined;
}

// Only prepareGrants may build a GrantSet: its MAC results are trusted at every call.
const CONSTRUCT = Symbol('GrantSet');

/**
 * The tokens granted to one run, parsed and MAC-checked once.
 * Build it with {@link prepareGrants}.
 */
export class GrantSet {
  #keyring: Keyring;
  #grants: readonly Grant[];
  #byKind: ReadonlyMap<CapabilityKind, readonly Grant[]>;
  #unparsed: readonly Grant[];

  /** @internal Use {@link prepareGrants}; any other caller gets an error. */
  constructor(keyring: Keyring, grants: Grant[], construct?: symbol) {
    if (construct !== CONSTRUCT) throw new AuthorityError(ErrorCode.INTERNAL, 'a GrantSet comes from prepareGrants()');
    this.#keyring = keyring;
    this.#grants = grants;
    const byKind = new Map<CapabilityKind, Grant[]>();
    for (const g of grants) {
      if (g.token === undefined) continue;
      const list = byKind.get(g.token.kind) ?? [];
      list.push(g);
      byKind.set(g.token.kind, list);
    }
    this.#byKind = byKind;
    this.#unparsed = grants.filter((g) => g.token === undefined);
    Object.freeze(this);
  }

  /** How many tokens were granted (good or bad). */
  get size(): number {
    return this.#grants.length;
  }

  /** One line per grant: index, token id, kind, and the error if it is already known to be bad. */
  summary(): GrantSummary[] {
    return this.#grants.map((g) => {
      this.#refreshMac(g);
      const error = g.parseError ?? (g.macFailure === undefined ? undefined : { code: g.macFailure.code, message: g.macFailure.reason });
      return {
        index: g.index,
        tokenId: g.token?.tokenId,
        kind: g.token?.kind,
        error: error === undefined ? undefined : { code: error.code, message: error.message ?? '' },
      };
    });
  }

  toJSON(): GrantSummary[] {
    return this.summary();
  }

  [inspect.custom](): string {
    return `GrantSet ${inspect(this.summary(), { depth: 3 })}`;
  }

  /** @internal */
  candidates(kind: CapabilityKind): readonly Grant[] {
    return this.#byKind.get(kind) ?? [];
  }

  /** @internal */
  unparsed(): readonly Grant[] {
    return this.#unparsed;
  }

  /** @internal The MAC result, recomputed if the keyring changed since it was last computed. */
  macFailureOf(g: Grant): Failure | undefined {
    this.#refreshMac(g);
    return g.macFailure;
  }

  #refreshMac(g: Grant): void {
    if (g.token === undefined || g.macGeneration === this.#keyring.generation) return;
    g.macFailure = macFailure(this.#keyring, g.token);
    g.macGeneration = this.#keyring.generation;
  }
}

/**
 * Parse and MAC-verify the tokens granted to a run, once. Never throws for a
 * bad token: each failure is kept and reported, with its precise code, by the
 * check that would have used the token.
 *
 * @example
 * ```ts
 * const grants = prepareGrants(keyring, options.grants);
 * // at each host call:
 * const d = checkCapability(grants, { kind: 'fs', resource: '/data/a.txt', method: 'read' }, { runId, revocations });
 * ```
 */
export function prepareGrants(keyring: Keyring, tokens: readonly string[]): GrantSet {
  const grants = tokens.map((text, index): Grant => {
    let token: ParsedToken;
    try {
      token = parseToken(text);
    } catch (e) {
      const parseError =
        e instanceof AuthorityError ? e : new AuthorityError(ErrorCode.CAP_INVALID, 'token is not valid', { data: { at: `grants[${index}]` } });
      return { index, token: undefined, parseError, matchers: [], methodMask: 0, macGeneration: -1, macFailure: undefined };
    }
    return {
      index,
      token,
      parseError: undefined,
      matchers: token.effective.resources.map((p) => compilePattern(token.kind, p)),
      methodMask: effectiveMethodMask(token),
      macGeneration: keyring.generation,
      macFailure: macFailure(keyring, token),
    };
  });
  return new GrantSet(keyring, grants, CONSTRUCT);
}

const MAX_REASON_RESOURCE = 200;
const show = (resource: string): string =>
  resource.length > MAX_REASON_RESOURCE ? `${JSON.stringify(resource.slice(0, MAX_REASON_RESOURCE))}...` : JSON.stringify(resource);

/**
 * Does a granted token cover this request, and does it verify right now?
 *
 * - allow: a token of the kind covers (resource, method) in every link and
 *   passes every check; the decision names it and carries its rates.
 * - E_CAP_MISSING: no token of this kind was granted.
 * - E_CAP_SCOPE: tokens of this kind exist, none covers the request.
 * - otherwise the precise code of the covering token that got furthest:
 *   E_CAP_UNKNOWN_KEY, E_CAP_INVALID, E_CAP_NOT_YET_VALID, E_CAP_EXPIRED,
 *   E_CAP_RUN_MISMATCH, E_CAP_REVOKED.
 *
 * A resource that is not canonical for its kind is refused (E_INVALID_ARGUMENT).
 */
export function checkCapability(grants: GrantSet, request: CapabilityRequest, context: VerifyContext): CapabilityDecision {
  const { kind, resource, method } = request;
  if (!isKind(kind)) return deny(ErrorCode.INVALID_ARGUMENT, `capability: unknown kind ${JSON.stringify(kind)}`);
  const candidates = grants.candidates(kind);
  if (candidates.length === 0) {
    const bad = grants.unparsed()[0];
    if (bad !== undefined) {
      return deny(ErrorCode.CAP_INVALID, `no valid ${kind} token; grant #${bad.index}: ${bad.parseError?.message ?? 'token is not valid'}`);
    }
    return deny(ErrorCode.CAP_MISSING, `no ${kind} token was granted to this run`);
  }
  const prepared = prepareResource(kind, resource);
  if (typeof prepared === 'string') return deny(ErrorCode.INVALID_ARGUMENT, `capability: ${kind} resource refused: ${prepared}`);
  const bit = methodBit(kind, method);
  const now = context.now ?? Date.now();
  let best: { grant: Grant; failure: Failure } | undefined;
  let covering = 0;
  if (bit !== 0) {
    for (const g of candidates) {
      if ((g.methodMask & bit) === 0) continue;
      let covers = true;
      for (const m of g.matchers) {
        if (!m(prepared)) {
          covers = false;
          break;
        }
      }
      if (!covers) continue;
      covering++;
      const token = g.token as ParsedToken;
      const failure = grants.macFailureOf(g) ?? validityFailure(token, now, context.runId, context.revocations);
      if (failure === undefined) {
        return {
          allow: true,
          reason: `token ${token.tokenId} grants ${kind} ${method} on ${show(resource)}`,
          tokenId: token.tokenId,
          rates: token.effective.rates,
        };
      }
      if (best === undefined || failure.step > best.failure.step) best = { grant: g, failure };
    }
  }
  if (best !== undefined) {
    const others = covering > 1 ? ` (${covering - 1} other covering token${covering > 2 ? 's' : ''} also failed)` : '';
    return { ...deny(best.failure.code, best.failure.reason + others), tokenId: best.grant.token?.tokenId };
  }
  const ids = candidates.map((g) => g.token?.tokenId).join(', ');
  return deny(ErrorCode.CAP_SCOPE, `no ${kind} token covers ${method} on ${show(resource)} (${kind} tokens: ${ids})`);
}

/**
 * The capability a host call needs, from the call as the gate canonicalised
 * it: `fs.stat` needs `read`, `http.fetch` needs `net` with its method.
 * (The host asks `{ kind: 'secrets', resource: NAME, method: 'use' }` itself
 * before filling a `{{secret:NAME}}` placeholder, and the runtime asks
 * `{ kind: 'tool', resource: name, method: 'invoke' }` at admission.)
 */
export function requestForHostCall(call: HostCall): CapabilityRequest {
  switch (call.op) {
    case 'fs.read':
    case 'fs.stat':
      return { kind: 'fs', resource: call.path, method: 'read' };
    case 'fs.list':
      return { kind: 'fs', resource: call.path, method: 'list' };
    case 'fs.write':
    case 'fs.mkdir':
      return { kind: 'fs', resource: call.path, method: 'write' };
    case 'fs.remove':
      return { kind: 'fs', resource: call.path, method: 'remove' };
    case 'http.fetch':
      return { kind: 'net', resource: call.url, method: call.method };
    case 'secrets.get':
      return { kind: 'secrets', resource: call.name, method: 'get' };
  }
}
