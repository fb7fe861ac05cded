/**
 * Turning a component into something a worker can instantiate quickly: jco
 * transpiles it once (instantiation mode, no WASI shim) into a JS module plus
 * core wasm files, cached on disk by digest; each core module is compiled
 * once per process with its memory capped, and the compiled modules are
 * handed to workers, so instantiation never recompiles.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { transpile } from '@bytecodealliance/jco';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { capCoreModule } from './binary.ts';

/** Bumped when the way we patch or lay out the generated code changes. */
const CACHE_FORMAT = 2;
const WASM_PAGE = 65536;
const DEFAULT_TABLE_ELEMENTS = 100_000;

export interface CompiledTool {
  digest: string;
  /** file: URL of the generated instantiation module. */
  jsUrl: string;
  /** Core module file name -> compiled module (memory capped). */
  modules: ReadonlyMap<string, WebAssembly.Module>;
  /** The cap, in 64 KiB pages, written into every memory the tool defines. */
  memoryMaxPages: number;
  /** The cap, in elements, written into every table the tool defines. */
  tableMaxElements: number;
}

interface Manifest {
  format: number;
  digest: string;
  js: string;
  cores: string[];
  exports: Array<[string, string]>;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * jco's generated code asks `process.env` on every step of every call
 * (`_debugLog`); that lookup alone is several microseconds per host call.
 * Tools never run with JCO_DEBUG, so the check is folded to a constant.
 */
const DEBUG_CHECK = 'globalThis?.process?.env?.JCO_DEBUG';

/**
 * jco defines its task bookkeeping classes inside `instantiate`, so every
 * instance has fresh classes, and the first call into an instance pays for
 * building their objects for the first time (most of a small tool's first
 * run: about 190 us of 210 for the WAT echo tool, against 20 us for a second
 * run). The patch makes `instantiate` itself build and finish one empty task
 * before it returns: JS bookkeeping only, no guest code runs, the instance
 * is still unused. Instances are made ahead of time, so this moves that cost
 * off the call. Applied only when the generated code has the exact shape the
 * pinned jco emits; otherwise the code is left as it is (slower, not wrong).
 */
const EXPORTS_RETURN = '    return { describe, run,  };';
const PRIME_ANCHORS = ['function createNewCurrentTask(args)', 'function getOrCreateAsyncState(componentIdx, init)', 'task.enterSync()', 'task.exit()'];
const PRIME = `    try {
      getOrCreateAsyncState(0);
      const [primeTask] = createNewCurrentTask({ componentIdx: 0, isAsync: false, isManualAsync: false, preserveFutureResult: false, entryFnName: 'prime', getCallbackFn: () => null, callbackFnName: null, errHandling: 'none', callingWasmExport: true });
      primeTask.setCalleeIsAsync(false);
      primeTask.enterSync();
      primeTask.resolve([undefined]);
      primeTask.exit();
    } catch {}
`;

/** The generated module with the patches above applied where the code has the expected shape. */
export function patchGenerated(js: string): string {
  let out = js.replaceAll(DEBUG_CHECK, 'false');
  const at = out.indexOf(EXPORTS_RETURN);
  if (at >= 0 && out.indexOf(EXPORTS_RETURN, at + 1) < 0 && PRIME_ANCHORS.every((a) => out.includes(a))) {
    out = out.slice(0, at) + PRIME + out.slice(at);
  }
  return out;
}

async function transpileToCache(bytes: Uint8Array, digest: string, dir: string): Promise<Manifest> {
  let out: Awaited<ReturnType<typeof transpile>>;
  try {
    out = await transpile(bytes, {
      name: 'tool',
      instantiation: 'sync',
      wasiShim: false,
      noTypescript: true,
      quiet: true,
    });
  } catch (e) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `jco could not transpile the component: ${(e as Error).message ?? String(e)}`, { cause: e });
  }
  const exportNames = new Map(out.exports.map(([n, k]) => [n, k]));
  for (const required of ['describe', 'run']) {
    if (exportNames.get(required) !== 'function') {
      throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the component does not export the function "${required}" of the authority:sandbox/tool world`, {
        data: { exports: out.exports },
      });
    }
  }
  const js = out.files['tool.js'];
  if (js === undefined) throw new AuthorityError(ErrorCode.INTERNAL, 'jco produced no tool.js');
  const cores = Object.keys(out.files).filter((f) => /^tool\.core\d*\.wasm$/.test(f)).sort();
  const manifest: Manifest = { format: CACHE_FORMAT, digest, js: 'tool.mjs', cores, exports: out.exports };

  // Write into a fresh folder and rename it into place: a reader never sees half a cache entry.
  const tmp = `${dir}.tmp-${randomBytes(6).toString('hex')}`;
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(join(tmp, 'tool.mjs'), patchGenerated(new TextDecoder().decode(js)));
    for (const core of cores) writeFileSync(join(tmp, core), out.files[core] as Uint8Array);
    writeFileSync(join(tmp, 'manifest.json'), JSON.stringify(manifest));
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another process won the race with identical content.
      if (!existsSync(join(dir, 'manifest.json'))) throw e;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return manifest;
}

function readManifest(dir: string, digest: string): Manifest | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    if (m.format !== CACHE_FORMAT || m.digest !== digest) return undefined;
    if (!m.cores.every((c) => existsSync(join(dir, c))) || !existsSync(join(dir, m.js))) return undefined;
    return m;
  } catch {
    return undefined;
  }
}

export interface CompileOptions {
  cacheDir: string;
  /** Cap on each linear memory the tool defines, in bytes (rounded down to pages). */
  maxMemoryBytes: number;
  /** Cap on each table the tool defines, in elements. Default 100,000. */
  maxTableElements?: number;
}

const compiled = new Map<string, Promise<CompiledTool>>();

/** Transpile (or reuse the disk cache) and compile the core modules (or reuse this process's). */
export function compileComponent(bytes: Uint8Array, digest: string, opts: CompileOptions): Promise<CompiledTool> {
  const memoryMaxPages = Math.floor(opts.maxMemoryBytes / WASM_PAGE);
  if (memoryMaxPages < 1 || memoryMaxPages > 65536) {
    throw new AuthorityError(ErrorCode.CONFIG, `memory cap must be between 64 KiB and 4 GiB, got ${opts.maxMemoryBytes} bytes`);
  }
  const tableMaxElements = opts.maxTableElements ?? DEFAULT_TABLE_ELEMENTS;
  if (!Number.isInteger(tableMaxElements) || tableMaxElements < 1 || tableMaxElements > 10_000_000) {
    throw new AuthorityError(ErrorCode.CONFIG, `table cap must be between 1 and 10,000,000 elements, got ${tableMaxElements}`);
  }
  const key = `${opts.cacheDir}\0${digest}\0${memoryMaxPages}\0${tableMaxElements}`;
  let p = compiled.get(key);
  if (p === undefined) {
    p = doCompile(bytes, digest, opts.cacheDir, memoryMaxPages, tableMaxElements);
    compiled.set(key, p);
    p.catch(() => compiled.delete(key));
  }
  return p;
}

async function doCompile(bytes: Uint8Array, digest: string, cacheDir: string, memoryMaxPages: number, tableMaxElements: number): Promise<CompiledTool> {
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const dir = join(cacheDir, `${digest}.v${CACHE_FORMAT}`);
  const manifest = readManifest(dir, digest) ?? (await transpileToCache(bytes, digest, dir));
  const modules = new Map<string, WebAssembly.Module>();
  for (const core of manifest.cores) {
    const capped = capCoreModule(readFileSync(join(dir, core)), { maxMemoryPages: memoryMaxPages, maxTableElements: tableMaxElements });
    try {
      modules.set(core, await WebAssembly.compile(capped.bytes as Uint8Array<ArrayBuffer>));
    } catch (e) {
      throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `core module ${core} does not compile: ${(e as Error).message}`, { cause: e });
    }
  }
  return { digest, jsUrl: pathToFileURL(join(dir, manifest.js)).href, modules, memoryMaxPages, tableMaxElements };
}
