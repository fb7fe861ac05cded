import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { HostFs, toGuestError, type FsScope } from '../src/host/index.ts';

// ---------------------------------------------------------------------------
// A temp folder with the guest root (/data -> <base>/root) and, beside it, a
// canary folder that nothing may ever read, change or list. Canary atimes are
// set in the past: on a relatime mount any read moves them, so "never read"
// is observed, not assumed.
// ---------------------------------------------------------------------------

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'authority-fs-'));
const root = path.join(base, 'root');
const outside = path.join(base, 'outside');
const scope: FsScope = { roots: [{ guest: '/data', host: root }] };
const hostFs = new HostFs();
const OLD = new Date('2020-01-01T00:00:00Z');

interface Mark {
  kind: string;
  size: number;
  mtimeMs: number;
  atimeMs: number;
  ino: number;
}
const canaryContent = new Map<string, string>();
let canaryMarks: Map<string, Mark>;
let atimeObservable = false;

function marks(dir: string): Map<string, Mark> {
  const out = new Map<string, Mark>();
  const walk = (d: string, rel: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      out.set(path.join(rel, name), {
        kind: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other',
        size: st.size,
        mtimeMs: st.mtimeMs,
        // File atimes only: listing the folder here moves directory atimes by itself.
        atimeMs: atimeObservable && st.isFile() ? st.atimeMs : 0,
        ino: st.ino,
      });
      if (st.isDirectory()) walk(p, path.join(rel, name));
    }
  };
  walk(dir, '');
  return out;
}

function writeCanary(rel: string, content: string): void {
  const p = path.join(outside, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  fs.utimesSync(p, OLD, new Date());
  canaryContent.set(rel, content);
}

function assertCanariesUntouched(label: string): void {
  assert.deepEqual(marks(outside), canaryMarks, `${label}: the canary folder is unchanged (names, sizes, mtimes, atimes, inodes)`);
}

/** A fresh root for every entry, so writes and removes of one entry never colour the next. */
function buildRoot(): void {
  // The FIFO is made once (mkfifo is a process) and carried from one root to the next.
  const stash = path.join(base, 'fifo-stash');
  if (fs.existsSync(path.join(root, 'fifo'))) fs.renameSync(path.join(root, 'fifo'), stash);
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.mkdirSync(path.join(root, 'empty'));
  fs.mkdirSync(path.join(root, '%2e%2e'));
  fs.writeFileSync(path.join(root, 'file.txt'), 'inside');
  fs.writeFileSync(path.join(root, 'caf\u00e9.txt'), 'nfc');
  fs.writeFileSync(path.join(root, 'sub', 'inner.txt'), 'inner');
  fs.writeFileSync(path.join(root, '%2e%2e', 'marker.txt'), 'literal');
  fs.writeFileSync(path.join(root, '..\\'), 'backslash');
  fs.symlinkSync('../../outside', path.join(root, 'sub', 'up'));
  fs.symlinkSync(outside, path.join(root, 'link-out'));
  fs.symlinkSync('../outside', path.join(root, 'link-rel'));
  fs.symlinkSync(path.join(outside, 'canary.txt'), path.join(root, 'link-file'));
  fs.symlinkSync('sub', path.join(root, 'link-in'));
  fs.symlinkSync('.', path.join(root, 'link-dot'));
  fs.symlinkSync('link-loop', path.join(root, 'link-loop'));
  fs.symlinkSync('/', path.join(root, 'link-root'));
  fs.symlinkSync('/proc/self/root', path.join(root, 'link-proc'));
  fs.linkSync(path.join(outside, 'canary.txt'), path.join(root, 'hard-out'));
  if (!fs.existsSync(stash)) execFileSync('mkfifo', [stash]);
  fs.renameSync(stash, path.join(root, 'fifo'));
}

before(() => {
  // Does this mount update atime on read? (relatime does when atime < mtime.)
  const probe = path.join(base, 'probe');
  fs.writeFileSync(probe, 'p');
  fs.utimesSync(probe, OLD, new Date());
  fs.readFileSync(probe);
  atimeObservable = fs.statSync(probe).atimeMs > OLD.getTime();
  fs.rmSync(probe);

  writeCanary('canary.txt', 'CANARY-OUTSIDE-THE-ROOT');
  writeCanary('dir/canary2.txt', 'CANARY-2');
  writeCanary('race/f.txt', 'CANARY-RACE-CONTENT-LONGER');
  writeCanary('race/victim', 'CANARY-VICTIM');
  writeCanary('race/OUTSIDE-MARKER', 'x');
  writeCanary('race/file-target', 'CANARY-FILE-TARGET');
  buildRoot();
  canaryMarks = marks(outside);
});

after(() => {
  assertCanariesUntouched('after all tests');
  for (const [rel, content] of canaryContent) assert.equal(fs.readFileSync(path.join(outside, rel), 'utf8'), content, `${rel} content`);
  fs.rmSync(base, { recursive: true, force: true });
});

async function outcome(p: Promise<unknown>): Promise<{ tag: string; value?: unknown; err?: AuthorityError }> {
  try {
    return { tag: 'ok', value: await p };
  } catch (err) {
    assert.ok(err instanceof AuthorityError, `an AuthorityError, not ${String(err)}`);
    return { tag: toGuestError(err).tag, err };
  }
}

// ---------------------------------------------------------------------------
// The hostile path corpus.
// ---------------------------------------------------------------------------

interface PathEntry {
  id: string;
  category: string;
  why: string;
  op: 'read' | 'write' | 'list' | 'stat' | 'remove';
  path: string;
  expect: string;
  content?: string;
  kind?: string;
}
const corpus = JSON.parse(fs.readFileSync(new URL('./fixtures/hostile-paths.json', import.meta.url), 'utf8')) as { entries: PathEntry[] };

test('the path corpus covers every category with distinct entries', () => {
  assert.ok(corpus.entries.length >= 100);
  assert.equal(new Set(corpus.entries.map((e) => e.id)).size, corpus.entries.length);
  const cats = new Set(corpus.entries.map((e) => e.category));
  for (const c of ['traversal', 'non-canonical', 'nul', 'outside-root', 'long', 'symlink', 'hard-link', 'special-file']) assert.ok(cats.has(c), c);
});

for (const entry of corpus.entries) {
  test(`${entry.op} ${entry.id} (${entry.why}) -> ${entry.expect}`, async () => {
    buildRoot();
    const before = marks(outside);
    const run = (): Promise<unknown> => {
      switch (entry.op) {
        case 'read':
          return hostFs.readFile(entry.path, scope);
        case 'write':
          return hostFs.writeFile(entry.path, Buffer.from('written by the guest'), scope);
        case 'list':
          return hostFs.listDir(entry.path, scope);
        case 'stat':
          return hostFs.stat(entry.path, scope);
        case 'remove':
          return hostFs.remove(entry.path, scope);
      }
    };
    const r = await outcome(run());
    assert.equal(r.tag, entry.expect, `${entry.id}: ${r.err?.code ?? ''} ${r.err?.message ?? ''}`);
    if (r.err) assert.ok(!r.err.message.includes(base), 'the message never shows a host path');
    if (entry.expect === 'ok') {
      if (entry.op === 'read') assert.equal(Buffer.from(r.value as Uint8Array).toString(), entry.content);
      if (entry.op === 'stat') assert.equal((r.value as { kind: string }).kind, entry.kind);
      if (entry.op === 'write') {
        const host = path.join(root, entry.path.slice('/data/'.length));
        assert.equal(fs.readFileSync(host, 'utf8'), 'written by the guest', 'the write landed at the one literal name inside the root');
        assert.equal(fs.lstatSync(host).nlink, 1);
      }
      if (entry.op === 'remove') assert.ok(!fs.existsSync(path.join(root, entry.path.slice('/data/'.length))) && !isLink(path.join(root, entry.path.slice('/data/'.length))));
    }
    assert.deepEqual(marks(outside), before, `${entry.id}: nothing outside the root changed`);
    assert.deepEqual(marks(outside), canaryMarks);
    assert.ok(!fs.readdirSync(root).some((n) => n.startsWith('.authority-')), 'no temp file is left behind');
  });
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Races: the tree changes while the effects run.
// ---------------------------------------------------------------------------

const SWAPPER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const flag = new Int32Array(workerData.flag);
const d = workerData.dir;
let swaps = 0;
const mv = (a, b) => { try { fs.renameSync(d + '/' + a, d + '/' + b); } catch {} };
while (Atomics.load(flag, 0) === 0) {
  // sub: real directory <-> symlink to the canary folder; file: regular file <-> symlink to a canary file.
  mv('sub', 'sub-real'); mv('sub-link', 'sub');
  mv('file', 'file-real'); mv('file-link', 'file');
  mv('sub', 'sub-link'); mv('sub-real', 'sub');
  mv('file', 'file-link'); mv('file-real', 'file');
  swaps++;
}
Atomics.store(flag, 1, swaps);
`;

test('a directory swapped for a symlink to the outside while thousands of calls run never lets one escape', { timeout: 60_000 }, async () => {
  buildRoot();
  const race = path.join(root, 'race');
  fs.mkdirSync(path.join(race, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(race, 'sub', 'f.txt'), 'in');
  fs.writeFileSync(path.join(race, 'sub', 'victim'), 'inside victim');
  fs.symlinkSync(path.join(outside, 'race'), path.join(race, 'sub-link'));
  fs.writeFileSync(path.join(race, 'file'), 'in-file');
  fs.symlinkSync(path.join(outside, 'race', 'file-target'), path.join(race, 'file-link'));
  const sharedFlag = new SharedArrayBuffer(8);
  const flag = new Int32Array(sharedFlag);
  const worker = new Worker(SWAPPER, { eval: true, workerData: { dir: race, flag: sharedFlag } });
  const seen = { ok: 0, denied: 0, notFound: 0, naiveEscapes: 0, other: 0 };
  try {
    for (let i = 0; i < 1000; i++) {
      const ops: Promise<unknown>[] = [
        hostFs.readFile('/data/race/sub/f.txt', scope).then((b) => assert.equal(Buffer.from(b).toString(), 'in', 'read never returns a canary')),
        hostFs.readFile('/data/race/file', scope).then((b) => assert.equal(Buffer.from(b).toString(), 'in-file')),
        hostFs.listDir('/data/race/sub', scope).then((l) => assert.ok(!l.some((e) => e.name === 'OUTSIDE-MARKER'), 'list never shows the canary folder')),
        hostFs.stat('/data/race/sub/f.txt', scope).then((s) => assert.equal(s.size, 2n)),
        hostFs.writeFile('/data/race/sub/w.txt', Buffer.from('guest'), scope),
        hostFs.remove('/data/race/sub/victim', scope),
      ];
      for (const r of await Promise.allSettled(ops)) {
        if (r.status === 'fulfilled') seen.ok++;
        else if (!(r.reason instanceof AuthorityError)) throw r.reason;
        else if (r.reason.code === ErrorCode.POLICY_DENY) seen.denied++;
        else if (r.reason.code === ErrorCode.NOT_FOUND) seen.notFound++;
        else seen.other++;
      }
      // The naive way (a path with symlinks followed) does land outside: the race is real.
      try {
        if (fs.statSync(path.join(race, 'sub', 'f.txt')).size !== 2) seen.naiveEscapes++;
      } catch {
        // between two renames
      }
    }
  } finally {
    Atomics.store(flag, 0, 1);
    await new Promise((r) => worker.once('exit', r));
  }
  assert.ok(Atomics.load(flag, 1) > 100, 'the swapper ran');
  assert.ok(seen.ok > 0, 'calls succeeded while the directory was real');
  assert.ok(seen.denied > 0, 'calls were refused while it was a symlink');
  assert.ok(seen.naiveEscapes > 0, 'a naive path open would have escaped');
  assert.equal(seen.other, 0, JSON.stringify(seen));
  assertCanariesUntouched('after the race');
});

test('a directory renamed out of the root in the middle of a walk is caught before anything is opened for I/O', async () => {
  for (const op of ['read', 'write', 'list', 'remove'] as const) {
    buildRoot();
    fs.mkdirSync(path.join(root, 'a'));
    fs.writeFileSync(path.join(root, 'a', 'f.txt'), 'moving');
    fs.utimesSync(path.join(root, 'a', 'f.txt'), OLD, new Date());
    const moved = path.join(base, `moved-${op}`);
    const hooked = new HostFs({
      walkHooks: {
        afterStep: (_i, name) => {
          if (name === 'a') fs.renameSync(path.join(root, 'a'), moved);
        },
      },
    });
    const call =
      op === 'read'
        ? hooked.readFile('/data/a/f.txt', scope)
        : op === 'write'
          ? hooked.writeFile('/data/a/new.txt', Buffer.from('x'), scope)
          : op === 'list'
            ? hooked.listDir('/data/a', scope)
            : hooked.remove('/data/a/f.txt', scope);
    const r = await outcome(call);
    assert.equal(r.tag, 'denied', `${op}: ${r.err?.message}`);
    assert.deepEqual(fs.readdirSync(moved), ['f.txt'], `${op}: nothing created or removed in the moved directory`);
    if (atimeObservable) assert.equal(fs.statSync(path.join(moved, 'f.txt')).atimeMs, OLD.getTime(), 'the moved file was never read');
    fs.rmSync(moved, { recursive: true });
  }
});

test('a walk holds the directory it checked: a symlink swapped in behind it is never followed', async () => {
  buildRoot();
  const hooked = new HostFs({
    walkHooks: {
      afterStep: (_i, name) => {
        if (name !== 'sub') return;
        fs.renameSync(path.join(root, 'sub'), path.join(root, 'sub-held'));
        fs.symlinkSync(outside, path.join(root, 'sub'));
        fs.writeFileSync(path.join(outside, 'inner.txt'), 'CANARY-IF-FOLLOWED');
      },
    },
  });
  try {
    const bytes = await hooked.readFile('/data/sub/inner.txt', scope);
    assert.equal(Buffer.from(bytes).toString(), 'inner', 'the file in the directory that was checked');
  } finally {
    fs.rmSync(path.join(outside, 'inner.txt'), { force: true });
  }
});

// ---------------------------------------------------------------------------
// Atomic writes.
// ---------------------------------------------------------------------------

const tempFiles = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.startsWith('.authority-'));

test('a write over the cap leaves the target as it was and no temp file, whether the size is known up front or streamed', async () => {
  buildRoot();
  const small: FsScope = { ...scope, limits: { writeBytes: 1000 } };
  let r = await outcome(hostFs.writeFile('/data/file.txt', new Uint8Array(1001), small));
  assert.equal(r.tag, 'too-large');
  async function* stream(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 10; i++) yield new Uint8Array(300).fill(0x7a);
  }
  r = await outcome(hostFs.writeFile('/data/file.txt', stream(), small));
  assert.equal(r.tag, 'too-large');
  assert.equal(fs.readFileSync(path.join(root, 'file.txt'), 'utf8'), 'inside');
  assert.deepEqual(tempFiles(root), []);
});

test('a failure in the middle of a write leaves no partial file and no temp file', async () => {
  buildRoot();
  let yielded = 0;
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield Buffer.from('partial content ');
    yielded++;
    throw new Error('disk on fire');
  }
  const r = await outcome(hostFs.writeFile('/data/file.txt', failing(), scope));
  assert.equal(yielded, 1, 'the failure came after bytes were written');
  assert.equal(r.tag, 'io');
  assert.equal(fs.readFileSync(path.join(root, 'file.txt'), 'utf8'), 'inside');
  const r2 = await outcome(hostFs.writeFile('/data/brand-new.txt', failing(), scope));
  assert.equal(r2.tag, 'io');
  assert.ok(!fs.existsSync(path.join(root, 'brand-new.txt')));
  assert.deepEqual(tempFiles(root), []);
});

test('a write keeps the permission bits of the file it replaces (never setuid), and creates new files 0600', async () => {
  buildRoot();
  const p = path.join(root, 'file.txt');
  fs.chmodSync(p, 0o640);
  await hostFs.writeFile('/data/file.txt', Buffer.from('v2'), scope);
  assert.equal(fs.statSync(p).mode & 0o7777, 0o640);
  fs.chmodSync(p, 0o4755);
  await hostFs.writeFile('/data/file.txt', Buffer.from('v3'), scope);
  assert.equal(fs.statSync(p).mode & 0o7777, 0o755);
  await hostFs.writeFile('/data/sub/new.txt', Buffer.from('n'), scope);
  assert.equal(fs.statSync(path.join(root, 'sub', 'new.txt')).mode & 0o7777, 0o600);
  assert.equal(fs.readFileSync(p, 'utf8'), 'v3');
});

test('a write replaces the inode, so a hard link to a file outside is cut, not written through', async () => {
  buildRoot();
  await hostFs.writeFile('/data/hard-out', Buffer.from('new'), scope);
  assertCanariesUntouched('after a write over a hard link'); // content is compared once, at the very end
  assert.notEqual(fs.statSync(path.join(root, 'hard-out')).ino, fs.statSync(path.join(outside, 'canary.txt')).ino);
});

// ---------------------------------------------------------------------------
// Caps and plain behaviour.
// ---------------------------------------------------------------------------

test('reads stop one byte past the cap', async () => {
  buildRoot();
  fs.writeFileSync(path.join(root, 'ten.bin'), '0123456789');
  assert.equal((await outcome(hostFs.readFile('/data/ten.bin', { ...scope, limits: { readBytes: 9 } }))).tag, 'too-large');
  assert.equal(Buffer.from(await hostFs.readFile('/data/ten.bin', { ...scope, limits: { readBytes: 10 } })).toString(), '0123456789');
  assert.equal((await hostFs.readFile('/data/empty-file', scope).catch(() => undefined)) ?? 'missing', 'missing');
  fs.writeFileSync(path.join(root, 'empty-file'), '');
  assert.equal((await hostFs.readFile('/data/empty-file', scope)).length, 0);
});

test('a read of a file larger than the read buffer grows past its stat size without trusting it', async () => {
  buildRoot();
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0x41);
  fs.writeFileSync(path.join(root, 'big.bin'), big);
  assert.ok(Buffer.from(await hostFs.readFile('/data/big.bin', scope)).equals(big));
});

test('list-dir is sorted, reports kinds without following links, and is capped', async () => {
  buildRoot();
  const entries = await hostFs.listDir('/data', scope);
  const names = entries.map((e) => e.name);
  assert.deepEqual(names, [...names].sort());
  const kind = (n: string): string | undefined => entries.find((e) => e.name === n)?.kind;
  assert.equal(kind('file.txt'), 'file');
  assert.equal(kind('sub'), 'directory');
  assert.equal(kind('link-out'), 'symlink');
  assert.equal(kind('fifo'), 'other');
  const dir = path.join(root, 'many');
  fs.mkdirSync(dir);
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(dir, `f${String(i).padStart(2, '0')}`), '');
  assert.equal((await outcome(hostFs.listDir('/data/many', { ...scope, limits: { listEntries: 19 } }))).tag, 'too-large');
  assert.equal((await hostFs.listDir('/data/many', { ...scope, limits: { listEntries: 20 } })).length, 20);
});

test('stat reports size and modification time as u64 bigints', async () => {
  buildRoot();
  const when = new Date('2024-05-06T07:08:09Z');
  fs.utimesSync(path.join(root, 'file.txt'), when, when);
  const st = await hostFs.stat('/data/file.txt', scope);
  assert.deepEqual(st, { kind: 'file', size: 6n, modifiedMs: BigInt(when.getTime()) });
  assert.equal((await hostFs.stat('/data', scope)).kind, 'directory');
});

test('remove deletes a file, an empty directory, or a link itself, and never a non-empty directory or a root', async () => {
  buildRoot();
  await hostFs.remove('/data/file.txt', scope);
  await hostFs.remove('/data/empty', scope);
  await hostFs.remove('/data/link-out', scope);
  assert.ok(!fs.existsSync(path.join(root, 'file.txt')) && !fs.existsSync(path.join(root, 'empty')) && !isLink(path.join(root, 'link-out')));
  assert.ok(fs.existsSync(path.join(outside, 'canary.txt')));
  assert.equal((await outcome(hostFs.remove('/data/sub', scope))).tag, 'invalid');
  assert.equal((await outcome(hostFs.remove('/data', scope))).tag, 'denied');
  assert.equal((await outcome(hostFs.remove('/data/file.txt', scope))).tag, 'not-found');
});

test('the most specific root wins, and a guest root may be the host path itself', async () => {
  buildRoot();
  const other = path.join(base, 'other-root');
  fs.mkdirSync(other, { recursive: true });
  fs.writeFileSync(path.join(other, 'inner.txt'), 'from the other root');
  const two: FsScope = { roots: ['/nowhere', { guest: '/data', host: root }, { guest: '/data/sub', host: other }] };
  assert.equal(Buffer.from(await hostFs.readFile('/data/sub/inner.txt', two)).toString(), 'from the other root');
  assert.equal(Buffer.from(await hostFs.readFile('/data/file.txt', two)).toString(), 'inside');
  const identity: FsScope = { roots: [root] };
  assert.equal(Buffer.from(await hostFs.readFile(path.join(root, 'file.txt'), identity)).toString(), 'inside');
  assert.equal((await outcome(hostFs.readFile(path.join(outside, 'canary.txt'), identity))).tag, 'denied');
  fs.rmSync(other, { recursive: true });
});

test('a missing root is not-found, and a call without roots is denied', async () => {
  assert.equal((await outcome(hostFs.readFile('/data/file.txt', { roots: [{ guest: '/data', host: path.join(base, 'no-such-root') }] }))).tag, 'not-found');
  assert.equal((await outcome(hostFs.readFile('/data/file.txt', { roots: [] }))).tag, 'denied');
  await assert.rejects(hostFs.readFile('/data/x', { roots: [{ guest: 'relative', host: root }] }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
  await assert.rejects(hostFs.readFile('/data/x', { ...scope, limits: { readBytes: -1 } }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
  await assert.rejects(hostFs.readFile('/data/x', { ...scope, limits: { readBites: 1 } as never }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
});

test('mkdir makes one folder (0700) whose parent exists, and is a no-op for a folder already there', async () => {
  buildRoot();
  await hostFs.mkdir('/data/out', scope);
  const st = fs.lstatSync(path.join(root, 'out'));
  assert.ok(st.isDirectory());
  assert.equal(st.mode & 0o777, 0o700);
  await hostFs.mkdir('/data/out/reports', scope);
  assert.ok(fs.lstatSync(path.join(root, 'out', 'reports')).isDirectory());
  await hostFs.writeFile('/data/out/reports/a.txt', new TextEncoder().encode('made'), scope);
  assert.equal(fs.readFileSync(path.join(root, 'out', 'reports', 'a.txt'), 'utf8'), 'made');
  // Again: the folder is there, nothing changes, no error.
  await hostFs.mkdir('/data/out/reports', scope);
  assert.deepEqual(fs.readdirSync(path.join(root, 'out', 'reports')), ['a.txt']);
  await hostFs.mkdir('/data', scope);
});

test('mkdir refuses a missing parent, a file or a link in the way, and never makes a folder outside its root', async () => {
  buildRoot();
  const r = async (p: string) => outcome(hostFs.mkdir(p, scope));
  assert.equal((await r('/data/no/such/parent')).tag, 'not-found');
  assert.ok(!fs.existsSync(path.join(root, 'no')));
  assert.equal((await r('/data/file.txt')).tag, 'invalid');
  assert.equal(fs.readFileSync(path.join(root, 'file.txt'), 'utf8'), 'inside');
  // A link is never followed, whether it points out of the root or to a folder inside it.
  for (const link of ['link-out', 'link-rel', 'link-in', 'link-loop', 'link-root']) {
    assert.equal((await r(`/data/${link}`)).tag, 'denied', link);
    assert.ok(isLink(path.join(root, link)), `${link} is still the link`);
  }
  // Through a link in the parent: refused by the confined walk, nothing made at the link's target.
  for (const p of ['/data/link-out/made-by-mkdir', '/data/sub/up/made-by-mkdir', '/data/link-proc/tmp/made-by-mkdir']) {
    assert.equal((await r(p)).tag, 'denied', p);
  }
  assert.ok(!fs.existsSync(path.join(outside, 'made-by-mkdir')));
  assert.equal((await r('/data/../outside/made-by-mkdir')).tag, 'invalid', 'the host takes canonical paths only');
  assert.equal((await outcome(hostFs.mkdir('/elsewhere/x', scope))).tag, 'denied');
  assertCanariesUntouched('mkdir');
});
