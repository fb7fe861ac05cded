import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import pino from 'pino';
import { createMcpServer } from '../src/adapters/mcp.ts';
import { denialFirst, toFailure } from '../src/adapters/descriptor.ts';
import { COMMAND_TABLE } from '../src/cli/commands/table.ts';
import { commands } from '../src/cli/commands/index.ts';
import { FUZZ_OPS } from '../src/cli/commands/fuzz.ts';
import { createLogger, humanLine } from '../src/cli/log.ts';
import { progress } from '../src/cli/output.ts';
import { closest } from '../src/cli/suggest.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { ALL_OPS } from '../src/fuzz/index.ts';
import { listCache, pruneCache } from '../src/registry/cache.ts';
import { compileComponent, sha256Hex } from '../src/registry/compile.ts';
import * as guest from '../guest/index.js';
import { watFixture } from './helpers/fixtures.ts';
import { tempDir, testRuntime } from './helpers/runtime.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'authority.js');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

let dir: ReturnType<typeof tempDir>;

/** The echo example tool, built into the test's folder by the real CLI. */
async function echoTool(): Promise<string> {
  const out = join(dir.path, 'echo-tool.wasm');
  if (!existsSync(out)) assert.equal((await cli(['build', join(ROOT, 'tools', 'echo', 'echo.wat'), '-o', out])).code, 0);
  return out;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: dir.path, env: { PATH: process.env['PATH'] ?? '', AUTHORITY_DATA_DIR: join(dir.path, 'data'), ...env }, timeout: 120_000 }, (_err, stdout, stderr) =>
      resolve({ code: child.exitCode, stdout, stderr }),
    );
  });
}

before(() => {
  dir = tempDir('authority-cli-ux-');
});

after(() => dir.cleanup());

test('--version prints the name and version from package.json', async () => {
  const r = await cli(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${PKG.name} ${PKG.version}\n`);
  assert.deepEqual(JSON.parse((await cli(['--version', '--json'])).stdout), { name: PKG.name, version: PKG.version });
});

test('a mistyped command or flag is E_USAGE, exit 2, with "did you mean"', async () => {
  const cmd = await cli(['polcy', 'validate', 'x']);
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /^authority: E_USAGE: unknown command "polcy"; did you mean policy\?/);
  const flag = await cli(['run', 'x.wasm', '--inptu', '{}']);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /E_USAGE: Unknown option '--inptu'; did you mean --input\?/);
  const far = await cli(['zzzzzz']);
  assert.equal(far.code, 2);
  assert.match(far.stderr, /the commands are init, run, tools/);
  const json = await cli(['polcy', '--json']);
  assert.equal(json.code, 2);
  assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'E_USAGE');
  assert.equal(closest('fzuz', ['fuzz', 'run']), 'fuzz');
  assert.equal(closest('--jsn', ['--json', '--policy']), '--json');
  assert.equal(closest('deploy', ['fuzz', 'run']), undefined);
});

test('a bad log level is a usage error (exit 2) from the flag and from the environment', async () => {
  const echo = await echoTool();
  const flag = await cli(['run', echo, '--input', '{}', '--log-level', 'verbose']);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /E_USAGE: --log-level takes one of fatal, error, warn, info, debug, trace, silent, got "verbose"/);
  const env = await cli(['run', echo, '--input', '{}'], { AUTHORITY_LOG_LEVEL: 'loud' });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /E_USAGE: AUTHORITY_LOG_LEVEL takes one of/);
});

test('a malformed --grant is refused before anything runs', async () => {
  const echo = await echoTool();
  const data = join(dir.path, 'grant-data');
  const r = await cli(['run', echo, '--input', '{"x":1}', '--grant', 'not-a-token', '--data-dir', data, '--json']);
  assert.equal(r.code, 2);
  const doc = JSON.parse(r.stdout) as { error: { code: string; message: string; data: { field: string } } };
  assert.equal(doc.error.code, 'E_USAGE');
  assert.match(doc.error.message, /--grant #1 is not a capability token/);
  // Nothing ran: no runtime opened the data folder, so there is no audit log.
  assert.equal(existsSync(join(data, 'audit')), false);
});

test('the command table and the loaded commands agree, and fuzz --help lists every fuzzed op', async () => {
  assert.deepEqual(
    COMMAND_TABLE.map((c) => [c.name, c.summary]),
    commands.map((c) => [c.name, c.summary]),
  );
  for (const entry of COMMAND_TABLE) assert.equal(await entry.load(), commands.find((c) => c.name === entry.name));
  assert.deepEqual([...FUZZ_OPS], [...ALL_OPS]);
  const help = await cli(['fuzz', '--help']);
  for (const op of ALL_OPS) assert.ok(help.stdout.includes(op), op);
});

test('a trap after a denial is reported as the denial, the trap as its consequence: CLI human and --json, adapters, MCP', async () => {
  const tool = await watFixture('deny-then-trap');
  const policy = join(dir.path, 'trap-policy.json');
  writeFileSync(policy, JSON.stringify({ version: '1.0', fs: { read: ['/etc/**'] }, tools: { allow: ['*'] } }));
  const human = await cli(['run', tool, '--input', '{}', '--policy', policy]);
  assert.equal(human.code, 1);
  assert.match(human.stderr, /^authority: E_CAP_MISSING: fs\.read denied: .+; the tool then trapped \(the tool trapped: .*unreachable.*\)\n$/);
  const json = await cli(['run', tool, '--input', '{}', '--policy', policy, '--json']);
  assert.equal(json.code, 1);
  const err = (JSON.parse(json.stdout) as { error: { code: string; message: string; data: { consequence: { code: string }; denials: Array<{ code: string }> } } }).error;
  assert.equal(err.code, 'E_CAP_MISSING');
  assert.equal(err.data.consequence.code, 'E_TOOL_TRAPPED');
  assert.equal(err.data.denials[0]?.code, 'E_CAP_MISSING');

  const rt = await testRuntime({ policy: { version: '1.0', fs: { read: ['/etc/**'] }, tools: { allow: ['*'] } } });
  try {
    await rt.register(tool);
    const thrown = await rt.invoke('deny-then-trap', {}).then(
      () => assert.fail('the tool should have trapped'),
      (e: unknown) => e as AuthorityError,
    );
    assert.equal(thrown.code, ErrorCode.TOOL_TRAPPED);
    const shown = denialFirst(thrown);
    assert.equal(shown.code, ErrorCode.CAP_MISSING);
    assert.equal(shown.cause, thrown);
    const failure = toFailure('deny-then-trap', thrown);
    assert.equal(failure.code, ErrorCode.CAP_MISSING);
    assert.equal(failure.consequence?.code, ErrorCode.TOOL_TRAPPED);
    assert.match(failure.text, /^denied: E_CAP_MISSING: .*; the tool then trapped: /);

    const [a, b] = InMemoryTransport.createLinkedPair();
    const session = createMcpServer(rt, { logger: pino({ level: 'silent' }) });
    await session.connect(a);
    const client = new Client({ name: 'ux', version: '1' });
    await client.connect(b);
    const res = await client.callTool({ name: 'deny-then-trap', arguments: {} });
    assert.equal(res.isError, true);
    assert.match((res.content as Array<{ text: string }>)[0]?.text ?? '', /^denied: E_CAP_MISSING: .*; the tool then trapped/);
    await client.close();
    await session.close();
  } finally {
    await rt.cleanup();
  }
  // Any other error is left as it is.
  const other = new AuthorityError(ErrorCode.TOOL_TRAPPED, 'the tool trapped: unreachable');
  assert.equal(denialFirst(other), other);
});

test('logs: one human line per event on a terminal, JSON lines otherwise or when asked', () => {
  const lines: string[] = [];
  const tty = createLogger({ level: 'info', env: {}, isTTY: true, write: (l) => lines.push(l) });
  tty.info({ tool: 'echo', runId: 'r1' }, 'tool registered');
  assert.equal(lines.length, 1);
  assert.match(lines[0] as string, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}tool registered tool=echo runId=r1\n$/);
  lines.length = 0;
  const pipe = createLogger({ level: 'info', env: {}, isTTY: false, write: (l) => lines.push(l) });
  pipe.info({ tool: 'echo' }, 'tool registered');
  assert.equal(lines.length, 1);
  assert.equal((JSON.parse(lines[0] as string) as { msg: string; tool: string }).tool, 'echo');
  lines.length = 0;
  const asked = createLogger({ level: 'info', env: { AUTHORITY_LOG_FORMAT: 'json' }, isTTY: true, write: (l) => lines.push(l) });
  asked.warn({ token: 'secret-token' }, 'x');
  assert.equal((JSON.parse(lines[0] as string) as { token: string }).token, '[Redacted]');
  assert.throws(() => createLogger({ env: { AUTHORITY_LOG_FORMAT: 'xml' } }), (e: unknown) => (e as AuthorityError).code === ErrorCode.USAGE);
  assert.equal(humanLine('not json'), 'not json\n');
});

test('progress goes to stderr on a terminal only', async () => {
  const seen: string[] = [];
  const io = { out: () => {}, err: (t: string) => void seen.push(t), log: pino({ level: 'silent' }), env: {}, cwd: dir.path };
  const quiet = progress({ ...io, isTTY: false }, 'building', 0);
  await new Promise((r) => setTimeout(r, 30));
  quiet.done();
  assert.deepEqual(seen, []);
  const shown = progress({ ...io, isTTY: true }, 'building', 0);
  await new Promise((r) => setTimeout(r, 30));
  shown.done();
  assert.match(seen.join(''), /building 0 s/);
  assert.match(seen.at(-1) ?? '', /building done in \d+\.\d s\n$/);
  // A real command whose stderr is a pipe prints no progress.
  const built = await cli(['build', join(ROOT, 'tools', 'echo', 'echo.wat'), '-o', join(dir.path, 'echo.wasm')]);
  assert.equal(built.code, 0, built.stderr);
  assert.equal(built.stderr, '');
});

test('the compile cache is bounded: least recently used entries go first, `authority cache` lists and prunes', async () => {
  const dataDir = join(dir.path, 'bounded');
  const cacheDir = join(dataDir, 'cache');
  const opts = { cacheDir, maxMemoryBytes: 16 * 1024 * 1024 };
  // Two entries written by other processes (a runtime never prunes what it uses itself).
  for (const name of ['echo', 'read-text']) {
    const wasm = join(dir.path, `${name}.wasm`);
    assert.equal((await cli(['build', join(ROOT, 'tools', name, `${name}.wat`), '-o', wasm])).code, 0);
    const r = await cli(['run', wasm, '--input', '{"path":"/nowhere"}', '--data-dir', dataDir]);
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
  }
  const trap = readFileSync(await watFixture('deny-then-trap'));
  const two = listCache(cacheDir);
  assert.equal(two.length, 2);
  // Age the entries (an hour ago, the older one first), as if other processes had used them long ago.
  const hour = Date.now() - 3600_000;
  for (const [i, e] of two.entries()) utimesSync(join(cacheDir, e.name, 'manifest.json'), new Date(hour + i), new Date(hour + i * 1000));
  const [oldest, newer] = listCache(cacheDir) as [(typeof two)[number], (typeof two)[number]];
  // The size the third entry will have, learnt from a cache of its own.
  const probe = join(dir.path, 'probe-cache');
  await compileComponent(trap, sha256Hex(trap), { ...opts, cacheDir: probe });
  const trapBytes = (listCache(probe)[0] as (typeof two)[number]).bytes;
  // A third entry with a cap that holds it and one more: the least recently used one goes.
  await compileComponent(trap, sha256Hex(trap), { ...opts, maxCacheBytes: newer.bytes + trapBytes });
  const after = listCache(cacheDir).map((e) => e.digest);
  assert.equal(after.length, 2);
  assert.ok(!after.includes(oldest.digest), 'the least recently used entry was kept');
  assert.ok(after.includes(sha256Hex(trap)), 'the new entry was evicted');

  const list = await cli(['cache', 'list', '--cache-dir', cacheDir, '--json']);
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual((JSON.parse(list.stdout) as { entries: Array<{ digest: string }> }).entries.map((e) => e.digest).sort(), [...after].sort());
  const bad = await cli(['cache', 'prune', '--cache-dir', cacheDir, '--max-mb', 'lots']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /E_USAGE: --max-mb takes a size in MiB/);
  const pruned = await cli(['cache', 'prune', '--cache-dir', cacheDir, '--all', '--json']);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.equal((JSON.parse(pruned.stdout) as { removed: unknown[] }).removed.length, 2);
  assert.deepEqual(listCache(cacheDir), []);
  // No entry folder is left (the WIT's own small component, sandbox-wit-*.wasm, is not an entry).
  assert.deepEqual(readdirSync(cacheDir).filter((n) => /\.v\d/.test(n)), []);
  // Recently used entries are left alone by a runtime's own pruning (another process may be loading them).
  mkdirSync(join(cacheDir, `${'a'.repeat(64)}.v2`));
  writeFileSync(join(cacheDir, `${'a'.repeat(64)}.v2`, 'manifest.json'), '{}');
  assert.equal(pruneCache(cacheDir, { maxBytes: 0, graceMs: 60_000 }).removed.length, 0);
  assert.equal(pruneCache(cacheDir, { maxBytes: 0 }).removed.length, 1);
});

test('init writes a working starter folder: a tool reads the workspace, and /etc/passwd is denied', async () => {
  const home = join(dir.path, 'init-home');
  mkdirSync(home);
  const run = (args: string[]): Promise<Ran> =>
    new Promise((resolve) => {
      const child = execFile(process.execPath, [BIN, ...args], { cwd: home, env: { PATH: process.env['PATH'] ?? '' }, timeout: 120_000 }, (_e, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }));
    });
  const init = await run(['init', '--json']);
  assert.equal(init.code, 0, init.stderr);
  assert.ok((JSON.parse(init.stdout) as { written: string[] }).written.length >= 7);
  const token = (await run(['cap', 'issue', '--kind', 'fs', '--resource', `${home}/workspace/**`, '--methods', 'read', '--ttl', '1h'])).stdout.trim();
  const ok = await run(['run', 'read-text', '--input', JSON.stringify({ path: join(home, 'workspace', 'hello.txt') }), '--grant', token]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^Hello from the workspace/);
  const denied = await run(['run', 'read-text', '--input', '{"path":"/etc/passwd"}', '--grant', token]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /E_CAP_SCOPE/);
  const again = await run(['init']);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /kept .*policy\.json \(exists; --force overwrites\)/);
});

test('the guest helper turns a host error into the tool\'s error line, and its types match the WIT', async () => {
  const denied = { payload: { tag: 'denied', val: { code: 'E_CAP_SCOPE', message: 'no fs token covers read on "/etc/passwd"' } } };
  assert.equal(guest.hostError(denied), 'E_CAP_SCOPE: no fs token covers read on "/etc/passwd"');
  assert.deepEqual(guest.denial(denied), { code: 'E_CAP_SCOPE', message: 'no fs token covers read on "/etc/passwd"' });
  assert.equal(guest.retryAfterMs({ payload: { tag: 'rate-limited', val: 250n } }), 250);
  assert.throws(() => guest.host(() => { throw denied; }), (e: unknown) => e === 'E_CAP_SCOPE: no fs token covers read on "/etc/passwd"');
  assert.equal(guest.host(() => 7), 7);
  const plain = new Error('bug');
  assert.throws(() => guest.host(() => { throw plain; }), (e: unknown) => e === plain);
  // The committed types are what the WIT generates today.
  execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'tools', 'guest-types.ts'), '--check'], { cwd: ROOT, stdio: 'pipe' });
});
