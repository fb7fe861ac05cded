import { parseArgs, type ParseArgsConfig } from 'node:util';
import { denialFirst } from '../adapters/descriptor.ts';
import { AuthorityError, ErrorCode, toAuthorityError } from '../errors.ts';
import { didYouMean } from './suggest.ts';
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
  // A trap that follows a denial is shown as the denial, the trap as its consequence.
  const err = denialFirst(toAuthorityError(error));
  if (json) io.out(JSON.stringify({ ok: false, error: err.toJSON() }, null, 2) + '\n');
  else io.err(`authority: ${err.code}: ${err.message}\n`);
  return exitCodeFor(err);
}

/** The usage error for a flag util.parseArgs did not know, with the closest known flag. */
function unknownFlag(e: Error, config: ParseArgsConfig): AuthorityError {
  const m = /^Unknown option '(-{1,2}[^']*)'/.exec(e.message);
  const flag = m?.[1];
  if (flag === undefined) return new AuthorityError(ErrorCode.USAGE, e.message, { cause: e });
  const known = Object.keys(config.options ?? {}).map((k) => `--${k}`);
  const name = flag.split('=')[0] as string;
  const hint = didYouMean(name, known);
  return new AuthorityError(ErrorCode.USAGE, `Unknown option '${name}'${hint || `; the options are ${known.join(', ')}`}`, { cause: e, data: { option: name } });
}

/** util.parseArgs (pass `args` and `strict: true`), with its errors turned into E_USAGE (and "did you mean" for a mistyped flag). */
export function parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw unknownFlag(e as Error, config);
    throw new AuthorityError(ErrorCode.USAGE, (e as Error).message, { cause: e });
  }
}

export function usageError(message: string): AuthorityError {
  return new AuthorityError(ErrorCode.USAGE, message);
}

export { EXIT_USAGE };

export interface Progress {
  /** Replace the status text. */
  update(text: string): void;
  /** End the line: `text` (default "done"), with the time taken. */
  done(text?: string): void;
}

/**
 * Progress for long work on stderr, only when stderr is a terminal (a pipe
 * or a log file gets nothing): after `delayMs` of silence, one line
 * rewritten in place each second with the elapsed time.
 */
export function progress(io: CliIO, label: string, delayMs = 800): Progress {
  if (io.isTTY !== true) return { update: () => {}, done: () => {} };
  const started = Date.now();
  let text = label;
  let shown = false;
  const draw = (): void => {
    shown = true;
    io.err(`\r\x1b[2K${text} ${Math.round((Date.now() - started) / 1000)} s`);
  };
  const timer = setInterval(draw, 1000);
  const first = setTimeout(draw, delayMs);
  timer.unref();
  first.unref();
  return {
    update(next) {
      text = next;
      if (shown) draw();
    },
    done(end = 'done') {
      clearInterval(timer);
      clearTimeout(first);
      if (shown) io.err(`\r\x1b[2K${text} ${end} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    },
  };
}

/** Lines of progress (`fuzz`), only when stderr is a terminal. */
export function progressLines(io: CliIO): ((line: string) => void) | undefined {
  return io.isTTY === true ? (line) => io.err(`${line}\n`) : undefined;
}
