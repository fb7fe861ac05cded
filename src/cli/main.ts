/**
 * `authority`: the command line. Only this folder sets process.exitCode or
 * writes to stdout.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { COMMAND_TABLE as commands } from './commands/table.ts';
import { createLogger, lazyLogger } from './log.ts';
import { EXIT_OK, EXIT_USAGE, type CliIO } from './types.ts';
import { fail, usageError } from './output.ts';
import { didYouMean } from './suggest.ts';

/** The package's name and version, from its package.json (two levels up from src/cli/ and from dist/cli/). */
export function packageInfo(): { name: string; version: string } {
  const doc = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
  return { name: doc.name, version: doc.version };
}

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
    log: lazyLogger(() => createLogger({ env: process.env })),
    env: process.env,
    cwd: process.cwd(),
    isTTY: process.stderr.isTTY === true,
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
  if (name === '--version' || name === '-v' || name === 'version') {
    const { name: pkg, version } = packageInfo();
    io.out(rest.includes('--json') ? `${JSON.stringify({ name: pkg, version })}\n` : `${pkg} ${version}\n`);
    return EXIT_OK;
  }
  const entry = commands.find((c) => c.name === name);
  if (entry === undefined) {
    const names = commands.map((c) => c.name);
    const what = name.startsWith('-') ? `unknown option ${name}` : `unknown command ${JSON.stringify(name)}`;
    const hint = didYouMean(name.replace(/^-+/, ''), names);
    return fail(io, rest.includes('--json'), usageError(`${what}${hint || `; the commands are ${names.join(', ')} (authority --help)`}`));
  }
  const command = await entry.load();
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
