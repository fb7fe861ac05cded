import type { Command } from '../types.ts';
import { auditCommand } from './audit.ts';
import { buildCommand } from './build.ts';
import { cacheCommand } from './cache.ts';
import { haltCommand } from './halt.ts';
import { capCommand } from './cap.ts';
import { consoleCommand } from './console.ts';
import { fuzzCommand } from './fuzz.ts';
import { initCommand } from './init.ts';
import { keysCommand } from './keys.ts';
import { mcpCommand } from './mcp.ts';
import { policyCommand } from './policy.ts';
import { runCommand } from './run.ts';
import { runsCommand } from './runs.ts';
import { serveCommand } from './serve.ts';
import { toolsCommand } from './tools.ts';

export { COMMAND_TABLE, type CommandEntry } from './table.ts';

/**
 * Every `authority` command, loaded, in the order `authority --help` lists
 * them. The entry point does not use this list (it loads one command from
 * COMMAND_TABLE); it is for code that wants them all.
 */
export const commands: readonly Command[] = [initCommand, runCommand, toolsCommand, buildCommand, keysCommand, capCommand, policyCommand, auditCommand, consoleCommand, runsCommand, haltCommand, mcpCommand, serveCommand, fuzzCommand, cacheCommand];
