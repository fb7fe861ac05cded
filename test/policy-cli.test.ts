import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { policyCommand } from '../src/cli/commands/policy.ts';
import { commands } from '../src/cli/commands/index.ts';
import type { CliIO } from '../src/cli/types.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const fixture = (name: string): string => join(here, 'fixtures', 'policies', name);

interface Captured {
  code: number;
  out: string;
  err: string;
}

async function run(...argv: string[]): Promise<Captured> {
  let out = '';
  let err = '';
  const io: CliIO = {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    log: pino({ level: 'silent' }),
    env: {},
    cwd: root,
  };
  const code = await policyCommand.run(argv, io);
  return { code, out, err };
}

function json(c: Captured): Record<string, unknown> {
  // --json prints exactly one JSON document on stdout.
  return JSON.parse(c.out) as Record<string, unknown>;
}

test('is registered as `authority policy`', () => {
  assert.ok(commands.includes(policyCommand));
  assert.equal(policyCommand.name, 'policy');
  assert.match(policyCommand.usage, /policy validate FILE/);
  assert.match(policyCommand.usage, /policy test FILE --op OP --target TARGET/);
});

test('validate: a good policy exits 0 and says so', async () => {
  const c = await run('validate', fixture('valid.json'));
  assert.equal(c.code, 0);
  assert.match(c.out, /valid\.json: valid policy "example" \(sha256 [0-9a-f]{16}\)/);
  assert.equal(c.err, '');
  const j = json(await run('validate', fixture('valid.json'), '--json'));
  assert.equal(j['ok'], true);
  assert.equal(j['name'], 'example');
  assert.match(String(j['digest']), /^[0-9a-f]{64}$/);
  assert.deepEqual(j['warnings'], []);
  assert.deepEqual(j['caps'], { fsReadBytes: 8388608, fsWriteBytes: 8388608, fsListEntries: 10000, httpRequestBytes: 1048576, httpResponseBytes: 4194304, httpTimeoutMs: 30000 });
});

test('validate: warnings are printed with their paths, and the exit code stays 0', async () => {
  const c = await run('validate', fixture('warnings.json'));
  assert.equal(c.code, 0);
  assert.match(c.out, /5 warnings:/);
  assert.match(c.out, /warning: fs\.read\[0\]: "data\/\*\*" can never match: it is relative, and paths are always absolute \(line 3, column 20\)/);
  assert.match(c.out, /warning: fs\.write\[0\]: '\/srv\/private\/out\/\*\*' can never allow anything: fs\.deny\[0\] '\/srv\/private\/\*\*' covers it/);
  assert.match(c.out, /warning: tools\.allow\[0\]: 'shell-exec' can never allow anything: tools\.deny\[0\] 'shell-\*' covers it/);
  assert.match(c.out, /warning: fs\.deny: fs\.deny covers every fs\.write rule: nothing can be written/);
  assert.match(c.out, /warning: tools\.deny: tools\.deny covers every tools\.allow rule/);
  const j = json(await run('validate', fixture('warnings.json'), '--json'));
  assert.deepEqual(
    (j['warnings'] as Array<{ path: string }>).map((w) => w.path),
    ['fs.read[0]', 'fs.write[0]', 'fs.deny', 'tools.allow[0]', 'tools.deny'],
  );
});

test('validate: a bad policy exits 2 with every problem located', async () => {
  const c = await run('validate', fixture('invalid.json'));
  assert.equal(c.code, 2);
  assert.equal(c.out, '');
  assert.match(c.err, /E_POLICY_INVALID: invalid policy .*invalid\.json \(3 problems\):/);
  assert.match(c.err, /fs\.wirte: unknown field; did you mean write\? \(line 3, column 33\)/);
  assert.match(c.err, /net\.connect\[1\]: port must be 1-65535 or \* \(line 4, column 55\)/);
  assert.match(c.err, /limits\.http: rate must look like "10\/s"/);
  const j = json(await run('validate', fixture('invalid.json'), '--json'));
  assert.equal(j['ok'], false);
  const error = j['error'] as { code: string; data: { issues: Array<{ path: string; line: number }> } };
  assert.equal(error.code, 'E_POLICY_INVALID');
  assert.deepEqual(
    error.data.issues.map((i) => [i.path, i.line]),
    [
      ['fs.wirte', 3],
      ['net.connect[1]', 4],
      ['limits.http', 5],
    ],
  );
});

test('validate: a missing file is a configuration error (exit 2)', async () => {
  const c = await run('validate', fixture('nope.json'));
  assert.equal(c.code, 2);
  assert.match(c.err, /E_CONFIG: cannot read policy file .*nope\.json: ENOENT/);
});

test('test: prints the decision and its reason; exit 0 allows, 1 denies', async () => {
  const deny = await run('test', fixture('valid.json'), '--op', 'fs.read', '--target', '/etc/passwd');
  assert.equal(deny.code, 1);
  assert.equal(deny.out, 'deny (E_POLICY_DENY): no fs.read rule matches /etc/passwd\n  target /etc/passwd\n');
  const ok = await run('test', fixture('valid.json'), '--op', 'fs.write', '--target', '/data/out/../out/r.txt');
  assert.equal(ok.code, 0);
  assert.equal(ok.out, "allow: fs.write[0] '/data/out/**' allows fs.write of /data/out/r.txt\n  rule fs.write[0], root /data/out, target /data/out/r.txt\n");
  const j = json(await run('test', fixture('valid.json'), '--op', 'fs.read', '--target', '/data/a/.env', '--json'));
  assert.equal(j['allow'], false);
  assert.deepEqual(j['decision'], { allow: false, code: 'E_POLICY_DENY', reason: "fs.deny[0] '/data/**/.env' matches /data/a/.env", rule: 'fs.deny[0]', target: '/data/a/.env' });
});

test('test: http decisions, with the method, and the address check for IP literal hosts', async () => {
  assert.equal((await run('test', fixture('valid.json'), '--op', 'http.fetch', '--target', 'https://api.example.com/v1')).code, 0);
  const post = await run('test', fixture('valid.json'), '--op', 'http.fetch', '--target', 'https://api.weather.test/', '--method', 'POST');
  assert.equal(post.code, 1);
  assert.match(post.out, /but not method POST \(it allows GET\)/);
  // The live path refuses an IPv4 address not written a.b.c.d; `policy test` says the same.
  const legacy = await run('test', fixture('valid.json'), '--op', 'http.fetch', '--target', 'http://2130706433:8080/', '--json');
  assert.equal(legacy.code, 1);
  const lj = json(legacy) as { allow: boolean; decision: { code: string; reason: string } };
  assert.equal(lj.allow, false);
  assert.equal(lj.decision.code, 'E_INVALID_ARGUMENT');
  assert.match(lj.decision.reason, /four decimal numbers/);
  const lit = await run('test', fixture('valid.json'), '--op', 'http.fetch', '--target', 'http://127.0.0.1:8080/', '--json');
  assert.equal(lit.code, 0);
  const j = json(lit);
  assert.equal(j['allow'], true);
  assert.equal((j['address'] as { allow: boolean; reason: string }).reason, "127.0.0.1 (loopback) is named by net.connect[1] 'http://127.0.0.1:*'");
  const meta = await run('test', fixture('valid.json'), '--op', 'http.fetch', '--target', 'http://[::ffff:a9fe:a9fe]/latest');
  assert.equal(meta.code, 1);
  assert.match(meta.out, /169\.254\.169\.254/);
  assert.match(meta.out, /cloud metadata address/);
  assert.equal((await run('test', fixture('valid.json'), '--op', 'http.fetch', '--target', 'https://user:pw@api.example.com/')).code, 1);
});

test('test: secrets and tools', async () => {
  const get = await run('test', fixture('valid.json'), '--op', 'secrets.get', '--target', 'WEATHER_KEY');
  assert.equal(get.code, 1);
  assert.match(get.out, /secrets\.WEATHER_KEY\.reveal is false/);
  assert.equal((await run('test', fixture('valid.json'), '--op', 'secrets.get', '--target', 'DEBUG_TOKEN')).code, 0);
  assert.equal((await run('test', fixture('valid.json'), '--op', 'secrets.use', '--target', 'WEATHER_KEY', '--url', 'https://api.weather.test/v1')).code, 0);
  assert.equal((await run('test', fixture('valid.json'), '--op', 'secrets.use', '--target', 'WEATHER_KEY', '--url', 'https://evil.test/')).code, 1);
  const shell = await run('test', fixture('valid.json'), '--op', 'tool.invoke', '--target', 'shell-exec');
  assert.equal(shell.code, 1);
  assert.equal(shell.out, "deny (E_POLICY_DENY): tools.deny[0] 'shell-*' matches shell-exec\n  rule tools.deny[0]\n");
  assert.equal((await run('test', fixture('valid.json'), '--op', 'tool.invoke', '--target', 'word-count')).code, 0);
});

test('test: an empty policy denies every operation', async () => {
  const cases: Array<[string, string]> = [
    ['fs.read', '/data/a'],
    ['fs.write', '/data/a'],
    ['fs.list', '/'],
    ['fs.stat', '/data'],
    ['fs.remove', '/data/a'],
    ['http.fetch', 'https://api.example.com/'],
    ['http.fetch', 'http://127.0.0.1/'],
    ['secrets.get', 'K'],
    ['tool.invoke', 'wc'],
  ];
  for (const [op, target] of cases) {
    const c = await run('test', fixture('empty.json'), '--op', op, '--target', target, '--json');
    assert.equal(c.code, 1, `${op} ${target}`);
    assert.equal(json(c)['allow'], false);
  }
});

test('test: --resolve decides on the real path through symlinks on this machine', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'authority-cli-')));
  try {
    mkdirSync(join(dir, 'data'));
    mkdirSync(join(dir, 'elsewhere'));
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'data', 'link'));
    const file = join(dir, 'p.json');
    writeFileSync(file, JSON.stringify({ version: '1.0', fs: { read: [`${dir}/data/**`] } }));
    assert.equal((await run('test', file, '--op', 'fs.read', '--target', `${dir}/data/link/x`)).code, 0, 'lexically inside');
    const real = await run('test', file, '--op', 'fs.read', '--target', `${dir}/data/link/x`, '--resolve');
    assert.equal(real.code, 1);
    assert.match(real.out, /the real path of/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('usage errors exit 2 and say what is wrong', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /policy needs a subcommand/],
    [['check', 'x'], /unknown policy subcommand "check"/],
    [['validate'], /takes exactly one FILE/],
    [['validate', 'a', 'b'], /takes exactly one FILE/],
    [['validate', fixture('valid.json'), '--bogus'], /Unknown option '--bogus'/],
    [['test', fixture('valid.json'), '--target', '/x'], /--op must be one of: fs\.read, fs\.write/],
    [['test', fixture('valid.json'), '--op', 'fs.chmod', '--target', '/x'], /--op must be one of/],
    [['test', fixture('valid.json'), '--op', 'fs.read'], /--target is required/],
    [['test', fixture('valid.json'), '--op', 'fs.read', '--target', '/x', '--method', 'GET'], /--method applies to --op http\.fetch only/],
    [['test', fixture('valid.json'), '--op', 'secrets.use', '--target', 'K'], /needs --url URL/],
    [['test', fixture('invalid.json'), '--op', 'fs.read', '--target', '/x'], /E_POLICY_INVALID/],
  ];
  for (const [argv, message] of cases) {
    const c = await run(...argv);
    assert.equal(c.code, 2, argv.join(' '));
    assert.match(c.err, message, argv.join(' '));
  }
  const j = json(await run('test', fixture('valid.json'), '--op', 'nope', '--target', 'x', '--json'));
  assert.deepEqual((j['error'] as { code: string }).code, 'E_USAGE');
});

test('runs as a child process with the exit codes and JSON of the contract', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), 'policy', ...args], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, AUTHORITY_LOG_LEVEL: 'silent' },
    });
  const valid = cli('validate', fixture('valid.json'), '--json');
  assert.equal(valid.status, 0, valid.stderr);
  assert.equal((JSON.parse(valid.stdout) as { ok: boolean }).ok, true);
  const invalid = cli('validate', fixture('invalid.json'));
  assert.equal(invalid.status, 2);
  assert.match(invalid.stderr, /net\.connect\[1\]: port must be 1-65535 or \*/);
  const denied = cli('test', fixture('valid.json'), '--op', 'fs.read', '--target', '/etc/passwd');
  assert.equal(denied.status, 1);
  assert.equal(denied.stdout, 'deny (E_POLICY_DENY): no fs.read rule matches /etc/passwd\n  target /etc/passwd\n');
  const allowed = cli('test', fixture('valid.json'), '--op', 'http.fetch', '--target', 'http://127.0.0.1:9/', '--json');
  assert.equal(allowed.status, 0, allowed.stderr);
  assert.equal((JSON.parse(allowed.stdout) as { allow: boolean }).allow, true);
});
