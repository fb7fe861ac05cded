/**
 * Building tools from source into components that import only what they use.
 *
 * - JavaScript (`.js`, `.mjs`): componentize-js (StarlingMonkey) with every
 *   WASI feature disabled, against a world generated for the tool that imports
 *   exactly the `authority:sandbox` interfaces its source imports. A pure tool
 *   imports nothing.
 * - WebAssembly text (`.wat`): a core module written against the canonical
 *   ABI, embedded with the `tool` world and wrapped with `jco new`; interfaces
 *   the module does not import are dropped.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { isMissing, loadWasmTools } from './jco.ts';
import type * as Componentize from '@bytecodealliance/componentize-js';

/** The folder holding `sandbox.wit`, shipped with the package. */
export const WIT_DIR = fileURLToPath(new URL('../../wit/', import.meta.url));
export const SANDBOX_PACKAGE = 'authority:sandbox@0.1.0';
export const SANDBOX_INTERFACES = ['http', 'fs', 'secrets'] as const;
export type SandboxInterface = (typeof SANDBOX_INTERFACES)[number];

const IMPORT_RE = /\bfrom\s*['"]authority:sandbox\/([a-z-]+)(?:@([0-9.]+))?['"]/g;

/** The sandbox interfaces a JavaScript source imports (by static `import ... from`). */
export function sourceImports(source: string): SandboxInterface[] {
  const found = new Set<SandboxInterface>();
  for (const m of source.matchAll(IMPORT_RE)) {
    const iface = m[1] as string;
    if (!(SANDBOX_INTERFACES as readonly string[]).includes(iface)) {
      throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the source imports authority:sandbox/${iface}, which does not exist (there are: ${SANDBOX_INTERFACES.join(', ')})`);
    }
    if (m[2] !== undefined && m[2] !== '0.1.0') {
      throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the source imports authority:sandbox/${iface}@${m[2]}; this host provides @0.1.0`);
    }
    found.add(iface as SandboxInterface);
  }
  return [...found].sort();
}

/** WIT for a world that imports exactly `imports` and exports the tool entry points. */
export function toolWorld(imports: readonly SandboxInterface[]): string {
  return [
    'package local:tool;',
    '',
    'world tool {',
    ...imports.map((i) => `  import ${SANDBOX_PACKAGE.replace('@', `/${i}@`)};`),
    `  use ${SANDBOX_PACKAGE.replace('@', '/types@')}.{description};`,
    '  export describe: func() -> description;',
    '  export run: func(input: string) -> result<string, string>;',
    '}',
    '',
  ].join('\n');
}

export interface BuildResult {
  component: Uint8Array;
  /** The sandbox interfaces the component imports. */
  imports: SandboxInterface[];
  language: 'javascript' | 'wat';
}

/** The JavaScript tool builder: an optional peer, since only `authority build` of a .js tool needs it. */
export const COMPONENTIZE_PACKAGE = '@bytecodealliance/componentize-js';

async function loadComponentize(): Promise<typeof Componentize> {
  try {
    return await import('@bytecodealliance/componentize-js');
  } catch (e) {
    if (!isMissing(e, COMPONENTIZE_PACKAGE)) throw e;
    throw new AuthorityError(ErrorCode.CONFIG, `building a JavaScript tool needs ${COMPONENTIZE_PACKAGE}, which is not installed: run \`npm install ${COMPONENTIZE_PACKAGE}@0.23\` (running tools does not need it)`, { cause: e });
  }
}

/** The guest helper module (`authority-sandbox/guest`), plain JavaScript shipped with the package. */
export const GUEST_MODULE = fileURLToPath(new URL('../../guest/index.js', import.meta.url));
const GUEST_IMPORT_RE = /(\bfrom\s*)(['"])authority-sandbox\/guest\2/g;

/**
 * The JavaScript engine inside a tool resolves only relative imports, so an
 * import of `authority-sandbox/guest` is pointed at the shipped file: the
 * source is copied beside itself (its own relative imports still resolve)
 * with that one specifier rewritten. Returns the file to build and a cleanup.
 */
function withGuestImport(sourcePath: string, source: string): { path: string; done: () => void } {
  if (!/\bfrom\s*(['"])authority-sandbox\/guest\1/.test(source)) return { path: sourcePath, done: () => {} };
  let rel = relative(dirname(sourcePath), GUEST_MODULE).split(sep).join('/');
  if (!rel.startsWith('.')) rel = `./${rel}`;
  const path = join(dirname(sourcePath), `.${basename(sourcePath, extname(sourcePath))}.authority-build-${process.pid}.js`);
  writeFileSync(path, source.replace(GUEST_IMPORT_RE, (_m, from: string, q: string) => `${from}${q}${rel}${q}`));
  return { path, done: () => rmSync(path, { force: true }) };
}

async function buildJs(sourcePath: string): Promise<BuildResult> {
  const source = readFileSync(sourcePath, 'utf8');
  const imports = sourceImports(source);
  const { componentize } = await loadComponentize();
  const witDir = mkdtempSync(join(tmpdir(), 'authority-wit-'));
  const entry = withGuestImport(sourcePath, source);
  try {
    mkdirSync(join(witDir, 'deps', 'sandbox'), { recursive: true });
    copyFileSync(join(WIT_DIR, 'sandbox.wit'), join(witDir, 'deps', 'sandbox', 'sandbox.wit'));
    writeFileSync(join(witDir, 'world.wit'), toolWorld(imports));
    const { component } = await componentize({
      sourcePath: entry.path,
      witPath: witDir,
      worldName: 'tool',
      disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
    });
    return { component, imports, language: 'javascript' };
  } catch (e) {
    if (e instanceof AuthorityError) throw e;
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `could not build ${sourcePath}: ${(e as Error).message}`, { cause: e });
  } finally {
    entry.done();
    rmSync(witDir, { recursive: true, force: true });
  }
}

async function buildWat(sourcePath: string): Promise<BuildResult> {
  const wat = readFileSync(sourcePath, 'utf8');
  const { parse, componentEmbed, componentNew } = await loadWasmTools();
  try {
    const core = await parse(wat);
    const embedded = await componentEmbed({ binary: core, witPath: WIT_DIR, world: 'tool' });
    const component = await componentNew(embedded);
    const imports = SANDBOX_INTERFACES.filter((i) => wat.includes(`"authority:sandbox/${i}@`));
    return { component, imports: [...imports], language: 'wat' };
  } catch (e) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `could not build ${sourcePath}: ${(e as Error).message ?? String(e)}`, { cause: e });
  }
}

/**
 * Build a tool from its source file into a component (bytes).
 *
 * @example
 * ```ts
 * const { component } = await buildTool('tools/word-count/index.js');
 * writeFileSync('word-count.wasm', component);
 * ```
 */
export async function buildTool(sourcePath: string): Promise<BuildResult> {
  const abs = resolve(sourcePath);
  switch (extname(abs)) {
    case '.js':
    case '.mjs':
      return buildJs(abs);
    case '.wat':
      return buildWat(abs);
    default:
      throw new AuthorityError(ErrorCode.USAGE, `cannot build ${sourcePath}: expected a .js, .mjs or .wat source`);
  }
}
