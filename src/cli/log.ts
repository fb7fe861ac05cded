/**
 * The CLI's operational log (pino, on stderr). On a terminal each event is
 * one readable line; when stderr is not a terminal, or when JSON is asked
 * for (`AUTHORITY_LOG_FORMAT=json`), each event is pino's JSON line, for
 * machines. pino itself loads on the first log call, so a command that logs
 * nothing never pays for it.
 * @module
 */
import { createRequire } from 'node:module';
import type { Logger, default as Pino } from 'pino';
import { AuthorityError, ErrorCode } from '../errors.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['pretty', 'json'] as const;

const REDACT = ['grants', '*.grants', 'token', '*.token'];

/** A level from --log-level or $AUTHORITY_LOG_LEVEL, checked: anything else is a usage error naming where it came from. */
export function checkLogLevel(value: string | undefined, from: string): LogLevel | undefined {
  if (value === undefined || value === '') return undefined;
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new AuthorityError(ErrorCode.USAGE, `${from} takes one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`, { data: { field: from, value } });
}

export interface LoggerOptions {
  /** --log-level, when given. */
  level?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  /** Where lines go (default: stderr). */
  write?: (line: string) => void;
  /** Whether that is a terminal (default: stderr's). */
  isTTY?: boolean;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const PLAIN_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'name', 'v']);

/** One pino JSON line as one human line: time, level, message, then the other fields as key=value. */
export function humanLine(json: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const time = typeof rec['time'] === 'number' ? new Date(rec['time']).toISOString().slice(11, 23) : '';
  const level = LEVEL_NAMES[rec['level'] as number] ?? String(rec['level']);
  const fields = Object.entries(rec)
    .filter(([k]) => !PLAIN_KEYS.has(k))
    .map(([k, v]) => {
      const text = typeof v === 'string' ? (/^[\w./:@-]*$/.test(v) ? v : JSON.stringify(v)) : JSON.stringify(v);
      return `${k}=${text}`;
    });
  const msg = typeof rec['msg'] === 'string' ? rec['msg'] : '';
  return `${time} ${level.padEnd(5)} ${msg}${fields.length > 0 ? ` ${fields.join(' ')}` : ''}\n`;
}

/**
 * The pino logger a command uses. Level: `level`, else $AUTHORITY_LOG_LEVEL,
 * else warn; both are checked.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const level = checkLogLevel(opts.level, '--log-level') ?? checkLogLevel(opts.env['AUTHORITY_LOG_LEVEL'], 'AUTHORITY_LOG_LEVEL') ?? 'warn';
  const format = opts.env['AUTHORITY_LOG_FORMAT'];
  if (format !== undefined && format !== '' && !(LOG_FORMATS as readonly string[]).includes(format)) {
    throw new AuthorityError(ErrorCode.USAGE, `AUTHORITY_LOG_FORMAT takes ${LOG_FORMATS.join(' or ')}, got ${JSON.stringify(format)}`);
  }
  const isTTY = opts.isTTY ?? process.stderr.isTTY === true;
  const human = format === 'pretty' || (format !== 'json' && isTTY);
  const write = opts.write ?? ((line: string) => void process.stderr.write(line));
  // pino is CommonJS: required synchronously, on first use only.
  const pino = createRequire(import.meta.url)('pino') as typeof Pino;
  const stream = { write: (line: string) => write(human ? humanLine(line) : line) };
  return pino({ level, name: 'authority', redact: REDACT }, stream);
}

/**
 * A logger that is created on its first use: the CLI hands one to every
 * command, and most never log.
 */
export function lazyLogger(make: () => Logger): Logger {
  let real: Logger | undefined;
  return new Proxy({} as Logger, {
    get(_target, prop) {
      real ??= make();
      const v: unknown = Reflect.get(real, prop, real);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(real) : v;
    },
    set(_target, prop, value) {
      real ??= make();
      return Reflect.set(real, prop, value, real);
    },
  });
}
