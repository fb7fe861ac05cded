/**
 * `authority console`: serve the console page on loopback until interrupted.
 * The URL it prints carries the access token; anyone without it gets 401.
 */
import { resolveDataDir } from '../../data-dir.ts';
import type { Runtime } from '../../runtime.ts';
import { openRuntime } from '../runtime-options.ts';
import { emit, parse, usageError } from '../output.ts';
import { EXIT_OK, type Command } from '../types.ts';

const USAGE = `usage: authority console [--data-dir DIR] [--policy FILE] [--host ADDR] [--port N] [--json]

Serves a web page over the data folder's audit log: runs, each run's host calls,
filters, a live tail, chain and checkpoint status, inclusion proofs, and undo of
a run's file changes. Bound to 127.0.0.1 unless --host says otherwise; the URL
printed carries a random access token that every request must present.
Runs until interrupted (Ctrl-C).

options:
  --data-dir DIR   the data folder (default $AUTHORITY_DATA_DIR or ./.authority)
  --policy FILE    the policy undo obeys (default <data-dir>/policy.json; none: undo is refused)
  --host ADDR      the address to bind (default 127.0.0.1; anything else is reachable from the network)
  --port N         the port (default: a free one)
  --json           print {"url": ...} as one JSON document`;

export const consoleCommand: Command = {
  name: 'console',
  summary: 'a local web page to look at runs, verify the log and undo a run',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parse({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: { 'data-dir': { type: 'string' }, policy: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, json: { type: 'boolean', default: false } },
    });
    if (positionals.length > 0) throw usageError(USAGE);
    if (values.port !== undefined && (!/^\d+$/.test(values.port) || Number(values.port) > 65535)) throw usageError(`--port takes 0 to 65535, not "${values.port}"`);
    const dir = resolveDataDir(values['data-dir'], io.env, io.cwd);
    const { startConsole } = await import('../../console/index.ts');
    // Undo opens a runtime (and so the log's writer lock) only while it runs: the console itself only reads.
    const withRuntime = async <T>(fn: (rt: Runtime) => Promise<T>): Promise<T> => {
      const rt = await openRuntime({ 'data-dir': dir, policy: values.policy }, io);
      try {
        return await fn(rt);
      } finally {
        await rt.close();
      }
    };
    const server = await startConsole({
      dir,
      host: values.host,
      port: values.port === undefined ? undefined : Number(values.port),
      undo: { plan: (runId) => withRuntime((rt) => rt.undoPlan(runId)), apply: (runId, o) => withRuntime((rt) => rt.undoRun(runId, o)) },
    });
    if (values.host !== undefined && !['127.0.0.1', 'localhost', '::1'].includes(values.host)) {
      io.err(`authority: warning: the console is bound to ${values.host}, not loopback: anyone who can reach it and has the token can see the log and undo runs\n`);
    }
    emit(io, values.json, { ok: true, url: server.url }, `console: ${server.url}\n(Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await server.close();
    return EXIT_OK;
  },
};
