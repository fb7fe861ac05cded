import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { dataPaths, ensurePrivateDir } from '../src/data-dir.ts';
import { Keyring, RevocationList, attenuateToken, checkCapability, issueToken, parseToken, prepareGrants } from '../src/capability/index.ts';

const repo = resolve(fileURLToPath(new URL('..', import.meta.url)));
const root = mkdtempSync(join(tmpdir(), 'authority-revocation-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `d${n++}`);

const ID_A = 'a'.repeat(32);
const ID_B = 'b'.repeat(32);
const line = (type: string, id: string): string => JSON.stringify({ v: 1, type, id, at: 1 }) + '\n';

describe('revocation list', () => {
  test('persists token and run revocations with mode 0600, one fsynced JSON line each', () => {
    const dir = freshDir();
    const list = RevocationList.fromDataDir(dir);
    list.revokeToken(ID_A, { reason: 'leaked' });
    list.revokeRun('run-7');
    const path = dataPaths(dir).revocations;
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => [l.type, l.id, l.reason]),
      [
        ['token', ID_A, 'leaked'],
        ['run', 'run-7', undefined],
      ],
    );
    const reopened = RevocationList.fromDataDir(dir);
    assert.ok(reopened.isTokenRevoked(ID_A));
    assert.ok(reopened.isRunRevoked('run-7'));
    assert.ok(!reopened.isTokenRevoked(ID_B));
    assert.equal(reopened.size, 2);
  });

  test('a record appended by another writer is seen at the next check without a reload', () => {
    const dir = freshDir();
    const reader = RevocationList.fromDataDir(dir);
    assert.equal(reader.findRevoked([ID_A], []), undefined);
    RevocationList.fromDataDir(dir).revokeToken(ID_A);
    assert.equal(reader.findRevoked([ID_A], [])?.id, ID_A);
    appendFileSync(dataPaths(dir).revocations, line('run', 'run-9'));
    assert.equal(reader.findRevoked([], ['run-9'])?.type, 'run');
  });

  test('invalid ids are refused', () => {
    const list = RevocationList.memory();
    assert.throws(() => list.revokeToken('ABC'), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.INVALID_ARGUMENT);
    assert.throws(() => list.revokeRun('has space'), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.INVALID_ARGUMENT);
  });

  test('a corrupt file refuses to load, naming the line', () => {
    const dir = freshDir();
    const path = dataPaths(dir).revocations;
    RevocationList.fromDataDir(dir).revokeToken(ID_A);
    appendFileSync(path, '{"v":1,"type":"token","id":"zz","at":1}\n');
    assert.throws(
      () => RevocationList.fromDataDir(dir),
      (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && e.data?.['line'] === 2 && /line 2/.test(e.message),
    );
  });

  test('corruption that appears while running revokes everything until the file is repaired', () => {
    const dir = freshDir();
    const path = dataPaths(dir).revocations;
    const list = RevocationList.fromDataDir(dir);
    list.revokeToken(ID_A);
    const good = readFileSync(path, 'utf8');
    appendFileSync(path, 'not json\n');
    const hit = list.findRevoked([ID_B], []);
    assert.equal(hit?.type, 'corrupt');
    assert.ok(list.isTokenRevoked(ID_B));
    writeFileSync(path, good + line('token', ID_B).replace('"at":1', '"at":2'));
    assert.equal(list.findRevoked(['c'.repeat(32)], []), undefined, 'repaired: other tokens are fine again');
    assert.equal(list.findRevoked([ID_B], [])?.id, ID_B);
  });

  test('an unterminated last line is a write in progress, not corruption', () => {
    const dir = freshDir();
    const path = dataPaths(dir).revocations;
    const list = RevocationList.fromDataDir(dir);
    list.revokeToken(ID_A);
    const rec = line('token', ID_B);
    appendFileSync(path, rec.slice(0, 20));
    assert.equal(list.findRevoked([ID_B], []), undefined);
    assert.notEqual(list.findRevoked([ID_A], [])?.type, 'corrupt');
    appendFileSync(path, rec.slice(20));
    assert.equal(list.findRevoked([ID_B], [])?.id, ID_B);
    assert.equal(RevocationList.fromDataDir(dir).size, 2);
  });

  test('a writer after a torn record keeps its own record whole, and the fragment fails closed', () => {
    const dir = freshDir();
    const path = dataPaths(dir).revocations;
    const list = RevocationList.fromDataDir(dir);
    list.revokeToken(ID_A);
    appendFileSync(path, '{"v":1,"type":"tok'); // a crash mid-append
    RevocationList.fromDataDir(dir).revokeToken(ID_B);
    const lines = readFileSync(path, 'utf8').split('\n');
    assert.deepEqual(JSON.parse(lines[2] as string).id, ID_B, 'the new record is on its own line');
    assert.equal(list.findRevoked(['c'.repeat(32)], [])?.type, 'corrupt');
  });

  test('a running process never forgets a revocation, even if the file is truncated', () => {
    const dir = freshDir();
    const list = RevocationList.fromDataDir(dir);
    list.revokeToken(ID_A);
    truncateSync(dataPaths(dir).revocations, 0);
    assert.equal(list.findRevoked([ID_A], [])?.id, ID_A);
  });

  test('with a staleness window, a check inside the window skips the file', () => {
    const dir = ensurePrivateDir(freshDir());
    const list = RevocationList.fromDataDir(dir, { maxStalenessMs: 60_000 });
    assert.equal(list.findRevoked([ID_A], []), undefined);
    appendFileSync(dataPaths(dir).revocations, line('token', ID_A));
    assert.equal(list.findRevoked([ID_A], []), undefined, 'not re-read within the window');
    list.revokeRun('run-1'); // its own writes apply at once
    assert.equal(list.findRevoked([], ['run-1'])?.id, 'run-1');
  });
});

describe('revocation reaching a run that is already going', () => {
  const keyring = Keyring.fromKeys([{ id: 'k1', secret: Buffer.alloc(32, 4) }]);

  test('revoking a parent denies its child at the next host call', () => {
    const dir = freshDir();
    const revocations = RevocationList.fromDataDir(dir);
    const parent = issueToken(keyring, { kind: 'fs', resource: '/data/**', methods: ['read'], ttlMs: 3_600_000 });
    const child = attenuateToken(parent, { resource: '/data/in/**' });
    const grants = prepareGrants(keyring, [child]);
    const req = { kind: 'fs' as const, resource: '/data/in/a.txt', method: 'read' };
    assert.ok(checkCapability(grants, req, { runId: 'r1', revocations }).allow);
    RevocationList.fromDataDir(dir).revokeToken(parseToken(parent).tokenId, { reason: 'compromised' });
    const d = checkCapability(grants, req, { runId: 'r1', revocations });
    assert.ok(!d.allow);
    assert.equal(d.code, ErrorCode.CAP_REVOKED);
    assert.match(d.reason, new RegExp(`${parseToken(child).tokenId}.*revoked through token ${parseToken(parent).tokenId}.*compromised`));
  });

  test('`authority cap revoke` in another process takes effect at the next check of this one', () => {
    const dir = freshDir();
    const revocations = RevocationList.fromDataDir(dir);
    const token = issueToken(keyring, { kind: 'net', resource: 'https://api.example.com/**', methods: ['GET'], ttlMs: 3_600_000 });
    const grants = prepareGrants(keyring, [token]);
    const req = { kind: 'net' as const, resource: 'https://api.example.com/v1', method: 'GET' };
    const ctx = { runId: 'run-live', revocations };
    assert.ok(checkCapability(grants, req, ctx).allow);

    const cli = (...args: string[]): string =>
      execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--data-dir', dir, '--json'], { cwd: repo, encoding: 'utf8' });
    const out = JSON.parse(cli('cap', 'revoke', '--run', 'run-live', '--reason', 'operator stop'));
    assert.deepEqual([out.ok, out.revoked.type, out.revoked.id], [true, 'run', 'run-live']);

    const d = checkCapability(grants, req, ctx);
    assert.ok(!d.allow);
    assert.equal(d.code, ErrorCode.CAP_REVOKED);
    assert.match(d.reason, /run run-live is revoked: operator stop/);
    assert.ok(checkCapability(grants, req, { runId: 'run-other', revocations }).allow, 'other runs are unaffected');
  });
});
