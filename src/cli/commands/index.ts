import type { Command } from '../types.ts';
import { capCommand } from './cap.ts';
import { keysCommand } from './keys.ts';

/** Every `authority` command, in the order `authority --help` lists them. */
export const commands: readonly Command[] = [
  keysCommand,
  capCommand,
];
