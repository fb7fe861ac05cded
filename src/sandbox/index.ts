/**
 * The sandbox: a pool of warm workers, a fresh instance per run, a deadline
 * per run, and the synchronous bridge from guest imports to the gate.
 * @module
 */
export { WorkerPool, validatePoolOptions, type PoolOptions, type RunOutcome, type RunRequest, type RunStats } from './pool.ts';
export type { HostCallTimes, RunEnd, ToolDescription } from './protocol.ts';
export { Slots } from './slots.ts';
