import { randomBytes } from 'node:crypto';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { GrantClaim, McpSession, ToolFolders } from '../../adapters/mcp.ts';
import { dataPaths, haltReason, resolveDataDir } from '../../data-dir.ts';
import { AuthorityError, ErrorCode, toAuthorityError } from '../../errors.ts';
import { isOciReference } from '../../oci/reference.ts';
import type { Runtime } from '../../runtime.ts';
import { fail, parse, progress, usageError } from '../output.ts';
import { openRuntime, registerToolArg, RUNTIME_FLAGS, RUNTIME_FLAGS_HELP, toolDirs } from '../runtime-options.ts';
import { EXIT_FAIL, EXIT_OK, type CliIO, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage: authority mcp [--tools DIR|oci://REF]... [--policy FILE] [--grants FILE] [options]

Serves every tool component (*.wasm) in the tool folders, and each
oci:// reference given with --tools (pulled at start, signatures checked),
over MCP on stdio.
stdout is the MCP channel; everything else (logs, notes) goes to stderr.
Components added, replaced or removed in the folders while it runs are
registered or dropped, and the client is sent tools/list_changed.

Each session gets the capabilities the grants file lists, minted as tokens
bound to the session's run id; without --grants a session has no host access
(pure tools still work). The policy bounds every grant.

Stop switch: SIGTERM or SIGINT halts the runtime (recorded in the audit log)
and exits; so does creating the halt file, which also keeps the server from
starting while it exists.

  --grants FILE        capability claims for each session (JSON; see docs/embedding.md)
  --run ID             the session's run id (default: mcp-<random>)
  --halt-file FILE     the stop switch file (default <data-dir>/HALT, as authority halt writes it)
  --tool-timeout MS    deadline of every tool call (default 10000); approvals
                       of host calls must come within it
  --describe-timeout MS  deadline of each tool's describe() when its folder
                       is loaded (default 5000)
  --cache-dir DIR      compile cache (default <data-dir>/cache)
${RUNTIME_FLAGS_HELP.split('\n')
  .filter((l) => !l.includes('--json'))
  .join('\n')}

Exit codes: 0 the client disconnected or a signal stopped it, 1 the halt file
stopped it, 2 usage or configuration error.
`;

const { json: _json, ...FLAGS } = RUNTIME_FLAGS;

/**
 * stdout belongs to the MCP transport: hand the transport a stream onto it,
 * and send anything else written to process.stdout to stderr.
 */
function claimStdout(): { channel: Writable; release: () => void } {
  const out = process.stdout;
  const write = out.write;
  const raw = write as (this: NodeJS.WriteStream, chunk: Buffer, cb: (err?: Error | null) => void) => boolean;
  const channel = new Writable({
    write(chunk: Buffer, _encoding, cb) {
      raw.call(out, chunk, (err) => cb(err ?? null));
    },
  });
  out.write = ((chunk: unknown, encoding?: unknown, cb?: unknown) => (process.stderr.write as (...a: unknown[]) => boolean)(chunk, encoding, cb)) as typeof out.write;
  return { channel, release: () => void (out.write = write) };
}

/** Resolves with a reason once the halt file exists; polls as well, since fs.watch can miss events. */
function watchHaltFile(file: string): { stopped: Promise<string>; close: () => void } {
  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  let done: (reason: string) => void = () => {};
  const stopped = new Promise<string>((res) => (done = res));
  const check = (): void => {
    if (!existsSync(file)) return;
    const said = haltReason(file);
    done(`halt file ${file}${said ? `: ${said}` : ''}`);
  };
  let settle: NodeJS.Timeout | undefined;
  try {
    // The event comes when the file is created, before `echo reason > halt` has written the reason: read it a moment later.
    watcher = watch(dirname(file), { persistent: false }, () => {
      clearTimeout(settle);
      settle = setTimeout(check, 100);
    });
    watcher.on('error', () => {});
  } catch {
    // The folder may not exist yet: polling covers it.
  }
  timer = setInterval(check, 1000);
  timer.unref();
  return {
    stopped,
    close: () => {
      watcher?.close();
      clearTimeout(settle);
      clearInterval(timer);
      timer = undefined;
    },
  };
}

async function serve(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...FLAGS,
      grants: { type: 'string' },
      run: { type: 'string' },
      'halt-file': { type: 'string' },
      'tool-timeout': { type: 'string' },
      'describe-timeout': { type: 'string' },
      'cache-dir': { type: 'string' },
    },
  });
  if (positionals.length > 0) throw usageError(`mcp takes no positional arguments\n\n${USAGE}`);
  const timeoutMs = values['tool-timeout'] === undefined ? undefined : Number(values['tool-timeout']);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw usageError('--tool-timeout takes a positive number of milliseconds');
  const describeTimeoutMs = values['describe-timeout'] === undefined ? undefined : Number(values['describe-timeout']);
  if (describeTimeoutMs !== undefined && !(Number.isInteger(describeTimeoutMs) && describeTimeoutMs > 0)) throw usageError('--describe-timeout takes a positive number of milliseconds');
  const runId = values.run ?? `mcp-${randomBytes(9).toString('base64url')}`;
  const dataDir = resolveDataDir(values['data-dir'], io.env, io.cwd);
  const haltFile = values['halt-file'] !== undefined ? resolve(io.cwd, values['halt-file']) : dataPaths(dataDir).haltFile;
  if (existsSync(haltFile)) throw new AuthorityError(ErrorCode.CONFIG, `the stop switch is on: ${haltFile} exists; remove it to start`, { data: { file: haltFile } });
  // The MCP SDK and the runtime load only here, once the arguments are known to be good.
  const [{ createMcpServer, loadGrantsFile, mintGrants, watchToolFolders }, { StdioServerTransport }] = await Promise.all([
    import('../../adapters/mcp.ts'),
    import('@modelcontextprotocol/sdk/server/stdio.js'),
  ]);
  const claims: GrantClaim[] = values.grants === undefined ? [] : await loadGrantsFile(resolve(io.cwd, values.grants));

  const runtime: Runtime = await openRuntime(values, io, {
    limits: timeoutMs === undefined && describeTimeoutMs === undefined ? undefined : { ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(describeTimeoutMs === undefined ? {} : { describeTimeoutMs }) },
    cacheDir: values['cache-dir'] === undefined ? undefined : resolve(io.cwd, values['cache-dir']),
  });
  let folders: ToolFolders | undefined;
  let session: McpSession | undefined;
  let stdout: ReturnType<typeof claimStdout> | undefined;
  const halt = watchHaltFile(haltFile);
  const cleanups: Array<() => void> = [() => halt.close()];
  try {
    const grants = mintGrants(runtime, claims, { runId });
    // --tools takes folders and oci:// references; references are pulled and registered once, at start.
    const refs = (values.tools ?? []).filter(isOciReference);
    const folderArgs = (values.tools ?? []).filter((t) => !isOciReference(t));
    const dirs = refs.length > 0 && folderArgs.length === 0 ? [] : toolDirs({ ...values, tools: folderArgs }, io);
    const shown = progress(io, `authority mcp: loading the tools${dirs.length > 0 ? ` in ${dirs.join(', ')}` : ''}`);
    try {
      // Each refused component is one log event (warn, 'tool component refused'): a readable line on a terminal, JSON otherwise.
      folders = await watchToolFolders(runtime, dirs, { logger: io.log });
      for (const ref of refs) {
        try {
          await registerToolArg(runtime, ref, values, io);
        } catch (e) {
          const err = toAuthorityError(e);
          io.err(`authority mcp: refused ${ref}: ${err.code}: ${err.message}\n`);
        }
      }
    } finally {
      shown.done();
    }

    stdout = claimStdout();
    session = createMcpServer(runtime, { grants, runId, logger: io.log });
    const ended = new Promise<{ why: 'closed' | 'signal' | 'halt'; reason: string }>((res) => {
      const onEnd = (): void => res({ why: 'closed', reason: 'the client closed stdin' });
      process.stdin.once('end', onEnd);
      process.stdin.once('close', onEnd);
      cleanups.push(() => {
        process.stdin.off('end', onEnd);
        process.stdin.off('close', onEnd);
      });
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        const on = (): void => res({ why: 'signal', reason: `${signal} received` });
        process.once(signal, on);
        cleanups.push(() => process.off(signal, on));
      }
      void halt.stopped.then((reason) => res({ why: 'halt', reason }));
      void (session as McpSession).closed.then(() => res({ why: 'closed', reason: 'the transport closed' }));
    });
    await session.connect(new StdioServerTransport(process.stdin, stdout.channel));
    io.err(`authority mcp: serving ${runtime.tools().length} tool(s) from ${[...dirs, ...refs].join(', ')}; run ${runId}; ${grants.length} grant(s); policy ${runtime.policy.name ?? runtime.policy.digest.slice(0, 16)}; stop switch ${haltFile}\n`);

    const end = await ended;
    if (end.why !== 'closed') {
      io.err(`authority mcp: halting: ${end.reason}\n`);
      await runtime.halt(end.reason);
    }
    return end.why === 'halt' ? EXIT_FAIL : EXIT_OK;
  } finally {
    for (const c of cleanups) c();
    folders?.close();
    await session?.close().catch(() => {});
    stdout?.release();
    await runtime.close();
    // Nothing more will be read: let the process end.
    process.stdin.destroy();
  }
}

export const mcpCommand: Command = {
  name: 'mcp',
  summary: summaryOf('mcp'),
  usage: USAGE,
  async run(argv, io) {
    // Never let an error reach stdout (main() would print --json errors there): it is the MCP channel.
    try {
      return await serve(argv, io);
    } catch (e) {
      return fail(io, false, e);
    }
  },
};
