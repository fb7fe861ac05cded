import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '@bytecodealliance/jco';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { capCoreMemories, checkImports, compileComponent, componentImports } from '../src/registry/index.ts';
import { patchGenerated } from '../src/registry/compile.ts';
import { exampleTools, FIXTURES, watFixture } from './helpers/fixtures.ts';
import { SHARED_CACHE, testRuntime } from './helpers/runtime.ts';

let rt: Awaited<ReturnType<typeof testRuntime>>;
let tools: Record<string, string>;

before(async () => {
  tools = await exampleTools(['echo', 'word-count', 'read-file', 'fetch-url']);
  rt = await testRuntime();
});
after(async () => rt.cleanup());

test('refuses a component that imports a WASI interface, naming the import', async () => {
  const sneaky = await watFixture('wasi-import', { witDir: join(FIXTURES, 'wasi-import'), world: 'sneaky' });
  await assert.rejects(rt.register(sneaky), (e: unknown) => {
    assert.ok(e instanceof AuthorityError);
    assert.equal(e.code, ErrorCode.COMPONENT_IMPORT);
    assert.equal(e.data?.['import'], 'wasi:cli/environment@0.2.3');
    assert.match(e.message, /wasi:cli\/environment@0\.2\.3/);
    return true;
  });
  assert.equal(rt.tool('sneaky'), undefined);
});

test('lists the top-level imports of a component from its binary', async () => {
  const sneaky = readFileSync(await watFixture('wasi-import', { witDir: join(FIXTURES, 'wasi-import'), world: 'sneaky' }));
  assert.deepEqual(
    componentImports(sneaky).map((i) => [i.name, i.kind]),
    [['wasi:cli/environment@0.2.3', 'instance']],
  );
  const readFile = componentImports(readFileSync(tools['read-file'] as string));
  assert.ok(readFile.some((i) => i.name === 'authority:sandbox/fs@0.1.0' && i.kind === 'instance'));
  assert.deepEqual(checkImports(readFile), ['fs']);
});

test('refuses imports outside the allowed set whatever their kind', () => {
  const cases = [
    { name: 'authority:sandbox/fs@0.2.0', kind: 'instance' as const },
    { name: 'authority:sandbox/shell@0.1.0', kind: 'instance' as const },
    { name: 'authority:sandboxx/fs@0.1.0', kind: 'instance' as const },
    { name: 'get-env', kind: 'func' as const },
    { name: 'inner', kind: 'component' as const },
    { name: 'handle', kind: 'type' as const, bound: 'resource' as const },
  ];
  for (const c of cases) {
    assert.throws(
      () => checkImports([c]),
      (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.COMPONENT_IMPORT && e.data?.['import'] === c.name,
      c.name,
    );
  }
  assert.deepEqual(checkImports([{ name: 'authority:sandbox/types@0.1.0', kind: 'instance' }, { name: 'description', kind: 'type', bound: 'eq' }]), []);
});

test('refuses a core module and random bytes with a clear error', async () => {
  const core = await parse('(module (func (export "run")))');
  await assert.rejects(rt.register(core), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.COMPONENT_INVALID && /core WebAssembly module/.test(e.message));
  await assert.rejects(rt.register(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.COMPONENT_INVALID);
  const truncated = readFileSync(tools['echo'] as string).subarray(0, 100);
  await assert.rejects(rt.register(truncated), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.COMPONENT_INVALID);
});

test('registers a tool with its digest, self-description and imports', async () => {
  const bytes = readFileSync(tools['word-count'] as string);
  const t = await rt.register(tools['word-count'] as string);
  assert.equal(t.name, 'word-count');
  assert.equal(t.digest, createHash('sha256').update(bytes).digest('hex'));
  assert.deepEqual(t.imports, []);
  assert.equal(t.inputSchema['type'], 'object');
  assert.match(t.description, /words/);
  const f = await rt.register(tools['fetch-url'] as string);
  assert.deepEqual(f.imports, ['http']);
  assert.deepEqual(
    rt.tools().map((x) => x.name),
    ['fetch-url', 'word-count'],
  );
});

test('emits tools-changed when a tool is added or removed', async () => {
  const changes: unknown[] = [];
  rt.on('tools-changed', (c) => changes.push(c));
  await rt.register(tools['echo'] as string);
  assert.equal(rt.unregister('echo'), true);
  assert.equal(rt.unregister('echo'), false);
  assert.deepEqual(changes, [{ added: 'echo' }, { removed: 'echo' }]);
});

test('caps the maximum of every memory a core module defines', async () => {
  const unbounded = await parse('(module (memory 2) (export "m" (memory 0)))');
  const bounded = await parse('(module (memory 1 1000))');
  const a = capCoreMemories(unbounded, 64);
  assert.deepEqual(a.memories, [{ min: 2, max: 64 }]);
  const m = new WebAssembly.Instance(new WebAssembly.Module(a.bytes as Uint8Array<ArrayBuffer>)).exports['m'] as WebAssembly.Memory;
  assert.equal(m.grow(62), 2);
  assert.throws(() => m.grow(1), RangeError);
  assert.deepEqual(capCoreMemories(bounded, 64).memories, [{ min: 1, max: 64 }]);
  assert.deepEqual(capCoreMemories(bounded, 5000).memories, [{ min: 1, max: 1000 }]);
  const big = await parse('(module (memory 100))');
  assert.throws(() => capCoreMemories(big, 64), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.COMPONENT_INVALID);
});

test('the generated code builds its task bookkeeping at instantiation, and the first run still works', async () => {
  for (const name of ['echo', 'word-count']) {
    const bytes = readFileSync(tools[name] as string);
    const compiled = await compileComponent(bytes, createHash('sha256').update(bytes).digest('hex'), { cacheDir: SHARED_CACHE, maxMemoryBytes: 64 * 1024 * 1024 });
    const js = readFileSync(fileURLToPath(compiled.jsUrl), 'utf8');
    assert.match(js, /entryFnName: 'prime'/, `${name}: the priming patch did not apply to the generated code`);
    assert.doesNotMatch(js, /process\?\.env\?\.JCO_DEBUG/);
    // The prime sits inside instantiate, before the exports are handed out.
    assert.ok(js.indexOf("entryFnName: 'prime'") < js.indexOf('    return { describe, run,  };'));
  }
  // Each invocation gets a fresh (primed) instance; their first runs answer correctly.
  const allowed = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } } });
  try {
    await allowed.register(tools['echo'] as string);
    await allowed.register(tools['word-count'] as string);
    for (let i = 0; i < 5; i++) {
      const r = await allowed.invoke('echo', { i });
      assert.deepEqual(JSON.parse(r.output), { i });
    }
    const wc = await allowed.invoke('word-count', { text: 'one two three' });
    assert.equal(JSON.parse(wc.output).words, 3);
  } finally {
    await allowed.cleanup();
  }
});

test('the patch leaves generated code of another shape as it is', () => {
  assert.equal(patchGenerated('if (globalThis?.process?.env?.JCO_DEBUG) log();'), 'if (false) log();');
  const noTasks = 'function instantiate() {\n    return { describe, run,  };\n}';
  assert.equal(patchGenerated(noTasks), noTasks);
  const twice = 'function createNewCurrentTask(args) {}\nfunction getOrCreateAsyncState(componentIdx, init) {}\ntask.enterSync(); task.exit();\n    return { describe, run,  };\n    return { describe, run,  };';
  assert.equal(patchGenerated(twice), twice);
  const once = twice.slice(0, twice.lastIndexOf('\n'));
  assert.match(patchGenerated(once), /entryFnName: 'prime'/);
});

test('a describe() that never returns is given up at the short default describe deadline, and the pool recovers', async () => {
  const spin = await watFixture('describe-spin');
  const started = performance.now();
  await assert.rejects(rt.register(spin), (e: unknown) => {
    assert.ok(e instanceof AuthorityError);
    assert.equal(e.code, ErrorCode.COMPONENT_INVALID);
    assert.match(e.message, /describe\(\) did not complete: .*deadline of 5000 ms/);
    return true;
  });
  const ms = performance.now() - started;
  // Not a timing assertion on speed: a run's deadline (10 s) held registration before; the describe deadline is below it.
  assert.ok(ms >= 5_000 && ms < 10_000, `registration gave up after ${ms.toFixed(0)} ms`);
  // The worker that ran it was retired and replaced: the next registration describes normally.
  assert.equal((await rt.register(tools['echo'] as string)).name, 'echo');
});

test('the describe deadline is configurable per registration and per runtime, and checked where it enters', async () => {
  const spin = await watFixture('describe-spin');
  await assert.rejects(rt.register(spin, { limits: { describeTimeoutMs: 300 } }), (e: unknown) => e instanceof AuthorityError && /deadline of 300 ms/.test(e.message));
  const own = await testRuntime({ limits: { describeTimeoutMs: 250 } });
  try {
    await assert.rejects(own.register(spin), (e: unknown) => e instanceof AuthorityError && /deadline of 250 ms/.test(e.message));
  } finally {
    await own.cleanup();
  }
  for (const bad of [0, -1, Number.NaN, 2 ** 31]) {
    await assert.rejects(
      testRuntime({ limits: { describeTimeoutMs: bad } }),
      (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && e.data?.['path'] === 'limits.describeTimeoutMs',
      String(bad),
    );
  }
  await assert.rejects(
    testRuntime({ limits: { describeTimeout: 5 } as never }),
    (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && /limits\.describeTimeout is not a tool limit/.test(e.message),
  );
  await assert.rejects(rt.register(spin, { limits: { describeTimeoutMs: 0 } }), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG);
});

/** Register a forged fixture; it must be refused naming the function, its type and the WIT's. */
async function forged(name: string): Promise<AuthorityError> {
  const path = await watFixture(name, { witDir: join(FIXTURES, name), world: 'forged' });
  let caught: unknown;
  await rt.register(path).catch((e: unknown) => (caught = e));
  assert.ok(caught instanceof AuthorityError, `${name} registered: ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.COMPONENT_IMPORT, caught.message);
  return caught;
}

test('refuses forged import signatures at registration, naming the function, the type it has and the type it should have', async () => {
  const fs = await forged('forged-fs');
  assert.equal(fs.data?.['function'], 'read-file');
  assert.equal(fs.data?.['has'], 'func(path: list<u8>) -> result<list<u8>, error>');
  assert.equal(fs.data?.['expected'], 'func(path: string) -> result<list<u8>, error>');
  assert.match(fs.message, /authority:sandbox\/fs@0\.1\.0 function "read-file" with the type func\(path: list<u8>\) .* but wit\/sandbox\.wit declares func\(path: string\)/);

  const write = await forged('forged-write');
  assert.equal(write.data?.['function'], 'write-file');
  assert.equal(write.data?.['has'], 'func(path: string, data: list<u32>) -> result<_, error>');
  assert.equal(write.data?.['expected'], 'func(path: string, data: list<u8>) -> result<_, error>');

  const renamed = await forged('forged-param-name');
  assert.equal(renamed.data?.['has'], 'func(file: string) -> result<_, error>');
  assert.equal(renamed.data?.['expected'], 'func(path: string) -> result<_, error>');

  const stat = await forged('forged-stat');
  assert.equal(stat.data?.['has'], 'func(path: string) -> result<u64, error>');
  assert.equal(stat.data?.['expected'], 'func(path: string) -> result<file-stat, error>');

  const http = await forged('forged-http');
  assert.equal(http.data?.['function'], 'request');
  assert.match(http.message, /type record \{ method: string, url: string, body: option<list<u16>> \}.*declares type record \{ method: string, url: string, headers: list<tuple<string, string>>, body: option<list<u8>> \}/);

  const secrets = await forged('forged-secrets');
  assert.equal(secrets.data?.['has'], 'func(name: string) -> string');
  assert.equal(secrets.data?.['expected'], 'func(name: string) -> result<string, error>');

  const extra = await forged('forged-extra');
  assert.equal(extra.data?.['function'], 'exec');
  assert.match(extra.message, /imports function "exec" from authority:sandbox\/fs@0\.1\.0, which wit\/sandbox\.wit does not declare/);

  const error = await forged('forged-error');
  assert.equal(error.data?.['import'], 'authority:sandbox/types@0.1.0');
  assert.equal(error.data?.['function'], 'error');
  assert.doesNotMatch(String(error.data?.['has']), /timeout/);
  assert.match(String(error.data?.['expected']), /timeout\(string\)/);
  for (const name of ['forged-fs', 'forged-http', 'forged-secrets']) assert.equal(rt.tool(name), undefined);
});

test('every example tool and every sandbox fixture has the WIT\'s import types exactly', async () => {
  const { sandboxTypes } = await import('../src/registry/wit-types.ts');
  const { checkImportTypes } = await import('../src/registry/registry.ts');
  const expected = await sandboxTypes(SHARED_CACHE);
  assert.deepEqual([...expected.keys()].sort(), ['authority:sandbox/fs', 'authority:sandbox/http', 'authority:sandbox/secrets', 'authority:sandbox/types']);
  for (const path of [...Object.values(tools), ...(await Promise.all(['bad-pointer', 'hammer', 'realloc-trap'].map((n) => watFixture(n))))]) {
    assert.doesNotThrow(() => checkImportTypes(readFileSync(path), expected), path);
  }
});
