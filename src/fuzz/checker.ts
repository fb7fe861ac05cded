/**
 * The checks made after every host call, whichever way it came in (straight
 * into the gate, or through a guest and the worker bridge): the invariants,
 * then the differential against the reference model, which follows the run
 * (its rate buckets and budget counters) call by call.
 * @module
 */
import type { AuditEntry } from '../audit/index.ts';
import type { CanaryRequest } from './canary.ts';
import { auditShape, canaryIn, replyMatchesAudit, replyShape, secretNeedles, secretsIn, secretsInReply } from './invariants.ts';
import { ModelLimits, type ModelGrant } from './model.ts';
import { compareSent, simulate, type ObservedCall, type ObservedRecord, type SimEnv } from './simulate.ts';
import type { PolicyVariant, World } from './world.ts';

export interface CheckStats {
  /** Outcomes seen, by op, allow/deny and the code of the call's last record. */
  outcomes: Record<string, number>;
  calls: number;
  compared: number;
  opaque: number;
  ambiguous: number;
}

export const newStats = (): CheckStats => ({ outcomes: {}, calls: 0, compared: 0, opaque: 0, ambiguous: 0 });

/** One run's checker: the model's state for the run, and what it has been told about grants and revocations. */
export class RunChecker {
  state = new ModelLimits();
  comparing = true;
  readonly revokedTokens = new Set<string>();
  readonly revokedRuns = new Set<string>();
  readonly #needles: ReturnType<typeof secretNeedles>;

  constructor(
    readonly world: World,
    readonly variant: PolicyVariant,
    readonly runId: string,
    readonly tool: string,
    readonly grants: readonly ModelGrant[],
    readonly stats: CheckStats,
  ) {
    this.#needles = secretNeedles(world.secrets);
  }

  /**
   * Check one call. `entries` are the audit entries the gate wrote for it,
   * `sent` the requests the canary received meanwhile, `t0`-`t1` the span of
   * wall-clock time in which its capability check ran, `clockMs` the
   * limiter's clock.
   */
  check(obs: ObservedCall, entries: readonly AuditEntry[], sent: readonly CanaryRequest[], t0: number, t1: number, clockMs: number): string[] {
    const { call, records, reply } = obs;
    this.stats.calls++;
    const last = records[records.length - 1];
    const key = `${call.op} ${last?.kind === 'call.denied' ? 'deny' : 'allow'} ${last?.code ?? '?'}`;
    this.stats.outcomes[key] = (this.stats.outcomes[key] ?? 0) + 1;
    const problems: string[] = [];
    const shape = auditShape(records, call.op);
    if (shape !== undefined) problems.push(`audit: ${shape}`);
    const rs = replyShape(call.op, reply);
    if (rs !== undefined) problems.push(`reply: ${rs}`);
    const ra = replyMatchesAudit(records, reply);
    if (ra !== undefined) problems.push(`reply vs audit: ${ra}`);
    const leaked = secretsInReply(call.op, reply, this.#needles);
    if (leaked.length > 0) problems.push(`secret value of ${leaked.join(', ')} in the reply`);
    const inAudit = secretsIn(JSON.stringify(entries), this.#needles);
    if (inAudit.length > 0) problems.push(`secret value of ${inAudit.join(', ')} in the audit log`);
    if (call.op === 'fs.read' && canaryIn(reply, this.world.canaryMarkers())) problems.push('a canary file (outside every allowed path) was read');
    if (call.op === 'fs.write' || call.op === 'fs.remove' || call.op === 'fs.mkdir') problems.push(...this.world.checkCanaries());
    const intents = records.filter((r) => r.kind === 'call.intent').length;
    if (sent.length > intents) problems.push(`the canary received ${sent.length} request(s) for ${intents} allowed hop(s)`);
    if (this.comparing) {
      const env: SimEnv = { policy: this.variant.model, grants: this.grants, runId: this.runId, tool: this.tool, revokedTokens: this.revokedTokens, revokedRuns: this.revokedRuns, clockMs, http: this.world.httpEnv() };
      const s0 = this.state.clone();
      let r = simulate(env, s0, obs, t0);
      let next = s0;
      if (r.problems.length > 0 && t1 !== t0) {
        // The capability check ran at some millisecond between t0 and t1, and validity is not monotone
        // (not yet valid, valid, expired): any of those instants is a right answer.
        this.stats.ambiguous++;
        for (let t = t0 + 1; t <= t1 && t <= t0 + 200; t++) {
          const st = this.state.clone();
          const rt = simulate(env, st, obs, t);
          if (rt.problems.length === 0) {
            r = rt;
            next = st;
            break;
          }
        }
      }
      if (r.opaque) {
        this.comparing = false;
        this.stats.opaque++;
      } else {
        this.stats.compared++;
        problems.push(...r.problems);
        compareSent(r.sent, sent, problems);
        this.state = next;
      }
    }
    return problems;
  }
}

export type { ObservedCall, ObservedRecord };
