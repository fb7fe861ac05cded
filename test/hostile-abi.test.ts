/**
 * Hostile arguments at the canonical ABI, each a named case: a guest (built
 * from wit/sandbox.wit, see src/fuzz/wit-abi.ts) hands the host's imports
 * pointers and lengths no well-typed guest could, under a policy and grants
 * that would let a well-formed call through. Each must trap before the host
 * sees the call (no file written, no audit record of it), and the worker is
 * retired; a call whose reply cannot be written back traps after it is on
 * record; an output over the cap is refused from its length, before anything
 * is decoded.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { encodeGuestProgram, MEMORY_BYTES, witGuest, type GuestOp } from '../src/fuzz/wit-abi.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let rt: Awaited<ReturnType<typeof testRuntime>>;
let root: { path: string; cleanup: () => void };
let keys: string[];
let grants: string[];
const M = MEMORY_BYTES;
/** Where the tests lay out their strings. */
const PATH_AT = 4096;
const DATA_AT = 8192;
const RET = 12288;

before(async () => {
  root = tempDir('authority-hostile-abi-');
  mkdirSync(join(root.path, 'in'), { recursive: true });
  writeFileSync(join(root.path, 'in', 'hello.txt'), 'hello from the host');
  rt = await testRuntime({
    policy: { version: '1.0', fs: { read: [`${root.path}/**`], write: [`${root.path}/**`] }, tools: { allow: ['fuzz-wit-abi'] } },
  });
  const guest = await witGuest();
  keys = guest.keys;
  await rt.register(guest.component, { limits: { maxMemoryBytes: 256 * 1024 * 1024, timeoutMs: 30_000 } });
  grants = [rt.issueToken({ kind: 'fs', resource: `${root.path}/**`, methods: ['read', 'write', 'list', 'remove'], ttlMs: 600_000 })];
});
after(async () => {
  await rt.cleanup();
  root.cleanup();
});

const k = (fn: string): number => {
  const i = keys.indexOf(`authority:sandbox/${fn}`);
  assert.ok(i >= 0, fn);
  return i;
};
const text = (s: string): number[] => [...Buffer.from(s)];
let runs = 0;

/** Run a program; returns the error code (or 'ok') and the run's call records. */
async function attempt(ops: GuestOp[]): Promise<{ code: string; calls: string[]; error?: AuthorityError }> {
  const runId = `abi-${++runs}`;
  let code = 'ok';
  let error: AuthorityError | undefined;
  try {
    await rt.invoke('fuzz-wit-abi', encodeGuestProgram(ops), { grants, runId });
  } catch (e) {
    assert.ok(e instanceof AuthorityError, String(e));
    code = e.code;
    error = e;
  }
  const calls = (await auditRecords(rt.dataDir, (r) => r.runId === runId && r.kind.startsWith('call.'))).map((r) => r.kind);
  return error === undefined ? { code, calls } : { code, calls, error };
}

/** A write-file call with the path laid out and the data at (ptr, len). */
function writeFile(name: string, ptr: number, len: number): GuestOp[] {
  const path = text(join(root.path, name));
  return [
    { op: 'write', addr: PATH_AT, bytes: path },
    { op: 'write', addr: DATA_AT, bytes: text('data the guest really wrote') },
    { op: 'call', k: k('fs#write-file'), args: [PATH_AT, path.length, ptr, len, RET] },
  ];
}

test('write-file with data running past the end of memory traps, writes nothing and leaves no record', async () => {
  // The control: the same call ending exactly at the last byte of memory is carried out, byte for byte.
  const control = await attempt(writeFile('control.bin', M - 100, 100));
  assert.equal(control.code, 'ok');
  assert.deepEqual(control.calls, ['call.intent', 'call.outcome']);
  assert.equal(readFileSync(join(root.path, 'control.bin')).length, 100);
  const cases: Array<[string, number, number]> = [
    ['pointer 0, length 2 GiB (the reported case)', 0, 0x80000000],
    ['length one past the end', 0, M + 1],
    ['the last 10 bytes and one more', M - 10, 11],
    ['length 4 GiB - 1', DATA_AT, 0xffffffff],
    ['pointer + length wrapping past 2^32 to a small number', 0xfffffff0, 0x20],
    ['pointer one past the end, length 0', M + 1, 0],
    ['pointer far past the end', 0x7fff0000, 16],
  ];
  for (const [what, ptr, len] of cases) {
    const name = `oob-${ptr}-${len}.bin`;
    const r = await attempt(writeFile(name, ptr, len));
    assert.equal(r.code, ErrorCode.TOOL_TRAPPED, `${what}: ${r.code}`);
    assert.match(r.error?.message ?? '', /canonical ABI: list<u8> at \d+ of \d+ bytes runs past the end of memory|canonical ABI: .*past the end/, what);
    assert.deepEqual(r.calls, [], `${what}: the host never saw the call`);
    assert.equal(existsSync(join(root.path, name)), false, `${what}: no file`);
  }
});

test('every string parameter of every import traps on lengths just past and far past the end, and on a wrapping pointer', async () => {
  const stringParams: Array<[string, (ptr: number, len: number) => GuestOp[]]> = [];
  const path = text(join(root.path, 'in', 'hello.txt'));
  const laid: GuestOp = { op: 'write', addr: PATH_AT, bytes: path };
  for (const fn of ['fs#read-file', 'fs#list-dir', 'fs#stat', 'fs#remove', 'secrets#get']) {
    stringParams.push([`${fn} first parameter`, (ptr, len) => [laid, { op: 'call', k: k(fn), args: [ptr, len, RET] }]]);
  }
  stringParams.push(['fs#write-file path', (ptr, len) => [laid, { op: 'call', k: k('fs#write-file'), args: [ptr, len, DATA_AT, 4, RET] }]]);
  const url = text('http://127.0.0.1:9/');
  const get = text('GET');
  const fetch = (method: [number, number], u: [number, number]): GuestOp[] => [
    { op: 'write', addr: PATH_AT, bytes: get },
    { op: 'write', addr: PATH_AT + 64, bytes: url },
    { op: 'call', k: k('http#fetch'), args: [...method, ...u, DATA_AT, 0, 0, 0, 0, RET] },
  ];
  stringParams.push(['http#fetch req.method', (ptr, len) => fetch([ptr, len], [PATH_AT + 64, url.length])]);
  stringParams.push(['http#fetch req.url', (ptr, len) => fetch([PATH_AT, get.length], [ptr, len])]);
  for (const [what, call] of stringParams) {
    for (const [how, ptr, len] of [
      ['just past', M - 5, 6],
      ['far past', PATH_AT, 0x7fffffff],
      ['wrapping', 0xffffff00, 0x200],
    ] as const) {
      const r = await attempt(call(ptr, len));
      assert.equal(r.code, ErrorCode.TOOL_TRAPPED, `${what} ${how}: ${r.code} ${r.error?.message ?? ''}`);
      assert.deepEqual(r.calls, [], `${what} ${how}: the host never saw the call`);
    }
  }
});

test('http.fetch traps on a header list, a header string inside it, or a body running out of memory', async () => {
  const url = text('http://127.0.0.1:9/');
  const base: GuestOp[] = [
    { op: 'write', addr: PATH_AT, bytes: text('POST') },
    { op: 'write', addr: PATH_AT + 64, bytes: url },
    { op: 'write', addr: PATH_AT + 128, bytes: text('x-a') },
  ];
  const header = (namePtr: number, nameLen: number): GuestOp => {
    const b = Buffer.alloc(16);
    b.writeUInt32LE(namePtr >>> 0, 0);
    b.writeUInt32LE(nameLen >>> 0, 4);
    b.writeUInt32LE(PATH_AT + 128, 8);
    b.writeUInt32LE(3, 12);
    return { op: 'write', addr: DATA_AT, bytes: [...b] };
  };
  const call = (headers: [number, number], body: [number, number, number]): GuestOp => ({ op: 'call', k: k('http#fetch'), args: [PATH_AT, 4, PATH_AT + 64, url.length, ...headers, ...body, RET] });
  const cases: Array<[string, GuestOp[]]> = [
    ['the header list runs past the end', [...base, header(PATH_AT + 128, 3), call([M - 16, 2], [0, 0, 0])]],
    ['the header list is 2^28 entries long', [...base, header(PATH_AT + 128, 3), call([DATA_AT, 0x10000000], [0, 0, 0])]],
    ['the header list wraps past 2^32', [...base, header(PATH_AT + 128, 3), call([0xffffff00, 0x20], [0, 0, 0])]],
    ['the header list is misaligned', [...base, header(PATH_AT + 128, 3), call([DATA_AT + 1, 1], [0, 0, 0])]],
    ['a header name points past the end', [...base, header(M - 2, 3), call([DATA_AT, 1], [0, 0, 0])]],
    ['a header name is 4 GiB long', [...base, header(PATH_AT + 128, 0xffffffff), call([DATA_AT, 1], [0, 0, 0])]],
    ['the body runs past the end', [...base, call([DATA_AT, 0], [1, M - 3, 4])]],
    ['the body wraps past 2^32', [...base, call([DATA_AT, 0], [1, 0xfffffff8, 0x10])]],
    ['the body option has discriminant 2', [...base, call([DATA_AT, 0], [2, DATA_AT, 4])]],
  ];
  for (const [what, ops] of cases) {
    const r = await attempt(ops);
    assert.equal(r.code, ErrorCode.TOOL_TRAPPED, `${what}: ${r.code}`);
    assert.deepEqual(r.calls, [], `${what}: the host never saw the call`);
  }
});

test('a return area out of bounds or misaligned traps before the call', async () => {
  const path = text(join(root.path, 'in', 'hello.txt'));
  for (const [what, ret] of [
    ['past the end', M - 4],
    ['far past the end', 0x80000000],
    ['misaligned', RET + 2],
  ] as const) {
    const r = await attempt([{ op: 'write', addr: PATH_AT, bytes: path }, { op: 'call', k: k('fs#read-file'), args: [PATH_AT, path.length, ret] }]);
    assert.equal(r.code, ErrorCode.TOOL_TRAPPED, what);
    assert.deepEqual(r.calls, [], what);
  }
});

test('an allocator that answers a bad pointer while a reply is written back traps, with the call on record', async () => {
  const path = text(join(root.path, 'in', 'hello.txt'));
  for (const value of [0xfffffff0, M - 1, M, 0x7fffffff]) {
    const r = await attempt([{ op: 'write', addr: PATH_AT, bytes: path }, { op: 'realloc', value }, { op: 'call', k: k('fs#read-file'), args: [PATH_AT, path.length, RET] }]);
    assert.equal(r.code, ErrorCode.TOOL_TRAPPED, `realloc -> ${value}`);
    assert.match(r.error?.message ?? '', /cabi_realloc result/);
    assert.deepEqual(r.calls, ['call.intent', 'call.outcome'], `realloc -> ${value}: the read happened and is on record`);
  }
});

test('an output over the cap is refused from its length, before any of it is decoded', async () => {
  const cap = 1024 * 1024;
  const cases: Array<[string, GuestOp[], number]> = [
    // A length past the end of memory: decoding it would have trapped, so E_TOOL_OUTPUT proves the length came first.
    ['4 GiB - 1, far past the end of memory', [{ op: 'return', disc: 0, ptr: 0, len: 0xffffffff }], 0xffffffff],
    ['one byte over the cap, past the end of memory', [{ op: 'return', disc: 0, ptr: 16, len: cap + 1 }], cap + 1],
    ['an error message over the cap', [{ op: 'return', disc: 1, ptr: 0, len: 0x7fffffff }], 0x7fffffff],
    ['within memory, over the cap', [{ op: 'grow', pages: 40 }, { op: 'return', disc: 0, ptr: 0, len: 2 * cap }], 2 * cap],
  ];
  for (const [what, ops, bytes] of cases) {
    const r = await attempt(ops);
    assert.equal(r.code, ErrorCode.TOOL_OUTPUT, `${what}: ${r.code} ${r.error?.message ?? ''}`);
    assert.equal(r.error?.data?.['bytes'], bytes, what);
  }
  // Within the cap but past the end of memory: a bad pointer, a trap.
  assert.equal((await attempt([{ op: 'return', disc: 0, ptr: M - 2, len: 100 }])).code, ErrorCode.TOOL_TRAPPED);
});

test('a 190 MB output is refused without the host copying it (coarse RSS bound)', async () => {
  gc();
  const before = process.memoryUsage().rss;
  const len = 190 * 1024 * 1024;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  try {
    // Grow to 200 MiB and touch nothing: the guest's pages stay unbacked, so only a copy would cost memory.
    const r = await attempt([{ op: 'grow', pages: 3200 }, { op: 'return', disc: 0, ptr: 0, len }]);
    assert.equal(r.code, ErrorCode.TOOL_OUTPUT);
    assert.equal(r.error?.data?.['bytes'], len);
  } finally {
    clearInterval(timer);
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  // Decoding would have made a 190 MB string (RSS 391 -> 748 MiB in the report); allow a wide margin for noise.
  assert.ok(peak - before < 96 * 1024 * 1024, `RSS grew by ${((peak - before) / 1048576).toFixed(0)} MiB`);
});
