/**
 * The fuzzer's guests, built on first use and cached by content: the echo
 * guest (JavaScript, componentize-js) that forwards fuzzed calls through the
 * real imports, and the canonical-ABI abuse guest (WAT) that calls them with
 * raw pointers, lengths and flags no well-typed guest could produce.
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTool, WIT_DIR } from '../registry/index.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where the guest sources live. */
export const GUEST_SOURCES = join(ROOT, 'test', 'fixtures', 'fuzz');
const OUT = join(ROOT, 'build', 'fuzz');
/** Where transpiled guests are cached between runs (the runtime's compile cache). */
export const DEFAULT_CACHE = join(ROOT, 'build', 'cache');

/** The echo guest's source and the WAT abuse guest's. */
export const ECHO_SOURCE = join(GUEST_SOURCES, 'echo-guest.js');
export const ABI_SOURCE = join(GUEST_SOURCES, 'abi-guest.wat');

/** Build `source` (a .js or .wat tool) unless a build of the same source, WIT and toolchain is cached. */
export async function guestComponent(source: string, log: (line: string) => void = () => {}): Promise<Uint8Array> {
  const h = createHash('sha256');
  h.update(readFileSync(source));
  h.update(readFileSync(join(WIT_DIR, 'sandbox.wit')));
  // The toolchain's versions are part of the key: a new componentize-js rebuilds.
  for (const pkg of ['@bytecodealliance/componentize-js', '@bytecodealliance/jco']) {
    const pj = join(ROOT, 'node_modules', pkg, 'package.json');
    h.update(existsSync(pj) ? (JSON.parse(readFileSync(pj, 'utf8')) as { version?: string }).version ?? pkg : pkg);
  }
  const key = h.digest('hex').slice(0, 16);
  const name = source.split('/').pop()?.replace(/\.[a-z]+$/, '') ?? 'guest';
  const out = join(OUT, `${name}-${key}.wasm`);
  if (existsSync(out)) return readFileSync(out);
  log(`building the ${name} guest (once; cached in ${OUT})...`);
  const { component } = await buildTool(source);
  mkdirSync(OUT, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, component);
  renameSync(tmp, out);
  return component;
}
