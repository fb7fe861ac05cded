/**
 * Bounds checks on the canonical ABI, between a guest and jco's bindings.
 *
 * A guest hands an import flat core values: pointers, lengths, option and
 * variant discriminants, a pointer where the result goes. jco's bindings
 * lift them by reading the guest's memory, some of it in ways that clamp
 * instead of failing (`buffer.slice(ptr, ptr + len)` reads what there is), so
 * a length past the end of memory reached the host as a shorter value. The
 * canonical ABI says such a call traps. This module checks every pointer a
 * call carries, nested ones included, against the function's WIT type before
 * the bindings touch memory, and traps (a `WebAssembly.RuntimeError`) on the
 * first one out of bounds or misaligned; it checks what the guest's
 * allocator returns while a result is lowered into its memory; and it reads
 * the length of `run`'s output before anything is decoded, so an output over
 * the cap is refused without being copied into the host.
 *
 * The types come from wit/sandbox.wit (see registry/wit-types.ts), written
 * into the generated bindings; the worker installs the checks under
 * `ABI_GUARD_KEY` before it loads any tool. Nothing here depends on how
 * jco writes its code: registry/compile.ts inserts the calls, and refuses a
 * tool whose bindings it cannot insert them into.
 * @module
 */
import type { ComponentType } from '../registry/binary.ts';

/** Where the worker installs the guard for generated bindings to find. */
export const ABI_GUARD_KEY = Symbol.for('authority.abi-guard');

type FuncType = Extract<ComponentType, { k: 'func' }>;

/** Thrown (before any decoding) when `run` returns more bytes than the cap. */
export class OutputTooLarge extends Error {
  readonly bytes: number;
  constructor(bytes: number, what: string) {
    super(`the tool's ${what} is ${bytes} bytes, over its cap`);
    this.name = 'OutputTooLarge';
    this.bytes = bytes;
  }
}

/** The canonical ABI's limits on flat values: more parameters go through memory, more results through a return pointer. */
const MAX_FLAT_PARAMS = 16;
const MAX_FLAT_RESULTS = 1;
/** What describe() may return in all (name, description, schema); parseDescription's caps are far below. */
const MAX_DESCRIBE_BYTES = 256 * 1024;

function trap(message: string): never {
  throw new WebAssembly.RuntimeError(`canonical ABI: ${message}`);
}

const u32 = (v: unknown): number => (typeof v === 'bigint' ? Number(BigInt.asUintN(32, v)) : (v as number) >>> 0);
const alignTo = (n: number, a: number): number => Math.ceil(n / a) * a;

function discSize(n: number): number {
  return n <= 0x100 ? 1 : n <= 0x10000 ? 2 : 4;
}

type Cases = ReadonlyArray<ComponentType | null>;

const caseLists = new WeakMap<ComponentType, Cases>();
/** The cases of a variant-like type (option, result, variant), or undefined. */
function casesOf(t: ComponentType): Cases | undefined {
  let c = caseLists.get(t);
  if (c === undefined) {
    c = caseListOf(t);
    if (c !== undefined) caseLists.set(t, c);
  }
  return c;
}

function caseListOf(t: ComponentType): Cases | undefined {
  switch (t.k) {
    case 'variant':
      return t.cases.map(([, c]) => c);
    case 'option':
      return [null, t.of];
    case 'result':
      return [t.ok, t.err];
    default:
      return undefined;
  }
}

function unsupported(t: ComponentType): never {
  throw new WebAssembly.RuntimeError(`canonical ABI: the sandbox does not lift values of kind ${t.k}`);
}

/**
 * Memoised per type object: the bindings pass the same type objects on every
 * call, and these are asked on every pointer of every call.
 */
function memo(f: (t: ComponentType) => number): (t: ComponentType) => number {
  const seen = new WeakMap<ComponentType, number>();
  return (t) => {
    let v = seen.get(t);
    if (v === undefined) {
      v = f(t);
      seen.set(t, v);
    }
    return v;
  };
}

/** How many flat core values a value of this type takes. */
export const flatCount = memo(flatCountOf);
/** Alignment of a value of this type in memory. */
export const alignOf = memo(alignOfType);
/** Size of a value of this type in memory. */
export const sizeOf = memo(sizeOfType);

function flatCountOf(t: ComponentType): number {
  switch (t.k) {
    case 'prim':
    case 'own':
    case 'borrow':
    case 'stream':
    case 'future':
    case 'enum':
      return 1;
    case 'list':
      return t.length === undefined ? 2 : t.length * flatCount(t.of);
    case 'record':
      return t.fields.reduce((n, [, f]) => n + flatCount(f), 0);
    case 'tuple':
      return t.of.reduce((n, f) => n + flatCount(f), 0);
    case 'flags':
      return Math.ceil(t.names.length / 32);
    case 'variant':
    case 'option':
    case 'result':
      return 1 + Math.max(0, ...(casesOf(t) as Cases).map((c) => (c === null ? 0 : flatCount(c))));
    default:
      return unsupported(t);
  }
}

const PRIM_SIZE: Record<string, number> = { bool: 1, s8: 1, u8: 1, s16: 2, u16: 2, s32: 4, u32: 4, f32: 4, char: 4, s64: 8, u64: 8, f64: 8, string: 8, 'error-context': 4 };

function alignOfType(t: ComponentType): number {
  switch (t.k) {
    case 'prim':
      return t.name === 'string' ? 4 : (PRIM_SIZE[t.name] ?? unsupported(t));
    case 'list':
      return t.length === undefined ? 4 : alignOf(t.of);
    case 'record':
      return Math.max(1, ...t.fields.map(([, f]) => alignOf(f)));
    case 'tuple':
      return Math.max(1, ...t.of.map(alignOf));
    case 'variant':
    case 'option':
    case 'result': {
      const cases = casesOf(t) as Cases;
      return Math.max(discSize(cases.length), ...cases.map((c) => (c === null ? 1 : alignOf(c))));
    }
    case 'enum':
      return discSize(t.names.length);
    case 'flags':
      return t.names.length <= 8 ? 1 : t.names.length <= 16 ? 2 : 4;
    case 'own':
    case 'borrow':
    case 'stream':
    case 'future':
      return 4;
    default:
      return unsupported(t);
  }
}

function sizeOfType(t: ComponentType): number {
  switch (t.k) {
    case 'prim':
      return PRIM_SIZE[t.name] ?? unsupported(t);
    case 'list':
      return t.length === undefined ? 8 : t.length * sizeOf(t.of);
    case 'record':
    case 'tuple': {
      const fields = t.k === 'record' ? t.fields.map(([, f]) => f) : t.of;
      let s = 0;
      for (const f of fields) s = alignTo(s, alignOf(f)) + sizeOf(f);
      return alignTo(s, alignOf(t));
    }
    case 'variant':
    case 'option':
    case 'result': {
      const cases = casesOf(t) as Cases;
      const payloadAlign = Math.max(1, ...cases.map((c) => (c === null ? 1 : alignOf(c))));
      const s = alignTo(discSize(cases.length), payloadAlign) + Math.max(0, ...cases.map((c) => (c === null ? 0 : sizeOf(c))));
      return alignTo(s, alignOf(t));
    }
    case 'enum':
      return discSize(t.names.length);
    case 'flags':
      return t.names.length <= 8 ? 1 : t.names.length <= 16 ? 2 : 4 * Math.ceil(t.names.length / 32);
    case 'own':
    case 'borrow':
    case 'stream':
    case 'future':
      return 4;
    default:
      return unsupported(t);
  }
}

/** Whether a value of this type holds a pointer or a discriminant (something to check). */
const needsCheckMemo = memo((t) => (needsCheckOf(t) ? 1 : 0));
const needsCheck = (t: ComponentType): boolean => needsCheckMemo(t) === 1;

function needsCheckOf(t: ComponentType): boolean {
  switch (t.k) {
    case 'prim':
      return t.name === 'string';
    case 'list':
      return t.length === undefined || needsCheck(t.of);
    case 'record':
      return t.fields.some(([, f]) => needsCheck(f));
    case 'tuple':
      return t.of.some(needsCheck);
    case 'variant':
    case 'option':
    case 'result':
    case 'enum':
      return true;
    default:
      return false;
  }
}

/** Check a region [ptr, ptr + bytes) of guest memory, and its alignment. */
function region(mem: ArrayBuffer, ptr: number, bytes: number, align: number, what: string): void {
  if (ptr % align !== 0) trap(`${what} pointer ${ptr} is not aligned to ${align}`);
  // Plain numbers, not 32-bit sums: ptr + bytes cannot wrap around to look small.
  if (ptr + bytes > mem.byteLength) trap(`${what} at ${ptr} of ${bytes} bytes runs past the end of memory (${mem.byteLength} bytes)`);
}

/** A string or list header (pointer, length) at flat position or in memory: check what it points to. */
function pointee(t: ComponentType, mem: ArrayBuffer, ptr: number, len: number): void {
  if (t.k === 'prim') {
    // Strings are UTF-8 (the only encoding a sandbox tool's bindings use): one byte per code unit.
    region(mem, ptr, len, 1, 'string');
    return;
  }
  if (t.k !== 'list') return;
  const size = sizeOf(t.of);
  region(mem, ptr, len * size, alignOf(t.of), `list<${t.of.k === 'prim' ? t.of.name : t.of.k}>`);
  if (!needsCheck(t.of)) return;
  const view = new DataView(mem);
  for (let i = 0; i < len; i++) inMemory(t.of, view, mem, ptr + i * size);
}

/** Check a value stored at `addr` (already known to lie within memory). */
function inMemory(t: ComponentType, view: DataView, mem: ArrayBuffer, addr: number): void {
  switch (t.k) {
    case 'prim':
      if (t.name === 'string') pointee(t, mem, view.getUint32(addr, true), view.getUint32(addr + 4, true));
      return;
    case 'list':
      if (t.length === undefined) pointee(t, mem, view.getUint32(addr, true), view.getUint32(addr + 4, true));
      else for (let i = 0; i < t.length; i++) inMemory(t.of, view, mem, addr + i * sizeOf(t.of));
      return;
    case 'record':
    case 'tuple': {
      let off = 0;
      for (const f of t.k === 'record' ? t.fields.map(([, x]) => x) : t.of) {
        off = alignTo(off, alignOf(f));
        if (needsCheck(f)) inMemory(f, view, mem, addr + off);
        off += sizeOf(f);
      }
      return;
    }
    case 'enum':
    case 'variant':
    case 'option':
    case 'result': {
      const cases: Cases = t.k === 'enum' ? t.names.map(() => null) : (casesOf(t) as Cases);
      const ds = discSize(cases.length);
      const disc = ds === 1 ? view.getUint8(addr) : ds === 2 ? view.getUint16(addr, true) : view.getUint32(addr, true);
      if (disc >= cases.length) trap(`discriminant ${disc} of a ${t.k} with ${cases.length} cases`);
      const c = cases[disc];
      if (c === null || c === undefined || !needsCheck(c)) return;
      const payloadAlign = Math.max(1, ...cases.map((x) => (x === null ? 1 : alignOf(x))));
      inMemory(c, view, mem, addr + alignTo(ds, payloadAlign));
      return;
    }
    default:
      return;
  }
}

/** Check the flat values of a `t` starting at args[i]; returns the index after them. */
function flat(t: ComponentType, args: ArrayLike<unknown>, i: number, mem: ArrayBuffer): number {
  switch (t.k) {
    case 'prim':
      if (t.name === 'string') {
        pointee(t, mem, u32(args[i]), u32(args[i + 1]));
        return i + 2;
      }
      return i + 1;
    case 'list':
      if (t.length !== undefined) {
        let j = i;
        for (let n = 0; n < t.length; n++) j = flat(t.of, args, j, mem);
        return j;
      }
      pointee(t, mem, u32(args[i]), u32(args[i + 1]));
      return i + 2;
    case 'record':
      for (const [, f] of t.fields) i = flat(f, args, i, mem);
      return i;
    case 'tuple':
      for (const f of t.of) i = flat(f, args, i, mem);
      return i;
    case 'enum': {
      const d = u32(args[i]);
      if (d >= t.names.length) trap(`discriminant ${d} of an enum with ${t.names.length} cases`);
      return i + 1;
    }
    case 'variant':
    case 'option':
    case 'result': {
      const cases = casesOf(t) as Cases;
      const d = u32(args[i]);
      if (d >= cases.length) trap(`discriminant ${d} of a ${t.k} with ${cases.length} cases`);
      const c = cases[d];
      // The case's own flat values come first in the joined payload slots (an i64 slot is wrapped to i32 by u32()).
      if (c !== null && c !== undefined) flat(c, args, i + 1, mem);
      return i + flatCount(t);
    }
    default:
      return i + flatCount(t);
  }
}

/**
 * Check the flat arguments of a call to an import of type `fn` before the
 * bindings lift them: every pointer and length (strings, lists, nested in
 * records, tuples, lists and option/variant payloads), every discriminant,
 * and the return pointer where the result will be written. Traps on the first
 * fault.
 */
export function checkParams(fn: FuncType, memory: WebAssembly.Memory, args: ArrayLike<unknown>): void {
  const mem = memory.buffer;
  const shape = shapeOf(fn);
  let next: number;
  if (shape.tuple !== undefined) {
    // Too many to pass flat: one pointer to them all, laid out as a tuple.
    const ptr = u32(args[0]);
    region(mem, ptr, sizeOf(shape.tuple), alignOf(shape.tuple), 'parameters');
    inMemory(shape.tuple, new DataView(mem), mem, ptr);
    next = 1;
  } else {
    next = 0;
    for (const p of shape.params) next = flat(p, args, next, mem);
  }
  if (shape.ret !== undefined) region(mem, u32(args[next]), shape.ret.size, shape.ret.align, 'return area');
}

interface Shape {
  params: ComponentType[];
  tuple: ComponentType | undefined;
  ret: { size: number; align: number } | undefined;
}

/** What checkParams needs of a function type, worked out once per type (the bindings pass the same object each call). */
const shapes = new WeakMap<FuncType, Shape>();
function shapeOf(fn: FuncType): Shape {
  let s = shapes.get(fn);
  if (s === undefined) {
    const params = fn.params.map(([, p]) => p);
    const flatParams = params.reduce((n, p) => n + flatCount(p), 0);
    s = {
      params,
      tuple: flatParams > MAX_FLAT_PARAMS ? { k: 'tuple', of: params } : undefined,
      ret: fn.result !== null && flatCount(fn.result) > MAX_FLAT_RESULTS ? { size: sizeOf(fn.result), align: alignOf(fn.result) } : undefined,
    };
    shapes.set(fn, s);
  }
  return s;
}

/**
 * The guest's allocator, checked: while a result is lowered into guest
 * memory, what `cabi_realloc` returns must be aligned as asked and leave room
 * for the bytes asked within memory; anything else traps.
 */
export function checkedRealloc(realloc: (old: number, oldSize: number, align: number, size: number) => number, memory: () => WebAssembly.Memory): (old: number, oldSize: number, align: number, size: number) => number {
  return (old, oldSize, align, size) => {
    const ptr = realloc(old, oldSize, align, size) >>> 0;
    region(memory().buffer, ptr, size >>> 0, Math.max(1, align >>> 0), 'cabi_realloc result');
    return ptr;
  };
}

/**
 * `run`'s raw result (a pointer to `result<string, string>`): its length is
 * read and held against the cap before the bindings decode anything.
 */
export function checkOutput(ret: number, memory: WebAssembly.Memory, maxBytes: number): number {
  const mem = memory.buffer;
  const at = ret >>> 0;
  region(mem, at, 12, 4, 'result');
  const view = new DataView(mem);
  const disc = view.getUint8(at);
  if (disc > 1) trap(`discriminant ${disc} of a result`);
  const len = view.getUint32(at + 8, true);
  if (len > maxBytes) throw new OutputTooLarge(len, disc === 0 ? 'output' : 'error message');
  region(mem, view.getUint32(at + 4, true), len, 1, disc === 0 ? 'output' : 'error message');
  return ret;
}

/** `describe`'s raw result (a pointer to three strings): bounded before anything is decoded. */
export function checkDescription(ret: number, memory: WebAssembly.Memory): number {
  const mem = memory.buffer;
  const at = ret >>> 0;
  region(mem, at, 24, 4, 'description');
  const view = new DataView(mem);
  let total = 0;
  for (let i = 0; i < 3; i++) {
    const len = view.getUint32(at + 8 * i + 4, true);
    total += len;
    if (total > MAX_DESCRIBE_BYTES) trap(`describe() returned more than ${MAX_DESCRIBE_BYTES} bytes`);
    region(mem, view.getUint32(at + 8 * i, true), len, 1, 'description string');
  }
  return ret;
}

/** What generated bindings call (see registry/compile.ts); the worker installs one under ABI_GUARD_KEY. */
export interface AbiGuard {
  params: typeof checkParams;
  realloc: typeof checkedRealloc;
  output: (ret: number, memory: WebAssembly.Memory) => number;
  describe: typeof checkDescription;
  /** The current run's output cap. */
  maxOutputBytes: number;
}

export function createAbiGuard(): AbiGuard {
  const guard: AbiGuard = {
    params: checkParams,
    realloc: checkedRealloc,
    output: (ret, memory) => checkOutput(ret, memory, guard.maxOutputBytes),
    describe: checkDescription,
    maxOutputBytes: 0,
  };
  return guard;
}
