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
import { AuthorityError, ErrorCode } from '../errors.ts';
import { capCoreModule, componentImportTypes, type ComponentType } from './binary.ts';
import { interfaceOf, sandboxFunctions, sandboxTypes, witDigest } from './wit-types.ts';
import { cacheMaxBytes, DEFAULT_PRUNE_GRACE_MS, pruneCache, touchEntry } from './cache.ts';
import { loadTranspiler, type JcoTranspile } from './jco.ts';

/** Bumped when the way we patch or lay out the generated code changes. */
const CACHE_FORMAT = 3;
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

/** The guard the worker installs (sandbox/abi-guard.ts), as the generated code finds it. */
const GUARD_PROLOGUE = `const __authorityGuard = () => {
  const g = globalThis[Symbol.for('authority.abi-guard')];
  if (g === undefined) throw new WebAssembly.RuntimeError('the sandbox ABI guard is not installed');
  return g;
};
`;

const TRAMPOLINE = /^( *)const (_trampoline\d+) = function\(([^)]*)\) \{\n/gm;
const FN_NAME = /^ *(_trampoline\d+)\.fnName = '([^']*)';$/gm;
const REALLOC_DECL = /^ *let (realloc\d+);$/gm;
const MEMORY_DECL = /^ *let (memory\d+);$/gm;
const RUN_CALL = /fn: \(\) => (exports\d+Run)\((ptr\d+), (len\d+)\),/g;
const DESCRIBE_CALL = /fn: \(\) => (exports\d+Describe)\(\),/g;

/** `readFile`, `fetch$1` (jco's local names) -> `read-file`, `fetch`. */
function witName(local: string): string {
  return local.replace(/\$\d+$/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function unrecognised(what: string): AuthorityError {
  return new AuthorityError(
    ErrorCode.COMPONENT_INVALID,
    `the generated bindings do not have the shape this host puts its pointer checks into (${what}); refusing the tool rather than running it unchecked. ` +
      'This follows a change of jco: test/abi-guard.test.ts shows what changed',
    { data: { at: what } },
  );
}

/**
 * Insert the sandbox's canonical-ABI checks (sandbox/abi-guard.ts) into jco's
 * generated code: at the start of every lowered import (before jco lifts a
 * single argument), around the guest's allocator, and between `run`'s and
 * `describe`'s core calls and the decoding of what they return. Each function
 * gets its type from `fns` (wit/sandbox.wit). `lowered` is how many sandbox
 * functions the component imports (read from its binary): every one must
 * get its check. If the code does not have the expected shape, nothing is
 * guessed: the tool is refused (E_COMPONENT_INVALID), loudly.
 */
export function guardGenerated(js: string, fns: Readonly<Record<string, Extract<ComponentType, { k: 'func' }>>>, lowered: number): string {
  const memories = [...js.matchAll(MEMORY_DECL)].map((m) => m[1] as string);
  if (memories.length !== 1) throw unrecognised(`expected one linear memory, found ${memories.length}`);
  const memory = memories[0] as string;
  const names = new Map<string, string>();
  for (const m of js.matchAll(FN_NAME)) names.set(m[1] as string, m[2] as string);
  const used: Record<string, Extract<ComponentType, { k: 'func' }>> = {};
  let guarded = 0;
  let out = js.replace(TRAMPOLINE, (whole, indent: string, name: string, params: string) => {
    const fnName = names.get(name);
    if (fnName === undefined) throw unrecognised(`${name} has no fnName`);
    const hash = fnName.indexOf('#');
    const key = `${interfaceOf(fnName.slice(0, hash))}#${witName(fnName.slice(hash + 1))}`;
    const type = fns[key];
    if (hash < 0 || type === undefined) throw unrecognised(`${name} lowers ${fnName}, which wit/sandbox.wit does not declare`);
    used[key] = type;
    guarded++;
    return `${whole}${indent}  __authorityGuard().params(__authorityAbi[${JSON.stringify(key)}], ${memory}, [${params}]);\n`;
  });
  if (guarded !== names.size) throw unrecognised(`${names.size} lowered imports, ${guarded} recognised`);
  if (guarded !== lowered) throw unrecognised(`the component imports ${lowered} sandbox functions, the bindings lower ${guarded}`);
  const reallocs = [...out.matchAll(REALLOC_DECL)].map((m) => m[1] as string);
  for (const r of reallocs) {
    const assign = new RegExp(`^( *)${r} = (exports\\d+\\.\\w+);$`, 'gm');
    let n = 0;
    out = out.replace(assign, (_w, indent: string, fn: string) => {
      n++;
      return `${indent}${r} = __authorityGuard().realloc(${fn}, () => ${memory});`;
    });
    if (n !== 1) throw unrecognised(`${r} is assigned ${n} times`);
  }
  let runs = 0;
  out = out.replace(RUN_CALL, (_w, fn: string, ptr: string, len: string) => {
    runs++;
    return `fn: () => __authorityGuard().output(${fn}(${ptr}, ${len}), ${memory}),`;
  });
  let describes = 0;
  out = out.replace(DESCRIBE_CALL, (_w, fn: string) => {
    describes++;
    return `fn: () => __authorityGuard().describe(${fn}(), ${memory}),`;
  });
  if (runs !== 1 || describes !== 1) throw unrecognised(`found ${runs} calls of run and ${describes} of describe, expected one each`);
  const table = `const __authorityAbi = JSON.parse(${JSON.stringify(JSON.stringify(used))});\n`;
  const at = out.indexOf('export function instantiate(');
  if (at < 0) throw unrecognised('no instantiate function');
  return out.slice(0, at) + GUARD_PROLOGUE + table + out.slice(at);
}

/** How many functions of the sandbox interfaces a component imports. */
function sandboxFunctionCount(bytes: Uint8Array): number {
  let n = 0;
  for (const [name, t] of componentImportTypes(bytes)) {
    if (!name.startsWith('authority:sandbox/') || t.k !== 'instance') continue;
    for (const e of t.exports.values()) if (e.kind === 'func') n++;
  }
  return n;
}

async function transpileToCache(bytes: Uint8Array, digest: string, dir: string, cacheDir: string): Promise<Manifest> {
  const { transpileBytes } = await loadTranspiler();
  let out: Awaited<ReturnType<JcoTranspile['transpileBytes']>>;
  try {
    // noComponentErrorWrapping: false keeps the behaviour of jco's own CLI and API.
    out = await transpileBytes(bytes, {
      name: 'tool',
      instantiation: 'sync',
      wasiShim: false,
      emitTypescriptDeclarations: false,
      noComponentErrorWrapping: false,
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
    const fns = sandboxFunctions(await sandboxTypes(cacheDir));
    writeFileSync(join(tmp, 'tool.mjs'), guardGenerated(patchGenerated(new TextDecoder().decode(js)), fns, sandboxFunctionCount(bytes)));
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
  /** Cap on the disk cache, in bytes; least recently used entries go first. Default $AUTHORITY_CACHE_MAX_MB MiB, else 512 MiB. */
  maxCacheBytes?: number;
}

/** Cache entries this process has used: never pruned from under it (its workers load their files). */
const inUse = new Map<string, Set<string>>();

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
    p = doCompile(bytes, digest, opts.cacheDir, memoryMaxPages, tableMaxElements, opts.maxCacheBytes);
    compiled.set(key, p);
    p.catch(() => compiled.delete(key));
  }
  return p;
}

async function doCompile(bytes: Uint8Array, digest: string, cacheDir: string, memoryMaxPages: number, tableMaxElements: number, maxCacheBytes: number | undefined): Promise<CompiledTool> {
  const maxBytes = maxCacheBytes ?? cacheMaxBytes();
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  // The generated code carries the WIT's types (its pointer checks): a changed WIT is a new entry.
  const name = `${digest}.v${CACHE_FORMAT}-${witDigest()}`;
  const dir = join(cacheDir, name);
  let used = inUse.get(cacheDir);
  if (used === undefined) inUse.set(cacheDir, (used = new Set()));
  used.add(name);
  let manifest = readManifest(dir, digest);
  if (manifest !== undefined) {
    touchEntry(dir);
  } else {
    manifest = await transpileToCache(bytes, digest, dir, cacheDir);
    pruneCache(cacheDir, { maxBytes, keep: used, graceMs: DEFAULT_PRUNE_GRACE_MS });
  }
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
