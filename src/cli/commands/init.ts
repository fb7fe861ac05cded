/**
 * `authority init`: everything a first run needs, in an empty folder: a
 * keyring, a starter policy, a grants file for `authority mcp`, a workspace
 * with a file to read, and two example tools (ready-built components of a few
 * KB, with their sources beside them).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dataPaths, ensurePrivateDir, resolveDataDir } from '../../data-dir.ts';
import { AuthorityError, ErrorCode } from '../../errors.ts';
import { emit, parse, progress, usageError } from '../output.ts';
import { EXIT_OK, type CliIO, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage: authority init [--data-dir DIR] [--force] [--json]

Sets up the current folder for a first run:

  .authority/keys.json          a new keyring (signs capability tokens)
  .authority/policy.json        a starter policy: read files under ./workspace, nothing else
  .authority/tools/*.wasm       example tools: read-text (reads a text file), echo
  grants.json                   what each \`authority mcp\` session may do
  workspace/hello.txt           a file the policy lets a tool read
  tool-sources/                 the example tools' WAT sources

Then:
  TOKEN=$(npx authority cap issue --kind fs --resource "$PWD/workspace/**" --methods read --ttl 1h)
  npx authority run read-text --input "{\\"path\\":\\"$PWD/workspace/hello.txt\\"}" --grant "$TOKEN"

Existing files are kept unless --force is given.

  --data-dir DIR       state folder (default $AUTHORITY_DATA_DIR or ./.authority)
  --force              overwrite the policy, grants and tools if they exist
  --json               print exactly one JSON document on stdout
`;

/** The example tools every install carries, as built components (package) or WAT sources (checkout). */
export const EXAMPLE_TOOLS = ['read-text', 'echo'] as const;

/** A shipped example component: dist/tools/<name>.wasm in the package, built from tools/<name>/<name>.wat in a checkout. */
async function exampleComponent(name: string, io: CliIO): Promise<{ component: Uint8Array; source: string }> {
  const shipped = fileURLToPath(new URL(`../../tools/${name}.wasm`, import.meta.url));
  const sourceShipped = fileURLToPath(new URL(`../../tools/${name}.wat`, import.meta.url));
  if (existsSync(shipped) && existsSync(sourceShipped)) return { component: readFileSync(shipped), source: readFileSync(sourceShipped, 'utf8') };
  const source = fileURLToPath(new URL(`../../../tools/${name}/${name}.wat`, import.meta.url));
  if (!existsSync(source)) throw new AuthorityError(ErrorCode.INTERNAL, `this copy of authority-sandbox has neither ${shipped} nor ${source}`);
  const shown = progress(io, `building ${name} from ${source}`);
  const { buildTool } = await import('../../registry/build.ts');
  const { component } = await buildTool(source).finally(() => shown.done());
  return { component, source: readFileSync(source, 'utf8') };
}

export const initCommand: Command = {
  name: 'init',
  summary: summaryOf('init'),
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parse({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string' },
        force: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
    });
    if (positionals.length > 0) throw usageError(`init takes no positional arguments\n\n${USAGE}`);
    const dataDir = resolveDataDir(values['data-dir'], io.env, io.cwd);
    const paths = dataPaths(dataDir);
    const workspace = resolve(io.cwd, 'workspace');
    const written: string[] = [];
    const kept: string[] = [];
    const put = (file: string, content: string | Uint8Array): void => {
      if (existsSync(file) && !values.force) {
        kept.push(file);
        return;
      }
      writeFileSync(file, content);
      written.push(file);
    };

    ensurePrivateDir(dataDir);
    if (existsSync(paths.keyring)) {
      kept.push(paths.keyring);
    } else {
      const { Keyring } = await import('../../capability/index.ts');
      Keyring.fromDataDir(dataDir, { create: true });
      written.push(paths.keyring);
    }
    const policy = {
      version: '1.0',
      name: 'starter',
      fs: { read: [`${workspace}/**`] },
      tools: { allow: ['*'] },
    };
    put(paths.policy, `${JSON.stringify(policy, null, 2)}\n`);
    put(
      resolve(io.cwd, 'grants.json'),
      `${JSON.stringify({ description: 'Capabilities each `authority mcp` session gets, bound to its run id; the policy bounds them.', grants: [{ kind: 'fs', resource: `${workspace}/**`, methods: ['read'], ttl: '8h' }] }, null, 2)}\n`,
    );
    mkdirSync(workspace, { recursive: true });
    put(join(workspace, 'hello.txt'), 'Hello from the workspace. Tools read this only through the gate.\n');
    mkdirSync(paths.toolsDir, { recursive: true, mode: 0o700 });
    const sources = resolve(io.cwd, 'tool-sources');
    mkdirSync(sources, { recursive: true });
    for (const name of EXAMPLE_TOOLS) {
      const { component, source } = await exampleComponent(name, io);
      put(join(paths.toolsDir, `${name}.wasm`), component);
      put(join(sources, `${name}.wat`), source);
    }
    const next = [
      `TOKEN=$(npx authority cap issue --kind fs --resource '${workspace}/**' --methods read --ttl 1h)`,
      `npx authority run read-text --input '${JSON.stringify({ path: join(workspace, 'hello.txt') })}' --grant "$TOKEN"`,
      `npx authority run read-text --input '{"path":"/etc/passwd"}' --grant "$TOKEN"   # denied: E_POLICY_DENY or E_CAP_SCOPE`,
      `npx authority mcp --grants grants.json   # serve the tools to an MCP client`,
    ];
    const human = [
      ...written.map((f) => `wrote ${f}`),
      ...kept.map((f) => `kept  ${f} (exists; --force overwrites)`),
      '',
      'next:',
      ...next.map((l) => `  ${l}`),
    ].join('\n');
    emit(io, values.json, { ok: true, dataDir, written, kept, next }, human);
    return EXIT_OK;
  },
};
