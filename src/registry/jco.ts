/**
 * Where jco's transpiler and wasm-tools come from, loaded on first use only
 * (they are the heaviest modules the runtime has; a command or an import that
 * never compiles a component never pays for them).
 *
 * The published package carries jco-transpile's own files in
 * `dist/vendor/jco-transpile/` (copied at pack time): its npm dependency tree
 * pulls in binaryen, about 90 MB that only its optimiser and asm.js output
 * use, and the runtime uses neither. A development checkout loads the
 * installed package instead.
 * @module
 */
import type * as Transpile from '@bytecodealliance/jco-transpile';
import type * as WasmTools from '@bytecodealliance/jco-transpile/wasm-tools';
import { AuthorityError, ErrorCode } from '../errors.ts';

export type JcoTranspile = typeof Transpile;
export type JcoWasmTools = typeof WasmTools;

const PACKAGE = '@bytecodealliance/jco-transpile';

/** Whether `e` says that `what` itself is missing (not one of its own imports). */
export function isMissing(e: unknown, what: string): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  return (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') && String(err?.message).includes(what);
}

async function load<T>(vendored: string, subpath: string): Promise<T> {
  const copy = new URL(`../vendor/jco-transpile/dist/${vendored}`, import.meta.url);
  try {
    return (await import(copy.href)) as T;
  } catch (e) {
    if (!isMissing(e, 'vendor/jco-transpile')) throw e;
  }
  try {
    return (await import(`${PACKAGE}${subpath}`)) as T;
  } catch (e) {
    if (!isMissing(e, PACKAGE)) throw e;
    throw new AuthorityError(ErrorCode.CONFIG, `the component transpiler is missing: this copy of authority-sandbox has no dist/vendor/jco-transpile and ${PACKAGE} is not installed (npm install ${PACKAGE}@0.15)`, { cause: e });
  }
}

let transpiler: Promise<JcoTranspile> | undefined;
let wasmTools: Promise<JcoWasmTools> | undefined;

/** jco's transpiler (component -> JS glue plus core modules). */
export function loadTranspiler(): Promise<JcoTranspile> {
  transpiler ??= load<JcoTranspile>('index.js', '');
  transpiler.catch(() => (transpiler = undefined));
  return transpiler;
}

/** jco's wasm-tools: WAT parse, WIT embed, component new. */
export function loadWasmTools(): Promise<JcoWasmTools> {
  wasmTools ??= load<JcoWasmTools>('wasm-tools.js', '/wasm-tools');
  wasmTools.catch(() => (wasmTools = undefined));
  return wasmTools;
}
