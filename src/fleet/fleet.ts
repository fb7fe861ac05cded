/**
 * A runtime's link to its fleet: the runtimes (processes or machines) that
 * share one Redis. Through it they share
 *
 * - rate limits and budgets (`store`, a RedisLimitStore);
 * - revocations and the stop switch: a record in Redis, a pub/sub message to
 *   push it to every node at once, and a local mirror so that a host call
 *   reads memory, never the network. The mirror is confirmed by a poll every
 *   `pollMs` (which also repairs any message lost in a reconnect); once it has
 *   gone unconfirmed for longer than `graceMs`, every capability check fails
 *   closed with E_STATE_UNAVAILABLE until Redis answers again;
 * - a witness of every node's signed audit checkpoints (see witness.ts).
 *
 * Keys live under `<prefix>:{fleet}:` (one hash tag: each script touches one
 * Redis Cluster slot):
 *
 * ```
 * <prefix>:{fleet}:revoked   hash  "token:<id>" | "run:<id>" -> {"at":..,"reason":..,"by":..}
 * <prefix>:{fleet}:halt      string {"reason":..,"at":..,"by":..}   (absent: not halted)
 * <prefix>:{fleet}:epoch     integer, bumped by every change (the poll compares it)
 * <prefix>:{fleet}:witness   hash  node -> latest checkpoint it published
 * <prefix>:{fleet}:events    pub/sub channel
 * ```
 * @module
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { RUN_ID_RE, TOKEN_ID_RE } from '../capability/claims.ts';
import type { RevocationChecker, RevocationHit } from '../capability/revocation.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { RedisLimitStore } from './redis-store.ts';
import { connectRedis, redactRedisUrl, redisFailure, validateRedisOptions, type RedisClient, type RedisConnectionOptions } from './redis.ts';
import { evalScript } from './scripts.ts';

export interface FleetOptions extends RedisConnectionOptions {
  /** This node's name in the fleet (witness, `audit fleet`, who revoked). Default `<hostname>-<pid>`. */
  node?: string | undefined;
  /** Key prefix, so several fleets can share one Redis. Default `authority`. */
  prefix?: string | undefined;
  /** How long the shared state may go unconfirmed before checks fail closed. Default 3000 ms. */
  graceMs?: number | undefined;
  /** How often the mirror is confirmed against Redis. Default min(500, graceMs / 4) ms. */
  pollMs?: number | undefined;
}

/** A fleet-wide halt. */
export interface FleetHalt {
  readonly reason: string;
  readonly at: number;
  readonly by: string;
}

export interface FleetRevocation {
  readonly type: 'token' | 'run';
  readonly id: string;
  readonly at: number;
  readonly by: string;
  readonly reason?: string | undefined;
}

export interface FleetState {
  /** The mirror was confirmed within the grace. */
  readonly known: boolean;
  /** Milliseconds since the last confirmation (Infinity before the first). */
  readonly sinceSyncMs: number;
  readonly halted: FleetHalt | undefined;
  readonly revocations: number;
}

export interface FleetEvents {
  halt: [FleetHalt];
  /** The mirror could not be confirmed for longer than the grace (true), or is confirmed again (false). */
  unknown: [boolean];
  revoked: [FleetRevocation];
}

const NODE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const PREFIX_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const MAX_REASON = 500;

// KEYS: revoked, epoch. ARGV: seen epoch. -> {epoch, halt|'', [hgetall...] when the epoch moved}
const SYNC = `
local epoch = redis.call('GET', KEYS[2]) or '0'
local halt = redis.call('GET', KEYS[3]) or ''
if epoch == ARGV[1] then return {epoch, halt} end
return {epoch, halt, redis.call('HGETALL', KEYS[1])}
`;
// KEYS: revoked, epoch, halt, channel-less. ARGV: field, record json, channel, message
const REVOKE = `
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
local epoch = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return epoch
`;
// KEYS: revoked, epoch, halt. ARGV: halt json|'' (clear), channel, message
const HALT = `
if ARGV[1] == '' then redis.call('DEL', KEYS[3]) else redis.call('SET', KEYS[3], ARGV[1]) end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return epoch
`;

/** Parse a halt record; a damaged one still halts (fail closed). */
function parseHalt(text: string): FleetHalt {
  try {
    const v = JSON.parse(text) as Partial<FleetHalt>;
    return { reason: typeof v.reason === 'string' ? v.reason : '', at: typeof v.at === 'number' ? v.at : 0, by: typeof v.by === 'string' ? v.by : '?' };
  } catch {
    return { reason: 'unreadable halt record', at: 0, by: '?' };
  }
}

/**
 * A connection to the fleet. One per process is enough: every runtime in it
 * may share it (`RuntimeOptions.redis` accepts a Fleet).
 *
 * @example
 * ```ts
 * const fleet = await Fleet.connect({ url: 'redis://127.0.0.1:6379', node: 'node-a' });
 * const runtime = await createRuntime({ redis: fleet, policy: 'policy.json' });
 * await fleet.revokeToken('0123456789abcdef0123456789abcdef', 'leaked'); // every node, within milliseconds
 * ```
 */
export class Fleet extends EventEmitter<FleetEvents> {
  readonly node: string;
  readonly store: RedisLimitStore;
  readonly url: string;
  readonly graceMs: number;
  readonly client: RedisClient;
  readonly #sub: RedisClient;
  readonly #keys: { revoked: string; epoch: string; halt: string; witness: string; channel: string };
  readonly #tokens = new Map<string, FleetRevocation>();
  readonly #runs = new Map<string, FleetRevocation>();
  #halt: FleetHalt | undefined;
  #epoch = '-1';
  #lastSync = Number.NEGATIVE_INFINITY;
  #unknown = false;
  #polling: Promise<void> | undefined;
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  private constructor(o: FleetOptions, client: RedisClient, sub: RedisClient) {
    super();
    this.node = o.node ?? `${hostname()}-${process.pid}`;
    this.url = redactRedisUrl(o.url);
    this.graceMs = o.graceMs ?? 3000;
    const prefix = o.prefix ?? 'authority';
    this.client = client;
    this.#sub = sub;
    const base = `${prefix}:{fleet}:`;
    this.#keys = { revoked: `${base}revoked`, epoch: `${base}epoch`, halt: `${base}halt`, witness: `${base}witness`, channel: `${base}events` };
    this.store = new RedisLimitStore({ client });
    const pollMs = o.pollMs ?? Math.max(20, Math.min(500, Math.floor(this.graceMs / 4)));
    this.#timer = setInterval(() => void this.sync().catch(() => {}), pollMs);
    this.#timer.unref();
  }

  /** Connect, subscribe, and load the shared state. Rejects with E_STATE_UNAVAILABLE if Redis cannot be reached now. */
  static async connect(o: FleetOptions): Promise<Fleet> {
    validateRedisOptions(o);
    if (o.node !== undefined && !NODE_RE.test(o.node)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'node: letters, digits and ._:- (at most 128)', { data: { field: 'node' } });
    if (o.prefix !== undefined && !PREFIX_RE.test(o.prefix)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'prefix: letters, digits and ._:- (at most 64), no braces', { data: { field: 'prefix' } });
    for (const k of ['graceMs', 'pollMs'] as const) {
      const v = o[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 3_600_000)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${k}: whole milliseconds from 1 to 3600000`, { data: { field: k } });
    }
    const client = await connectRedis(o);
    let sub: RedisClient;
    try {
      sub = await connectRedis(o);
    } catch (e) {
      client.destroy();
      throw e;
    }
    const fleet = new Fleet(o, client, sub);
    try {
      await sub.subscribe(fleet.#keys.channel, (message) => fleet.#onMessage(message));
      // After a reconnect the client subscribes again by itself; what was published meanwhile comes from a full sync.
      sub.on('ready', () => {
        fleet.#epoch = '-1';
        void fleet.sync().catch(() => {});
      });
      await fleet.sync();
    } catch (e) {
      await fleet.close();
      throw redisFailure(e, 'fleet start');
    }
    return fleet;
  }

  /** Confirm the mirror against Redis now (the poll does this every pollMs). */
  sync(): Promise<void> {
    this.#polling ??= this.#sync().finally(() => {
      this.#polling = undefined;
      this.#checkUnknown();
    });
    return this.#polling;
  }

  async #sync(): Promise<void> {
    if (this.#closed) return;
    const reply = (await evalScript(this.client, SYNC, [this.#keys.revoked, this.#keys.epoch, this.#keys.halt], [this.#epoch], 'fleet sync')) as unknown[];
    const [epoch, halt, all] = reply as [string, string, string[] | undefined];
    if (all !== undefined) {
      for (let i = 0; i + 1 < all.length; i += 2) {
        // The poll may learn of a revocation before its message arrives: either way, it is announced once.
        const e = this.#apply(all[i] as string, all[i + 1] as string);
        if (e !== undefined) this.emit('revoked', e);
      }
      this.#epoch = String(epoch);
    }
    if (halt !== '') this.#setHalt(parseHalt(halt));
    else this.#halt = undefined;
    this.#lastSync = performance.now();
  }

  #checkUnknown(): void {
    const unknown = !this.known;
    if (unknown !== this.#unknown) {
      this.#unknown = unknown;
      this.emit('unknown', unknown);
    }
  }

  #apply(field: string, json: string): FleetRevocation | undefined {
    const colon = field.indexOf(':');
    const type = field.slice(0, colon);
    const id = field.slice(colon + 1);
    if (type !== 'token' && type !== 'run') return undefined;
    let rec: Partial<FleetRevocation> = {};
    try {
      rec = JSON.parse(json) as Partial<FleetRevocation>;
    } catch {
      // A damaged record still revokes its id: the id is in the field name.
    }
    const entry: FleetRevocation = { type, id, at: typeof rec.at === 'number' ? rec.at : 0, by: typeof rec.by === 'string' ? rec.by : '?', reason: typeof rec.reason === 'string' ? rec.reason : undefined };
    const map = type === 'token' ? this.#tokens : this.#runs;
    if (map.has(id)) return undefined;
    map.set(id, entry);
    return entry;
  }

  #setHalt(h: FleetHalt): void {
    const first = this.#halt === undefined;
    this.#halt = h;
    if (first) this.emit('halt', h);
  }

  #onMessage(message: string): void {
    let m: { t?: unknown; field?: unknown; record?: unknown; halt?: unknown };
    try {
      m = JSON.parse(message) as typeof m;
    } catch {
      return;
    }
    if (m.t === 'revoke' && typeof m.field === 'string' && typeof m.record === 'string') {
      const e = this.#apply(m.field, m.record);
      if (e !== undefined) this.emit('revoked', e);
    } else if (m.t === 'halt' && typeof m.halt === 'string') {
      this.#setHalt(parseHalt(m.halt));
    } else if (m.t === 'clear') {
      this.#halt = undefined;
    }
  }

  /** Whether the mirror was confirmed within the grace. */
  get known(): boolean {
    return performance.now() - this.#lastSync <= this.graceMs;
  }

  get state(): FleetState {
    return { known: this.known, sinceSyncMs: performance.now() - this.#lastSync, halted: this.#halt, revocations: this.#tokens.size + this.#runs.size };
  }

  /** The fleet-wide halt, if one is in force. */
  get halted(): FleetHalt | undefined {
    return this.#halt;
  }

  /**
   * A revocation checker for the capability check: `local` first (this
   * node's own list), then the fleet's mirror. Answers from memory; while the
   * mirror is not confirmed within the grace, every answer is "unavailable".
   */
  checker(local: RevocationChecker): RevocationChecker {
    return {
      findRevoked: (tokenIds, runIds): RevocationHit | undefined => {
        const hit = local.findRevoked(tokenIds, runIds);
        if (hit !== undefined) return hit;
        if (!this.known) {
          const since = Number.isFinite(this.#lastSync) ? `${Math.round(performance.now() - this.#lastSync)} ms` : 'ever';
          return { type: 'unavailable', id: '*', reason: `the fleet's revocations and halt state (Redis ${this.url}) have not been confirmed for ${since}, over the grace of ${this.graceMs} ms` };
        }
        for (const id of tokenIds) {
          const e = this.#tokens.get(id);
          if (e !== undefined) return { type: 'token', id, reason: e.reason };
        }
        for (const id of runIds) {
          const e = this.#runs.get(id);
          if (e !== undefined) return { type: 'run', id, reason: e.reason };
        }
        return undefined;
      },
    };
  }

  /** Revoke a token id (and every token derived from it) on every node. Recorded in Redis when this resolves. */
  revokeToken(tokenId: string, reason?: string): Promise<FleetRevocation> {
    if (!TOKEN_ID_RE.test(tokenId)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'tokenId: expected 32 lowercase hex digits', { data: { at: 'tokenId' } });
    return this.#revoke('token', tokenId, reason);
  }

  /** Revoke a run on every node. Recorded in Redis when this resolves. */
  revokeRun(runId: string, reason?: string): Promise<FleetRevocation> {
    if (!RUN_ID_RE.test(runId)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'runId: not a valid run id', { data: { at: 'runId' } });
    return this.#revoke('run', runId, reason);
  }

  async #revoke(type: 'token' | 'run', id: string, reason: string | undefined): Promise<FleetRevocation> {
    if (reason !== undefined && reason.length > MAX_REASON) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `reason: at most ${MAX_REASON} characters`, { data: { at: 'reason' } });
    const entry: FleetRevocation = { type, id, at: Date.now(), by: this.node, reason };
    const field = `${type}:${id}`;
    const record = JSON.stringify({ at: entry.at, by: entry.by, ...(reason === undefined ? {} : { reason }) });
    await evalScript(this.client, REVOKE, [this.#keys.revoked, this.#keys.epoch], [field, record, this.#keys.channel, JSON.stringify({ t: 'revoke', field, record })], 'revoke');
    this.#apply(field, record);
    return entry;
  }

  /** Halt every node of the fleet; a node started while the halt is in force starts halted. */
  async halt(reason: string): Promise<FleetHalt> {
    if (typeof reason !== 'string' || reason.trim() === '' || reason.length > MAX_REASON) {
      throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `reason: 1 to ${MAX_REASON} characters`, { data: { at: 'reason' } });
    }
    const h: FleetHalt = { reason, at: Date.now(), by: this.node };
    const json = JSON.stringify(h);
    await evalScript(this.client, HALT, [this.#keys.revoked, this.#keys.epoch, this.#keys.halt], [json, this.#keys.channel, JSON.stringify({ t: 'halt', halt: json })], 'halt');
    this.#setHalt(h);
    return h;
  }

  /** Lift the fleet-wide halt: new runtimes start normally (halted ones stay halted until restarted). */
  async clearHalt(): Promise<boolean> {
    const was = this.#halt !== undefined;
    await evalScript(this.client, HALT, [this.#keys.revoked, this.#keys.epoch, this.#keys.halt], ['', this.#keys.channel, JSON.stringify({ t: 'clear' })], 'halt');
    this.#halt = undefined;
    return was;
  }

  /** Every fleet revocation, oldest first. */
  revocations(): FleetRevocation[] {
    return [...this.#tokens.values(), ...this.#runs.values()].sort((a, b) => a.at - b.at);
  }

  /** @internal the witness's keys */
  get witnessKey(): string {
    return this.#keys.witness;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.removeAllListeners();
    this.#sub.destroy();
    this.client.destroy();
  }
}
