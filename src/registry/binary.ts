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
