/**
 * The registration-time provenance check: verify a component's signature
 * bundles against the keys the policy trusts, then let the policy decide
 * (`tools.trust`, `tools.pin`). A refusal is an AuthorityError whose
 * message says which rule, which tool and which digest, and whose data
 * carries them as values.
 * @module
 */
import { AuthorityError } from '../errors.ts';
import type { Policy, TrustDecision } from '../policy/index.ts';
import { checkBundle, type SignatureBundle } from '../signing/envelope.ts';

/** Where a component came from and what vouches for it, as handed to `Runtime.register`. */
export interface Provenance {
  /** Signature bundles to check. Default for a file path: those in `<file>.sig`. */
  signatures?: readonly SignatureBundle[] | undefined;
  /** The reference as the operator wrote it (e.g. `oci://r.example/tools/echo:1.0`), for the audit log. */
  reference?: string | undefined;
}

export interface ProvenanceResult {
  decision: TrustDecision;
  /** Key ids whose signatures verified. */
  signers: string[];
  /** Signatures that did not verify, with why. */
  rejected: string[];
}

/** Verify and decide; throws the decision's code when the policy refuses the component. */
export function checkProvenance(policy: Policy, tool: { name: string; digest: string }, bundles: readonly SignatureBundle[], source: string | undefined): ProvenanceResult {
  const keys = policy.trustedKeys();
  const signers: string[] = [];
  const rejected: string[] = [];
  for (const b of bundles) {
    const r = checkBundle(b, tool.digest, keys);
    if (r.ok) {
      if (!signers.includes(r.keyId)) signers.push(r.keyId);
    } else rejected.push(r.message);
  }
  const digest = `sha256:${tool.digest}`;
  const decision = policy.decideTrust({ name: tool.name, digest, signers, rejected });
  if (!decision.allow) {
    throw new AuthorityError(decision.code, `refused to register ${tool.name}: ${decision.reason}`, {
      data: { tool: tool.name, digest, path: decision.rule ?? null, ...(source === undefined ? {} : { source: source.slice(0, 512) }) },
    });
  }
  return { decision, signers, rejected };
}
