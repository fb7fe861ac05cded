import type { Command } from '../types.ts';
import { policyCommand } from './policy.ts';

/** Every `authority` command, in the order `authority --help` lists them. */
export const commands: readonly Command[] = [policyCommand];
