/**
 * Test fixtures: hostile tools written in WAT under test/fixtures/, assembled
 * into components at test time (cached by content hash under build/fixtures/),
 * and the example tools built from tools/.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco';
import { WIT_DIR } from '../../src/registry/build.ts';
import { ensureTools } from '../../tools/build.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(root, 'test', 'fixtures');
const OUT = join(root, 'build', 'fixtures');

/**
 * Assemble test/fixtures/<name>.wat (or <name>/<name>.wat with its own WIT)
 * into a component and return its path.
 */
export async function watFixture(name: string, opts: { witDir?: string; world?: string } = {}): Promise<string> {
  const watPath = existsSync(join(FIXTURES, `${name}.wat`)) ? join(FIXTURES, `${name}.wat`) : join(FIXTURES, name, `${name}.wat`);
  const witDir = opts.witDir ?? WIT_DIR;
  const world = opts.world ?? 'tool';
  const wat = readFileSync(watPath, 'utf8');
  const key = createHash('sha256').update(wat).update(world).update(readFileSync(join(witDir, witDir === WIT_DIR ? 'sandbox.wit' : 'world.wit'))).digest('hex').slice(0, 16);
  mkdirSync(OUT, { recursive: true });
  const out = join(OUT, `${name}-${key}.wasm`);
  if (existsSync(out)) return out;
  const core = await parse(wat);
  const embedded = await componentEmbed({ binary: core, witPath: witDir, world });
  const component = await componentNew(embedded);
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, component);
  renameSync(tmp, out);
  return out;
}

/** The example tools, built if needed (fast when cached). */
export function exampleTools(names?: string[]): Promise<Record<string, string>> {
  return ensureTools(names);
}
