/**
 * The command table the entry point reads: names and one-line summaries, and
 * how to load each command. A command's module (and whatever heavy code it
 * needs) loads only when that command runs, so `authority --help` and
 * `authority --version` start in milliseconds.
 * @module
 */
import type { Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

export { summaryOf };

export interface CommandEntry {
  name: string;
  /** One line for `authority --help`. */
  summary: string;
  load(): Promise<Command>;
}

/** Every `authority` command, in the order `authority --help` lists them. */
export const COMMAND_TABLE: readonly CommandEntry[] = [
  { name: 'init', summary: summaryOf('init'), load: async () => (await import('./init.ts')).initCommand },
  { name: 'run', summary: summaryOf('run'), load: async () => (await import('./run.ts')).runCommand },
  { name: 'tools', summary: summaryOf('tools'), load: async () => (await import('./tools.ts')).toolsCommand },
  { name: 'build', summary: summaryOf('build'), load: async () => (await import('./build.ts')).buildCommand },
  { name: 'keys', summary: summaryOf('keys'), load: async () => (await import('./keys.ts')).keysCommand },
  { name: 'cap', summary: summaryOf('cap'), load: async () => (await import('./cap.ts')).capCommand },
  { name: 'policy', summary: summaryOf('policy'), load: async () => (await import('./policy.ts')).policyCommand },
  { name: 'audit', summary: summaryOf('audit'), load: async () => (await import('./audit.ts')).auditCommand },
  { name: 'console', summary: summaryOf('console'), load: async () => (await import('./console.ts')).consoleCommand },
  { name: 'runs', summary: summaryOf('runs'), load: async () => (await import('./runs.ts')).runsCommand },
  { name: 'halt', summary: summaryOf('halt'), load: async () => (await import('./halt.ts')).haltCommand },
  { name: 'mcp', summary: summaryOf('mcp'), load: async () => (await import('./mcp.ts')).mcpCommand },
  { name: 'serve', summary: summaryOf('serve'), load: async () => (await import('./serve.ts')).serveCommand },
  { name: 'fuzz', summary: summaryOf('fuzz'), load: async () => (await import('./fuzz.ts')).fuzzCommand },
  { name: 'cache', summary: summaryOf('cache'), load: async () => (await import('./cache.ts')).cacheCommand },
];

