/**
 * Rate limits and budgets for host calls and tool invocations, over a
 * LimitStore. The gate calls `rate()` then `reserve()` before the effect, and
 * `settle()` after it with what was actually used.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import { allow, deny, type Decision } from '../host-call.ts';
import type { RateSpec } from './rate.ts';
import type { CounterRequest, LimitStore, RateRequest } from './store.ts';

/** What a budget counts. Byte budgets count body bytes. */
export const BUDGET_DIMS = ['tool_calls', 'host_calls', 'http_bytes', 'fs_read_bytes', 'fs_write_bytes'] as const;
export type BudgetDim = (typeof BUDGET_DIMS)[number];

export type BudgetLimits = Readonly<Partial<Record<BudgetDim, number>>>;

/** Rates by what they count; absent means unlimited. */
export interface RateLimits {
  /** http.fetch calls per destination host. */
  readonly http?: RateSpec | undefined;
  /** fs calls per tool. */
  readonly fs?: RateSpec | undefined;
  /** secrets.get calls per tool. */
  readonly secrets?: RateSpec | undefined;
  /** Invocations per tool. */
  readonly invocations?: RateSpec | undefined;
  /** Every call (host calls and invocations) per capability token. */
  readonly per_token?: RateSpec | undefined;
  /** http.fetch calls to one named host, replacing `http` for it. */
  readonly hosts?: ReadonlyMap<string, RateSpec> | undefined;
}

export interface LimiterConfig {
  /** Prefix of every key: the policy's name or digest, so policies never share counters by accident. */
  readonly namespace: string;
  readonly rates: RateLimits;
  /** Budgets of one run (`runId`). */
  readonly run: BudgetLimits & { readonly wall_time_ms?: number | undefined };
  /** Budgets shared by every run under the same namespace. */
  readonly shared: BudgetLimits;
  /** What a read may return at most: reserved before it, settled after. */
  readonly caps: { readonly fsReadBytes: number; readonly httpResponseBytes: number };
  /** How long a run's counters outlive its last change (default 24 h). */
  readonly runTtlMs?: number | undefined;
}

/** A rate carried by a capability token: `count` calls per `periodMs`, in the bucket named `key`. */
export interface TokenRate {
  readonly key: string;
  readonly count: number;
  readonly periodMs: number;
}

/** Who is calling: the run, the tool, and the capability token (its id, never the token). */
export interface LimitContext {
  readonly runId: string;
  readonly tool: string;
  readonly tokenId?: string | undefined;
}

/** A call as limits see it: only what they count. */
export type MeteredCall =
  | { readonly op: 'tool.invoke' }
  | { readonly op: 'fs.read' | 'fs.list' | 'fs.stat' | 'fs.remove' | 'fs.mkdir' }
  | { readonly op: 'fs.write'; readonly bytes: number }
  | { readonly op: 'http.fetch'; readonly host: string; readonly requestBytes: number }
  | { readonly op: 'secrets.get' };

/** What a reservation lets the effect consume. */
export interface Allowance {
  /** fs.read: read at most this many bytes (the cap, or less near the end of a budget). */
  readonly readBytes?: number | undefined;
  /** http.fetch: read at most this many response body bytes. */
  readonly responseBytes?: number | undefined;
}

/** Budget held for one call until it is settled or cancelled. */
export interface Reservation {
  readonly op: MeteredCall['op'];
  readonly runId: string;
  readonly allowance: Allowance;
  /** http.fetch: the request body bytes reserved. */
  readonly requestBytes?: number | undefined;
  /** @internal the counters and what each received. */
  readonly entries: readonly { readonly key: string; readonly dim: BudgetDim; readonly granted: number }[];
}

/** What a call actually consumed; fields that do not apply are ignored. */
export interface Usage {
  readonly readBytes?: number | undefined;
  readonly writeBytes?: number | undefined;
  readonly requestBytes?: number | undefined;
  readonly responseBytes?: number | undefined;
}

export interface Admission {
  readonly decision: Decision;
  /** Present exactly when the decision allows. */
  readonly reservation?: Reservation | undefined;
}

const DEFAULT_RUN_TTL_MS = 24 * 3_600_000;
const ALWAYS = Object.freeze({ allow: true, reason: 'within rate limits' }) as Decision;

/**
 * Rate limits (GCRA, per token, per tool, per destination host) and budgets
 * (per run and shared), reserved before an effect and settled after it.
 *
 * @example
 * ```ts
 * const limiter = new Limiter(config, new MemoryLimitStore());
 * const ctx = { runId: 'r1', tool: 'weather' };
 * const call = { op: 'http.fetch', host: 'api.weather.test', requestBytes: 0 } as const;
 * if (!(await limiter.rate(ctx, call)).allow) return;
 * const { decision, reservation } = await limiter.reserve(ctx, call);
 * if (reservation) {
 *   // ... fetch, reading at most reservation.allowance.responseBytes
 *   await limiter.settle(reservation, { requestBytes: 0, responseBytes: 1234 });
 * }
 * ```
 */
export class Limiter {
  readonly #config: LimiterConfig;
  readonly #store: LimitStore;
  readonly #settled = new WeakSet<Reservation>();
  readonly #ns: string;

  constructor(config: LimiterConfig, store: LimitStore) {
    this.#config = config;
    this.#store = store;
    // The namespace in braces is the Redis Cluster hash tag: every key one call touches is in one slot.
    this.#ns = `authority:{${config.namespace.replace(/[{}%]/g, encodeURIComponent)}}:`;
    Object.freeze(this);
  }

  /**
   * Check and take one slot from every rate that applies; all or nothing.
   * `tokenRates` are the rates a capability token carries, each keyed by the
   * token link that declared it (so every child of that link shares its bucket).
   */
  async rate(ctx: LimitContext, call: MeteredCall, tokenRates: readonly TokenRate[] = []): Promise<Decision> {
    const checks = this.#rateChecks(ctx, call);
    for (const t of tokenRates) {
      const spec: RateSpec = {
        text: `${t.count}/${t.periodMs}ms`,
        count: t.count,
        periodMs: t.periodMs,
        burst: t.count,
        emissionIntervalUs: Math.max(1, Math.ceil((t.periodMs * 1000) / t.count)),
      };
      checks.push({
        request: { key: `${this.#ns}rate:cap:${encodeURIComponent(t.key)}`, intervalUs: spec.emissionIntervalUs, burst: spec.burst },
        rule: `token ${t.key} rate`,
        spec,
        scope: 'for this capability',
      });
    }
    if (checks.length === 0) return ALWAYS;
    let result;
    try {
      result = await this.#store.acquire(checks.map((c) => c.request));
    } catch (e) {
      return unavailable(e, 'rate limits');
    }
    if (result.allowed) return ALWAYS;
    const hit = checks.find((c) => c.request.key === result.key) ?? checks[0];
    const what = hit === undefined ? 'rate limit' : `${hit.rule} '${hit.spec.text}' ${hit.scope}`;
    return deny(ErrorCode.RATE_LIMITED, `${what}: retry after ${result.retryAfterMs} ms`, {
      rule: hit?.rule ?? 'limits',
      retryAfterMs: result.retryAfterMs,
    });
  }

  /**
   * Reserve every budget that applies before the effect. Byte budgets for
   * reads reserve the cap (or what is left, if less but at least one byte):
   * the effect must not consume more than `reservation.allowance`.
   */
  async reserve(ctx: LimitContext, call: MeteredCall): Promise<Admission> {
    const counters: CounterRequest[] = [];
    const dims: BudgetDim[] = [];
    const add = (dim: BudgetDim, amount: number, flexible?: { min: number }): void => {
      const runLimit = this.#config.run[dim];
      const sharedLimit = this.#config.shared[dim];
      const group = flexible === undefined ? undefined : dim;
      if (runLimit !== undefined) {
        counters.push({ key: this.#runKey(ctx.runId, dim), amount, limit: runLimit, group, min: flexible?.min, ttlMs: this.#runTtl });
        dims.push(dim);
      }
      if (sharedLimit !== undefined) {
        counters.push({ key: this.#sharedKey(dim), amount, limit: sharedLimit, group, min: flexible?.min });
        dims.push(dim);
      }
    };
    let readCap: { dim: BudgetDim; base: number; cap: number } | undefined;
    if (call.op === 'tool.invoke') add('tool_calls', 1);
    else add('host_calls', 1);
    if (call.op === 'fs.read') {
      const cap = this.#config.caps.fsReadBytes;
      add('fs_read_bytes', cap, { min: Math.min(1, cap) });
      readCap = { dim: 'fs_read_bytes', base: 0, cap };
    } else if (call.op === 'fs.write') {
      add('fs_write_bytes', call.bytes);
    } else if (call.op === 'http.fetch') {
      const cap = this.#config.caps.httpResponseBytes;
      add('http_bytes', call.requestBytes + cap, { min: call.requestBytes + Math.min(1, cap) });
      readCap = { dim: 'http_bytes', base: call.requestBytes, cap };
    }
    const wall = this.#config.run.wall_time_ms;
    const window = wall === undefined ? undefined : { key: this.#runKey(ctx.runId, 'started'), durationMs: wall, ttlMs: this.#runTtl };
    if (counters.length === 0 && window === undefined) {
      return { decision: allow('no budget applies'), reservation: this.#reservation(ctx, call, [], [], {}) };
    }
    let result;
    try {
      result = await this.#store.reserve(counters, window);
    } catch (e) {
      return { decision: unavailable(e, 'budgets') };
    }
    if (!result.ok) {
      if (result.reason === 'window-closed') {
        return {
          decision: deny(ErrorCode.BUDGET_EXCEEDED, `budgets.wall_time_ms ${wall} elapsed for run ${ctx.runId}`, { rule: 'budgets.wall_time_ms' }),
        };
      }
      const i = counters.findIndex((c) => c.key === result.key);
      const dim = dims[i] ?? 'host_calls';
      const shared = result.key.startsWith(this.#ns + 'shared:');
      const rule = shared ? `budgets.shared.${dim}` : `budgets.${dim}`;
      const whose = shared ? 'shared by every run' : `for run ${ctx.runId}`;
      return {
        decision: deny(ErrorCode.BUDGET_EXCEEDED, `${rule} ${result.limit} spent ${whose} (used ${result.used})`, { rule }),
      };
    }
    let allowance: Allowance = {};
    if (readCap !== undefined) {
      // Every counter of the group got the same grant; without a budget the cap applies.
      const i = dims.indexOf(readCap.dim);
      const granted = i < 0 ? readCap.base + readCap.cap : (result.granted[i] as number);
      const room = granted - readCap.base;
      allowance = call.op === 'fs.read' ? { readBytes: room } : { responseBytes: room };
    }
    return { decision: allow('within budgets'), reservation: this.#reservation(ctx, call, counters, dims, allowance, result.granted) };
  }

  /**
   * Return what a call reserved but did not use. Counts (tool_calls,
   * host_calls) stay spent: the call happened. A byte figure left out of
   * `used` keeps its whole reservation (an unreported use counts in full).
   * Usage above the allowance is clamped to it (the effect must never consume
   * more than it was allowed), and reported as `clamped`. Settling twice does
   * nothing the second time.
   */
  async settle(reservation: Reservation, used: Usage = {}): Promise<{ clamped: boolean }> {
    if (this.#settled.has(reservation)) return { clamped: false };
    this.#settled.add(reservation);
    let clamped = false;
    const releases: { key: string; amount: number }[] = [];
    for (const e of reservation.entries) {
      const actual = actualFor(e.dim, used, reservation);
      if (actual === undefined) continue;
      if (actual > e.granted) clamped = true;
      const back = e.granted - Math.min(Math.max(0, actual), e.granted);
      if (back > 0) releases.push({ key: e.key, amount: back });
    }
    if (releases.length > 0) await this.#store.release(releases);
    return { clamped };
  }

  /** Give back everything a reservation holds: the call never took effect. */
  async cancel(reservation: Reservation): Promise<void> {
    if (this.#settled.has(reservation)) return;
    this.#settled.add(reservation);
    const releases = reservation.entries.filter((e) => e.granted > 0).map((e) => ({ key: e.key, amount: e.granted }));
    if (releases.length > 0) await this.#store.release(releases);
  }

  /** Start a run's wall-time budget now (the first reservation starts it otherwise). Returns the deadline, if any. */
  async startRun(runId: string): Promise<{ deadlineMs?: number | undefined }> {
    const wall = this.#config.run.wall_time_ms;
    if (wall === undefined) return {};
    const key = this.#runKey(runId, 'started');
    await this.#store.reserve([], { key, durationMs: wall, ttlMs: this.#runTtl });
    const start = await this.#store.windowStart(key);
    return { deadlineMs: start === undefined ? undefined : start + wall };
  }

  /** What a run has used so far, per budget that applies. */
  async usage(runId: string): Promise<Partial<Record<BudgetDim, number>>> {
    const dims = BUDGET_DIMS.filter((d) => this.#config.run[d] !== undefined);
    const values = await this.#store.read(dims.map((d) => this.#runKey(runId, d)));
    return Object.fromEntries(dims.map((d, i) => [d, values[i] as number]));
  }

  /** What every run has used together, per shared budget. */
  async sharedUsage(): Promise<Partial<Record<BudgetDim, number>>> {
    const dims = BUDGET_DIMS.filter((d) => this.#config.shared[d] !== undefined);
    const values = await this.#store.read(dims.map((d) => this.#sharedKey(d)));
    return Object.fromEntries(dims.map((d, i) => [d, values[i] as number]));
  }

  /** Forget a finished run's counters. */
  async endRun(runId: string): Promise<void> {
    await this.#store.delete([...BUDGET_DIMS, 'started'].map((d) => this.#runKey(runId, d)));
  }

  get #runTtl(): number {
    return this.#config.runTtlMs ?? DEFAULT_RUN_TTL_MS;
  }

  #runKey(runId: string, what: string): string {
    return `${this.#ns}run:${encodeURIComponent(runId)}:${what}`;
  }

  #sharedKey(dim: BudgetDim): string {
    return `${this.#ns}shared:${dim}`;
  }

  #rateChecks(ctx: LimitContext, call: MeteredCall): { request: RateRequest; rule: string; spec: RateSpec; scope: string }[] {
    const r = this.#config.rates;
    const out: { request: RateRequest; rule: string; spec: RateSpec; scope: string }[] = [];
    const push = (rule: string, spec: RateSpec | undefined, key: string, scope: string): void => {
      if (spec === undefined) return;
      out.push({ request: { key: this.#ns + key, intervalUs: spec.emissionIntervalUs, burst: spec.burst }, rule, spec, scope });
    };
    const tool = encodeURIComponent(ctx.tool);
    switch (call.op) {
      case 'tool.invoke':
        push('limits.invocations', r.invocations, `rate:invoke:${tool}`, `for tool ${ctx.tool}`);
        break;
      case 'http.fetch': {
        const specific = r.hosts?.get(call.host);
        if (specific !== undefined) push(`limits.hosts["${call.host}"]`, specific, `rate:http:${call.host}`, `for host ${call.host}`);
        else push('limits.http', r.http, `rate:http:${call.host}`, `for host ${call.host}`);
        break;
      }
      case 'secrets.get':
        push('limits.secrets', r.secrets, `rate:secrets:${tool}`, `for tool ${ctx.tool}`);
        break;
      default:
        push('limits.fs', r.fs, `rate:fs:${tool}`, `for tool ${ctx.tool}`);
    }
    if (ctx.tokenId !== undefined) push('limits.per_token', r.per_token, `rate:token:${encodeURIComponent(ctx.tokenId)}`, 'for this token');
    return out;
  }

  #reservation(
    ctx: LimitContext,
    call: MeteredCall,
    counters: readonly CounterRequest[],
    dims: readonly BudgetDim[],
    allowance: Allowance,
    granted: readonly number[] = [],
  ): Reservation {
    const entries = counters.map((c, i) => Object.freeze({ key: c.key, dim: dims[i] as BudgetDim, granted: granted[i] as number }));
    const requestBytes = call.op === 'http.fetch' ? call.requestBytes : undefined;
    return Object.freeze({ op: call.op, runId: ctx.runId, allowance: Object.freeze(allowance), requestBytes, entries: Object.freeze(entries) });
  }
}

/**
 * A shared store that cannot answer is a deny with its own code (fail closed),
 * so the gate records it like any other refusal; anything else is a bug and
 * propagates.
 */
function unavailable(e: unknown, what: string): Decision {
  if (!(e instanceof AuthorityError) || e.code !== ErrorCode.STATE_UNAVAILABLE) throw e;
  return deny(ErrorCode.STATE_UNAVAILABLE, `${what} cannot be checked, so the call is refused: ${e.message}`, { rule: 'limits.store' });
}

/** What a call consumed of `dim`; undefined keeps the whole grant (an unreported use counts in full). */
function actualFor(dim: BudgetDim, used: Usage, reservation: Reservation): number | undefined {
  switch (dim) {
    case 'tool_calls':
    case 'host_calls':
      return undefined;
    case 'fs_read_bytes':
      return used.readBytes;
    case 'fs_write_bytes':
      return used.writeBytes;
    case 'http_bytes':
      if (used.requestBytes === undefined && used.responseBytes === undefined) return undefined;
      return (used.requestBytes ?? reservation.requestBytes ?? 0) + (used.responseBytes ?? reservation.allowance.responseBytes ?? 0);
  }
}
