/**
 * What `wit/sandbox.wit` declares, as component types: the contract every
 * tool's imports are compared with at registration, and the layouts the
 * sandbox checks every pointer a guest hands an import against.
 *
 * The types are not written out by hand: jco (wasm-tools) embeds a stand-in
 * core module for the `tool` world and wraps it into a component, and the
 * same binary parser that reads a tool's imports reads that component's. So
 * the expectation is the WIT itself, read the way a tool's binary is read.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { componentImportTypes, type ComponentType } from './binary.ts';
import { WIT_DIR } from './build.ts';
import { loadWasmTools } from './jco.ts';

/** Interface name (`authority:sandbox/fs`, no version) -> its instance type. */
export type SandboxTypes = ReadonlyMap<string, Extract<ComponentType, { k: 'instance' }>>;

/** The interface part of an import name: `authority:sandbox/fs@0.1.2` -> `authority:sandbox/fs`. */
export function interfaceOf(importName: string): string {
  const at = importName.indexOf('@');
  return at < 0 ? importName : importName.slice(0, at);
}

/** A short digest of wit/sandbox.wit: what cached artefacts derived from it are keyed by. */
export function witDigest(): string {
  return createHash('sha256').update(readFileSync(join(WIT_DIR, 'sandbox.wit'))).digest('hex').slice(0, 16);
}

const loaded = new Map<string, Promise<SandboxTypes>>();

/**
 * The sandbox interfaces' types. The stand-in component is cached in
 * `cacheDir` by the WIT's digest (building it loads wasm-tools, ~0.4 s);
 * within a process, the parsed types are kept.
 */
export function sandboxTypes(cacheDir?: string): Promise<SandboxTypes> {
  const digest = witDigest();
  const key = `${cacheDir ?? ''}\0${digest}`;
  let p = loaded.get(key);
  if (p === undefined) {
    p = load(cacheDir, digest);
    loaded.set(key, p);
    p.catch(() => loaded.delete(key));
  }
  return p;
}

async function load(cacheDir: string | undefined, digest: string): Promise<SandboxTypes> {
  const file = cacheDir === undefined ? undefined : join(cacheDir, `sandbox-wit-${digest}.wasm`);
  let bytes: Uint8Array | undefined;
  if (file !== undefined && existsSync(file)) bytes = readFileSync(file);
  let types: Map<string, ComponentType> | undefined;
  try {
    if (bytes !== undefined) types = componentImportTypes(bytes);
  } catch {
    types = undefined; // a damaged cache entry is rebuilt
  }
  if (types === undefined) {
    const { componentEmbed, componentNew } = await loadWasmTools();
    try {
      bytes = await componentNew(await componentEmbed({ dummy: true, witPath: WIT_DIR, world: 'tool' }));
    } catch (e) {
      throw new AuthorityError(ErrorCode.INTERNAL, `cannot read wit/sandbox.wit: ${(e as Error).message}`, { cause: e });
    }
    types = componentImportTypes(bytes);
    if (file !== undefined && cacheDir !== undefined) {
      mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      writeFileSync(tmp, bytes);
      renameSync(tmp, file);
    }
  }
  const out = new Map<string, Extract<ComponentType, { k: 'instance' }>>();
  for (const [name, t] of types) {
    if (t.k !== 'instance') throw new AuthorityError(ErrorCode.INTERNAL, `wit/sandbox.wit: ${name} is not an interface`);
    out.set(interfaceOf(name), t);
  }
  return out;
}

/**
 * Every function of the sandbox interfaces, as `authority:sandbox/fs#read-file`
 * -> its type: what the sandbox's pointer checks are built from.
 */
export function sandboxFunctions(types: SandboxTypes): Record<string, Extract<ComponentType, { k: 'func' }>> {
  const out: Record<string, Extract<ComponentType, { k: 'func' }>> = {};
  for (const [iface, inst] of types) {
    for (const [name, e] of inst.exports) if (e.kind === 'func' && e.type.k === 'func') out[`${iface}#${name}`] = e.type;
  }
  return out;
}
