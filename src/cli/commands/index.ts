import type { Command } from '../types.ts';
import { auditCommand } from './audit.ts';
import { buildCommand } from './build.ts';
import { haltCommand } from './halt.ts';
import { capCommand } from './cap.ts';
import { consoleCommand } from './console.ts';
import { fuzzCommand } from './fuzz.ts';
import { keysCommand } from './keys.ts';
import { mcpCommand } from './mcp.ts';
import { policyCommand } from './policy.ts';
import { runCommand } from './run.ts';
import { runsCommand } from './runs.ts';
import { serveCommand } from './serve.ts';
import { toolsCommand } from './tools.ts';

/** Every `authority` command, in the order `authority --help` lists them. */
export const commands: readonly Command[] = [
  runCommand,
  toolsCommand,
  buildCommand,
  keysCommand,
  capCommand,
  policyCommand,
  auditCommand,
  consoleCommand,
  runsCommand,
  haltCommand,
  mcpCommand,
  serveCommand,
  fuzzCommand,
];
