/**
 * What `npm pack` (and `npm publish`) adds to the compiled code, so that an
 * installed package runs without anything of the development checkout:
 *
 * - dist/vendor/jco-transpile/: jco's transpiler and wasm-tools (the files of
 *   the pinned @bytecodealliance/jco-transpile). That package's npm
 *   dependencies include binaryen, about 90 MB used only by its optimiser
 *   and asm.js output, which Authority never asks for; carrying its files
 *   keeps the install small. Its remaining imports (preview2-shim,
 *   oxc-minify) are dependencies of ours.
 * - dist/tools/: the example tools written in WAT, built (a few KB each),
 *   with their sources, for `authority init`.
 *
 *   node --import tsx tools/pack.ts     (npm's prepack runs it after the build)
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTool } from '../src/registry/build.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
if (!existsSync(join(dist, 'index.js'))) throw new Error('run `npm run build` first: dist/index.js is missing');

// jco-transpile, as installed (the exact version package.json pins).
const jcoDir = dirname(dirname(fileURLToPath(import.meta.resolve('@bytecodealliance/jco-transpile'))));
const jco = JSON.parse(readFileSync(join(jcoDir, 'package.json'), 'utf8')) as { name: string; version: string };
const vendor = join(dist, 'vendor', 'jco-transpile');
rmSync(vendor, { recursive: true, force: true });
mkdirSync(vendor, { recursive: true });
for (const part of ['dist', 'vendor', 'LICENSE', 'package.json']) {
  cpSync(join(jcoDir, part), join(vendor, part), { recursive: true, filter: (src) => !src.endsWith('.map') && !src.endsWith('.d.ts') });
}
writeFileSync(join(vendor, 'README.md'), `${jco.name}@${jco.version}, carried unchanged (without source maps and type declarations); see LICENSE.\n`);

// The WAT example tools, built.
const toolsOut = join(dist, 'tools');
mkdirSync(toolsOut, { recursive: true });
for (const name of ['read-text', 'echo']) {
  const source = join(root, 'tools', name, `${name}.wat`);
  const { component } = await buildTool(source);
  writeFileSync(join(toolsOut, `${name}.wasm`), component);
  cpSync(source, join(toolsOut, `${name}.wat`));
}
console.error(`pack: carried ${jco.name}@${jco.version}; built ${toolsOut}`);
