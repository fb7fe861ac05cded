import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dataPaths, ensurePrivateDir, resolveDataDir } from '../../data-dir.ts';
import { fleetOptions } from '../fleet-options.ts';
import { emit, parse, usageError } from '../output.ts';
import { EXIT_OK, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage: authority halt --reason TEXT [--data-dir DIR] [--redis URL] [--json]
       authority halt --clear [--data-dir DIR] [--redis URL] [--json]

The stop switch. Writes the data folder's HALT file: every runtime using that
folder (an MCP server, an embedding application, a CLI run) stops its running
invocations within a quarter of a second, refuses new ones, and records the
reason in its audit log. A runtime started while the file exists starts halted.
--clear removes the file; halted runtimes stay halted until restarted.

With --redis URL (or $AUTHORITY_REDIS_URL) the switch is the fleet's: every
runtime on that Redis halts within milliseconds (pushed by pub/sub), and a
runtime started while it is on starts halted. --clear lifts it.
`;

export const haltCommand: Command = {
  name: 'halt',
  summary: summaryOf('halt'),
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parse({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: { reason: { type: 'string' }, clear: { type: 'boolean', default: false }, 'data-dir': { type: 'string' }, json: { type: 'boolean', default: false }, redis: { type: 'string' } },
    });
    if (positionals.length > 0) throw usageError(USAGE);
    const fleetOpts = fleetOptions({ redis: values.redis }, io);
    if (fleetOpts !== undefined) {
      if (!values.clear && (values.reason === undefined || values.reason.trim() === '')) throw usageError('halt needs --reason TEXT: the audit log records why');
      const { Fleet } = await import('../../fleet/fleet.ts');
      const fleet = await Fleet.connect({ ...fleetOpts, node: fleetOpts.node ?? `halt-cli-${hostname()}` });
      try {
        if (values.clear) {
          const was = await fleet.clearHalt();
          emit(io, values.json, { ok: true, cleared: was, fleet: fleet.url }, was ? `fleet halt lifted on ${fleet.url}` : `no fleet halt on ${fleet.url}`);
        } else {
          const h = await fleet.halt(values.reason as string);
          emit(io, values.json, { ok: true, fleet: fleet.url, ...h }, `halted: every runtime on ${fleet.url} stops now`);
        }
      } finally {
        await fleet.close();
      }
      return EXIT_OK;
    }
    const dataDir = resolveDataDir(values['data-dir'], io.env, io.cwd);
    const file = dataPaths(dataDir).haltFile;
    if (values.clear) {
      const existed = existsSync(file);
      rmSync(file, { force: true });
      emit(io, values.json, { ok: true, cleared: existed, file }, existed ? `removed ${file}` : `no HALT file at ${file}`);
      return EXIT_OK;
    }
    if (values.reason === undefined || values.reason.trim() === '') throw usageError('halt needs --reason TEXT: the audit log records why');
    ensurePrivateDir(dataDir);
    const doc = { reason: values.reason, time: new Date().toISOString(), by: { pid: process.pid, host: hostname() } };
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(doc) + '\n', { mode: 0o600 });
    renameSync(tmp, file);
    emit(io, values.json, { ok: true, file, ...doc }, `halted: ${file} written; runtimes on ${dataDir} stop within 250 ms`);
    return EXIT_OK;
  },
};
