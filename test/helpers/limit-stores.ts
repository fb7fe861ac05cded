/**
 * The LimitStores every limits test runs against: the in-memory store, and
 * the Redis store over a real redis-server started for the test file.
 */
import { MemoryLimitStore, type LimitStore } from '../../src/limits/index.ts';
import { RedisLimitStore } from '../../src/fleet/redis-store.ts';
import { connectRedis, type RedisClient } from '../../src/fleet/redis.ts';
import { startRedis, type TestRedis } from './redis-server.ts';

export interface StoreKind {
  readonly name: 'memory' | 'redis';
  /** A fresh, empty store; `now` replaces the store's clock. */
  make(opts?: { now?: () => number }): Promise<LimitStore>;
}

export function limitStores(): { kinds: StoreKind[]; close: () => Promise<void> } {
  let server: Promise<{ redis: TestRedis; client: RedisClient }> | undefined;
  let n = 0;
  const redis = async () => {
    server ??= (async () => {
      const r = await startRedis();
      return { redis: r, client: await connectRedis({ url: r.url }) };
    })();
    return server;
  };
  return {
    kinds: [
      { name: 'memory', make: async (opts = {}) => new MemoryLimitStore(opts) },
      {
        name: 'redis',
        // Each store gets its own prefix: tests share one server, never each other's counters.
        make: async (opts = {}) => new RedisLimitStore({ client: (await redis()).client, prefix: `t${++n}:`, now: opts.now }),
      },
    ],
    close: async () => {
      if (server === undefined) return;
      const { redis: r, client } = await server;
      client.destroy();
      await r.stop();
    },
  };
}
