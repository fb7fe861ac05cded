import type { AuthorityError} from '../../errors.ts';
import { ErrorCode, toAuthorityError } from '../../errors.ts';
import type { ToolInfo } from '../../registry/index.ts';
import { emit, parse, usageError } from '../output.ts';
import { isOciReference } from '../../oci/reference.ts';
import { componentFiles, openRuntime, registerToolArg, resolveToolArg, RUNTIME_FLAGS, RUNTIME_FLAGS_HELP, toolDirs } from '../runtime-options.ts';
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';
import { REGISTRY_USAGE } from './tools-usage.ts';


const REGISTRY_SUBCOMMANDS: ReadonlySet<string> = new Set(['push', 'pull', 'sign', 'verify', 'keygen']);

const USAGE = `usage:
  authority tools list [--tools DIR]... [options]
  authority tools inspect <tool.wasm|name|oci://...> [options]
${REGISTRY_USAGE}

list      every component in the tool folders, with its name, description,
          digest and imports; components that would be refused are listed
          with the reason (exit 1 if any is).
inspect   one component: its self-description, input schema, digest and
          imports. A component importing anything outside authority:sandbox
          is refused, naming the import (exit 2).

${RUNTIME_FLAGS_HELP}
`;

function describe(t: ToolInfo): string {
  return [
    `${t.name}  ${t.description}`,
    `  sha256:${t.digest}  ${t.size} bytes  imports: ${t.imports.length ? t.imports.map((i) => `authority:sandbox/${i}`).join(', ') : 'none'}`,
    ...(t.source ? [`  ${t.source}`] : []),
  ].join('\n');
}

export const toolsCommand: Command = {
  name: 'tools',
  summary: summaryOf('tools'),
  usage: USAGE,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub !== undefined && REGISTRY_SUBCOMMANDS.has(sub)) return (await import('./tools-registry.ts')).runRegistryCommand(sub, rest, io);
    const { values, positionals } = parse({ args: rest, strict: true, allowPositionals: true, options: RUNTIME_FLAGS });
    if (sub === 'inspect') {
      if (positionals.length !== 1) throw usageError(`tools inspect takes one component\n\n${USAGE}`);
      const arg = positionals[0] as string;
      if (!isOciReference(arg)) resolveToolArg(arg, values, io);
      const runtime = await openRuntime(values, io);
      try {
        const t = await registerToolArg(runtime, arg, values, io);
        emit(io, values.json, { ok: true, tool: t }, `${describe(t)}\n  input schema: ${JSON.stringify(t.inputSchema, null, 2).replaceAll('\n', '\n  ')}`);
        return EXIT_OK;
      } finally {
        await runtime.close();
      }
    }
    if (sub === 'list') {
      if (positionals.length !== 0) throw usageError(`tools list takes no positional arguments\n\n${USAGE}`);
      const dirs = toolDirs(values, io);
      const files = componentFiles(dirs);
      const runtime = await openRuntime(values, io);
      const listed: Array<{ file: string; tool?: ToolInfo; error?: ReturnType<AuthorityError['toJSON']> }> = [];
      try {
        for (const file of files) {
          try {
            listed.push({ file, tool: await runtime.register(file) });
          } catch (e) {
            listed.push({ file, error: toAuthorityError(e, ErrorCode.COMPONENT_INVALID).toJSON() });
          }
        }
      } finally {
        await runtime.close();
      }
      const human = files.length === 0 ? `no components (*.wasm) in ${dirs.join(', ')}` : listed.map((l) => (l.tool ? describe(l.tool) : `${l.file}\n  refused: ${l.error?.code}: ${l.error?.message}`)).join('\n');
      emit(io, values.json, { ok: listed.every((l) => l.tool), dirs, tools: listed }, human);
      return listed.every((l) => l.tool) ? EXIT_OK : EXIT_FAIL;
    }
    io.err(USAGE);
    return EXIT_USAGE;
  },
};
