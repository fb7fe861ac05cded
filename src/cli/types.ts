/**
 * The contract every `authority <command>` follows.
 *
 * Exit codes: 0 ok, 1 the tool failed or a call was denied (or a check found a
 * problem), 2 usage or configuration error. With `--json` a command prints
 * exactly one JSON document on stdout; human output and logs go elsewhere.
 */
import type { Logger } from 'pino';

export const EXIT_OK = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;

export interface CliIO {
  /** stdout: results only (one JSON document with --json). */
  out(text: string): void;
  /** stderr: human notes, warnings, progress. */
  err(text: string): void;
  /** Operational logs (pino, on stderr). */
  log: Logger;
  /** Environment as seen by the command (tests pass their own). */
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Whether stderr is a terminal: progress is shown only then. */
  isTTY?: boolean | undefined;
}

export interface Command {
  /** e.g. "cap" for `authority cap issue ...`. */
  name: string;
  /** One line for `authority --help`. */
  summary: string;
  /** Full usage text for `authority <name> --help`. */
  usage: string;
  /** Runs with the arguments after the command name; returns the exit code. */
  run(argv: string[], io: CliIO): Promise<number>;
}
