import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { canonicalisePath, loadPolicy, resolvePath, MAX_PATH_BYTES } from '../src/policy/index.ts';

// realpath: on some systems the temp folder itself sits behind a symlink.
const base = realpathSync(mkdtempSync(join(tmpdir(), 'authority-paths-')));
after(() => rmSync(base, { recursive: true, force: true }));

const data = join(base, 'data');
const outside = join(base, 'outside');
mkdirSync(join(data, 'sub'), { recursive: true });
mkdirSync(join(data, 'secret'), { recursive: true });
mkdirSync(outside, { recursive: true });
writeFileSync(join(data, 'a.txt'), 'a');
writeFileSync(join(outside, 'passwd'), 'root');
symlinkSync(outside, join(data, 'escape')); // /data/escape -> /outside
symlinkSync(join(outside, 'passwd'), join(data, 'pw')); // /data/pw -> /outside/passwd
symlinkSync('sub', join(data, 'rel')); // relative link, stays inside
symlinkSync(join(outside, 'new-file'), join(data, 'dangling')); // target does not exist yet
symlinkSync('../../outside', join(data, 'sub', 'up')); // /data/sub/up -> /outside
symlinkSync(join(data, 'loop1'), join(data, 'loop2'));
symlinkSync(join(data, 'loop2'), join(data, 'loop1'));
symlinkSync(join(data, 'secret'), join(data, 'to-secret'));

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof AuthorityError ? e.code : 'not an AuthorityError';
  }
  return undefined;
}

test('canonicalises . and .. segments, repeated slashes and trailing slashes', () => {
  const cases: Array<[string, string]> = [
    ['/data/a.txt', '/data/a.txt'],
    ['/data//a.txt', '/data/a.txt'],
    ['//data///a.txt', '/data/a.txt'],
    ['/data/a.txt/', '/data/a.txt'],
    ['/data/./a.txt', '/data/a.txt'],
    ['/data/sub/../a.txt', '/data/a.txt'],
    ['/data/../etc/passwd', '/etc/passwd'],
    ['/../../etc', '/etc'],
    ['/..', '/'],
    ['/', '/'],
    ['/.', '/'],
    ['/data/.hidden/..x', '/data/.hidden/..x'],
    ['/data/...', '/data/...'],
  ];
  for (const [input, out] of cases) assert.equal(canonicalisePath(input), out, input);
});

test('canonicalisation agrees with a plain segment walk on any path, and is idempotent', () => {
  const reference = (p: string): string => {
    const out: string[] = [];
    for (const seg of p.normalize('NFC').split('/')) {
      if (seg === '' || seg === '.') continue;
      if (seg === '..') out.pop();
      else out.push(seg);
    }
    return '/' + out.join('/');
  };
  const piece = fc.constantFrom('/', '.', '..', 'a', 'b.', '.c', '...', 'e\u0301', '\u00e9', '~');
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
      const p = '/' + pieces.join('');
      const c = canonicalisePath(p);
      assert.equal(c, reference(p), JSON.stringify(p));
      assert.equal(canonicalisePath(c), c);
    }),
    { numRuns: 3000 },
  );
});

test('refuses relative paths, NUL bytes and paths longer than PATH_MAX with E_INVALID_ARGUMENT', () => {
  assert.equal(code(() => canonicalisePath('data/a.txt')), ErrorCode.INVALID_ARGUMENT);
  assert.equal(code(() => canonicalisePath('')), ErrorCode.INVALID_ARGUMENT);
  assert.equal(code(() => canonicalisePath('./a')), ErrorCode.INVALID_ARGUMENT);
  assert.equal(code(() => canonicalisePath('/data/a.txt\0.png')), ErrorCode.INVALID_ARGUMENT);
  assert.equal(code(() => canonicalisePath('/' + 'a'.repeat(MAX_PATH_BYTES))), ErrorCode.INVALID_ARGUMENT);
  assert.equal(code(() => canonicalisePath('/' + 'é'.repeat(MAX_PATH_BYTES / 2))), ErrorCode.INVALID_ARGUMENT, 'the limit counts UTF-8 bytes');
  assert.throws(() => canonicalisePath('/a\0'), /NUL/);
  assert.throws(() => canonicalisePath('rel'), /must be absolute/);
});

test('normalises Unicode to NFC so an NFD spelling meets the same rule', () => {
  const nfd = '/data/cafe\u0301/re\u0301sume\u0301.txt';
  const nfc = '/data/caf\u00e9/r\u00e9sum\u00e9.txt';
  assert.notEqual(nfd, nfc);
  assert.equal(canonicalisePath(nfd), nfc);
  const { policy } = loadPolicy({ version: '1.0', fs: { read: ['/data/**'], deny: ['/data/caf\u00e9/**'] } });
  const d = policy.decide({ op: 'fs.read', path: nfd });
  assert.equal(d.allow, false, 'the deny written in NFC catches the NFD request');
  assert.equal(d.rule, 'fs.deny[0]');
  // A deny written in NFD is normalised too: the pattern and the path meet in NFC.
  const { policy: p2 } = loadPolicy({ version: '1.0', fs: { read: ['/data/**'], deny: ['/data/cafe\u0301/**'] } });
  assert.equal(p2.decide({ op: 'fs.read', path: nfc }).rule, 'fs.deny[0]');
  assert.equal(p2.decide({ op: 'fs.read', path: nfd }).rule, 'fs.deny[0]');
});

test('resolves a symlink out of the allowed folder to its real target', async () => {
  assert.equal(await resolvePath(join(data, 'escape', 'passwd'), { followFinal: true }), join(outside, 'passwd'));
  assert.equal(await resolvePath(join(data, 'pw'), { followFinal: true }), join(outside, 'passwd'));
  assert.equal(await resolvePath(join(data, 'sub', 'up', 'passwd'), { followFinal: true }), join(outside, 'passwd'));
  assert.equal(await resolvePath(join(data, 'rel', 'x'), { followFinal: true }), join(data, 'sub', 'x'));
});

test('keeps the part of a path that does not exist yet, after resolving the part that does', async () => {
  assert.equal(await resolvePath(join(data, 'new', 'deeper', 'f.txt'), { followFinal: true }), join(data, 'new', 'deeper', 'f.txt'));
  assert.equal(await resolvePath(join(data, 'escape', 'not-yet.txt'), { followFinal: true }), join(outside, 'not-yet.txt'));
  assert.equal(await resolvePath(join(data, 'a.txt', 'child'), { followFinal: true }), join(data, 'a.txt', 'child'));
});

test('follows a dangling symlink to where it points', async () => {
  assert.equal(await resolvePath(join(data, 'dangling'), { followFinal: true }), join(outside, 'new-file'));
});

test('does not follow the last segment when asked not to (stat, write, remove act on the link)', async () => {
  assert.equal(await resolvePath(join(data, 'pw'), { followFinal: false }), join(data, 'pw'));
  assert.equal(await resolvePath(join(data, 'escape', 'passwd'), { followFinal: false }), join(outside, 'passwd'));
});

test('refuses a symlink loop with E_IO instead of hanging', async () => {
  await assert.rejects(resolvePath(join(data, 'loop1', 'x'), { followFinal: true }), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.IO);
});

function policyFor() {
  return loadPolicy({
    version: '1.0',
    fs: { read: [`${data}/**`], write: [`${data}/**`], deny: [`${data}/secret/**`] },
  }).policy;
}

test('denies a read that leaves the allowed folder through a symlink', async () => {
  const policy = policyFor();
  const lexical = policy.decide({ op: 'fs.read', path: join(data, 'escape', 'passwd') });
  assert.equal(lexical.allow, true, 'lexically the path is inside the folder');
  const real = await policy.resolveAndDecide({ op: 'fs.read', path: join(data, 'escape', 'passwd') });
  assert.equal(real.allow, false);
  assert.equal(real.target, join(outside, 'passwd'));
  assert.equal(real.reason, `no fs.read rule matches ${join(outside, 'passwd')} (the real path of ${join(data, 'escape', 'passwd')})`);
});

test('denies a write through a dangling symlink that points outside', async () => {
  const policy = policyFor();
  // The host's atomic write renames over the link itself, so the link's folder is what matters...
  const asWrite = await policy.resolveAndDecide({ op: 'fs.write', path: join(data, 'dangling') });
  assert.equal(asWrite.allow, true);
  assert.equal(asWrite.target, join(data, 'dangling'));
  // ...but a read follows it, and is decided where it lands.
  const asRead = await policy.resolveAndDecide({ op: 'fs.read', path: join(data, 'dangling') });
  assert.equal(asRead.allow, false);
  assert.equal(asRead.target, join(outside, 'new-file'));
});

test('applies fs.deny to the real path of a symlink into a denied folder', async () => {
  const policy = policyFor();
  const d = await policy.resolveAndDecide({ op: 'fs.list', path: join(data, 'to-secret') });
  assert.equal(d.allow, false);
  assert.equal(d.rule, 'fs.deny[0]');
});

test('applies fs.deny to the path as written even when its real path is elsewhere', async () => {
  const { policy } = loadPolicy({ version: '1.0', fs: { read: [`${base}/**`], deny: [`${data}/escape/**`] } });
  const d = await policy.resolveAndDecide({ op: 'fs.read', path: join(data, 'escape', 'passwd') });
  assert.equal(d.allow, false);
  assert.equal(d.rule, 'fs.deny[0]');
});

test('turns a symlink loop into a deny, never a hang or a throw', async () => {
  const d = await policyFor().resolveAndDecide({ op: 'fs.read', path: join(data, 'loop1') });
  assert.equal(d.allow, false);
  assert.equal(d.allow === false && d.code, ErrorCode.IO);
});

test('gives the literal root of the matched glob so the host can confine the open', async () => {
  const d = await policyFor().resolveAndDecide({ op: 'fs.read', path: join(data, 'rel', 'x') });
  assert.equal(d.allow, true);
  assert.equal(d.root, data);
  assert.equal(d.target, join(data, 'sub', 'x'));
});
