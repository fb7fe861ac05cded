import type { Command } from '../types.ts';
import { auditCommand } from './audit.ts';

/** Every `authority` command, in the order `authority --help` lists them. */
export const commands: readonly Command[] = [auditCommand];
