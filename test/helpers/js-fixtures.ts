/**
 * JavaScript test tools: test/fixtures/tools/<name>/index.js, built into
 * components with componentize-js (the same `buildTool` the CLI uses) and
 * cached by content hash under build/fixtures/, like `watFixture`. A build
 * takes seconds and most of a GiB, so it happens once per change of the
 * sources, the WIT or the toolchain, and never twice at the same time in one
 * process.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTool, WIT_DIR } from '../../src/registry/build.ts';
import { filesUnder, toolchain } from '../../tools/build.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where the sources of JavaScript test tools live. */
export const JS_FIXTURES = join(root, 'test', 'fixtures', 'tools');
const OUT = join(root, 'build', 'fixtures');

/** The cache key of a test tool: its files, the WIT and the toolchain. */
function contentKey(name: string): string {
  const h = createHash('sha256');
  h.update(`${toolchain}\n`);
  for (const f of [...filesUnder(join(JS_FIXTURES, name)), ...filesUnder(WIT_DIR)]) {
    h.update(`${relative(root, f)}\n`);
    h.update(readFileSync(f));
  }
  return h.digest('hex').slice(0, 16);
}

const building = new Map<string, Promise<string>>();

/**
 * Build test/fixtures/tools/<name>/index.js into a component (once per
 * content hash) and return the path of the .wasm.
 *
 * @example
 * ```ts
 * const path = await jsFixture('net-probe');
 * await runtime.register(path);
 * ```
 */
export function jsFixture(name: string): Promise<string> {
  const source = join(JS_FIXTURES, name, 'index.js');
  if (!existsSync(source)) return Promise.reject(new Error(`no test tool ${name}: ${relative(root, source)} does not exist`));
  const out = join(OUT, `${name}-${contentKey(name)}.wasm`);
  if (existsSync(out)) return Promise.resolve(out);
  let pending = building.get(out);
  if (pending === undefined) {
    pending = (async () => {
      const { component } = await buildTool(source);
      mkdirSync(OUT, { recursive: true });
      // Another process may build the same key at the same time: each writes its own temp file, the rename is atomic.
      const tmp = `${out}.${process.pid}.tmp`;
      writeFileSync(tmp, component);
      renameSync(tmp, out);
      return out;
    })();
    building.set(out, pending);
    void pending.finally(() => building.delete(out)).catch(() => {});
  }
  return pending;
}

/** Build several test tools, at most two at a time (each build takes most of a GiB). */
export async function jsFixtures(names: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const queue = [...names];
  await Promise.all(
    Array.from({ length: Math.min(2, queue.length) }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) out[n] = await jsFixture(n);
    }),
  );
  return out;
}
