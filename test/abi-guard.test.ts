/**
 * The sandbox's canonical-ABI checks: where they sit in jco's generated code
 * (and that a change in what jco emits refuses tools loudly instead of
 * letting the checks silently fall away), what they check, and a pass of the
 * WIT-derived ABI fuzzer over every pointer-carrying parameter of every import.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { fuzzWitAbi, sampleCases, witGuest } from '../src/fuzz/wit-abi.ts';
import { compileComponent, sha256Hex } from '../src/registry/index.ts';
import { guardGenerated } from '../src/registry/compile.ts';
import { sandboxFunctions, sandboxTypes } from '../src/registry/wit-types.ts';
import { checkedRealloc, checkOutput, checkParams, OutputTooLarge } from '../src/sandbox/abi-guard.ts';
import { SHARED_CACHE } from './helpers/runtime.ts';

const fns = async () => sandboxFunctions(await sandboxTypes(SHARED_CACHE));

/** The generated code of the guest importing every sandbox function, as jco emits it and as the cache holds it. */
async function generated(): Promise<{ raw: string; guarded: string; keys: string[] }> {
  const { component, keys } = await witGuest(SHARED_CACHE);
  const compiled = await compileComponent(component, sha256Hex(component), { cacheDir: SHARED_CACHE, maxMemoryBytes: 1 << 20 });
  const guarded = readFileSync(fileURLToPath(compiled.jsUrl), 'utf8');
  const { transpile } = await import('@bytecodealliance/jco');
  const out = await transpile(component, { name: 'tool', instantiation: 'sync', wasiShim: false, noTypescript: true, quiet: true });
  return { raw: new TextDecoder().decode(out.files['tool.js'] as Uint8Array), guarded, keys };
}

test('the pinned jco emits the shape the checks go into: one check per lowered import, around the allocator, before run and describe are decoded', async () => {
  const { raw, guarded, keys } = await generated();
  const all = await fns();
  assert.deepEqual(keys, Object.keys(all).sort());
  assert.equal(keys.length, 8);
  // Every import is checked before jco lifts its first argument: the check is the first line of its trampoline.
  for (const key of keys) {
    const at = guarded.indexOf(`__authorityGuard().params(__authorityAbi[${JSON.stringify(key)}], memory0, [`);
    assert.ok(at > 0, `${key} has its check`);
    const line = guarded.lastIndexOf('\n', at - 1);
    assert.match(guarded.slice(guarded.lastIndexOf('\n', line - 1) + 1, line), /const _trampoline\d+ = function\(arg0/, `${key}: the check opens the trampoline`);
  }
  assert.equal(guarded.split('__authorityGuard().params(').length - 1, 8);
  assert.equal(guarded.split('__authorityGuard().realloc(').length - 1, 1);
  assert.equal(guarded.split('__authorityGuard().output(').length - 1, 1);
  assert.equal(guarded.split('__authorityGuard().describe(').length - 1, 1);
  // Why the checks exist: jco reads a byte list with buffer.slice, which clamps at the end of memory.
  assert.match(raw, /new Uint8Array\(memory0\.buffer\.slice\(ptr\d+, ptr\d+ \+ len\d+ \* 1\)\)/);
});

test('a change in what jco emits refuses the tool loudly instead of running it unchecked', async () => {
  const { raw } = await generated();
  const all = await fns();
  assert.doesNotThrow(() => guardGenerated(raw, all, 8));
  const changes: Array<[string, string]> = [
    ['trampolines written as arrow functions', raw.replace(/const (_trampoline\d+) = function\(([^)]*)\) \{/g, 'const $1 = ($2) => {')],
    ['fnName no longer set', raw.replace(/^ *_trampoline\d+\.fnName = '[^']*';$/gm, '')],
    ['run called another way', raw.replace(/fn: \(\) => (exports\d+Run)\((ptr\d+), (len\d+)\),/, 'fn: () => $1.call(null, $2, $3),')],
    ['describe called another way', raw.replace(/fn: \(\) => (exports\d+Describe)\(\),/, 'fn: () => $1.call(null),')],
    ['the allocator taken another way', raw.replace(/^( *)(realloc\d+) = (exports\d+)\.(\w+);$/m, '$1$2 = $3["$4"];')],
    ['a second memory', raw.replace('  let memory0;', '  let memory0;\n  let memory1;')],
  ];
  for (const [what, js] of changes) {
    assert.notEqual(js, raw, `${what}: the change applies to this jco's output`);
    assert.throws(
      () => guardGenerated(js, all, 8),
      (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.COMPONENT_INVALID && /refusing the tool rather than running it unchecked/.test(e.message),
      what,
    );
  }
  // Fewer lowered imports than the component imports: refused too.
  assert.throws(() => guardGenerated(raw, all, 9), (e: unknown) => e instanceof AuthorityError && /imports 9 sandbox functions, the bindings lower 8/.test(e.message));
});

test('the checks trap on every out-of-bounds, wrapping or misaligned pointer of a call, and let the exact end of memory through', async () => {
  const all = await fns();
  const write = all['authority:sandbox/fs#write-file'];
  const fetch = all['authority:sandbox/http#fetch'];
  assert.ok(write !== undefined && fetch !== undefined);
  const memory = new WebAssembly.Memory({ initial: 1 });
  const M = 65536;
  const ok = (args: number[]): void => assert.doesNotThrow(() => checkParams(write, memory, args), String(args));
  const traps = (args: number[], why: RegExp): void => assert.throws(() => checkParams(write, memory, args), (e: unknown) => e instanceof WebAssembly.RuntimeError && why.test(e.message), String(args));
  ok([0, 4, M - 100, 100, 8]);
  ok([M, 0, M, 0, 8]);
  traps([0, 4, M - 100, 101, 8], /list<u8> at 65436 of 101 bytes runs past the end/);
  traps([0, 4, 0, 0x80000000, 8], /runs past the end/);
  // 0xfffffff0 + 0x20 wraps to 0x10 in 32 bits; the check adds as numbers.
  traps([0, 4, 0xfffffff0 | 0, 0x20, 8], /list<u8> at 4294967280/);
  traps([M - 2, 3, 0, 0, 8], /string at 65534 of 3 bytes/);
  traps([0, 4, 0, 4, M - 4], /return area/);
  // result<_, error> holds a u64 (rate-limited): its return area is 8-aligned.
  traps([0, 4, 0, 4, 12], /return area pointer 12 is not aligned to 8/);
  // Nested: a header's name inside the list, and the body option.
  const view = new DataView(memory.buffer);
  const header = (namePtr: number, nameLen: number): void => {
    view.setUint32(1024, namePtr, true);
    view.setUint32(1028, nameLen, true);
    view.setUint32(1032, 0, true);
    view.setUint32(1036, 1, true);
  };
  header(0, 3);
  assert.doesNotThrow(() => checkParams(fetch, memory, [0, 3, 0, 10, 1024, 1, 1, 0, 5, 2048]));
  header(M - 1, 2);
  assert.throws(() => checkParams(fetch, memory, [0, 3, 0, 10, 1024, 1, 1, 0, 5, 2048]), /string at 65535 of 2 bytes/);
  header(0, 3);
  assert.throws(() => checkParams(fetch, memory, [0, 3, 0, 10, 1024, 0x10000000, 0, 0, 0, 2048]), /list<tuple> at 1024 of 4294967296 bytes/);
  assert.throws(() => checkParams(fetch, memory, [0, 3, 0, 10, 1026, 1, 0, 0, 0, 2048]), /not aligned to 4/);
  assert.throws(() => checkParams(fetch, memory, [0, 3, 0, 10, 1024, 1, 1, M - 1, 2, 2048]), /list<u8> at 65535 of 2 bytes/);
  assert.throws(() => checkParams(fetch, memory, [0, 3, 0, 10, 1024, 1, 2, 0, 0, 2048]), /discriminant 2 of a option/);
  // The allocator: aligned, and room for what was asked.
  const realloc = (answer: number) => checkedRealloc(() => answer, () => memory);
  assert.equal(realloc(64)(0, 0, 4, 16), 64);
  assert.throws(() => realloc(M - 15)(0, 0, 1, 16), /cabi_realloc result/);
  assert.throws(() => realloc(66)(0, 0, 4, 16), /not aligned to 4/);
  assert.throws(() => realloc(-16)(0, 0, 1, 1), /cabi_realloc result at 4294967280/);
  // run's output: the length is held against the cap before the pointer is even looked at.
  view.setUint8(512, 0);
  view.setUint32(516, 0xfffffff0, true);
  view.setUint32(520, 5000, true);
  assert.throws(() => checkOutput(512, memory, 4096), (e: unknown) => e instanceof OutputTooLarge && e.bytes === 5000);
  view.setUint32(520, 100, true);
  assert.throws(() => checkOutput(512, memory, 4096), /output at 4294967280 of 100 bytes/);
});

test('every pointer-carrying parameter of every import, found from the WIT, traps out of bounds and is answered in bounds (sample pass)', async () => {
  const all = await fns();
  const { keys } = await witGuest(SHARED_CACHE);
  const sample = sampleCases(all, keys);
  const r = await fuzzWitAbi({ runs: 8, seed: 20261203, pass: 'sample', cacheDir: SHARED_CACHE });
  assert.deepEqual(r.problems, []);
  assert.equal(r.cases, sample.length + 8);
  // read-file, list-dir, stat, remove, mkdir, get: a string and a return area; write-file: two and one;
  // fetch: method, url, the header list, each header's two strings, the body and a return area.
  assert.equal(r.sites, 22);
});
