/**
 * Writes guest/sandbox.d.ts and guest/interfaces/*.d.ts: TypeScript types
 * for the `authority:sandbox/*` modules a tool imports, generated from
 * wit/sandbox.wit by jco. A test checks the committed files match.
 *
 *   node --import tsx tools/guest-types.ts [--check]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTranspiler } from '../src/registry/jco.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Every generated file: path under guest/ -> content. */
export async function guestTypes(): Promise<Map<string, string>> {
  const { generateGuestTypes } = await loadTranspiler();
  const files = await generateGuestTypes(join(root, 'wit', 'sandbox.wit'), { worldName: 'tool', guest: true });
  const out = new Map<string, string>();
  const names: string[] = [];
  for (const [name, bytes] of Object.entries(files).sort(([a], [b]) => a.localeCompare(b))) {
    if (!name.startsWith('interfaces/')) continue;
    out.set(name, new TextDecoder().decode(bytes));
    names.push(name);
  }
  out.set(
    'sandbox.d.ts',
    ['// Generated from wit/sandbox.wit by tools/guest-types.ts: the modules a tool imports.', ...names.map((n) => `/// <reference path="./${n}" />`), ''].join('\n'),
  );
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [name, content] of await guestTypes()) {
    const file = join(root, 'guest', name);
    if (check) {
      if (!existsSync(file) || readFileSync(file, 'utf8') !== content) {
        console.error(`stale: guest/${name}`);
        stale++;
      }
      continue;
    }
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
  process.exitCode = stale > 0 ? 1 : 0;
}
