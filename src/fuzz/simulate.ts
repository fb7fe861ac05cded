/**
 * The differential check of one host call: run the reference model through
 * the gate's stages (and, for an allowed call, the effect and every redirect
 * hop), and compare what it predicts with what happened: the audit records
 * the gate wrote for the call, the reply the guest got, and the requests the
 * canary server received.
 * @module
 */
import type { CanaryRequest } from './canary.ts';
import {
  checkCap,
  decodeFs,
  fsLook,
  type FsLook,
  decideSecretUse,
  fsEffect,
  fsPostcondition,
  gateModel,
  modelUrl,
  rateBuckets,
  reserve,
  settle,
  type CapContext,
  type ModelCall,
  type ModelGrant,
  type ModelLimits,
  type ModelPolicy,
  type ModelReservation,
} from './model.ts';
import { nextHop, predictHop, type HopRequest, type HttpEnv, type MayUse } from './model-http.ts';

/** What the model must see of the file system before an fs call runs (the call may change it). */
export interface BeforeCall {
  readonly decoded: ReturnType<typeof decodeFs>;
  readonly look?: FsLook | undefined;
  /** Write and remove: the target right after the call (before any later call). */
  after?: FsLook | undefined;
}

/** Look at an fs call's target right after it ran (write and remove change it). */
export function lookAfter(before: BeforeCall | undefined): void {
  if (before === undefined || 'code' in before.decoded) return;
  before.after = fsLook(before.decoded.real);
}

/** Look at the file system for an fs call, before it runs. */
export function lookBefore(call: ModelCall): BeforeCall | undefined {
  if (call.op === 'http.fetch' || call.op === 'secrets.get') return undefined;
  const decoded = decodeFs(call.op, call.path);
  return { decoded, look: 'code' in decoded ? undefined : fsLook(decoded.real) };
}

/** An audit record as the check needs it. */
export interface ObservedRecord {
  readonly kind: string;
  readonly code?: string | undefined;
  readonly op?: string | undefined;
  readonly detail?: Readonly<Record<string, unknown>> | undefined;
}

/** A reply as the guest read it (the WIT result). */
export type ObservedReply = { tag: 'ok'; val: unknown } | { tag: 'err'; val: { tag: string; val: unknown } };

export interface ObservedCall {
  readonly call: ModelCall;
  /** fs calls: the paths and the target as they were before the call ran. */
  readonly before?: BeforeCall | undefined;
  readonly records: readonly ObservedRecord[];
  readonly reply: ObservedReply;
}

export interface SimEnv {
  readonly policy: ModelPolicy;
  readonly grants: readonly ModelGrant[];
  readonly runId: string;
  readonly tool: string;
  readonly revokedTokens: ReadonlySet<string>;
  readonly revokedRuns: ReadonlySet<string>;
  /** The limiter's clock (ms). */
  readonly clockMs: number;
  readonly http: HttpEnv;
}

export interface SimResult {
  readonly problems: string[];
  /** The requests the canary should have received for this call, in order. */
  readonly sent: readonly CanaryRequest[];
  /** The model cannot reproduce a rule this call depends on: nothing was compared. */
  readonly opaque: boolean;
}

const TAG_OF: Readonly<Record<string, string>> = {
  E_RATE_LIMITED: 'rate-limited',
  E_BUDGET_EXCEEDED: 'budget-exhausted',
  E_INVALID_ARGUMENT: 'invalid',
  E_NOT_FOUND: 'not-found',
  E_TOO_LARGE: 'too-large',
  E_IO: 'io',
  E_TIMEOUT: 'timeout',
};

/** What a guest reads for a gate denial with `code`. */
export function guestTag(code: string): string {
  return TAG_OF[code] ?? 'denied';
}

function replyCode(r: ObservedReply): string {
  if (r.tag === 'ok') return 'ok';
  if (r.val.tag === 'denied') return (r.val.val as { code?: string }).code ?? '?';
  return r.val.tag;
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x instanceof Uint8Array ? `<${x.length} bytes>` : x));
  return s === undefined ? String(v) : s.length > 300 ? `${s.slice(0, 300)}...` : s;
};

class Expect {
  readonly problems: string[] = [];
  #i = 0;
  constructor(readonly obs: ObservedCall) {}

  record(kind: string, codes?: readonly string[], hop?: number): void {
    const r = this.obs.records[this.#i++];
    const want = `${kind}${codes === undefined ? '' : `(${codes.join('|')})`}${hop ? ` hop ${hop}` : ''}`;
    if (r === undefined) {
      this.problems.push(`expected audit record ${want}, found none`);
      return;
    }
    if (r.kind !== kind || (codes !== undefined && !codes.includes(r.code ?? ''))) {
      this.problems.push(`expected audit record ${want}, found ${r.kind}(${r.code ?? ''})`);
    }
  }

  end(): void {
    const extra = this.obs.records.slice(this.#i);
    if (extra.length > 0) this.problems.push(`unexpected audit records: ${extra.map((r) => `${r.kind}(${r.code ?? ''})`).join(', ')}`);
  }

  denied(codes: readonly string[]): void {
    const got = replyCode(this.obs.reply);
    const tags = new Set(codes.map(guestTag));
    const ok = this.obs.reply.tag === 'err' && tags.has(this.obs.reply.val.tag) && (this.obs.reply.val.tag !== 'denied' || codes.includes(got));
    if (!ok) this.problems.push(`expected the guest to read ${codes.map((c) => (guestTag(c) === 'denied' ? `denied(${c})` : guestTag(c))).join(' or ')}, it read ${got === 'ok' ? `ok ${show(this.obs.reply.val)}` : got}`);
  }

  error(tags: readonly string[], codes?: readonly string[]): void {
    const r = this.obs.reply;
    if (r.tag !== 'err' || !tags.includes(r.val.tag) || (r.val.tag === 'denied' && codes !== undefined && !codes.includes(replyCode(r)))) {
      this.problems.push(`expected the guest to read ${tags.join(' or ')}${codes ? ` (${codes.join('|')})` : ''}, it read ${r.tag === 'ok' ? `ok ${show(r.val)}` : replyCode(r)}`);
    }
  }
}

/** Whether a secret may go to `href`: the token must allow `use`, the policy must bind it there. */
function mayUseOf(env: SimEnv, cap: CapContext): MayUse {
  return (name, href) => {
    const c = checkCap(env.grants, 'secrets', name, 'use', cap);
    if (!c.allow) return { allow: false, code: c.codes[0] as string };
    const u = modelUrl(href);
    if (typeof u === 'string') return { allow: false, code: 'E_INVALID_ARGUMENT' };
    const p = decideSecretUse(env.policy, name, u);
    return p.allow ? { allow: true } : { allow: false, code: p.codes[0] as string };
  };
}

/** Stages 4-5 for a checked call or hop; returns the reservation, or records the denial. */
function limit(env: SimEnv, state: ModelLimits, call: ModelCall, g: Extract<ReturnType<typeof gateModel>, { stage: 'checked' }>, x: Expect, hop: number): ModelReservation | undefined {
  if (!state.acquire(rateBuckets(env.policy, call, g, env.tool), env.clockMs)) {
    x.record('call.denied', ['E_RATE_LIMITED'], hop);
    x.denied(['E_RATE_LIMITED']);
    return undefined;
  }
  const r = reserve(env.policy, state, call, env.runId, env.clockMs);
  if (r === undefined) {
    x.record('call.denied', ['E_BUDGET_EXCEEDED'], hop);
    x.denied(['E_BUDGET_EXCEEDED']);
    return undefined;
  }
  return r;
}

/**
 * Simulate one call at capability time `capNow` on `state` (changed in
 * place: rates and budgets), comparing with `obs`.
 */
export function simulate(env: SimEnv, state: ModelLimits, obs: ObservedCall, capNow: number): SimResult {
  const cap: CapContext = { now: capNow, runId: env.runId, revokedTokens: env.revokedTokens, revokedRuns: env.revokedRuns };
  const x = new Expect(obs);
  const call = obs.call;
  const g = gateModel(env.policy, env.grants, call, cap, obs.before?.decoded);
  if (g.opaque === true) return { problems: [], sent: [], opaque: true };
  if (g.stage !== 'checked') {
    x.record('call.denied', g.verdict.codes);
    const r = obs.records[0];
    if (g.verdict.rule !== undefined && r !== undefined && r.kind === 'call.denied' && r.detail?.['rule'] !== g.verdict.rule) {
      x.problems.push(`expected the denial to name rule ${g.verdict.rule}, it names ${String(r.detail?.['rule'] ?? 'none')}`);
    }
    x.denied(g.verdict.codes);
    x.end();
    return { problems: x.problems, sent: [], opaque: false };
  }
  const reservation = limit(env, state, call, g, x, 0);
  if (reservation === undefined) {
    x.end();
    return { problems: x.problems, sent: [], opaque: false };
  }
  x.record('call.intent');

  if (call.op === 'secrets.get') {
    const value = env.http.secrets[call.name];
    if (value === undefined) {
      x.record('call.outcome', ['not-found']);
      x.error(['not-found']);
    } else {
      x.record('call.outcome', ['ok']);
      if (obs.reply.tag !== 'ok' || obs.reply.val !== value) x.problems.push(`expected secrets.get to return the value of ${call.name}, the guest read ${replyCode(obs.reply)}`);
    }
    settle(state, reservation, {});
    x.end();
    return { problems: x.problems, sent: [], opaque: false };
  }

  if (call.op !== 'http.fetch') {
    const look = obs.before?.look ?? fsLook(g.target);
    const eff = fsEffect(call.op, g.target, look, env.policy.caps, reservation.allowance, call.op === 'fs.write' ? call.data : undefined);
    const r = obs.reply;
    const code = replyCode(r);
    if (eff.expect === 'ok') {
      x.record('call.outcome', ['ok']);
      if (r.tag !== 'ok') x.problems.push(`expected ${call.op} of ${g.target} to succeed, the guest read ${code}`);
      else {
        const p = eff.check(r.val);
        if (p !== undefined) x.problems.push(p);
      }
    } else if (eff.expect === 'error') {
      x.record('call.outcome', r.tag === 'err' && r.val.tag === 'denied' ? [code] : eff.tags);
      x.error(eff.tags);
    } else {
      x.record('call.outcome', [code]);
      if (r.tag === 'ok') {
        const p = fsPostcondition(call.op, obs.before?.after ?? fsLook(g.target), call.op === 'fs.write' ? call.data : undefined);
        if (p !== undefined) x.problems.push(p);
      }
    }
    const ok = r.tag === 'ok';
    settle(state, reservation, {
      readBytes: call.op === 'fs.read' && ok && r.val instanceof Uint8Array ? r.val.length : 0,
      writeBytes: call.op === 'fs.write' && ok ? call.data.length : 0,
    });
    x.end();
    return { problems: x.problems, sent: [], opaque: false };
  }

  // http.fetch: each hop's effect, then the redirect re-gated from stage 2.
  const mayUse = mayUseOf(env, cap);
  const sent: CanaryRequest[] = [];
  let req: HopRequest = { method: call.method.toUpperCase(), url: g.target, headers: call.headers, body: call.body };
  let u = g.url as NonNullable<typeof g.url>;
  let res = reservation;
  for (let hop = 0; ; hop++) {
    const outcome = predictHop(env.policy, env.http, mayUse, req, u, res.allowance ?? env.policy.caps.httpResponseBytes);
    settle(state, res, { responseBytes: outcome.kind === 'response' ? outcome.body.length : 0 });
    if (outcome.kind === 'error') {
      if (outcome.sent !== undefined) sent.push(outcome.sent);
      const codes = outcome.tag === 'denied' ? [outcome.code as string] : [outcome.tag];
      x.record('call.outcome', codes, hop);
      x.error([outcome.tag], outcome.tag === 'denied' ? codes : undefined);
      if (x.problems.length > 0) x.problems.push(`(the model expected ${outcome.why} at hop ${hop})`);
      break;
    }
    sent.push(outcome.sent);
    x.record('call.outcome', ['ok'], hop);
    const next = nextHop(req, outcome.status, outcome.headers);
    if (next === 'invalid') {
      // A Location the host refuses is a denied hop, recorded like any other refused hop.
      x.record('call.denied', ['E_INVALID_ARGUMENT'], hop + 1);
      x.error(['invalid']);
      break;
    }
    if (next === undefined) {
      const r = obs.reply;
      if (r.tag !== 'ok') x.problems.push(`expected the fetch to return status ${outcome.status}, the guest read ${replyCode(r)}`);
      else {
        const v = r.val as { status?: number; body?: Uint8Array };
        if (v.status !== outcome.status) x.problems.push(`expected status ${outcome.status}, got ${String(v.status)}`);
        if (!(v.body instanceof Uint8Array) || !Buffer.from(v.body).equals(outcome.body)) x.problems.push(`expected a body of ${outcome.body.length} bytes ${show(outcome.body.toString('latin1').slice(0, 80))}, got ${show(v.body instanceof Uint8Array ? Buffer.from(v.body).toString('latin1').slice(0, 80) : v.body)}`);
      }
      break;
    }
    if (hop + 1 > 5) {
      x.record('call.denied', ['E_POLICY_DENY'], hop + 1);
      x.denied(['E_POLICY_DENY']);
      break;
    }
    const nu = modelUrl(next.url);
    if (typeof nu === 'string') {
      x.record('call.denied', ['E_INVALID_ARGUMENT'], hop + 1);
      x.denied(['E_INVALID_ARGUMENT']);
      break;
    }
    const hopCall: ModelCall = { op: 'http.fetch', method: next.method.toUpperCase(), url: nu.href, headers: [...next.headers], body: next.body };
    const gh = gateModel(env.policy, env.grants, hopCall, cap);
    if (gh.opaque === true) return { problems: [], sent, opaque: true };
    if (gh.stage !== 'checked') {
      x.record('call.denied', gh.verdict.codes, hop + 1);
      x.denied(gh.verdict.codes);
      break;
    }
    const r2 = limit(env, state, hopCall, gh, x, hop + 1);
    if (r2 === undefined) break;
    res = r2;
    x.record('call.intent', undefined, hop + 1);
    req = { method: hopCall.method, url: nu.href, headers: next.headers, body: next.body };
    u = gh.url as NonNullable<typeof gh.url>;
  }
  x.end();
  return { problems: x.problems, sent, opaque: false };
}

const STACK = new Set(['host', 'accept-encoding', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

/** Compare the requests the model predicts with those the canary received. */
export function compareSent(want: readonly CanaryRequest[], got: readonly CanaryRequest[], problems: string[]): void {
  if (want.length !== got.length) {
    problems.push(`the canary should have received ${want.length} request(s), it received ${got.length}: ${got.map((r) => `${r.method} ${r.path}`).join(', ')}`);
    return;
  }
  want.forEach((w, i) => {
    const g = got[i] as CanaryRequest;
    if (w.method !== g.method || w.path !== g.path) problems.push(`request ${i}: expected ${w.method} ${w.path}, the canary received ${g.method} ${g.path}`);
    const wh = JSON.stringify(w.headers.filter(([k]) => !STACK.has(k)));
    const gh = JSON.stringify(g.headers.filter(([k]) => !STACK.has(k)));
    if (wh !== gh) problems.push(`request ${i}: expected headers ${wh}, the canary received ${gh}`);
    if (!w.body.equals(g.body)) problems.push(`request ${i}: expected a body of ${w.body.length} bytes, the canary received ${g.body.length}`);
  });
}
