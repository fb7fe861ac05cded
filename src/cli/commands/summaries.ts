/**
 * The one-line summary of each `authority` command, read by the command table
 * and by each command's own help. Apart from the table so that a command never
 * imports the table that loads it.
 * @module
 */
export const SUMMARIES: Readonly<Record<string, string>> = Object.freeze({
  init: 'write a starter policy, grants and example tools into the current folder',
  run: 'run a tool once in a fresh sandbox instance',
  tools: 'list, inspect, push, pull, sign and verify tool components',
  build: 'build a tool from JavaScript or WAT source into a component',
  keys: 'create, rotate, list and remove the HMAC keys that sign capability tokens',
  cap: 'issue, inspect, verify, attenuate and revoke capability tokens',
  policy: 'validate a policy file, or test a request against it',
  audit: 'verify the audit log, show or tail its records, prove and check inclusion',
  console: 'a local web page to look at runs, verify the log and undo a run',
  runs: 'list runs, show what one did, undo its file changes, prune kept pre-images',
  halt: 'stop every runtime on a data folder now, and record why',
  mcp: 'serve the tools in the tool folders as an MCP server on stdio',
  serve: 'serve the tools over MCP on HTTP, with health, readiness and metrics',
  fuzz: 'fuzz the host-function boundary against a policy; report violations with a replay command',
  cache: 'list or prune the compile cache (transpiled tools, least recently used first out)',
});

/** A command's summary, as the table has it (the command modules take theirs from here). */
export function summaryOf(name: string): string {
  const summary = SUMMARIES[name];
  if (summary === undefined) throw new Error(`no command ${name} in the table`);
  return summary;
}
