/**
 * The fuzzer's guests, built on first use and cached by content: the echo
 * guest (JavaScript, componentize-js) that forwards fuzzed calls through the
 * real imports, and the canonical-ABI abuse guest (WAT) that calls them with
 * raw pointers, lengths and flags no well-typed guest could produce.
 * @module
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { SecretStore } from '../host/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { buildTool, COMPONENTIZE_PACKAGE, compileComponent, DEFAULT_LIMITS, sha256Hex, WIT_DIR } from '../registry/index.ts';
import { createRuntime, type Runtime, type RuntimeOptions } from '../runtime.ts';
import { LogCapture } from './gate-harness.ts';
import type { World } from './world.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where the guest sources live. */
export const GUEST_SOURCES = join(ROOT, 'test', 'fixtures', 'fuzz');

let cacheRoot: string | undefined;

/**
 * Where built guests and transpiled tools are kept between runs: in a
 * development checkout (running the TypeScript sources) the checkout's
 * `build/`; otherwise the user's cache folder (`$XDG_CACHE_HOME` or
 * `~/.cache`, then `authority-sandbox`); `$AUTHORITY_CACHE_DIR` overrides
 * both. Never the installed package's own folder: that is inside
 * node_modules, which is not a place for state.
 */
export function fuzzCacheRoot(): string {
  if (cacheRoot !== undefined) return cacheRoot;
  const chosen = process.env['AUTHORITY_CACHE_DIR'];
  const userCache = join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'authority-sandbox');
  const candidates = chosen ? [chosen] : import.meta.url.endsWith('.ts') ? [join(ROOT, 'build'), userCache] : [userCache];
  for (const dir of candidates) {
    try {
      mkdirSync(dir, { recursive: true });
      accessSync(dir, constants.W_OK);
      cacheRoot = dir;
      return dir;
    } catch {
      // not writable here: try the next
    }
  }
  throw new AuthorityError(ErrorCode.CONFIG, `no writable cache folder for the fuzzer's guests (tried ${candidates.join(', ')}); set XDG_CACHE_HOME to one`);
}

/** Whether the echo guest is built already or can be built here (componentize-js is installed). */
export function echoGuestAvailable(): boolean {
  if (existsSync(join(fuzzCacheRoot(), 'fuzz', `echo-guest-${guestKey(ECHO_SOURCE)}.wasm`))) return true;
  try {
    import.meta.resolve(COMPONENTIZE_PACKAGE);
    return true;
  } catch {
    return false;
  }
}

/** Where transpiled guests are cached between runs (the runtime's compile cache). */
export function defaultCacheDir(): string {
  return join(fuzzCacheRoot(), 'cache');
}

/** The installed version of a package, found from its entry point (its package.json need not be exported). */
function packageVersion(pkg: string): string {
  try {
    let dir = dirname(fileURLToPath(import.meta.resolve(pkg)));
    for (;;) {
      const pj = join(dir, 'package.json');
      if (existsSync(pj)) {
        const doc = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string };
        if (doc.name === pkg) return doc.version ?? pkg;
      }
      const up = dirname(dir);
      if (up === dir) return pkg;
      dir = up;
    }
  } catch {
    return pkg;
  }
}

/** The echo guest's source and the WAT abuse guest's. */
export const ECHO_SOURCE = join(GUEST_SOURCES, 'echo-guest.js');
export const ABI_SOURCE = join(GUEST_SOURCES, 'abi-guest.wat');

/** Build `source` (a .js or .wat tool) unless a build of the same source, WIT and toolchain is cached. */
function guestKey(source: string): string {
  const h = createHash('sha256');
  h.update(readFileSync(source));
  h.update(readFileSync(join(WIT_DIR, 'sandbox.wit')));
  // The toolchain is part of the key: a new componentize-js rebuilds. (A WAT guest needs only wasm-tools.)
  if (source.endsWith('.js')) h.update(packageVersion(COMPONENTIZE_PACKAGE));
  return h.digest('hex').slice(0, 16);
}

export async function guestComponent(source: string, log: (line: string) => void = () => {}): Promise<Uint8Array> {
  const key = guestKey(source);
  const name = source.split('/').pop()?.replace(/\.[a-z]+$/, '') ?? 'guest';
  const outDir = join(fuzzCacheRoot(), 'fuzz');
  const out = join(outDir, `${name}-${key}.wasm`);
  if (existsSync(out)) return readFileSync(out);
  log(`building the ${name} guest (once; cached in ${outDir})...`);
  const { component } = await buildTool(source);
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, component);
  renameSync(tmp, out);
  return component;
}

/**
 * Build the guests `layers` need and transpile them into `cacheDir`, here on
 * the calling thread, before fuzz jobs start in worker threads: the builder
 * runs child processes with the parent's stdio, which a worker thread cannot
 * hand on, and two jobs would otherwise build the same guest at once.
 */
export async function prepareGuests(layers: readonly string[], cacheDir: string, log: (line: string) => void = () => {}): Promise<void> {
  const sources = [...(layers.includes('guest') ? [ECHO_SOURCE] : []), ...(layers.includes('abi') ? [ABI_SOURCE] : [])];
  for (const source of sources) {
    const component = await guestComponent(source, log);
    await compileComponent(component, sha256Hex(component), { cacheDir, maxMemoryBytes: DEFAULT_LIMITS.maxMemoryBytes, maxTableElements: DEFAULT_LIMITS.maxTableElements });
  }
}

export interface GuestRuntimeOptions {
  poolSize?: number;
  cacheDir?: string;
  log?: (line: string) => void;
}

/**
 * A fresh runtime for a harness that drives a guest: in its own data folder,
 * with the world's first policy, its secrets, resolver and dial guard, an
 * audit log without fsync and debug logs captured; the guest built from
 * `source` is registered. What differs between harnesses comes in `extra`.
 */
export async function guestRuntime(
  world: World,
  source: string,
  label: string,
  options: GuestRuntimeOptions,
  extra: Pick<RuntimeOptions, 'limits' | 'store'>,
): Promise<{ rt: Runtime; logs: LogCapture; dataDir: string }> {
  const component = await guestComponent(source, options.log);
  const dataDir = mkdtempSync(join(tmpdir(), `authority-fuzz-${label}-`));
  const logs = new LogCapture();
  const rt = await createRuntime({
    dataDir,
    cacheDir: options.cacheDir,
    policy: (world.variants[0] as (typeof world.variants)[number]).policy,
    secrets: new SecretStore(world.secrets),
    audit: { durability: 'none' },
    pool: { size: options.poolSize ?? 1 },
    http: { lookup: world.lookup, onConnect: world.onConnect, keepAliveTimeoutMs: 1000 },
    logger: pino({ level: 'debug' }, logs),
    ...extra,
  });
  try {
    await rt.register(component);
  } catch (e) {
    await rt.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  return { rt, logs, dataDir };
}
