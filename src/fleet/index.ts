/**
 * A fleet of runtimes on one Redis: shared limits (RedisLimitStore),
 * revocations and halt (Fleet), and the audit witness. Loaded only when a
 * fleet is configured; the `redis` client itself only when connecting.
 * @module
 */
export { Fleet, type FleetOptions, type FleetHalt, type FleetRevocation, type FleetState, type FleetEvents } from './fleet.ts';
export { connectRedis, redactRedisUrl, validateRedisOptions, type RedisClient, type RedisConnectionOptions } from './redis.ts';
export { startWitness, publishCheckpoint, readWitness, checkWitness, type WitnessEntry, type WitnessCheck } from './witness.ts';
export { RedisLimitStore, type RedisLimitStoreOptions } from './redis-store.ts';
