/**
 * Builds the example tools (tools/<name>/index.js or tools/<name>/<name>.wat)
 * into build/tools/<name>.wasm, skipping any whose sources, WIT and toolchain
 * are unchanged since the last build (a content hash is kept beside each
 * output). Runs on `npm install` and on first use; `npm run build:tools`
 * forces nothing but reports what it did.
 *
 *   node --import tsx tools/build.ts [--force] [--quiet] [name ...]
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTool, WIT_DIR } from '../src/registry/build.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
export const TOOLS_SRC = here;
export const TOOLS_OUT = join(root, 'build', 'tools');

/** name@version of an installed package (its package.json need not be exported). */
export function installed(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.resolve(name)));
  while (dir !== dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      const pkg = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === name) return `${name}@${pkg.version}`;
    }
    dir = dirname(dir);
  }
  return `${name}@unknown`;
}
/** What a built component depends on besides its sources and the WIT: part of every build's cache key. */
export const toolchain = ['@bytecodealliance/componentize-js', '@bytecodealliance/jco'].map(installed).join(',');

/** Every file below `dir`, sorted. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else if (entry.isFile()) out.push(p);
  }
  return out.sort();
}

/** The source entry of a tool folder: index.js, index.mjs, or <name>.wat. */
function entryOf(name: string): string | undefined {
  for (const candidate of ['index.js', 'index.mjs', `${name}.wat`]) {
    const p = join(TOOLS_SRC, name, candidate);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Every buildable tool under tools/ (folders starting with `_` are shared code). */
export function toolNames(): string[] {
  return readdirSync(TOOLS_SRC)
    .filter((n) => !n.startsWith('_') && statSync(join(TOOLS_SRC, n)).isDirectory() && entryOf(n) !== undefined)
    .sort();
}

function contentKey(name: string): string {
  const h = createHash('sha256');
  h.update(`toolchain ${toolchain}\n`);
  const own = filesUnder(join(TOOLS_SRC, name));
  // A tool that imports the guest helper is built with it inside.
  const guest = own.some((f) => readFileSync(f, 'utf8').includes('authority-sandbox/guest')) ? [join(root, 'guest', 'index.js')] : [];
  const inputs = [...own, ...filesUnder(join(TOOLS_SRC, '_shared')), ...guest, ...filesUnder(WIT_DIR)];
  for (const f of inputs) {
    h.update(`${relative(root, f)}\n`);
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}

export function toolPath(name: string): string {
  return join(TOOLS_OUT, `${name}.wasm`);
}

export interface EnsureOptions {
  force?: boolean;
  log?: (line: string) => void;
}

/**
 * Build the named tools (default: all) if their sources changed; returns the
 * path of each component. Safe to call from many test files: a build writes
 * to a temp file and renames it into place.
 */
export async function ensureTools(names: string[] = toolNames(), opts: EnsureOptions = {}): Promise<Record<string, string>> {
  const log = opts.log ?? (() => {});
  mkdirSync(TOOLS_OUT, { recursive: true });
  const paths: Record<string, string> = {};
  const pending: string[] = [];
  for (const name of names) {
    const entry = entryOf(name);
    if (entry === undefined) throw new Error(`no tool named ${name} under tools/`);
    paths[name] = toolPath(name);
    const stamp = join(TOOLS_OUT, `${name}.hash`);
    const key = contentKey(name);
    const fresh = !opts.force && existsSync(paths[name]) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key;
    if (fresh) log(`tools: ${name} is up to date`);
    else pending.push(name);
  }
  // componentize-js is CPU- and memory-heavy: two builds at a time.
  const workers = Array.from({ length: Math.min(2, pending.length) }, async () => {
    for (let name = pending.shift(); name !== undefined; name = pending.shift()) {
      const started = Date.now();
      log(`tools: building ${name}...`);
      const { component, imports } = await buildTool(entryOf(name) as string);
      const out = toolPath(name);
      const tmp = `${out}.${process.pid}.tmp`;
      writeFileSync(tmp, component);
      renameSync(tmp, out);
      writeFileSync(join(TOOLS_OUT, `${name}.hash`), contentKey(name));
      const kb = Math.round(component.length / 1024);
      log(`tools: built ${name} (${kb} KiB, imports: ${imports.length ? imports.join(', ') : 'none'}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  });
  await Promise.all(workers);
  return paths;
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const args = process.argv.slice(2);
  const quiet = args.includes('--quiet');
  const names = args.filter((a) => !a.startsWith('--'));
  await ensureTools(names.length ? names : undefined, {
    force: args.includes('--force'),
    log: quiet ? () => {} : (line) => process.stderr.write(line + '\n'),
  });
}
