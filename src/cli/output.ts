import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AuthorityError, ErrorCode, toAuthorityError } from '../errors.ts';
import { EXIT_FAIL, EXIT_USAGE, type CliIO } from './types.ts';

/** Codes that mean "you called it wrong or configured it wrong": exit 2. */
const USAGE_CODES: ReadonlySet<string> = new Set([
  ErrorCode.USAGE,
  ErrorCode.CONFIG,
  ErrorCode.POLICY_INVALID,
  ErrorCode.COMPONENT_INVALID,
  ErrorCode.COMPONENT_IMPORT,
  ErrorCode.TOOL_NOT_FOUND,
]);

export function exitCodeFor(err: AuthorityError): number {
  return USAGE_CODES.has(err.code) ? EXIT_USAGE : EXIT_FAIL;
}

/** Print a result: the JSON document on stdout with --json, else the human text. */
export function emit(io: CliIO, json: boolean, doc: unknown, human: string): void {
  if (json) io.out(JSON.stringify(doc, null, 2) + '\n');
  else if (human.length > 0) io.out(human.endsWith('\n') ? human : human + '\n');
}

/** Report an error in the command's output mode and return its exit code. */
export function fail(io: CliIO, json: boolean, error: unknown): number {
  const err = toAuthorityError(error);
  if (json) io.out(JSON.stringify({ ok: false, error: err.toJSON() }, null, 2) + '\n');
  else io.err(`authority: ${err.code}: ${err.message}\n`);
  return exitCodeFor(err);
}

/** util.parseArgs (pass `args` and `strict: true`), with its errors turned into E_USAGE. */
export function parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new AuthorityError(ErrorCode.USAGE, (e as Error).message, { cause: e });
  }
}

export function usageError(message: string): AuthorityError {
  return new AuthorityError(ErrorCode.USAGE, message);
}

export { EXIT_USAGE };
