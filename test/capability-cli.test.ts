import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { dataPaths } from '../src/data-dir.ts';
import { Keyring, RevocationList, parseToken, verifyToken } from '../src/capability/index.ts';
import { capCommand } from '../src/cli/commands/cap.ts';
import { keysCommand } from '../src/cli/commands/keys.ts';
import { commands } from '../src/cli/commands/index.ts';
import type { CliIO, Command } from '../src/cli/types.ts';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const root = mkdtempSync(join(tmpdir(), 'authority-cap-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshCwd = (): string => {
  const dir = join(root, `c${n++}`);
  return dir;
};

interface Result {
  code: number;
  out: string;
  err: string;
  json: () => Record<string, unknown>;
}

/** Everything any command printed, to check no key material ever appears. */
const transcript: string[] = [];

async function run(command: Command, argv: string[], cwd: string, env: Record<string, string | undefined> = {}): Promise<Result> {
  let out = '';
  let err = '';
  const io: CliIO = { out: (t) => void (out += t), err: (t) => void (err += t), log: pino({ level: 'silent' }), env, cwd };
  const code = await command.run(argv, io).catch(async (e: unknown) => {
    // main() turns thrown errors into output; do the same here.
    const { fail } = await import('../src/cli/output.ts');
    return fail(io, argv.includes('--json'), e);
  });
  transcript.push(out, err);
  return { code, out, err, json: () => JSON.parse(out) as Record<string, unknown> };
}

const keys = (argv: string[], cwd: string, env?: Record<string, string>): Promise<Result> => run(keysCommand, argv, cwd, env);
const cap = (argv: string[], cwd: string, env?: Record<string, string>): Promise<Result> => run(capCommand, argv, cwd, env);

function secretsOf(dir: string): string[] {
  const doc = JSON.parse(readFileSync(dataPaths(dir).keyring, 'utf8')) as { keys: Array<{ secret: string }> };
  return doc.keys.flatMap((k) => [k.secret, Buffer.from(k.secret, 'base64url').toString('hex')]);
}

test('keys and cap are registered commands', () => {
  assert.ok(commands.includes(keysCommand) && commands.includes(capCommand));
});

describe('authority keys', () => {
  test('new creates a private keyring in the default data folder and refuses to overwrite it', async () => {
    const cwd = freshCwd();
    const r = await keys(['new', '--json'], cwd);
    assert.equal(r.code, 0, r.err);
    const doc = r.json();
    assert.equal(doc['ok'], true);
    const dir = join(cwd, '.authority');
    assert.equal(doc['path'], dataPaths(dir).keyring);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(dataPaths(dir).keyring).mode & 0o777, 0o600);
    const again = await keys(['new', '--json'], cwd);
    assert.equal(again.code, 2);
    assert.equal((again.json()['error'] as { code: string }).code, 'E_CONFIG');
  });

  test('rotate, list and remove show ids and statuses, never secrets', async () => {
    const cwd = freshCwd();
    const dir = join(cwd, 'state');
    await keys(['new', '--data-dir', 'state'], cwd);
    const rot = await keys(['rotate', '--data-dir', 'state', '--json'], cwd);
    assert.equal(rot.code, 0, rot.err);
    const active = rot.json()['active'] as string;
    const list = await keys(['list', '--data-dir', 'state', '--json'], cwd);
    const listed = list.json()['keys'] as Array<{ id: string; status: string }>;
    assert.deepEqual(
      listed.map((k) => k.status),
      ['retired', 'active'],
    );
    assert.equal(listed[1]?.id, active);
    const secrets = secretsOf(dir);
    for (const text of [rot.out, list.out, (await keys(['list', '--data-dir', 'state'], cwd)).out]) {
      for (const s of secrets) assert.ok(!text.includes(s));
    }
    const retired = listed[0]?.id as string;
    const rm = await keys(['remove', retired, '--data-dir', 'state', '--json'], cwd);
    assert.equal(rm.code, 0, rm.err);
    assert.equal(rm.json()['removed'], retired);
    assert.equal((await keys(['remove', retired, '--data-dir', 'state'], cwd)).code, 2, 'an unknown key id is a usage error');
  });

  test('usage errors exit 2', async () => {
    const cwd = freshCwd();
    assert.equal((await keys([], cwd)).code, 2);
    assert.equal((await keys(['spin'], cwd)).code, 2);
    assert.equal((await keys(['list', '--bogus'], cwd)).code, 2);
    assert.equal((await keys(['list', '--drop-retired'], cwd)).code, 2);
  });
});

describe('authority cap', () => {
  test('issue, inspect, verify, attenuate and revoke, end to end', async () => {
    const cwd = freshCwd();
    await keys(['new'], cwd);
    const issued = await cap(['issue', '--kind', 'fs', '--resource', '/data/**', '--methods', 'read,list', '--ttl', '2h', '--rate', '10/s', '--json'], cwd);
    assert.equal(issued.code, 0, issued.err);
    const doc = issued.json();
    const token = doc['token'] as string;
    assert.equal(doc['tokenId'], parseToken(token).tokenId);
    assert.deepEqual((doc['effective'] as { methods: string[] }).methods, ['read', 'list']);

    const human = await cap(['issue', '--kind', 'fs', '--resource', '/data/**', '--methods', 'read'], cwd);
    assert.match(human.out, /^acap1\.[A-Za-z0-9_-]+\n$/, 'human output is the token alone, ready for $(...)');

    const ring = Keyring.fromDataDir(join(cwd, '.authority'));
    assert.equal(verifyToken(ring, token, { revocations: null }).tokenId, doc['tokenId']);

    const inspected = await cap(['inspect', token, '--json'], cwd);
    assert.equal(inspected.code, 0);
    assert.equal((inspected.json()['root'] as { resource: string }).resource, '/data/**');
    assert.ok(!inspected.out.includes(token.slice(-43)), 'inspect never prints the MAC');

    const verified = await cap(['verify', token, '--json'], cwd);
    assert.equal(verified.code, 0, verified.out);
    assert.equal(verified.json()['valid'], true);

    const covered = await cap(['verify', token, '--resource', '/data/a.txt', '--method', 'read', '--json'], cwd);
    assert.equal(covered.code, 0, covered.out);
    assert.deepEqual(covered.json()['rates'], [{ count: 10, periodMs: 1000, key: doc['tokenId'] }]);

    const outside = await cap(['verify', token, '--resource', '/etc/passwd', '--method', 'read', '--json'], cwd);
    assert.equal(outside.code, 1);
    assert.equal((outside.json()['error'] as { code: string }).code, 'E_CAP_SCOPE');

    const expired = await cap(['verify', token, '--now', '+3h', '--json'], cwd);
    assert.equal(expired.code, 1);
    assert.equal((expired.json()['error'] as { code: string }).code, 'E_CAP_EXPIRED');

    const child = await cap(['attenuate', token, '--resource', '/data/reports/**', '--methods', 'read', '--run', 'run-1', '--json'], cwd);
    assert.equal(child.code, 0, child.err);
    const childToken = child.json()['token'] as string;
    assert.deepEqual(parseToken(childToken).chain, [doc['tokenId'], parseToken(childToken).tokenId]);

    const wider = await cap(['attenuate', childToken, '--methods', 'read,list', '--json'], cwd);
    assert.equal(wider.code, 1);
    assert.equal((wider.json()['error'] as { code: string }).code, 'E_CAP_WIDENING');

    assert.equal((await cap(['verify', childToken, '--run', 'run-2', '--json'], cwd)).code, 1);
    assert.equal((await cap(['verify', childToken, '--run', 'run-1', '--json'], cwd)).code, 0);

    const revoked = await cap(['revoke', token, '--reason', 'test', '--json'], cwd);
    assert.equal(revoked.code, 0, revoked.err);
    assert.deepEqual(revoked.json()['revoked'], { ...(revoked.json()['revoked'] as object), type: 'token', id: doc['tokenId'] });
    const after = await cap(['verify', childToken, '--run', 'run-1', '--json'], cwd);
    assert.equal(after.code, 1);
    assert.equal((after.json()['error'] as { code: string }).code, 'E_CAP_REVOKED');
    assert.ok(RevocationList.fromDataDir(join(cwd, '.authority')).isTokenRevoked(doc['tokenId'] as string));

    for (const s of secretsOf(join(cwd, '.authority'))) assert.ok(!transcript.join('\n').includes(s), 'no key material in any output');
  });

  test('a token can be read from a file with @FILE', async () => {
    const cwd = freshCwd();
    await keys(['new'], cwd);
    const token = (await cap(['issue', '--kind', 'tool', '--resource', 'echo', '--methods', 'invoke'], cwd)).out.trim();
    writeFileSync(join(cwd, 'tok.txt'), token + '\n');
    const r = await cap(['inspect', '@tok.txt', '--json'], cwd);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.json()['tokenId'], parseToken(token).tokenId);
  });

  test('AUTHORITY_KEYS takes over issuing and verifying', async () => {
    const cwd = freshCwd();
    const env = { AUTHORITY_KEYS: `env-1:${Buffer.alloc(32, 9).toString('base64url')}` };
    const issued = await cap(['issue', '--kind', 'secrets', '--resource', 'API_*', '--methods', 'use', '--json'], cwd, env);
    assert.equal(issued.code, 0, issued.err);
    assert.equal(issued.json()['keyId'], 'env-1');
    const token = issued.json()['token'] as string;
    assert.equal((await cap(['verify', token, '--json'], cwd, env)).code, 0);
    const noKeys = await cap(['verify', token, '--json'], cwd);
    assert.equal(noKeys.code, 2, 'without keys it is a configuration error');
  });

  const usage: Array<[string, string[]]> = [
    ['no subcommand', []],
    ['an unknown subcommand', ['mint']],
    ['issue without --kind', ['issue', '--resource', '/a', '--methods', 'read']],
    ['issue with an unknown kind', ['issue', '--kind', 'disk', '--resource', '/a', '--methods', 'read']],
    ['issue with a relative path', ['issue', '--kind', 'fs', '--resource', 'a/**', '--methods', 'read']],
    ['issue with a method of another kind', ['issue', '--kind', 'fs', '--resource', '/a', '--methods', 'GET']],
    ['issue with a bad ttl', ['issue', '--kind', 'fs', '--resource', '/a', '--methods', 'read', '--ttl', 'soon']],
    ['issue with a bad rate', ['issue', '--kind', 'fs', '--resource', '/a', '--methods', 'read', '--rate', 'lots']],
    ['an option of another subcommand', ['inspect', 'x', '--reason', 'r']],
    ['revoke with two targets', ['revoke', '--id', 'a'.repeat(32), '--run', 'r']],
    ['revoke with a malformed id', ['revoke', '--id', 'xyz']],
    ['verify with --method but no --resource', ['verify', 'x', '--method', 'read']],
  ];
  for (const [what, argv] of usage) {
    test(`${what} exits 2 with one JSON error document`, async () => {
      const cwd = freshCwd();
      await keys(['new'], cwd);
      const r = await cap([...argv, '--json'], cwd);
      assert.equal(r.code, 2, r.out + r.err);
      const doc = r.json();
      assert.equal(doc['ok'], false);
      assert.ok(['E_USAGE', 'E_CONFIG'].includes((doc['error'] as { code: string }).code));
    });
  }

  test('inspecting something that is not a token fails with E_CAP_INVALID and exit 1', async () => {
    const r = await cap(['inspect', 'acap1.AAAA', '--json'], freshCwd());
    assert.equal(r.code, 1);
    assert.equal((r.json()['error'] as { code: string }).code, 'E_CAP_INVALID');
  });
});

describe('the real command line', () => {
  test('main() dispatches to keys and cap, printing one JSON document and the contract exit codes', async () => {
    const { main } = await import('../src/cli/main.ts');
    const cwd = freshCwd();
    let out = '';
    const io: CliIO = { out: (t) => void (out += t), err: () => undefined, log: pino({ level: 'silent' }), env: {}, cwd };
    assert.equal(await main(['keys', 'new', '--json'], io), 0);
    assert.equal(JSON.parse(out).ok, true);
    out = '';
    assert.equal(await main(['cap', 'issue', '--kind', 'net', '--json'], io), 2);
    assert.equal(JSON.parse(out).error.code, 'E_USAGE');
    out = '';
    assert.equal(await main(['cap', 'inspect', 'nope', '--json'], io), 1);
    assert.equal(JSON.parse(out).error.code, 'E_CAP_INVALID');
  });

  test('cap issue and cap verify run as child processes, with exit codes and one JSON document', () => {
    const dir = join(freshCwd(), 'data');
    Keyring.fromDataDir(dir, { create: true });
    const cli = (args: string[]): { status: number | null; stdout: string; stderr: string } =>
      spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--data-dir', dir], {
        cwd: repo,
        encoding: 'utf8',
        env: { ...process.env, AUTHORITY_KEYS: '', AUTHORITY_DATA_DIR: '' },
      });
    const issued = cli(['cap', 'issue', '--kind', 'net', '--resource', 'https://api.example.com/**', '--methods', 'GET']);
    assert.equal(issued.status, 0, issued.stderr);
    const token = issued.stdout.trim();
    assert.equal(parseToken(token).kind, 'net');
    const denied = cli(['cap', 'verify', token, '--resource', 'https://api.example.com/v1', '--method', 'POST', '--json']);
    assert.equal(denied.status, 1, denied.stderr);
    const doc = JSON.parse(denied.stdout);
    assert.deepEqual([doc.ok, doc.tokenId, doc.error.code], [false, parseToken(token).tokenId, 'E_CAP_SCOPE']);
  });
});
