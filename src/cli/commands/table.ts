/**
 * The command table the entry point reads: names and one-line summaries, and
 * how to load each command. A command's module (and whatever heavy code it
 * needs) loads only when that command runs, so `authority --help` and
 * `authority --version` start in milliseconds.
 * @module
 */
import type { Command } from '../types.ts';

export interface CommandEntry {
  name: string;
  /** One line for `authority --help`. */
  summary: string;
  load(): Promise<Command>;
}

/** Every `authority` command, in the order `authority --help` lists them. */
export const COMMAND_TABLE: readonly CommandEntry[] = [
  { name: 'init', summary: 'write a starter policy, grants and example tools into the current folder', load: async () => (await import('./init.ts')).initCommand },
  { name: 'run', summary: 'run a tool once in a fresh sandbox instance', load: async () => (await import('./run.ts')).runCommand },
  { name: 'tools', summary: 'list, inspect, push, pull, sign and verify tool components', load: async () => (await import('./tools.ts')).toolsCommand },
  { name: 'build', summary: 'build a tool from JavaScript or WAT source into a component', load: async () => (await import('./build.ts')).buildCommand },
  { name: 'keys', summary: 'create, rotate, list and remove the HMAC keys that sign capability tokens', load: async () => (await import('./keys.ts')).keysCommand },
  { name: 'cap', summary: 'issue, inspect, verify, attenuate and revoke capability tokens', load: async () => (await import('./cap.ts')).capCommand },
  { name: 'policy', summary: 'validate a policy file, or test a request against it', load: async () => (await import('./policy.ts')).policyCommand },
  { name: 'audit', summary: 'verify the audit log, show or tail its records, prove and check inclusion', load: async () => (await import('./audit.ts')).auditCommand },
  { name: 'console', summary: 'a local web page to look at runs, verify the log and undo a run', load: async () => (await import('./console.ts')).consoleCommand },
  { name: 'runs', summary: 'list runs, show what one did, undo its file changes, prune kept pre-images', load: async () => (await import('./runs.ts')).runsCommand },
  { name: 'halt', summary: 'stop every runtime on a data folder now, and record why', load: async () => (await import('./halt.ts')).haltCommand },
  { name: 'mcp', summary: 'serve the tools in the tool folders as an MCP server on stdio', load: async () => (await import('./mcp.ts')).mcpCommand },
  { name: 'serve', summary: 'serve the tools over MCP on HTTP, with health, readiness and metrics', load: async () => (await import('./serve.ts')).serveCommand },
  { name: 'fuzz', summary: 'fuzz the host-function boundary against a policy; report violations with a replay command', load: async () => (await import('./fuzz.ts')).fuzzCommand },
  { name: 'cache', summary: 'list or prune the compile cache (transpiled tools, least recently used first out)', load: async () => (await import('./cache.ts')).cacheCommand },
];

/** A command's summary, as the table has it (the command modules take theirs from here). */
export function summaryOf(name: string): string {
  const entry = COMMAND_TABLE.find((c) => c.name === name);
  if (entry === undefined) throw new Error(`no command ${name} in the table`);
  return entry.summary;
}
