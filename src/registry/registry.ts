/**
 * The registry: what a component is (digest, imports, self-description) and
 * whether it may run at all. A component that imports anything outside
 * `authority:sandbox` is refused here, by name, before any of its code runs.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { TOOL_NAME } from '../host-call.ts';
import { componentImports, componentImportTypes, formatType, type ComponentImport, type ComponentType, type InstanceExport } from './binary.ts';
import { compileComponent, sha256Hex, type CompiledTool } from './compile.ts';
import { interfaceOf, sandboxTypes, type SandboxTypes } from './wit-types.ts';

/** Interfaces a tool may import: exactly these, at 0.1.x. */
const ALLOWED_INSTANCE = /^authority:sandbox\/(types|http|fs|secrets)@0\.1\.\d+$/;
/** The tool-name pattern (one spelling, in host-call.ts). */
export const TOOL_NAME_RE = TOOL_NAME;
const MAX_DESCRIPTION = 4096;
const MAX_SCHEMA = 64 * 1024;

export interface ToolLimits {
  /** Deadline of one run; the worker is terminated when it passes. Default 10 s. */
  timeoutMs: number;
  /** Cap on each linear memory the tool defines. Default 256 MiB. */
  maxMemoryBytes: number;
  /** Cap on the tool's output; more is an error, never a truncation. Default 1 MiB. */
  maxOutputBytes: number;
  /** Cap on each table the tool defines, in elements (a table bomb costs host memory too). Default 100,000. */
  maxTableElements: number;
  /** Host calls one run may make, allowed or denied; past it the run is stopped (a flood fills the audit log). Default 10,000. */
  maxHostCalls: number;
  /** Runs of this tool at once; more wait in a queue. Default: unlimited (the pool bounds it). */
  maxConcurrency: number;
  /** Runs of this tool waiting for a slot; past it, E_OVERLOADED. Default 256. */
  maxQueued: number;
  /**
   * Deadline of `describe()` at registration, in milliseconds (instantiating
   * the tool included). A tool only returns three strings there, so this is
   * shorter than a run's: a describe that never returns holds registration
   * (and an MCP server's tool list) only this long. Default 5,000: a
   * JavaScript tool's first describe takes about 0.1 s on an idle machine and
   * was seen at 2 s on a heavily loaded one.
   */
  describeTimeoutMs: number;
}

export const DEFAULT_LIMITS: Readonly<ToolLimits> = Object.freeze({
  timeoutMs: 10_000,
  maxMemoryBytes: 256 * 1024 * 1024,
  maxOutputBytes: 1024 * 1024,
  maxTableElements: 100_000,
  maxHostCalls: 10_000,
  maxConcurrency: Number.POSITIVE_INFINITY,
  maxQueued: 256,
  describeTimeoutMs: 5_000,
});

export interface ToolInfo {
  name: string;
  description: string;
  /** The JSON Schema of the input, parsed. */
  inputSchema: Record<string, unknown>;
  /** sha-256 of the component bytes, hex. */
  digest: string;
  /** The sandbox interfaces it imports (`http`, `fs`, `secrets`); none for a pure tool. */
  imports: string[];
  size: number;
  source: string | undefined;
  limits: Readonly<ToolLimits>;
}

export interface RegisteredTool extends ToolInfo {
  compiled: CompiledTool;
}

/** Describe a component by running its `describe` export in the sandbox. */
export type Describer = (compiled: CompiledTool, limits: ToolLimits) => Promise<{ name: string; description: string; inputSchema: string }>;

export interface RegisterOptions {
  limits?: Partial<ToolLimits>;
  /** Where the bytes came from, for `tools list` and the audit log. */
  source?: string;
  /**
   * Called once the tool's name and digest are known, before it is added:
   * throw to refuse it (provenance rules, see the runtime).
   */
  admit?: (tool: { name: string; digest: string }) => void | Promise<void>;
}

/** Check a component's imports; throws E_COMPONENT_IMPORT naming the first one not allowed. */
export function checkImports(imports: readonly ComponentImport[]): string[] {
  const interfaces: string[] = [];
  for (const imp of imports) {
    if (imp.kind === 'instance' && ALLOWED_INSTANCE.test(imp.name)) {
      const iface = (imp.name.split('/')[1] as string).split('@')[0] as string;
      if (iface !== 'types') interfaces.push(iface);
      continue;
    }
    if (imp.kind === 'type' && imp.bound === 'eq') continue;
    throw new AuthorityError(
      ErrorCode.COMPONENT_IMPORT,
      `the component imports ${imp.kind} "${imp.name}", which Authority does not provide: a tool may import only authority:sandbox/{http,fs,secrets}@0.1.x (no WASI, nothing else)`,
      { data: { import: imp.name, kind: imp.kind } },
    );
  }
  return interfaces.sort();
}

/**
 * Check that every sandbox interface a component imports declares exactly
 * what wit/sandbox.wit declares: each function it imports exists there, with
 * the same parameter names and types and the same result; each type it
 * imports likewise. A forged signature would have the host's real function
 * called with whatever the bindings make of the guest's arguments. Throws
 * E_COMPONENT_IMPORT naming the function, the type it has and the type it
 * should have. Interfaces outside the sandbox are `checkImports`'s to refuse.
 */
export function checkImportTypes(bytes: Uint8Array, expected: SandboxTypes): void {
  // Short names for the WIT's named types in messages (`error`, `request`, ...), as the WIT writes them.
  const names = new Map<string, string>();
  for (const inst of expected.values()) {
    for (const [name, e] of inst.exports) if (e.kind === 'type' && e.type.k !== 'prim') names.set(formatType(e.type), name);
  }
  const named = (t: ComponentType): string | undefined => (t.k === 'prim' ? undefined : names.get(formatType(t)));
  const show = (e: InstanceExport): string => (e.kind === 'func' ? formatType(e.type, named) : `type ${formatType(e.type)}`);
  for (const [importName, actual] of componentImportTypes(bytes)) {
    const iface = interfaceOf(importName);
    const want = expected.get(iface);
    if (want === undefined) continue;
    if (actual.k !== 'instance') {
      throw new AuthorityError(ErrorCode.COMPONENT_IMPORT, `the component imports ${importName} as ${formatType(actual)}, not as the interface wit/sandbox.wit declares`, {
        data: { import: importName },
      });
    }
    for (const [member, has] of actual.exports) {
      const should = want.exports.get(member);
      const kind = has.kind === 'func' ? 'function' : has.kind;
      if (should === undefined) {
        throw new AuthorityError(
          ErrorCode.COMPONENT_IMPORT,
          `the component imports ${kind} "${member}" from ${importName}, which wit/sandbox.wit does not declare (it declares: ${[...want.exports.keys()].join(', ')})`,
          { data: { import: importName, function: member, has: show(has) } },
        );
      }
      if (has.kind !== should.kind || formatType(has.type) !== formatType(should.type)) {
        throw new AuthorityError(
          ErrorCode.COMPONENT_IMPORT,
          `the component imports ${importName} ${kind} "${member}" with the type ${show(has)}, but wit/sandbox.wit declares ${show(should)}`,
          { data: { import: importName, function: member, has: show(has), expected: show(should) } },
        );
      }
    }
  }
}

/**
 * Tool limits with defaults filled in; throws E_CONFIG naming the first bad
 * field (an unknown one included: a misspelt limit must not silently do nothing).
 */
export function validLimits(partial: Partial<ToolLimits> | undefined): ToolLimits {
  const limits = { ...DEFAULT_LIMITS, ...partial };
  for (const [key, value] of Object.entries(limits)) {
    if (!Object.hasOwn(DEFAULT_LIMITS, key)) {
      throw new AuthorityError(ErrorCode.CONFIG, `limits.${key} is not a tool limit (known: ${Object.keys(DEFAULT_LIMITS).join(', ')})`, { data: { path: `limits.${key}` } });
    }
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (value === 0 && key !== 'maxQueued')) {
      throw new AuthorityError(ErrorCode.CONFIG, `limits.${key} must be a positive number, got ${String(value)}`, { data: { path: `limits.${key}` } });
    }
    // A deadline past what a timer can hold would fire at once.
    if ((key === 'timeoutMs' || key === 'describeTimeoutMs') && value > 2_147_483_647) {
      throw new AuthorityError(ErrorCode.CONFIG, `limits.${key} must be at most 2147483647 ms, got ${value}`, { data: { path: `limits.${key}` } });
    }
  }
  return limits;
}

function parseDescription(d: { name: string; description: string; inputSchema: string }): Pick<ToolInfo, 'name' | 'description' | 'inputSchema'> {
  if (!TOOL_NAME_RE.test(d.name)) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the tool's name ${JSON.stringify(d.name.slice(0, 80))} is not valid: it must match [A-Za-z0-9_-]{1,64}`, {
      data: { field: 'describe().name' },
    });
  }
  if (d.description.length > MAX_DESCRIPTION) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the tool's description is longer than ${MAX_DESCRIPTION} characters`, { data: { field: 'describe().description' } });
  }
  if (d.inputSchema.length > MAX_SCHEMA) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the tool's input schema is larger than ${MAX_SCHEMA} bytes`, { data: { field: 'describe().input-schema' } });
  }
  let schema: unknown;
  try {
    schema = JSON.parse(d.inputSchema);
  } catch (e) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `the tool's input schema is not JSON: ${(e as Error).message}`, { data: { field: 'describe().input-schema' }, cause: e });
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema) || (schema as { type?: unknown }).type !== 'object') {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, 'the tool\'s input schema must be a JSON Schema object with "type": "object"', {
      data: { field: 'describe().input-schema' },
    });
  }
  return { name: d.name, description: d.description, inputSchema: schema as Record<string, unknown> };
}

export interface RegistryEvents {
  changed: [{ added?: string; removed?: string; replaced?: string }];
}

/** Tools by name. Emits `changed` when a tool is added, replaced or removed. */
export class Registry extends EventEmitter<RegistryEvents> {
  readonly #tools = new Map<string, RegisteredTool>();
  readonly #cacheDir: string;
  readonly #describe: Describer;

  constructor(opts: { cacheDir: string; describe: Describer }) {
    super();
    this.#cacheDir = opts.cacheDir;
    this.#describe = opts.describe;
  }

  /** Register a component from a file path or its bytes. Replaces a tool of the same name. */
  async register(component: string | Uint8Array, opts: RegisterOptions = {}): Promise<RegisteredTool> {
    const source = typeof component === 'string' ? component : opts.source;
    let bytes: Uint8Array;
    try {
      bytes = typeof component === 'string' ? readFileSync(component) : component;
    } catch (e) {
      throw new AuthorityError(ErrorCode.TOOL_NOT_FOUND, `cannot read component ${String(component)}: ${(e as Error).message}`, { cause: e });
    }
    const limits = validLimits(opts.limits);
    const digest = sha256Hex(bytes);
    const imports = checkImports(componentImports(bytes));
    checkImportTypes(bytes, await sandboxTypes(this.#cacheDir));
    const compiled = await compileComponent(bytes, digest, { cacheDir: this.#cacheDir, maxMemoryBytes: limits.maxMemoryBytes, maxTableElements: limits.maxTableElements });
    const described = parseDescription(await this.#describe(compiled, limits));
    await opts.admit?.({ name: described.name, digest });
    const tool: RegisteredTool = Object.freeze({
      ...described,
      digest,
      imports,
      size: bytes.length,
      source,
      limits: Object.freeze(limits),
      compiled,
    });
    const previous = this.#tools.get(tool.name);
    this.#tools.set(tool.name, tool);
    if (previous === undefined) this.emit('changed', { added: tool.name });
    else if (previous.digest !== digest) this.emit('changed', { replaced: tool.name });
    return tool;
  }

  get(name: string): RegisteredTool | undefined {
    return this.#tools.get(name);
  }

  list(): ToolInfo[] {
    return [...this.#tools.values()].map(toInfo).sort((a, b) => a.name.localeCompare(b.name));
  }

  remove(name: string): boolean {
    const had = this.#tools.delete(name);
    if (had) this.emit('changed', { removed: name });
    return had;
  }
}

export function toInfo(t: RegisteredTool): ToolInfo {
  const { compiled: _compiled, ...info } = t;
  return info;
}
