/**
 * `authority`: the command line. Only this folder sets process.exitCode or
 * writes to stdout.
 */
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { commands } from './commands/index.ts';
import { EXIT_OK, EXIT_USAGE, type CliIO } from './types.ts';
import { fail } from './output.ts';

function helpText(): string {
  const width = Math.max(...commands.map((c) => c.name.length), 8);
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'authority: run agent tools as sandboxed WebAssembly components behind one audited gate',
    '',
    'usage: authority <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'Every command takes --json (one JSON document on stdout) and --help.',
    'Exit codes: 0 ok, 1 the tool failed or a call was denied, 2 usage or configuration error.',
    'State lives in --data-dir DIR, $AUTHORITY_DATA_DIR, or ./.authority/.',
  ].join('\n');
}

export function createCliIO(overrides: Partial<CliIO> = {}): CliIO {
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    log: pino({ level: process.env['AUTHORITY_LOG_LEVEL'] ?? 'warn' }, pino.destination(2)),
    env: process.env,
    cwd: process.cwd(),
    ...overrides,
  };
}

/** Run one command line; returns the exit code. */
export async function main(argv: string[], io: CliIO = createCliIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(helpText() + '\n');
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version') {
    io.out('authority-sandbox 0.1.0\n');
    return EXIT_OK;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) {
    io.err(`authority: unknown command "${name}"\n\n${helpText()}\n`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(command.usage.trimEnd() + '\n');
    return EXIT_OK;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    return fail(io, rest.includes('--json'), e);
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isEntry) {
  process.exitCode = await main(process.argv.slice(2));
}
