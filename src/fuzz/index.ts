/**
 * Fuzzing the host-function boundary: hostile calls through the gate, the
 * echo guest and raw canonical-ABI programs, checked after every call
 * against a reference model and the runtime's invariants. See docs/fuzzing.md.
 *
 * @example
 * ```ts
 * import { runFuzz } from './fuzz/index.ts';
 * const report = await runFuzz({ runs: 2000, seed: 7, target: 'fs' });
 * if (!report.ok) console.error(report.failure?.problems, report.failure?.replay);
 * ```
 * @module
 */
export { runFuzz, replayRegressions, replayCommand, workItems, type FuzzOptions, type FuzzReport, type FuzzFailure, type PropertyResult, type WorkItem } from './run.ts';
export { LAYERS, caseFromJson, caseToJson, type Layer, type RegressionCase } from './cases.ts';
export { ALL_OPS, TARGETS, type Op, type Target, type Scenario, type Step } from './generators.ts';
export { INVARIANTS } from './invariants.ts';
export { STRICTER } from './model.ts';
export type { AbiProgram, AbiOp } from './abi-harness.ts';
export type { TokenSpec, CaveatSpec, Mutation } from './tokens.ts';
