import { readFileSync } from 'node:fs';
import { AuthorityError, ErrorCode } from '../../errors.ts';
import { emit, fail, parse, progress, usageError } from '../output.ts';
import { isOciReference } from '../../oci/reference.ts';
import { openRuntime, registerToolArg, resolveToolArg, RUNTIME_FLAGS, RUNTIME_FLAGS_HELP } from '../runtime-options.ts';
import { EXIT_OK, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage: authority run <tool.wasm|name|oci://HOST/REPO[:TAG|@sha256:HEX]> --input JSON [--grant TOKEN]... [options]

Runs a tool once, in a fresh sandbox instance. Every host call it makes needs
a granted capability token and the policy's permission, and is audited.

  --input JSON         the tool's input (a JSON value; @FILE reads it from a file)
  --grant TOKEN        a capability token for this run; repeatable (@FILE reads one per line)
  --run ID             the run id (default: a fresh one); budgets and revocations by run apply
  --timeout MS         lower the tool's deadline
${RUNTIME_FLAGS_HELP}

Exit codes: 0 the tool succeeded, 1 it failed or a call was denied, 2 usage or configuration.
`;

function readArg(value: string): string {
  if (!value.startsWith('@')) return value;
  try {
    return readFileSync(value.slice(1), 'utf8');
  } catch (e) {
    throw new AuthorityError(ErrorCode.USAGE, `cannot read ${value.slice(1)}: ${(e as Error).message}`, { cause: e });
  }
}

export const runCommand: Command = {
  name: 'run',
  summary: summaryOf('run'),
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parse({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        ...RUNTIME_FLAGS,
        input: { type: 'string' },
        grant: { type: 'string', multiple: true },
        run: { type: 'string' },
        timeout: { type: 'string' },
      },
    });
    const json = values.json;
    if (positionals.length !== 1) throw usageError(`run takes exactly one tool\n\n${USAGE}`);
    if (values.input === undefined) throw usageError('run needs --input JSON (use --input {} for none)');
    let input: unknown;
    try {
      input = JSON.parse(readArg(values.input));
    } catch (e) {
      throw new AuthorityError(ErrorCode.USAGE, `--input is not JSON: ${(e as Error).message}`, { cause: e });
    }
    const grants = (values.grant ?? []).flatMap((g) => readArg(g).split(/\s+/).filter(Boolean));
    // A grant that is not a token at all is a typo: refuse it before the tool runs (a pure tool would otherwise succeed and hide it).
    if (grants.length > 0) {
      const { parseToken } = await import('../../capability/index.ts');
      grants.forEach((g, i) => {
        try {
          parseToken(g);
        } catch (e) {
          throw new AuthorityError(ErrorCode.USAGE, `--grant #${i + 1} is not a capability token (${(e as Error).message}); tokens come from \`authority cap issue\``, { cause: e, data: { field: '--grant', index: i } });
        }
      });
    }
    const timeoutMs = values.timeout === undefined ? undefined : Number(values.timeout);
    if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw usageError('--timeout takes a positive number of milliseconds');
    const arg = positionals[0] as string;
    // A missing file is reported before the runtime opens; a reference is resolved once it is.
    if (!isOciReference(arg)) resolveToolArg(arg, values, io);
    const runtime = await openRuntime(values, io);
    try {
      // The first registration of a tool transpiles and compiles it (seconds for a JavaScript tool); later ones hit the cache.
      const shown = progress(io, 'preparing the tool (first use; cached afterwards)');
      const tool = await registerToolArg(runtime, arg, values, io).finally(() => shown.done());
      const result = await runtime.invoke(tool.name, input, { grants, runId: values.run, timeoutMs });
      emit(io, json, result, result.output);
      return EXIT_OK;
    } catch (e) {
      return fail(io, json, e);
    } finally {
      await runtime.close();
    }
  },
};
