/**
 * The console: a local web page over the audit log (runs, a run's host calls,
 * filters, a live tail, chain and checkpoint status, inclusion proofs, charts,
 * and undo). See docs/console.md.
 * @module
 */
export { runJson, runTimeline, startConsole } from './server.ts';
export type { CallView, ConsoleOptions, ConsoleServer, ConsoleUndo } from './server.ts';
export { LogIndex } from './log-index.ts';
export type { IndexFilter, RunEntry, ToolSummary } from './log-index.ts';
