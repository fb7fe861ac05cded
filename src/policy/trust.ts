/**
 * Tool provenance rules: `tools.trust` (whose signature a tool must carry,
 * by tool-name pattern) and `tools.pin` (the exact component digest a tool
 * name must have). Decided at registration, on the tool's name (from its
 * self-description), its digest and the keys whose signatures verified.
 *
 * Every trust rule whose `tools` pattern matches the name must be satisfied
 * (a signature by one of that rule's keys): rules add up, none can loosen
 * another. A name with no matching rule and no pin needs no signature.
 * @module
 */
import { ErrorCode } from '../errors.ts';
import type { PublicKeyInfo } from '../signing/keys.ts';
import { nameGlobMatches, type CompiledNameGlob } from './glob.ts';
import type { Decision } from '../host-call.ts';

export interface TrustRule {
  readonly tools: readonly CompiledNameGlob[];
  readonly keys: readonly PublicKeyInfo[];
}

/** The policy's `tools.trust` and `tools.pin`, compiled. */
export interface ToolTrust {
  readonly rules: readonly TrustRule[];
  /** Tool name -> `sha256:<hex>`. */
  readonly pins: ReadonlyMap<string, string>;
}

export const NO_TRUST: ToolTrust = Object.freeze({ rules: Object.freeze([]), pins: new Map() });

/** What is known about a component when its trust is decided. */
export interface TrustSubject {
  /** The tool's name. */
  readonly name: string;
  /** `sha256:<hex>` of the component. */
  readonly digest: string;
  /** Key ids whose signatures over this digest verified. */
  readonly signers: readonly string[];
  /**
   * Signatures that were found but did not verify under any policy key,
   * with why (`signed by key 1a2b..., which is not a trusted key`).
   */
  readonly rejected?: readonly string[];
}

/** A trust decision: a policy decision, plus the signer that satisfied the rules. */
export type TrustDecision = Decision & { readonly target?: string | undefined; readonly signer?: string | undefined };

const short = (id: string): string => id.slice(0, 16);

/** Decide whether a component may be registered under its name. */
export function decideTrust(trust: ToolTrust, s: TrustSubject): TrustDecision {
  const pinned = trust.pins.get(s.name);
  const pinRule = `tools.pin.${s.name}`;
  if (pinned !== undefined && pinned !== s.digest) {
    return { allow: false, code: ErrorCode.TOOL_PIN_MISMATCH, reason: `${pinRule} pins ${s.name} to ${pinned}, but the component is ${s.digest}`, rule: pinRule, target: s.digest };
  }
  const reasons: string[] = [];
  let signer: string | undefined;
  let firstRule: string | undefined;
  for (let i = 0; i < trust.rules.length; i++) {
    const rule = trust.rules[i] as TrustRule;
    const g = rule.tools.findIndex((t) => nameGlobMatches(t, s.name));
    if (g < 0) continue;
    const where = `tools.trust[${i}]`;
    const pattern = `${where}.tools[${g}] '${(rule.tools[g] as CompiledNameGlob).source}' matches ${s.name}`;
    const by = rule.keys.find((k) => s.signers.includes(k.keyId));
    if (by === undefined) {
      const keys = rule.keys.map((k) => short(k.keyId)).join(', ');
      const rejected = s.rejected ?? [];
      if (s.signers.length === 0 && rejected.length === 0) {
        return { allow: false, code: ErrorCode.TOOL_UNSIGNED, reason: `${pattern}, so it must be signed by one of ${where}.keys (${keys}); the component ${s.digest} carries no signature`, rule: where, target: s.digest };
      }
      const seen = [...s.signers.map((id) => `signed by key ${short(id)}, which ${where} does not list`), ...rejected].join('; ');
      return { allow: false, code: ErrorCode.TOOL_UNTRUSTED, reason: `${pattern}, so it must be signed by one of ${where}.keys (${keys}); the component ${s.digest} is not: ${seen}`, rule: where, target: s.digest };
    }
    signer ??= by.keyId;
    firstRule ??= where;
    reasons.push(`${pattern}; signed by key ${short(by.keyId)}`);
  }
  if (pinned !== undefined) reasons.push(`${pinRule} matches ${s.digest}`);
  if (reasons.length === 0) return { allow: true, reason: `no tools.trust rule and no tools.pin entry names ${s.name}: no signature is required`, signer: s.signers[0] };
  return { allow: true, reason: reasons.join('; '), rule: firstRule ?? pinRule, signer: signer ?? s.signers[0] };
}

/** Every key any trust rule names (signatures are verified against these). */
export function trustedKeys(trust: ToolTrust): PublicKeyInfo[] {
  const byId = new Map<string, PublicKeyInfo>();
  for (const r of trust.rules) for (const k of r.keys) byId.set(k.keyId, k);
  return [...byId.values()];
}
