import { resolve } from 'node:path';
import { emit, parse, usageError } from '../output.ts';
import { FLEET_FLAGS, FLEET_FLAGS_HELP, fleetOptions } from '../fleet-options.ts';
import { openRuntime, RUNTIME_FLAGS, RUNTIME_FLAGS_HELP, toolDirs } from '../runtime-options.ts';
import { EXIT_OK, type CliIO, type Command } from '../types.ts';

const USAGE = `usage: authority serve --access FILE [--host ADDR] [--port N] [--redis URL] [options]
       authority serve token --access FILE --profile NAME --name NAME [--json]

Serves the tools in the tool folders over MCP (Streamable HTTP) at /mcp, with
/healthz, /readyz and Prometheus metrics at /metrics. Every client presents a
bearer token from the access file; its profile chooses the grants, minted for
each session's own run id. Behind a load balancer, run one per node on one
Redis (--redis) and route by the Mcp-Session-Id header.

\`serve token\` adds a token for a profile to the access file and prints it
once; the file keeps only its SHA-256.

  --access FILE        tokens (hashed) and grants profiles (see docs/fleet.md)
  --host ADDR          address to listen on (default 127.0.0.1)
  --port N             port (default 8765; 0 for any free one)
  --tool-timeout MS    deadline of every tool call
  --cache-dir DIR      compile cache (default <data-dir>/cache)
${FLEET_FLAGS_HELP}
${RUNTIME_FLAGS_HELP.split('\n')
  .filter((l) => !l.includes('--json'))
  .join('\n')}

Stops on SIGTERM or SIGINT (closing every session and the audit log).
Exit codes: 0 stopped by a signal, 2 usage or configuration error.
`;

const { json: _json, ...FLAGS } = RUNTIME_FLAGS;

async function token(argv: string[], io: CliIO): Promise<number> {
  const { values } = parse({
    args: argv,
    strict: true,
    options: { access: { type: 'string' }, profile: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (values.access === undefined || values.profile === undefined || values.name === undefined) throw usageError(`serve token needs --access, --profile and --name\n\n${USAGE}`);
  const { addBearerToken } = await import('../../serve/access.ts');
  const file = resolve(io.cwd, values.access);
  const bearer = addBearerToken(file, { name: values.name, profile: values.profile });
  emit(io, values.json, { ok: true, token: bearer, name: values.name, profile: values.profile, file }, bearer);
  return EXIT_OK;
}

async function serve(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...FLAGS,
      ...FLEET_FLAGS,
      access: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'tool-timeout': { type: 'string' },
      'cache-dir': { type: 'string' },
    },
  });
  if (positionals.length > 0) throw usageError(`serve takes no positional arguments\n\n${USAGE}`);
  if (values.access === undefined) throw usageError(`serve needs --access FILE (who may connect, with which grants)\n\n${USAGE}`);
  const port = values.port === undefined ? 8765 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw usageError('--port takes a number from 0 to 65535');
  const timeoutMs = values['tool-timeout'] === undefined ? undefined : Number(values['tool-timeout']);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw usageError('--tool-timeout takes a positive number of milliseconds');
  // Only this path loads the HTTP transport, prom-client and (with a fleet) the Redis client.
  const { loadAccessFile, startServe } = await import('../../serve/index.ts');
  const { watchToolFolders } = await import('../../adapters/tool-folders.ts');
  const access = loadAccessFile(resolve(io.cwd, values.access));
  const redis = fleetOptions(values, io);
  const runtime = await openRuntime(values, io, {
    cacheDir: values['cache-dir'] === undefined ? undefined : resolve(io.cwd, values['cache-dir']),
    ...(redis === undefined ? {} : { redis }),
  });
  const cleanups: Array<() => void> = [];
  try {
    const dirs = toolDirs(values, io);
    const folders = await watchToolFolders(runtime, dirs, { logger: io.log });
    cleanups.push(() => folders.close());
    for (const r of folders.refused) io.err(`authority serve: refused ${r.file}: ${r.error.code}: ${r.error.message}\n`);
    const http = await startServe(runtime, { access, host: values.host, port, toolTimeoutMs: timeoutMs, logger: io.log });
    io.err(
      `authority serve: MCP at ${http.url}/mcp; ${runtime.tools().length} tool(s); ${access.tokens.size} token(s) in ${access.profiles.size} profile(s)` +
        `${runtime.fleet === undefined ? '' : `; fleet node ${runtime.fleet.node} on ${runtime.fleet.url}`}\n`,
    );
    const signal = await new Promise<string>((res) => {
      for (const s of ['SIGTERM', 'SIGINT'] as const) {
        const on = (): void => res(s);
        process.once(s, on);
        cleanups.push(() => process.off(s, on));
      }
    });
    io.err(`authority serve: ${signal} received; closing\n`);
    await http.close();
    return EXIT_OK;
  } finally {
    for (const c of cleanups) c();
    await runtime.close();
  }
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve the tools over MCP on HTTP, with health, readiness and metrics',
  usage: USAGE,
  async run(argv, io) {
    if (argv[0] === 'token') return token(argv.slice(1), io);
    return serve(argv, io);
  },
};
