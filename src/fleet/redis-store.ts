/**
 * The LimitStore over Redis, for a fleet of runtimes that share rate limits
 * and budgets. Same semantics as MemoryLimitStore (the limits tests run
 * against both), with three properties a shared store needs:
 *
 * - Atomic: each method is one Lua script, so a check and its update are one
 *   step on the server whatever any other node does at the same time.
 * - Cluster-ready: all keys of one call must share a hash tag (the Limiter
 *   puts its namespace in braces: `authority:{policy}:...`), so every script
 *   touches one slot. A call whose keys do not is refused before it is sent.
 * - One clock: the time is Redis's own (`TIME`), so nodes whose clocks
 *   disagree still agree on every rate and window. (Tests may pass `now`.)
 *
 * Any failure to get an answer (Redis down, a timeout, a failover in
 * progress) rejects with `E_STATE_UNAVAILABLE`; the Limiter turns that into a
 * deny. A reply that never arrives after the script ran may have spent budget:
 * that errs on the side of spending, never of overspending.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { RedisClient } from './redis.ts';
import { evalScript } from './scripts.ts';
import type { CounterRequest, LimitStore, RateRequest, RateResult, ReserveResult, WindowRequest } from '../limits/store.ts';

// Lua numbers are doubles: microsecond TATs (~1.8e15) are exact, but tostring()
// would print them in exponent form, so every number written goes through fmt().
const PRELUDE = `
local function fmt(n) return string.format('%.0f', n) end
local function now_us()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`;

/** KEYS: rate keys. ARGV: now_us|'', then interval_us, burst per key. Returns {1} or {0, index, retry_us}. */
const ACQUIRE = `${PRELUDE}
local now = now_us()
local nexts = {}
local worst, worst_retry = 0, -1
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local stored = tonumber(redis.call('GET', key))
  local tat = now
  if stored ~= nil and stored > now then tat = stored end
  local nxt = tat + interval
  local allow_at = nxt - burst * interval
  if now < allow_at and allow_at - now > worst_retry then
    worst = i
    worst_retry = allow_at - now
  end
  nexts[i] = nxt
end
if worst > 0 then return {0, worst, fmt(worst_retry)} end
for i, key in ipairs(KEYS) do
  -- The key is worth nothing once its TAT has passed: let Redis forget it then.
  redis.call('SET', key, fmt(nexts[i]), 'PX', math.max(1, math.ceil((nexts[i] - now) / 1000)))
end
return {1}
`;

/**
 * KEYS: counters, then the window key if any. ARGV: now_us|'', n, has_window,
 * duration_ms, window_ttl_ms|'', then amount, limit, group|'', min, ttl_ms|''
 * per counter. Returns {1, granted...} or {0, index (0 = window), reason, used, limit}.
 */
const RESERVE = `${PRELUDE}
local now_ms = math.floor(now_us() / 1000)
local n = tonumber(ARGV[2])
local has_window = ARGV[3] == '1'
if has_window then
  local start = tonumber(redis.call('GET', KEYS[n + 1]))
  local duration = tonumber(ARGV[4])
  if start ~= nil and now_ms - start > duration then
    return {0, 0, 'window-closed', fmt(now_ms - start), fmt(duration)}
  end
end
local used, amount, limit, group, min, ttl = {}, {}, {}, {}, {}, {}
for i = 1, n do
  local b = 5 + (i - 1) * 5
  used[i] = tonumber(redis.call('GET', KEYS[i])) or 0
  amount[i] = tonumber(ARGV[b + 1])
  limit[i] = tonumber(ARGV[b + 2])
  group[i] = ARGV[b + 3]
  min[i] = tonumber(ARGV[b + 4])
  ttl[i] = ARGV[b + 5]
end
-- A group's grant is the least that every member can still take.
local grant = {}
for i = 1, n do
  if group[i] ~= '' then
    local left = math.max(0, limit[i] - used[i])
    local prev = grant[group[i]] or amount[i]
    grant[group[i]] = math.min(prev, left, amount[i])
  end
end
local granted = {}
for i = 1, n do
  local want, least = amount[i], amount[i]
  if group[i] ~= '' then
    want = grant[group[i]]
    least = math.min(min[i], amount[i])
  end
  if want < least or used[i] + want > limit[i] then
    return {0, i, 'exhausted', fmt(used[i]), fmt(limit[i])}
  end
  granted[i] = want
end
local out = {1}
for i = 1, n do
  if ttl[i] == '' then redis.call('SET', KEYS[i], fmt(used[i] + granted[i]))
  else redis.call('SET', KEYS[i], fmt(used[i] + granted[i]), 'PX', ttl[i]) end
  out[i + 1] = fmt(granted[i])
end
if has_window and redis.call('EXISTS', KEYS[n + 1]) == 0 then
  if ARGV[5] == '' then redis.call('SET', KEYS[n + 1], fmt(now_ms))
  else redis.call('SET', KEYS[n + 1], fmt(now_ms), 'PX', ARGV[5]) end
end
return out
`;

/** KEYS: counters. ARGV: amounts. Subtracts, never below zero, keeping each key's expiry. */
const RELEASE = `
for i, key in ipairs(KEYS) do
  local v = tonumber(redis.call('GET', key))
  if v ~= nil then
    redis.call('SET', key, string.format('%.0f', math.max(0, v - tonumber(ARGV[i]))), 'KEEPTTL')
  end
end
return 1
`;

/** KEYS: counters. Returns their values as strings ('' when absent). */
const READ = `
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('GET', key) or '' end
return out
`;

const DELETE = `
if #KEYS == 0 then return 0 end
return redis.call('DEL', unpack(KEYS))
`;

const SCRIPTS = { acquire: ACQUIRE, reserve: RESERVE, release: RELEASE, read: READ, delete: DELETE } as const;

/** The hash tag Redis Cluster would hash a key by: the first non-empty `{...}`, else the whole key. */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

export interface RedisLimitStoreOptions {
  /** A connected client (see `connectRedis`). The store never closes it. */
  client: RedisClient;
  /** Prepended to every key (keep it free of braces). Default none. */
  prefix?: string | undefined;
  /**
   * Milliseconds since the epoch, instead of Redis's TIME: only for tests
   * that drive time by hand. In production every node must use Redis's clock.
   */
  now?: (() => number) | undefined;
}

/**
 * A LimitStore in Redis, shared by every runtime that uses the same Redis
 * and policy namespace.
 *
 * @example
 * ```ts
 * const client = await connectRedis({ url: 'redis://127.0.0.1:6379' });
 * const runtime = await createRuntime({ store: new RedisLimitStore({ client }) });
 * ```
 */
export class RedisLimitStore implements LimitStore {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #now: (() => number) | undefined;

  constructor(options: RedisLimitStoreOptions) {
    if (options?.client === undefined) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'client: a connected redis client is required', { data: { field: 'client' } });
    if (options.prefix !== undefined && (typeof options.prefix !== 'string' || /[{}]/.test(options.prefix))) {
      throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'prefix: a string without { or }', { data: { field: 'prefix' } });
    }
    this.#client = options.client;
    this.#prefix = options.prefix ?? '';
    this.#now = options.now;
  }

  async acquire(requests: readonly RateRequest[]): Promise<RateResult> {
    if (requests.length === 0) return { allowed: true };
    const args = [this.#nowArg()];
    for (const r of requests) args.push(String(r.intervalUs), String(r.burst));
    const reply = (await this.#run(SCRIPTS.acquire, requests.map((r) => r.key), args, 'acquire')) as unknown[];
    if (Number(reply[0]) === 1) return { allowed: true };
    const i = Number(reply[1]) - 1;
    return { allowed: false, key: (requests[i] as RateRequest).key, retryAfterMs: Math.ceil(Number(reply[2]) / 1000) };
  }

  async reserve(counters: readonly CounterRequest[], window?: WindowRequest): Promise<ReserveResult> {
    if (counters.length === 0 && window === undefined) return { ok: true, granted: [] };
    const keys = counters.map((c) => c.key);
    if (window !== undefined) keys.push(window.key);
    const args = [
      this.#nowArg(),
      String(counters.length),
      window === undefined ? '0' : '1',
      String(window?.durationMs ?? 0),
      window?.ttlMs === undefined ? '' : String(Math.max(1, Math.ceil(window.ttlMs))),
    ];
    for (const c of counters) {
      args.push(String(c.amount), String(c.limit), c.group ?? '', String(c.min ?? c.amount), c.ttlMs === undefined ? '' : String(Math.max(1, Math.ceil(c.ttlMs))));
    }
    const reply = (await this.#run(SCRIPTS.reserve, keys, args, 'reserve')) as unknown[];
    if (Number(reply[0]) === 1) return { ok: true, granted: reply.slice(1).map(Number) };
    const i = Number(reply[1]);
    const reason = String(reply[2]) === 'window-closed' ? 'window-closed' : 'exhausted';
    const key = i === 0 ? (window as WindowRequest).key : (counters[i - 1] as CounterRequest).key;
    return { ok: false, key, reason, used: Number(reply[3]), limit: Number(reply[4]) };
  }

  async release(entries: readonly { readonly key: string; readonly amount: number }[]): Promise<void> {
    if (entries.length === 0) return;
    await this.#run(SCRIPTS.release, entries.map((e) => e.key), entries.map((e) => String(e.amount)), 'release');
  }

  async read(keys: readonly string[]): Promise<number[]> {
    if (keys.length === 0) return [];
    const reply = (await this.#run(SCRIPTS.read, keys, [], 'read')) as unknown[];
    return reply.map((v) => (v === '' ? 0 : Number(v)));
  }

  async windowStart(key: string): Promise<number | undefined> {
    const [v] = (await this.#run(SCRIPTS.read, [key], [], 'read')) as unknown[];
    return v === '' || v === undefined ? undefined : Number(v);
  }

  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.#run(SCRIPTS.delete, keys, [], 'delete');
  }

  /** The time as the scripts take it: microseconds, or '' for Redis's own clock. */
  #nowArg(): string {
    return this.#now === undefined ? '' : String(Math.round(this.#now() * 1000));
  }

  async #run(source: string, keys: readonly string[], args: readonly string[], what: string): Promise<unknown> {
    const tag = hashTag(keys[0] as string);
    for (const k of keys) {
      if (hashTag(k) !== tag) {
        throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `keys of one ${what} must share a hash tag ({...}), so the script runs on one Redis Cluster slot: ${keys[0]} and ${k} do not`, {
          data: { keys: [keys[0], k] },
        });
      }
    }
    return evalScript(this.#client, source, keys.map((k) => this.#prefix + k), args, what);
  }
}
