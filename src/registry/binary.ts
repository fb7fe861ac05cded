/**
 * Just enough of the WebAssembly binary formats to decide whether a component
 * may run: the top-level imports of a component, and the memory limits of a
 * core module (which we rewrite to cap a guest's linear memory).
 *
 * Anything unexpected is an error: a parser that guesses is a parser that can
 * be fooled.
 */
import { AuthorityError, ErrorCode } from '../errors.ts';

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const COMPONENT_LAYER = 0x01;

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
  }
  byte(): number {
    if (this.pos >= this.end) throw malformed('unexpected end of section', this.pos);
    return this.bytes[this.pos++] as number;
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) throw malformed('u32 out of range', this.pos);
        return result;
      }
      shift += 7;
    }
    throw malformed('LEB128 u32 too long', this.pos);
  }
  /** A signed LEB128 of up to 33 bits (component valtype indices). */
  s33(): number {
    let result = 0;
    let shift = 0;
    let b: number;
    let count = 0;
    do {
      b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (++count > 5) throw malformed('LEB128 s33 too long', this.pos);
    } while (b & 0x80);
    if (shift < 64 && b & 0x40) result -= 2 ** shift;
    return result;
  }
  name(): string {
    const len = this.u32();
    if (this.pos + len > this.end) throw malformed('name runs past its section', this.pos);
    const raw = this.bytes.subarray(this.pos, this.pos + len);
    this.pos += len;
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw malformed('name is not valid UTF-8', this.pos);
    }
  }
}

function malformed(what: string, offset: number): AuthorityError {
  return new AuthorityError(ErrorCode.COMPONENT_INVALID, `malformed WebAssembly binary at byte ${offset}: ${what}`, {
    data: { offset },
  });
}

export type ImportKind = 'core-module' | 'func' | 'value' | 'type' | 'component' | 'instance';

export interface ComponentImport {
  name: string;
  kind: ImportKind;
  /** For type imports: whether it is an `eq` bound (a plain type) or an abstract resource. */
  bound?: 'eq' | 'resource';
}

/** Whether the bytes are a component (as opposed to a core module). */
export function isComponent(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && MAGIC.every((b, i) => bytes[i] === b) && bytes[6] === COMPONENT_LAYER && bytes[7] === 0x00;
}

/** The top-level imports of a component: what the host must supply. */
export function componentImports(bytes: Uint8Array): ComponentImport[] {
  if (!isComponent(bytes)) {
    const isCore = bytes.length >= 8 && MAGIC.every((b, i) => bytes[i] === b) && bytes[6] === 0 && bytes[7] === 0;
    throw new AuthorityError(
      ErrorCode.COMPONENT_INVALID,
      isCore ? 'this is a core WebAssembly module, not a component: wrap it with `jco new` (see README, "Writing a tool")' : 'not a WebAssembly component (bad magic or layer)',
    );
  }
  const imports: ComponentImport[] = [];
  const r = new Reader(bytes, 8);
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    const end = start + size;
    if (end > bytes.length) throw malformed(`section ${id} runs past the end of the file`, start);
    if (id > 12) throw malformed(`unknown section id ${id}`, start - 1);
    if (id === 10) {
      const s = new Reader(bytes, start, end);
      const count = s.u32();
      for (let i = 0; i < count; i++) imports.push(readImport(s));
      if (s.pos !== end) throw malformed('import section has trailing bytes', s.pos);
    }
    r.pos = end;
  }
  return imports;
}

function readImport(r: Reader): ComponentImport {
  const at = r.pos;
  const tag = r.byte();
  if (tag !== 0x00) throw malformed(`unsupported import name encoding 0x${tag.toString(16)}`, at);
  const name = r.name();
  const desc = r.byte();
  switch (desc) {
    case 0x00: {
      const sort = r.byte();
      if (sort !== 0x11) throw malformed('core import that is not a module', r.pos);
      r.u32();
      return { name, kind: 'core-module' };
    }
    case 0x01:
      r.u32();
      return { name, kind: 'func' };
    case 0x02: {
      const bound = r.byte();
      if (bound === 0x00) r.u32();
      else if (bound === 0x01) r.s33();
      else throw malformed('bad value bound', r.pos);
      return { name, kind: 'value' };
    }
    case 0x03: {
      const bound = r.byte();
      if (bound === 0x00) {
        r.u32();
        return { name, kind: 'type', bound: 'eq' };
      }
      if (bound === 0x01) return { name, kind: 'type', bound: 'resource' };
      throw malformed('bad type bound', r.pos);
    }
    case 0x04:
      r.u32();
      return { name, kind: 'component' };
    case 0x05:
      r.u32();
      return { name, kind: 'instance' };
    default:
      throw malformed(`unknown extern kind 0x${desc.toString(16)} for import "${name}"`, at);
  }
}

export interface MemoryLimits {
  min: number;
  max: number | undefined;
}

export interface CoreCaps {
  /** Cap on every linear memory the module defines, in 64 KiB pages. */
  maxMemoryPages: number;
  /** Cap on every table the module defines, in elements. */
  maxTableElements: number;
}

/**
 * Rewrite every memory and table a core module defines so that its maximum is
 * at most the cap: a guest cannot grow past it, whatever it asks. Imported
 * memories and tables are left alone: they are defined, and capped, in another
 * module. Refuses 64-bit and shared memories, tables in encodings we do not
 * know, and anything whose minimum is already over its cap.
 */
export function capCoreModule(bytes: Uint8Array, caps: CoreCaps): { bytes: Uint8Array; memories: MemoryLimits[]; tables: MemoryLimits[] } {
  if (!(bytes.length >= 8 && MAGIC.every((b, i) => bytes[i] === b) && bytes[4] === 1 && bytes[5] === 0 && bytes[6] === 0 && bytes[7] === 0)) {
    throw malformed('not a core module', 0);
  }
  const r = new Reader(bytes, 8);
  const memories: MemoryLimits[] = [];
  const tables: MemoryLimits[] = [];
  const replaced: Array<{ start: number; end: number; section: number[] }> = [];
  while (r.pos < bytes.length) {
    const sectionStart = r.pos;
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    const end = start + size;
    if (end > bytes.length) throw malformed(`section ${id} runs past the end of the module`, start);
    r.pos = end;
    if (id !== 4 && id !== 5) continue;
    const s = new Reader(bytes, start, end);
    const count = s.u32();
    const parts: number[][] = [];
    for (let i = 0; i < count; i++) {
      if (id === 4) {
        const reftype = s.byte();
        if (reftype !== 0x70 && reftype !== 0x6f) {
          throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `table ${i} uses an encoding this host does not accept (0x${reftype.toString(16)})`);
        }
        const { min, capped, part } = readLimits(s, caps.maxTableElements, `table ${i}`, 'elements');
        tables.push({ min, max: capped });
        parts.push([reftype, ...part]);
      } else {
        const { min, capped, part } = readLimits(s, caps.maxMemoryPages, `memory ${i}`, 'pages');
        memories.push({ min, max: capped });
        parts.push(part);
      }
    }
    if (s.pos !== end) throw malformed(`section ${id} has trailing bytes`, s.pos);
    const body = [...uleb(count), ...parts.flat()];
    replaced.push({ start: sectionStart, end, section: [id, ...uleb(body.length), ...body] });
  }
  if (replaced.length === 0) return { bytes, memories, tables };
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const rep of replaced) {
    chunks.push(bytes.subarray(at, rep.start), Uint8Array.from(rep.section));
    at = rep.end;
  }
  chunks.push(bytes.subarray(at));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return { bytes: out, memories, tables };
}

function readLimits(s: Reader, cap: number, what: string, unit: string): { min: number; capped: number; part: number[] } {
  const flags = s.byte();
  if (flags !== 0x00 && flags !== 0x01) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `${what} uses unsupported limits (flags 0x${flags.toString(16)}: shared or 64-bit)`);
  }
  const min = s.u32();
  const max = flags === 0x01 ? s.u32() : undefined;
  if (min > cap) {
    throw new AuthorityError(ErrorCode.COMPONENT_INVALID, `${what} starts at ${min} ${unit}, over the cap of ${cap}`, { data: { min, cap } });
  }
  const capped = max === undefined ? cap : Math.min(max, cap);
  return { min, capped, part: [0x01, ...uleb(min), ...uleb(capped)] };
}

/** Cap memories only (tables keep their own maxima). */
export function capCoreMemories(bytes: Uint8Array, maxPages: number): { bytes: Uint8Array; memories: MemoryLimits[] } {
  const { bytes: out, memories } = capCoreModule(bytes, { maxMemoryPages: maxPages, maxTableElements: 0xffffffff });
  return { bytes: out, memories };
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

// ---------------------------------------------------------------------------
// Component types: enough of the type, import and alias sections to resolve
// what each imported instance declares, as a structure that can be compared
// with what wit/sandbox.wit declares.

/**
 * A component-model type resolved to its structure. Names of type
 * definitions do not matter (the component model compares types
 * structurally); field, case, flag and parameter names do.
 */
export type ComponentType =
  | { readonly k: 'prim'; readonly name: string }
  | { readonly k: 'record'; readonly fields: ReadonlyArray<readonly [string, ComponentType]> }
  | { readonly k: 'variant'; readonly cases: ReadonlyArray<readonly [string, ComponentType | null]> }
  | { readonly k: 'list'; readonly of: ComponentType; readonly length?: number }
  | { readonly k: 'tuple'; readonly of: readonly ComponentType[] }
  | { readonly k: 'flags' | 'enum'; readonly names: readonly string[] }
  | { readonly k: 'option'; readonly of: ComponentType }
  | { readonly k: 'result'; readonly ok: ComponentType | null; readonly err: ComponentType | null }
  | { readonly k: 'own' | 'borrow'; readonly of: ComponentType }
  | { readonly k: 'stream' | 'future'; readonly of: ComponentType | null }
  | { readonly k: 'resource' }
  | { readonly k: 'func'; readonly params: ReadonlyArray<readonly [string, ComponentType]>; readonly result: ComponentType | null; readonly async?: boolean }
  | { readonly k: 'instance'; readonly exports: ReadonlyMap<string, InstanceExport> }
  /** Anything this parser does not resolve (component types, core types, what an alias of an unknown instance names). */
  | { readonly k: 'opaque'; readonly what: string };

export interface InstanceExport {
  readonly kind: 'func' | 'type' | 'instance' | 'other';
  readonly type: ComponentType;
}

const PRIMS: Record<number, string> = {
  0x7f: 'bool', 0x7e: 's8', 0x7d: 'u8', 0x7c: 's16', 0x7b: 'u16', 0x7a: 's32', 0x79: 'u32', 0x78: 's64', 0x77: 'u64',
  0x76: 'f32', 0x75: 'f64', 0x74: 'char', 0x73: 'string', 0x64: 'error-context',
};

const OPAQUE = (what: string): ComponentType => ({ k: 'opaque', what });

/** One scope's index spaces: the component's, or an instance or component type's inside it. */
interface Scope {
  readonly types: ComponentType[];
  readonly instances: ComponentType[];
  readonly parent: Scope | undefined;
}

function typeAt(scope: Scope, idx: number, r: Reader): ComponentType {
  const t = scope.types[idx];
  if (t === undefined) throw malformed(`type index ${idx} is not defined`, r.pos);
  return t;
}

function valType(r: Reader, scope: Scope): ComponentType {
  const at = r.pos;
  const v = r.s33();
  if (v < 0) {
    const name = PRIMS[r.bytes[at] as number];
    if (name === undefined) throw malformed(`unknown primitive value type 0x${(r.bytes[at] as number).toString(16)}`, at);
    return { k: 'prim', name };
  }
  return typeAt(scope, v, r);
}

function optional<T>(r: Reader, read: () => T): T | null {
  const flag = r.byte();
  if (flag === 0x00) return null;
  if (flag === 0x01) return read();
  throw malformed(`bad option flag 0x${flag.toString(16)}`, r.pos - 1);
}

function vec<T>(r: Reader, read: () => T): T[] {
  const n = r.u32();
  if (n > r.end - r.pos) throw malformed('vector longer than its section', r.pos);
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(read());
  return out;
}

/** An import or export name (`importname'`/`exportname'`): the plain form, or the one with a version suffix. */
function externName(r: Reader): string {
  const at = r.pos;
  const tag = r.byte();
  if (tag === 0x00) return r.name();
  if (tag === 0x01) {
    const name = r.name();
    r.name(); // version suffix: part of the name already
    return name;
  }
  throw malformed(`unsupported name encoding 0x${tag.toString(16)}`, at);
}

function defType(r: Reader, scope: Scope): ComponentType {
  const at = r.pos;
  const tag = r.byte();
  const prim = PRIMS[tag];
  if (prim !== undefined) return { k: 'prim', name: prim };
  switch (tag) {
    case 0x72:
      return { k: 'record', fields: vec(r, () => [r.name(), valType(r, scope)] as const) };
    case 0x71:
      return {
        k: 'variant',
        cases: vec(r, () => {
          const name = r.name();
          const t = optional(r, () => valType(r, scope));
          optional(r, () => r.u32()); // `refines`: always absent in current encodings
          return [name, t] as const;
        }),
      };
    case 0x70:
      return { k: 'list', of: valType(r, scope) };
    case 0x67: {
      const of = valType(r, scope);
      return { k: 'list', of, length: r.u32() };
    }
    case 0x6f:
      return { k: 'tuple', of: vec(r, () => valType(r, scope)) };
    case 0x6e:
      return { k: 'flags', names: vec(r, () => r.name()) };
    case 0x6d:
      return { k: 'enum', names: vec(r, () => r.name()) };
    case 0x6b:
      return { k: 'option', of: valType(r, scope) };
    case 0x6a: {
      const ok = optional(r, () => valType(r, scope));
      return { k: 'result', ok, err: optional(r, () => valType(r, scope)) };
    }
    case 0x69:
    case 0x68:
      return { k: tag === 0x69 ? 'own' : 'borrow', of: typeAt(scope, r.u32(), r) };
    case 0x66:
    case 0x65:
      return { k: tag === 0x66 ? 'stream' : 'future', of: optional(r, () => valType(r, scope)) };
    case 0x40:
    case 0x43: {
      const params = vec(r, () => [r.name(), valType(r, scope)] as const);
      const rt = r.byte();
      let result: ComponentType | null;
      if (rt === 0x00) result = valType(r, scope);
      else if (rt === 0x01) {
        const named = vec(r, () => [r.name(), valType(r, scope)] as const);
        result = named.length === 0 ? null : OPAQUE('a function with named results');
      } else throw malformed(`bad result list 0x${rt.toString(16)}`, r.pos - 1);
      return tag === 0x43 ? { k: 'func', params, result, async: true } : { k: 'func', params, result };
    }
    case 0x41: {
      const inner: Scope = { types: [], instances: [], parent: scope };
      vec(r, () => {
        if (r.bytes[r.pos] === 0x03) {
          r.pos++;
          externName(r);
          externDesc(r, inner, new Map());
        } else instanceDecl(r, inner, new Map());
        return 0;
      });
      return OPAQUE('a component type');
    }
    case 0x42: {
      const inner: Scope = { types: [], instances: [], parent: scope };
      const exports = new Map<string, InstanceExport>();
      vec(r, () => instanceDecl(r, inner, exports));
      return { k: 'instance', exports };
    }
    case 0x3f:
    case 0x3e: {
      if (r.byte() !== 0x7f) throw malformed('resource representation other than i32', r.pos - 1);
      optional(r, () => r.u32());
      if (tag === 0x3e) optional(r, () => r.u32());
      return { k: 'resource' };
    }
    default:
      throw malformed(`unknown type definition 0x${tag.toString(16)}`, at);
  }
}

/** An extern description; adds what it introduces to the scope's index spaces and returns it. */
function externDesc(r: Reader, scope: Scope, exports: Map<string, InstanceExport>, name?: string): InstanceExport {
  const at = r.pos;
  const tag = r.byte();
  let e: InstanceExport;
  switch (tag) {
    case 0x00:
      if (r.byte() !== 0x11) throw malformed('core extern that is not a module', r.pos - 1);
      r.u32();
      e = { kind: 'other', type: OPAQUE('a core module') };
      break;
    case 0x01:
      e = { kind: 'func', type: typeAt(scope, r.u32(), r) };
      break;
    case 0x02: {
      const bound = r.byte();
      if (bound === 0x00) r.u32();
      else if (bound === 0x01) valType(r, scope);
      else throw malformed('bad value bound', r.pos - 1);
      e = { kind: 'other', type: OPAQUE('a value') };
      break;
    }
    case 0x03: {
      const bound = r.byte();
      let t: ComponentType;
      if (bound === 0x00) t = typeAt(scope, r.u32(), r);
      else if (bound === 0x01) t = { k: 'resource' };
      else throw malformed('bad type bound', r.pos - 1);
      scope.types.push(t);
      e = { kind: 'type', type: t };
      break;
    }
    case 0x04:
      r.u32();
      e = { kind: 'other', type: OPAQUE('a component') };
      break;
    case 0x05: {
      const t = typeAt(scope, r.u32(), r);
      scope.instances.push(t);
      e = { kind: 'instance', type: t };
      break;
    }
    default:
      throw malformed(`unknown extern kind 0x${tag.toString(16)}`, at);
  }
  if (name !== undefined) exports.set(name, e);
  return e;
}

/** A sort (`core:sort` after 0x00): which index space an alias or export adds to. */
function sort(r: Reader): number {
  const s = r.byte();
  if (s === 0x00) {
    r.byte();
    return -1; // a core sort: no component index space we track
  }
  if (s > 0x05) throw malformed(`unknown sort 0x${s.toString(16)}`, r.pos - 1);
  return s;
}

const SORT_TYPE = 0x03;
const SORT_INSTANCE = 0x05;

function alias(r: Reader, scope: Scope): void {
  const s = sort(r);
  const target = r.byte();
  let t: ComponentType | undefined;
  if (target === 0x00) {
    const inst = scope.instances[r.u32()];
    const name = r.name();
    const e = inst?.k === 'instance' ? inst.exports.get(name) : undefined;
    t = e?.type ?? OPAQUE(`an export of an instance this parser does not resolve`);
  } else if (target === 0x01) {
    r.u32();
    r.name();
    return; // a core export
  } else if (target === 0x02) {
    let outer: Scope | undefined = scope;
    for (let n = r.u32(); n > 0 && outer !== undefined; n--) outer = outer.parent;
    const idx = r.u32();
    if (outer === undefined) throw malformed('outer alias past the outermost component', r.pos);
    t = s === SORT_TYPE ? outer.types[idx] : s === SORT_INSTANCE ? outer.instances[idx] : OPAQUE('an outer alias');
    if (t === undefined) throw malformed(`outer alias of an undefined index ${idx}`, r.pos);
  } else throw malformed(`unknown alias target 0x${target.toString(16)}`, r.pos - 1);
  if (s === SORT_TYPE) scope.types.push(t);
  else if (s === SORT_INSTANCE) scope.instances.push(t);
}

function instanceDecl(r: Reader, scope: Scope, exports: Map<string, InstanceExport>): number {
  const at = r.pos;
  const tag = r.byte();
  switch (tag) {
    case 0x00:
      throw new AuthorityError(ErrorCode.COMPONENT_IMPORT, 'the component declares a core type inside an instance type, which no sandbox interface has', { data: { offset: at } });
    case 0x01:
      scope.types.push(defType(r, scope));
      break;
    case 0x02:
      alias(r, scope);
      break;
    case 0x04:
      externDesc(r, scope, exports, externName(r));
      break;
    default:
      throw malformed(`unknown instance declaration 0x${tag.toString(16)}`, at);
  }
  return 0;
}

/**
 * The type of every instance a component imports, by import name, resolved
 * through the component's type, alias, import, instance and export sections
 * (the index spaces those change, in order). Throws E_COMPONENT_INVALID on
 * a malformed binary.
 */
export function componentImportTypes(bytes: Uint8Array): Map<string, ComponentType> {
  componentImports(bytes); // the same checks of the header and the import section first
  const scope: Scope = { types: [], instances: [], parent: undefined };
  const out = new Map<string, ComponentType>();
  const r = new Reader(bytes, 8);
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const start = r.pos;
    const end = start + size;
    const s = new Reader(bytes, start, end);
    switch (id) {
      case 7:
        vec(s, () => scope.types.push(defType(s, scope)));
        break;
      case 6:
        vec(s, () => alias(s, scope));
        break;
      case 10:
        vec(s, () => {
          const name = externName(s);
          const e = externDesc(s, scope, new Map());
          if (e.kind === 'instance') out.set(name, e.type);
          return 0;
        });
        break;
      case 5:
        vec(s, () => {
          const tag = s.byte();
          if (tag === 0x00) {
            s.u32();
            vec(s, () => (s.name(), sort(s), s.u32()));
          } else if (tag === 0x01) vec(s, () => (externName(s), sort(s), s.u32()));
          else throw malformed(`unknown instance kind 0x${tag.toString(16)}`, s.pos - 1);
          return scope.instances.push(OPAQUE('an instance the component makes'));
        });
        break;
      case 11:
        vec(s, () => {
          externName(s);
          const so = sort(s);
          const idx = s.u32();
          const ascribed = optional(s, () => externDesc(s, { types: [...scope.types], instances: [...scope.instances], parent: scope.parent }, new Map()));
          if (so === SORT_TYPE) scope.types.push(ascribed?.type ?? scope.types[idx] ?? OPAQUE('an exported type'));
          else if (so === SORT_INSTANCE) scope.instances.push(ascribed?.type ?? scope.instances[idx] ?? OPAQUE('an exported instance'));
          return 0;
        });
        break;
      default:
        s.pos = end;
    }
    if (s.pos !== end) throw malformed(`section ${id} has trailing bytes`, s.pos);
    r.pos = end;
  }
  return out;
}

/**
 * A type as WIT would write it, structure spelt out (for messages, and to
 * compare two types). `named` may give a short name for a part (not the
 * whole), e.g. `error` for the sandbox's error variant.
 */
export function formatType(t: ComponentType | null, named?: (t: ComponentType) => string | undefined): string {
  const f = (x: ComponentType | null): string => {
    if (x === null) return '_';
    const n = named?.(x);
    return n ?? formatType(x, named);
  };
  if (t === null) return '_';
  switch (t.k) {
    case 'prim':
      return t.name;
    case 'record':
      return `record { ${t.fields.map(([n, x]) => `${n}: ${f(x)}`).join(', ')} }`;
    case 'variant':
      return `variant { ${t.cases.map(([n, c]) => (c === null ? n : `${n}(${f(c)})`)).join(', ')} }`;
    case 'list':
      return t.length === undefined ? `list<${f(t.of)}>` : `list<${f(t.of)}, ${t.length}>`;
    case 'tuple':
      return `tuple<${t.of.map(f).join(', ')}>`;
    case 'flags':
    case 'enum':
      return `${t.k} { ${t.names.join(', ')} }`;
    case 'option':
      return `option<${f(t.of)}>`;
    case 'result':
      return t.ok === null && t.err === null ? 'result' : `result<${f(t.ok)}, ${f(t.err)}>`;
    case 'own':
    case 'borrow':
    case 'stream':
    case 'future':
      return `${t.k}<${f(t.of)}>`;
    case 'resource':
      return 'resource';
    case 'func':
      return `${t.async === true ? 'async ' : ''}func(${t.params.map(([n, p]) => `${n}: ${f(p)}`).join(', ')})${t.result === null ? '' : ` -> ${f(t.result)}`}`;
    case 'instance':
      return `instance { ${[...t.exports].map(([n, e]) => `${n}: ${e.kind === 'func' ? f(e.type) : `${e.kind} ${f(e.type)}`}`).join('; ')} }`;
    case 'opaque':
      return `<${t.what}>`;
  }
}
