/**
 * One way to open a Redis connection for the fleet: the official `redis`
 * client (node-redis), loaded only when a fleet is configured, so a single
 * process never pays for it. TLS (`rediss://` or `tls`) and passwords (in the
 * URL or `password`) are the client's own.
 * @module
 */
import type { createClient } from 'redis';
import { AuthorityError, ErrorCode } from '../errors.ts';

/** A connected node-redis client. */
export type RedisClient = ReturnType<typeof createClient>;

/** Where the fleet's Redis is and how to reach it. */
export interface RedisConnectionOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  url: string;
  /** Overrides the URL's username. */
  username?: string | undefined;
  /** Overrides the URL's password (keeps it out of command lines and process listings). */
  password?: string | undefined;
  /** TLS settings beyond `rediss://`: a private CA, a client certificate, the server name. */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; servername?: string; rejectUnauthorized?: boolean } | undefined;
  /**
   * A command without a reply after this long fails (and so the check that
   * needed it denies). Default 1000 ms: a host call never waits longer on Redis.
   */
  commandTimeoutMs?: number | undefined;
  /** Default 2000 ms. */
  connectTimeoutMs?: number | undefined;
}

const URL_RE = /^rediss?:\/\//;

/** Check options where they enter, naming the field. */
export function validateRedisOptions(o: RedisConnectionOptions, field = 'redis'): void {
  if (typeof o !== 'object' || o === null) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${field}: expected a URL or { url }`, { data: { field } });
  if (typeof o.url !== 'string' || !URL_RE.test(o.url)) {
    throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${field}.url: expected redis://host:port or rediss://host:port`, { data: { field: `${field}.url` } });
  }
  try {
    new URL(o.url);
  } catch (e) {
    throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${field}.url: not a URL`, { data: { field: `${field}.url` }, cause: e });
  }
  for (const k of ['commandTimeoutMs', 'connectTimeoutMs'] as const) {
    const v = o[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 600_000)) {
      throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${field}.${k}: expected whole milliseconds from 1 to 600000`, { data: { field: `${field}.${k}` } });
    }
  }
}

/** The URL without its password, for logs and error messages. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparsable)';
  }
}

/**
 * Open a client. It reconnects by itself (quickly, then once a second), and
 * refuses commands while disconnected instead of queueing them: a check that
 * cannot reach Redis must deny now, not later.
 */
export async function connectRedis(o: RedisConnectionOptions, opts: { waitForReady?: boolean } = {}): Promise<RedisClient> {
  validateRedisOptions(o);
  const { createClient: create } = await import('redis');
  const tls = o.url.startsWith('rediss://') || o.tls !== undefined;
  const client = create({
    url: o.url,
    ...(o.username === undefined ? {} : { username: o.username }),
    ...(o.password === undefined ? {} : { password: o.password }),
    disableOfflineQueue: true,
    commandOptions: { timeout: o.commandTimeoutMs ?? 1000, rejectInFlight: true },
    socket: {
      connectTimeout: o.connectTimeoutMs ?? 2000,
      reconnectStrategy: (retries: number) => Math.min(25 * 2 ** retries, 1000),
      ...(tls ? { tls: true as const, ...(o.tls ?? {}) } : {}),
    },
  });
  // Errors surface through commands and the fleet's state; an unhandled 'error' event would crash the process.
  client.on('error', () => {});
  if (opts.waitForReady === false) {
    client.connect().catch(() => {});
    return client as RedisClient;
  }
  try {
    await client.connect();
  } catch (e) {
    client.destroy();
    throw new AuthorityError(ErrorCode.STATE_UNAVAILABLE, `cannot connect to Redis at ${redactRedisUrl(o.url)}: ${(e as Error).message}`, { cause: e });
  }
  return client as RedisClient;
}

/** Any failure of a Redis command, as the code every check fails closed with. */
export function redisFailure(e: unknown, what: string): AuthorityError {
  if (e instanceof AuthorityError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new AuthorityError(ErrorCode.STATE_UNAVAILABLE, `Redis ${what} failed: ${message}`, { cause: e });
}
