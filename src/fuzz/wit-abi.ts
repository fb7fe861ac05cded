/**
 * The canonical ABI, fuzzed from the WIT: every pointer-carrying parameter of
 * every sandbox import, found by walking wit/sandbox.wit's types (not a list
 * someone wrote), is handed to the host with pointers and lengths varied:
 * in bounds (up to the last byte of memory), just past the end, far past it,
 * wrapping past 2^32, misaligned; the same for pointers nested in list
 * elements, for the return area, and for what the guest's allocator answers
 * while a reply is written back.
 *
 * The guest is generated from the same types: a WAT module importing every
 * sandbox function with its flat core signature, whose input is a little
 * program (lay out bytes, call import k with these raw arguments, make the
 * allocator answer this). Its memory never grows, so every bound is known.
 *
 * Each case has one expected outcome, and it is checked:
 * - out of bounds: the run traps (E_TOOL_TRAPPED) and the host never saw the
 *   call (no audit record of it);
 * - in bounds: the call is answered (one decision on record, the run goes on)
 *   and the host saw exactly what the guest laid out (fs.write's byte count);
 * - a bad allocator answer: the call is on record, then the run traps.
 * The runtime runs a deny-all policy and no grants: the gate decodes and
 * records every call and acts on none.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import type { AuditEntry, AuditReceipt } from '../audit/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { ComponentType } from '../registry/binary.ts';
import { WIT_DIR } from '../registry/build.ts';
import { loadWasmTools } from '../registry/jco.ts';
import { sandboxFunctions, sandboxTypes } from '../registry/wit-types.ts';
import { createRuntime, runtimeInternals, type Runtime } from '../runtime.ts';
import { alignOf, flatCount, sizeOf } from '../sandbox/abi-guard.ts';
import { fuzzCacheRoot } from './guests.ts';

type FuncType = Extract<ComponentType, { k: 'func' }>;
type Flat = 'i32' | 'i64' | 'f32' | 'f64';

/** The guest's memory: one page, never grown. */
export const MEMORY_BYTES = 65536;
/** Where cases lay out their strings and lists, 256 bytes a slot. */
const DATA = 4096;
const SLOT = 256;
const SLOTS = 32;
/** The return area handed to imports (aligned for any result). */
const RET = 12288;
const MAX_FLAT_PARAMS = 16;
const MAX_FLAT_RESULTS = 1;

// ------------------------------------------------------------ flattening

function join2(a: Flat, b: Flat): Flat {
  if (a === b) return a;
  if ((a === 'i32' && b === 'f32') || (a === 'f32' && b === 'i32')) return 'i32';
  return 'i64';
}

/** The canonical ABI's flat core types of a value of type `t`. */
export function flatTypes(t: ComponentType): Flat[] {
  switch (t.k) {
    case 'prim':
      if (t.name === 'string') return ['i32', 'i32'];
      if (t.name === 's64' || t.name === 'u64') return ['i64'];
      if (t.name === 'f32') return ['f32'];
      if (t.name === 'f64') return ['f64'];
      return ['i32'];
    case 'list':
      return t.length === undefined ? ['i32', 'i32'] : Array.from({ length: t.length }, () => flatTypes(t.of)).flat();
    case 'record':
      return t.fields.flatMap(([, f]) => flatTypes(f));
    case 'tuple':
      return t.of.flatMap(flatTypes);
    case 'flags':
      return Array.from({ length: Math.ceil(t.names.length / 32) }, () => 'i32' as const);
    case 'variant':
    case 'option':
    case 'result': {
      const cases = t.k === 'variant' ? t.cases.map(([, c]) => c) : t.k === 'option' ? [null, t.of] : [t.ok, t.err];
      const joined: Flat[] = [];
      for (const c of cases) {
        if (c === null) continue;
        flatTypes(c).forEach((f, i) => (joined[i] = joined[i] === undefined ? f : join2(joined[i] as Flat, f)));
      }
      return ['i32', ...joined];
    }
    default:
      return ['i32'];
  }
}

/** The core signature a guest imports a function with. */
export function coreSignature(fn: FuncType): { params: Flat[]; results: Flat[] } {
  let params = fn.params.flatMap(([, p]) => flatTypes(p));
  if (params.length > MAX_FLAT_PARAMS) params = ['i32'];
  let results = fn.result === null ? [] : flatTypes(fn.result);
  if (results.length > MAX_FLAT_RESULTS) {
    params = [...params, 'i32'];
    results = [];
  }
  return { params, results };
}

// ------------------------------------------------------------ the guest

/** Bytes as a WAT data string. */
const wasmBytes = (bytes: readonly number[]): string => `"${bytes.map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('')}"`;
const le32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const GUEST_NAME = 'fuzz-wit-abi';
const GUEST_DESCRIPTION = 'Calls every sandbox import with raw pointers and lengths.';
const GUEST_SCHEMA = '{"type":"object"}';

/**
 * The WAT of a guest that imports every function in `fns` (order = `keys`)
 * with its flat core signature. Program ops (little-endian):
 *   01 addr:u32 len:u16 bytes   copy bytes to addr
 *   02 k:u8 args:u64[argc(k)]   call import k (each argument in 8 bytes)
 *   03 mode:u8 value:u32        cabi_realloc answers value (mode 1) or bumps (0)
 *   04 disc:u32 ptr:u32 len:u32 what run returns (raw result<string, string>)
 *   05 pages:u32                memory.grow (hostile tests only: the fuzz cases keep one page)
 */
export function witGuestWat(fns: Readonly<Record<string, FuncType>>): { wat: string; keys: string[] } {
  const keys = Object.keys(fns).sort();
  const sigs = keys.map((k) => coreSignature(fns[k] as FuncType));
  const imports = keys.map((k, i) => {
    const [iface, fn] = k.split('#') as [string, string];
    const sig = sigs[i] as { params: Flat[]; results: Flat[] };
    const params = sig.params.length > 0 ? ` (param ${sig.params.join(' ')})` : '';
    const results = sig.results.length > 0 ? ` (result ${sig.results.join(' ')})` : '';
    return `  (import "${iface}@0.1.0" "${fn}" (func $f${i}${params}${results}))`;
  });
  // Innermost block $b0: br_table k leaves block k, and case k's code follows it.
  const blocks = keys.map((_, i) => `(block $b${keys.length - 1 - i}`).join(' ');
  const cases = keys
    .map((_, i) => {
      const sig = sigs[i] as { params: Flat[]; results: Flat[] };
      const args = sig.params.map((t, j) => `(${t}.load (i32.add (local.get $p) (i32.const ${8 * j})))`).join(' ');
      const call = `(call $f${i} ${args})`;
      return `      ${sig.results.length > 0 ? `(drop ${call})` : call}\n      (return))`;
    })
    .join('\n');
  const argcs = sigs.map((s) => s.params.length);
  const describe = [16, GUEST_NAME.length, 32, GUEST_DESCRIPTION.length, 112, GUEST_SCHEMA.length].flatMap(le32);
  const wat = `;; Generated from wit/sandbox.wit by src/fuzz/wit-abi.ts: every sandbox import, called with raw arguments.
(module
${imports.join('\n')}
  (memory (export "memory") 1)
  (data (i32.const 16) ${wasmBytes([...Buffer.from(GUEST_NAME)])})
  (data (i32.const 32) ${wasmBytes([...Buffer.from(GUEST_DESCRIPTION)])})
  (data (i32.const 112) ${wasmBytes([...Buffer.from(GUEST_SCHEMA)])})
  (data (i32.const 200) ${wasmBytes(describe)})
  (data (i32.const 320) "done")
  (data (i32.const 384) ${wasmBytes(argcs)})
  (global $heap (mut i32) (i32.const 40960))
  (global $mode (mut i32) (i32.const 0))
  (global $value (mut i32) (i32.const 0))
  (global $retset (mut i32) (i32.const 0))
  (global $retdisc (mut i32) (i32.const 0))
  (global $retptr (mut i32) (i32.const 0))
  (global $retlen (mut i32) (i32.const 0))
  ;; A bump allocator inside the one page: memory never grows, so the harness knows its size.
  (func (export "cabi_realloc") (param $old i32) (param $oldsize i32) (param $align i32) (param $size i32) (result i32)
    (local $p i32)
    (if (i32.eq (global.get $mode) (i32.const 1)) (then (return (global.get $value))))
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1))) (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (local.get $p))
  (func (export "describe") (result i32) (i32.const 200))
  (func $hexval (param $c i32) (result i32)
    (if (result i32) (i32.le_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9))
      (then (i32.sub (local.get $c) (i32.const 48)))
      (else (i32.and (i32.sub (i32.or (local.get $c) (i32.const 32)) (i32.const 87)) (i32.const 15)))))
  (func $call (param $k i32) (param $p i32)
    ${blocks}
      (br_table ${keys.map((_, i) => `$b${i}`).join(' ')} $b0 (local.get $k)))
${cases}
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (local $i i32) (local $end i32) (local $n i32) (local $c i32) (local $pc i32) (local $op i32) (local $a i32) (local $k i32)
    ;; {"p":"<hex>"} -> the program at 16384
    (local.set $i (i32.add (local.get $ptr) (i32.const 6)))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done
      (loop $hex
        (br_if $done (i32.ge_u (i32.add (local.get $i) (i32.const 1)) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $i)))
        (br_if $done (i32.eq (local.get $c) (i32.const 34)))
        (br_if $done (i32.ge_u (local.get $n) (i32.const 16384)))
        (i32.store8 (i32.add (i32.const 16384) (local.get $n))
          (i32.or (i32.shl (call $hexval (local.get $c)) (i32.const 4)) (call $hexval (i32.load8_u (i32.add (local.get $i) (i32.const 1))))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br $hex)))
    (block $stop
      (loop $next
        (br_if $stop (i32.ge_u (local.get $pc) (local.get $n)))
        (local.set $op (i32.load8_u (i32.add (i32.const 16384) (local.get $pc))))
        (local.set $a (i32.add (i32.const 16385) (local.get $pc)))
        (if (i32.eq (local.get $op) (i32.const 1))
          (then
            (memory.copy (i32.load (local.get $a)) (i32.add (local.get $a) (i32.const 6)) (i32.load16_u (i32.add (local.get $a) (i32.const 4))))
            (local.set $pc (i32.add (local.get $pc) (i32.add (i32.const 7) (i32.load16_u (i32.add (local.get $a) (i32.const 4))))))
            (br $next)))
        (if (i32.eq (local.get $op) (i32.const 2))
          (then
            (local.set $k (i32.load8_u (local.get $a)))
            (call $call (local.get $k) (i32.add (local.get $a) (i32.const 1)))
            (local.set $pc (i32.add (local.get $pc) (i32.add (i32.const 2) (i32.shl (i32.load8_u (i32.add (i32.const 384) (local.get $k))) (i32.const 3)))))
            (br $next)))
        (if (i32.eq (local.get $op) (i32.const 3))
          (then
            (global.set $mode (i32.load8_u (local.get $a)))
            (global.set $value (i32.load (i32.add (local.get $a) (i32.const 1))))
            (local.set $pc (i32.add (local.get $pc) (i32.const 6)))
            (br $next)))
        (if (i32.eq (local.get $op) (i32.const 4))
          (then
            (global.set $retset (i32.const 1))
            (global.set $retdisc (i32.load (local.get $a)))
            (global.set $retptr (i32.load (i32.add (local.get $a) (i32.const 4))))
            (global.set $retlen (i32.load (i32.add (local.get $a) (i32.const 8))))
            (local.set $pc (i32.add (local.get $pc) (i32.const 13)))
            (br $next)))
        (if (i32.eq (local.get $op) (i32.const 5))
          (then
            (drop (memory.grow (i32.load (local.get $a))))
            (local.set $pc (i32.add (local.get $pc) (i32.const 5)))
            (br $next)))
        (br $stop)))
    (if (global.get $retset)
      (then
        (i32.store8 (i32.const 300) (global.get $retdisc))
        (i32.store (i32.const 304) (global.get $retptr))
        (i32.store (i32.const 308) (global.get $retlen)))
      (else
        (i32.store8 (i32.const 300) (i32.const 0))
        (i32.store (i32.const 304) (i32.const 320))
        (i32.store (i32.const 308) (i32.const 4))))
    (i32.const 300))
)
`;
  return { wat, keys };
}

/** The guest component for the sandbox WIT, built once and cached by the WAT's hash. */
export async function witGuest(cacheDir?: string): Promise<{ component: Uint8Array; keys: string[]; fns: Record<string, FuncType> }> {
  const fns = sandboxFunctions(await sandboxTypes(cacheDir));
  const { wat, keys } = witGuestWat(fns);
  const key = createHash('sha256').update(wat).update(readFileSync(join(WIT_DIR, 'sandbox.wit'))).digest('hex').slice(0, 16);
  const dir = join(fuzzCacheRoot(), 'fuzz');
  const out = join(dir, `wit-abi-guest-${key}.wasm`);
  if (existsSync(out)) return { component: readFileSync(out), keys, fns };
  const { componentEmbed, componentNew, parse } = await loadWasmTools();
  const component = await componentNew(await componentEmbed({ binary: await parse(wat), witPath: WIT_DIR, world: 'tool' }));
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, component);
  renameSync(tmp, out);
  return { component, keys, fns };
}

// ------------------------------------------------------------ cases

/** Where a pointer the call carries lives, and what it points at. */
export interface PointerSite {
  /** A readable name: `fs#write-file data`, `http#fetch req.headers[0].0`, `fs#stat return area`. */
  readonly name: string;
  readonly where: 'flat' | 'memory' | 'return';
  /** flat: the argument index of the pointer (the length follows); memory: the address of the (ptr, len) pair. */
  readonly at: number;
  /** Element size and alignment (1 for strings and list<u8>; the result's for the return area). */
  readonly size: number;
  readonly align: number;
  /** Whether the elements hold pointers themselves (then an in-bounds pointer elsewhere would read garbage). */
  readonly nested: boolean;
  /** What the case laid out there. */
  readonly ptr: number;
  readonly len: number;
}

/** A call laid out: program bytes before the call, its raw arguments, and every pointer it carries. */
interface Layout {
  writes: Array<{ addr: number; bytes: number[] }>;
  args: bigint[];
  sites: PointerSite[];
  /** For `fs#write-file`: the data's length as laid out. */
  dataLen?: number;
}

/** Strings the gate can decode, by parameter name: a case is about pointers, not about paths or URLs. */
function textFor(name: string, pick: number): string {
  if (name.includes('path')) return `/tmp/authority-wit-abi/f${pick % 7}.txt`;
  if (name.includes('url')) return `http://127.0.0.1:9/p${pick % 5}`;
  if (name.includes('method')) return ['GET', 'POST', 'PUT'][pick % 3] as string;
  if (name.includes('name')) return `KEY_${pick % 9}`;
  return `x${pick}`;
}

/** Whether a value of this type carries a pointer (a string or list, maybe nested). */
function hasPointer(t: ComponentType): boolean {
  switch (t.k) {
    case 'prim':
      return t.name === 'string';
    case 'list':
      return t.length === undefined || hasPointer(t.of);
    case 'record':
      return t.fields.some(([, f]) => hasPointer(f));
    case 'tuple':
      return t.of.some(hasPointer);
    case 'option':
      return hasPointer(t.of);
    case 'result':
      return (t.ok !== null && hasPointer(t.ok)) || (t.err !== null && hasPointer(t.err));
    case 'variant':
      return t.cases.some(([, c]) => c !== null && hasPointer(c));
    default:
      return false;
  }
}

function layOut(fn: FuncType, key: string, pick: (n: number) => number): Layout {
  const writes: Layout['writes'] = [];
  const args: bigint[] = [];
  const sites: PointerSite[] = [];
  let slot = 0;
  const nextSlot = (): number => {
    if (slot >= SLOTS) throw new Error('the case needs more slots than the data area has');
    return DATA + SLOT * slot++;
  };
  let dataLen: number | undefined;
  const label = key.replace(/^authority:sandbox\//, '');

  /** Lay out a string or list value somewhere in memory; returns (ptr, len). */
  const lay = (t: ComponentType, name: string): { ptr: number; len: number; nested: boolean; size: number; align: number } => {
    const at = nextSlot();
    if (t.k === 'prim') {
      const bytes = [...Buffer.from(textFor(name, pick(1000)))];
      writes.push({ addr: at, bytes });
      return { ptr: at, len: bytes.length, nested: false, size: 1, align: 1 };
    }
    if (t.k !== 'list') throw new Error(`not a pointer type: ${t.k}`);
    const size = sizeOf(t.of);
    const align = alignOf(t.of);
    if (t.of.k === 'prim' && t.of.name !== 'string') {
      const len = pick(Math.floor(SLOT / size));
      writes.push({ addr: at, bytes: Array.from({ length: len * size }, () => pick(256)) });
      return { ptr: at, len, nested: false, size, align };
    }
    // Elements that hold pointers: lay each out, then the pointers inside it.
    const len = 1 + pick(2);
    const elems: number[] = new Array(len * size).fill(0);
    // The first element's pointers are sites; the others are laid out valid (and the list's length varies).
    for (let e = 0; e < len; e++) layInto(t.of, `${name}[${e}]`, at + e * size, elems, e * size, e === 0);
    writes.push({ addr: at, bytes: elems });
    return { ptr: at, len, nested: true, size, align };
  };

  /** Fill a value of type t stored at addr (bytes[off..]) with valid contents, recording nested pointer sites. */
  const layInto = (t: ComponentType, name: string, addr: number, bytes: number[], off: number, site: boolean): void => {
    const put32 = (o: number, v: number): void => {
      for (let i = 0; i < 4; i++) bytes[off + o + i] = (v >>> (8 * i)) & 0xff;
    };
    if ((t.k === 'prim' && t.name === 'string') || (t.k === 'list' && t.length === undefined)) {
      const v = lay(t, name);
      put32(0, v.ptr);
      put32(4, v.len);
      if (site) sites.push({ name: `${label} ${name}`, where: 'memory', at: addr, size: v.size, align: v.align, nested: v.nested, ptr: v.ptr, len: v.len });
      return;
    }
    if (t.k === 'tuple' || t.k === 'record') {
      let o = 0;
      const fields = t.k === 'record' ? t.fields : t.of.map((f, i) => [String(i), f] as const);
      for (const [n, f] of fields) {
        o = Math.ceil(o / alignOf(f)) * alignOf(f);
        layInto(f, `${name}.${n}`, addr + o, bytes, off + o, site);
        o += sizeOf(f);
      }
    }
    // Numbers, enums (case 0) and variants (case 0, no payload) stay zero: valid.
  };

  /** Flat arguments of a parameter of type t. */
  const flat = (t: ComponentType, name: string): void => {
    if ((t.k === 'prim' && t.name === 'string') || (t.k === 'list' && t.length === undefined)) {
      const v = lay(t, name);
      sites.push({ name: `${label} ${name}`, where: 'flat', at: args.length, size: v.size, align: v.align, nested: v.nested, ptr: v.ptr, len: v.len });
      if (key === 'authority:sandbox/fs#write-file' && name === 'data') dataLen = v.len;
      args.push(BigInt(v.ptr), BigInt(v.len));
      return;
    }
    if (t.k === 'record') {
      for (const [n, f] of t.fields) flat(f, `${name}.${n}`);
      return;
    }
    if (t.k === 'tuple') {
      t.of.forEach((f, i) => flat(f, `${name}.${i}`));
      return;
    }
    if (t.k === 'option' || t.k === 'variant' || t.k === 'result') {
      const cases = t.k === 'variant' ? t.cases.map(([, c]) => c) : t.k === 'option' ? [null, t.of] : [t.ok, t.err];
      // The case with a payload that carries pointers, when there is one: that is what is under test.
      let d = cases.findIndex((c) => c !== null && hasPointer(c));
      if (d < 0) d = 0;
      const start = args.length;
      args.push(BigInt(d));
      const c = cases[d];
      if (c !== null && c !== undefined) flat(c, `${name}${t.k === 'option' ? '' : `.${d}`}`);
      while (args.length < start + flatCount(t)) args.push(0n);
      return;
    }
    for (let i = 0; i < flatCount(t); i++) args.push(0n);
  };

  const flatParams = fn.params.reduce((n, [, p]) => n + flatCount(p), 0);
  if (flatParams > MAX_FLAT_PARAMS) throw new Error(`${key}: parameters passed in memory are not fuzzed yet`);
  for (const [n, p] of fn.params) flat(p, n);
  if (fn.result !== null && flatCount(fn.result) > MAX_FLAT_RESULTS) {
    sites.push({ name: `${label} return area`, where: 'return', at: args.length, size: sizeOf(fn.result), align: alignOf(fn.result), nested: false, ptr: RET, len: 1 });
    args.push(BigInt(RET));
  }
  return dataLen === undefined ? { writes, args, sites } : { writes, args, sites, dataLen };
}

/** How a case changes one pointer. */
export const MUTATIONS = ['none', 'in-bounds', 'exact-end', 'len-just-past', 'len-far-past', 'len-max', 'ptr-just-past', 'ptr-far', 'ptr-negative', 'wrap', 'misaligned'] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** One case: a function, one of its pointer sites, how it is changed, and optionally a bad allocator answer. */
export interface WitAbiCase {
  readonly fn: string;
  readonly site: number;
  readonly mutation: Mutation;
  /** cabi_realloc answers this while the reply is written back (undefined: it allocates properly). */
  readonly realloc?: number | undefined;
  /** Drives the contents (lengths, bytes). */
  readonly seed: number;
}

export type Expected = 'answered' | 'trap' | 'answered-then-trap';

/** A case as the guest's program, and what must happen. */
export function buildCase(c: WitAbiCase, fns: Readonly<Record<string, FuncType>>, keys: readonly string[]): { program: string; expected: Expected; site: PointerSite | undefined; dataLen: number | undefined } {
  const fn = fns[c.fn];
  const k = keys.indexOf(c.fn);
  if (fn === undefined || k < 0) throw new Error(`no sandbox function ${c.fn}`);
  let state = c.seed >>> 0 || 1;
  const pick = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return n <= 1 ? 0 : (state >>> 8) % n;
  };
  const layout = layOut(fn, c.fn, pick);
  const site = layout.sites.length === 0 ? undefined : layout.sites[c.site % layout.sites.length];
  let expected: Expected = 'answered';
  let dataLen = layout.dataLen;
  if (site !== undefined && c.mutation !== 'none') {
    const m = mutate(site, c.mutation, pick);
    if (m !== undefined) {
      expected = m.trap ? 'trap' : 'answered';
      if (site.where === 'memory') {
        const b = Buffer.alloc(8);
        b.writeUInt32LE(m.ptr >>> 0, 0);
        b.writeUInt32LE(m.len >>> 0, 4);
        layout.writes.push({ addr: site.at, bytes: [...b] });
      } else if (site.where === 'return') {
        layout.args[site.at] = BigInt(m.ptr >>> 0);
      } else {
        layout.args[site.at] = BigInt(m.ptr >>> 0);
        layout.args[site.at + 1] = BigInt(m.len >>> 0);
        if (site.name.endsWith('write-file data')) dataLen = m.len;
      }
      // Another argument read from elsewhere may not decode (a path of random bytes): then the gate records no size.
      if (!m.trap && !site.name.endsWith('write-file data')) dataLen = undefined;
    }
  }
  if (c.realloc !== undefined && expected === 'answered') expected = 'answered-then-trap';
  const out: number[] = [];
  const u32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
  for (const w of layout.writes) out.push(1, ...u32(w.addr), w.bytes.length & 0xff, w.bytes.length >> 8, ...w.bytes);
  if (c.realloc !== undefined) out.push(3, 1, ...u32(c.realloc));
  out.push(2, k);
  for (const a of layout.args) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, a));
    out.push(...b);
  }
  return { program: Buffer.from(out).toString('hex'), expected, site, dataLen };
}

/** The pointer and length a mutation gives a site, and whether the ABI says that traps; undefined: not applicable. */
function mutate(s: PointerSite, m: Mutation, pick: (n: number) => number): { ptr: number; len: number; trap: boolean } | undefined {
  const M = MEMORY_BYTES;
  const bytes = (len: number): number => len * s.size;
  if (s.where === 'return') {
    // The return area: len is unused; the result's size must fit.
    switch (m) {
      case 'exact-end':
        return { ptr: Math.floor((M - s.size) / s.align) * s.align, len: 0, trap: false };
      case 'ptr-just-past':
        return { ptr: Math.ceil((M - s.size + 1) / s.align) * s.align, len: 0, trap: true };
      case 'ptr-far':
        return { ptr: 0x80000000, len: 0, trap: true };
      case 'ptr-negative':
      case 'wrap':
        return { ptr: 0x100000000 - s.align * 2, len: 0, trap: true };
      case 'misaligned':
        return s.align > 1 ? { ptr: RET + 1, len: 0, trap: true } : undefined;
      default:
        return undefined;
    }
  }
  switch (m) {
    case 'in-bounds': {
      // Elements holding pointers are kept where they are; only how many of them are read changes.
      if (s.nested) return { ptr: s.ptr, len: pick(s.len + 1), trap: false };
      const len = pick(Math.floor(2048 / s.size) + 1);
      const ptr = Math.floor(pick(M - bytes(len) + 1) / s.align) * s.align;
      return { ptr, len, trap: false };
    }
    case 'exact-end':
      // The last bytes of memory, and not one more: this must be answered.
      if (s.nested) return undefined;
      return { ptr: M - bytes(s.len), len: s.len, trap: false };
    case 'len-just-past':
      return { ptr: s.ptr, len: Math.floor((M - s.ptr) / s.size) + 1, trap: true };
    case 'len-far-past':
      return { ptr: s.ptr, len: 0x7fffffff, trap: true };
    case 'len-max':
      return { ptr: s.ptr, len: 0xffffffff, trap: true };
    case 'ptr-just-past':
      // One past where the laid-out length would still fit (with length 0: one past the end itself).
      return { ptr: Math.ceil((M - bytes(s.len) + 1) / s.align) * s.align, len: s.len, trap: true };
    case 'ptr-far':
      return { ptr: 0x80000000, len: s.len, trap: true };
    case 'ptr-negative':
      return { ptr: 0xfffffff0 - (0xfffffff0 % s.align), len: Math.max(1, s.len), trap: true };
    case 'wrap': {
      // ptr + len * size passes 2^32 and lands back inside memory.
      const ptr = 0x100000000 - 16 * s.size;
      return { ptr: ptr - (ptr % s.align), len: 32, trap: true };
    }
    case 'misaligned':
      return s.align > 1 ? { ptr: s.ptr + 1, len: s.len, trap: true } : undefined;
    default:
      return undefined;
  }
}

/** One step of a guest program (see witGuestWat). */
export type GuestOp =
  | { readonly op: 'write'; readonly addr: number; readonly bytes: readonly number[] }
  | { readonly op: 'call'; readonly k: number; readonly args: ReadonlyArray<number | bigint> }
  | { readonly op: 'realloc'; readonly value: number }
  | { readonly op: 'return'; readonly disc: number; readonly ptr: number; readonly len: number }
  | { readonly op: 'grow'; readonly pages: number };

/** A program as the guest's input (`{"p": "<hex>"}`). */
export function encodeGuestProgram(ops: readonly GuestOp[]): { p: string } {
  const out: number[] = [];
  for (const o of ops) {
    if (o.op === 'write') out.push(1, ...le32(o.addr), o.bytes.length & 0xff, o.bytes.length >> 8, ...o.bytes);
    else if (o.op === 'realloc') out.push(3, 1, ...le32(o.value));
    else if (o.op === 'return') out.push(4, ...le32(o.disc), ...le32(o.ptr), ...le32(o.len));
    else if (o.op === 'grow') out.push(5, ...le32(o.pages));
    else {
      out.push(2, o.k);
      for (const a of o.args) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)));
        out.push(...b);
      }
    }
  }
  return { p: Buffer.from(out).toString('hex') };
}

/** Every case a deterministic pass makes: each function, each pointer site, each mutation, and bad allocator answers. */
export function everyCase(fns: Readonly<Record<string, FuncType>>, keys: readonly string[]): WitAbiCase[] {
  const cases: WitAbiCase[] = [];
  for (const fn of keys) {
    const sites = layOut(fns[fn] as FuncType, fn, () => 0).sites.length;
    cases.push({ fn, site: 0, mutation: 'none', seed: 1 });
    for (let site = 0; site < sites; site++) {
      for (const mutation of MUTATIONS) if (mutation !== 'none') cases.push({ fn, site, mutation, seed: 7 + site });
    }
    for (const realloc of [0xfffffff0, MEMORY_BYTES - 1, MEMORY_BYTES, 0x7fffffff]) cases.push({ fn, site: 0, mutation: 'none', realloc, seed: 3 });
  }
  return cases;
}

const TRAPPING: readonly Mutation[] = ['len-just-past', 'len-far-past', 'len-max', 'ptr-just-past', 'ptr-far', 'ptr-negative', 'wrap', 'misaligned'];

/**
 * A small pass for every test run: every pointer site of every function in
 * bounds (up to the last byte of memory: answered) and with one out-of-bounds
 * change (the kinds taken in turn, so every kind occurs), each function
 * untouched, and a bad allocator answer for one function. Traps retire a
 * worker each, which is what a case costs; `everyCase` is the full product.
 */
export function sampleCases(fns: Readonly<Record<string, FuncType>>, keys: readonly string[]): WitAbiCase[] {
  const cases: WitAbiCase[] = [];
  let turn = 0;
  for (const fn of keys) {
    const sites = layOut(fns[fn] as FuncType, fn, () => 0).sites;
    cases.push({ fn, site: 0, mutation: 'none', seed: 1 });
    sites.forEach((s, site) => {
      cases.push({ fn, site, mutation: s.where === 'return' ? 'exact-end' : 'in-bounds', seed: 11 + site });
      if (s.where === 'flat' && !s.nested) cases.push({ fn, site, mutation: 'exact-end', seed: 5 });
      let m = TRAPPING[turn++ % TRAPPING.length] as Mutation;
      // Misalignment means nothing for a byte-aligned pointer: take the next kind.
      if (m === 'misaligned' && s.align === 1) m = TRAPPING[turn++ % TRAPPING.length] as Mutation;
      cases.push({ fn, site, mutation: m, seed: 13 + site });
    });
  }
  cases.push({ fn: keys[0] as string, site: 0, mutation: 'none', realloc: 0xfffffff0, seed: 3 });
  return cases;
}

/** Random cases for the longer runs. */
export function caseArb(keys: readonly string[]): fc.Arbitrary<WitAbiCase> {
  return fc.record({
    fn: fc.constantFrom(...keys),
    site: fc.nat(64),
    mutation: fc.constantFrom(...MUTATIONS),
    // Every one of these leaves no room for the reply's strings (each at least two bytes).
    realloc: fc.option(fc.constantFrom(0xfffffff0, MEMORY_BYTES - 1, MEMORY_BYTES, 0x7fffffff, 0x80000000), { nil: undefined, freq: 6 }),
    seed: fc.nat(),
  });
}

// ------------------------------------------------------------ the harness

export class WitAbiHarness {
  readonly fns: Record<string, FuncType>;
  readonly keys: string[];
  /** Outcomes so far, by expected outcome. */
  readonly counts: Record<Expected, number> = { answered: 0, trap: 0, 'answered-then-trap': 0 };
  /** Sites exercised, by name. */
  readonly sitesSeen = new Set<string>();
  readonly #rt: Runtime;
  readonly #dataDir: string;
  #tap: AuditEntry[] = [];
  #runId = '';
  #n = 0;

  private constructor(rt: Runtime, dataDir: string, fns: Record<string, FuncType>, keys: string[]) {
    this.#rt = rt;
    this.#dataDir = dataDir;
    this.fns = fns;
    this.keys = keys;
    const audit = runtimeInternals(rt).audit;
    const append = audit.append.bind(audit);
    (audit as { append: (e: AuditEntry) => Promise<AuditReceipt> }).append = (entry) => {
      if (entry.runId === this.#runId) this.#tap.push(entry);
      return append(entry);
    };
  }

  static async create(options: { cacheDir?: string | undefined; poolSize?: number } = {}): Promise<WitAbiHarness> {
    const { component, keys, fns } = await witGuest(options.cacheDir);
    const dataDir = mkdtempSync(join(tmpdir(), 'authority-fuzz-wit-abi-'));
    // Deny everything: the gate decodes and records each call and acts on none.
    const rt = await createRuntime({
      dataDir,
      cacheDir: options.cacheDir,
      policy: { version: '1.0', tools: { allow: ['fuzz-wit-abi'] } },
      audit: { durability: 'none' },
      pool: { size: options.poolSize ?? 2 },
      logger: pino({ level: 'silent' }),
      limits: { timeoutMs: 20_000 },
    });
    try {
      await rt.register(component);
    } catch (e) {
      await rt.close();
      rmSync(dataDir, { recursive: true, force: true });
      throw e;
    }
    return new WitAbiHarness(rt, dataDir, fns, keys);
  }

  /** Run one case; returns the problems found (none: the case held). */
  async run(c: WitAbiCase): Promise<string[]> {
    const built = buildCase(c, this.fns, this.keys);
    this.#runId = `fzw-${++this.#n}-${randomBytes(3).toString('hex')}`;
    this.#tap = [];
    this.counts[built.expected]++;
    if (built.site !== undefined) this.sitesSeen.add(built.site.name);
    const what = `${built.site?.name ?? c.fn} ${c.mutation}${c.realloc === undefined ? '' : ` realloc=${c.realloc}`}`;
    let code = 'ok';
    let message = '';
    try {
      const r = await this.#rt.invoke('fuzz-wit-abi', { p: built.program }, { runId: this.#runId });
      if (r.output !== 'done') return [`${what}: the run returned ${JSON.stringify(r.output)}`];
    } catch (e) {
      if (!(e instanceof AuthorityError)) return [`${what}: the runtime threw ${String(e)}`];
      code = e.code;
      message = e.message;
    }
    const calls = this.#tap.filter((e) => e.kind.startsWith('call.'));
    const decisions = calls.filter((e) => e.kind === 'call.denied' || e.kind === 'call.intent');
    const problems: string[] = [];
    if (built.expected === 'trap') {
      if (code !== ErrorCode.TOOL_TRAPPED) problems.push(`${what}: expected a trap, the run ended ${code}`);
      if (calls.length > 0) problems.push(`${what}: the host saw the call (${calls.map((e) => e.kind).join(', ')}) although its arguments were out of bounds`);
    } else {
      if (built.expected === 'answered' && code !== 'ok') problems.push(`${what}: expected an answer, the run ended ${code}: ${message}`);
      if (built.expected === 'answered-then-trap' && code !== ErrorCode.TOOL_TRAPPED) problems.push(`${what}: the allocator answered ${c.realloc}, yet the run ended ${code}`);
      if (decisions.length !== 1) problems.push(`${what}: ${decisions.length} decisions on record for one call`);
      const bytes = (decisions[0]?.detail as { bytes?: number } | undefined)?.bytes;
      if (built.dataLen !== undefined && decisions.length === 1 && bytes !== built.dataLen) {
        problems.push(`${what}: the guest passed ${built.dataLen} bytes of data, the host recorded ${String(bytes)}`);
      }
    }
    return problems;
  }

  async close(): Promise<void> {
    await this.#rt.close();
    rmSync(this.#dataDir, { recursive: true, force: true });
  }
}

/**
 * Run `runs` random cases, after a deterministic pass if asked.
 * Returns the problems of the first failing case (shrunk), or none.
 */
export async function fuzzWitAbi(options: {
  runs: number;
  seed: number;
  /** A deterministic pass first: 'sample' (sampleCases), 'every' (everyCase) or none. */
  pass?: 'sample' | 'every' | undefined;
  cacheDir?: string | undefined;
  log?: (line: string) => void;
}): Promise<{ problems: string[]; cases: number; sites: number }> {
  const h = await WitAbiHarness.create({ cacheDir: options.cacheDir });
  let cases = 0;
  try {
    if (options.pass !== undefined) {
      for (const c of options.pass === 'every' ? everyCase(h.fns, h.keys) : sampleCases(h.fns, h.keys)) {
        cases++;
        const p = await h.run(c);
        if (p.length > 0) return { problems: p, cases, sites: h.sitesSeen.size };
      }
    }
    let failure: string[] = [];
    if (options.runs > 0) {
      const out = await fc.check(
        fc.asyncProperty(caseArb(h.keys), async (c) => {
          cases++;
          const p = await h.run(c);
          if (p.length > 0) failure = p;
          return p.length === 0;
        }),
        { numRuns: options.runs, seed: options.seed, endOnFailure: true },
      );
      if (out.failed) return { problems: [...failure, `counterexample ${JSON.stringify(out.counterexample)} (seed ${options.seed})`], cases, sites: h.sitesSeen.size };
    }
    options.log?.(`wit-abi: ${cases} cases over ${h.sitesSeen.size} pointer sites, no violation`);
    return { problems: [], cases, sites: h.sitesSeen.size };
  } finally {
    await h.close();
  }
}
