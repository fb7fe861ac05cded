import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AuthorityError } from '../src/errors.ts';
import { PathView, fastPathTest, segmentTest } from '../src/policy/glob.ts';
import { GLOB_LIMITS, compilePathGlob, loadPolicy, MAX_PATH_BYTES, type PolicyIssue } from '../src/policy/index.ts';

function problem(glob: string): string {
  try {
    loadPolicy({ version: '1.0', fs: { read: [glob] } });
  } catch (e) {
    assert.ok(e instanceof AuthorityError);
    const [issue] = e.data?.['issues'] as PolicyIssue[];
    assert.equal(issue?.path, 'fs.read[0]');
    return issue?.message ?? '';
  }
  assert.fail(`expected ${glob.slice(0, 60)}... to be refused`);
}

const nest = (depth: number): string => {
  let s = 'z';
  for (let i = 0; i < depth; i++) s = `{a${i},${s}}`;
  return s;
};

test('refuses globs beyond the load-time bounds, naming the bound', () => {
  assert.equal(problem('/' + 'a'.repeat(GLOB_LIMITS.maxLength)), 'glob is longer than 1024 characters');
  assert.equal(problem('/x/{1..100000}'), 'braces expand to more than 256 patterns');
  assert.equal(problem('/x/{1..257}'), 'braces expand to more than 256 patterns', 'not silently truncated at the cap');
  assert.equal(problem('/x/{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}{o,p}{q,r}'), 'braces expand to more than 256 patterns');
  assert.equal(problem('/' + nest(9)), 'braces are nested more than 8 deep');
  assert.equal(problem('/' + nest(100)), 'braces are nested more than 8 deep');
  assert.equal(problem('/' + '+('.repeat(9) + 'a' + ')'.repeat(9)), 'extglob groups are nested more than 8 deep');
  assert.equal(problem('/**/a'.repeat(17)), "more than 16 '**' segments");
});

test('accepts globs right at the bounds', () => {
  assert.equal(compilePathGlob('/x/{1..256}').value?.alternatives.length, 256);
  assert.equal(compilePathGlob('/' + nest(8)).value?.alternatives.length, 9);
  assert.ok(compilePathGlob('/**/a'.repeat(16)).value);
  assert.ok(compilePathGlob('/' + 'a'.repeat(GLOB_LIMITS.maxLength - 1)).value);
});

test('matching hostile paths against hostile-but-accepted globs finishes', { timeout: 20_000 }, () => {
  const hostile = [
    '/' + '*'.repeat(1000) + 'b',
    '/' + 'a*'.repeat(500) + 'b',
    '/' + '*?'.repeat(500) + 'b',
    '/+(a|aa)*b',
    '/' + '+(a|aa)'.repeat(100) + 'b',
    '/' + '+('.repeat(8) + 'a|aa' + ')'.repeat(8) + 'b',
    '/' + '@(a|*(a))'.repeat(100) + 'c',
    '/' + '[a-z]*'.repeat(150) + 'b',
    '/**/a'.repeat(16) + '/b',
    '/' + nest(8) + '/**/' + '*a'.repeat(100) + 'b',
    '/x/{1..256}/**/*.txt',
  ];
  for (const g of hostile) assert.ok(g.length <= GLOB_LIMITS.maxLength, `${g.slice(0, 20)} fits the bound`);
  const { policy } = loadPolicy({ version: '1.0', fs: { read: hostile, deny: hostile } });
  const paths = [
    '/' + 'a'.repeat(MAX_PATH_BYTES - 2),
    '/a'.repeat(MAX_PATH_BYTES / 2 - 1),
    '/' + 'a/'.repeat(1000) + 'a'.repeat(2000),
    '/x/' + '1/'.repeat(1000) + 'f.txt',
  ];
  let decisions = 0;
  for (const p of paths) {
    assert.ok(Buffer.byteLength(p) < MAX_PATH_BYTES);
    for (const op of ['fs.read', 'fs.write'] as const) {
      const d = policy.decide({ op, path: p });
      assert.equal(d.allow, false, 'deny wins (the same globs deny) or nothing matches');
      decisions++;
    }
  }
  assert.equal(decisions, paths.length * 2);
});

test('a hostile deny glob still matches what it should', () => {
  const { policy } = loadPolicy({ version: '1.0', fs: { read: ['/**'], deny: ['/+(a|aa)*b', '/**/a'.repeat(16) + '/b'] } });
  assert.equal(policy.decide({ op: 'fs.read', path: '/' + 'a'.repeat(3000) + 'b' }).rule, 'fs.deny[0]');
  assert.equal(policy.decide({ op: 'fs.read', path: '/a'.repeat(16) + '/b' }).rule, 'fs.deny[1]');
  assert.equal(policy.decide({ op: 'fs.read', path: '/' + 'a'.repeat(3000) + 'c' }).rule, 'fs.read[0]');
});

test('computes the literal root of each alternative: the longest wildcard-free folder prefix', () => {
  const roots = (g: string) => compilePathGlob(g).value?.alternatives.map((a) => [a.pattern, a.root, a.self]);
  assert.deepEqual(roots('/data/**'), [
    ['/data/**', '/data', false],
    ['/data', '/data', true],
  ]);
  assert.deepEqual(roots('/data/out/*.txt'), [['/data/out/*.txt', '/data/out', false]]);
  assert.deepEqual(roots('/data/f.txt'), [['/data/f.txt', '/data', false]]);
  assert.deepEqual(roots('/data/{in,out}/x*'), [
    ['/data/in/x*', '/data/in', false],
    ['/data/out/x*', '/data/out', false],
  ]);
  assert.deepEqual(roots('/a/b*/c'), [['/a/b*/c', '/a', false]]);
  assert.deepEqual(roots('/**'), [
    ['/**', '/', false],
    ['/', '/', true],
  ]);
  assert.deepEqual(roots('/srv//app/*'), [['/srv//app/*', '/srv/app', false]]);
  assert.deepEqual(roots('/data/\\*/x'), [['/data/\\*/x', '/data/*', false]], 'an escaped star is a literal folder name');
});

test('the string fast paths for common glob shapes agree with minimatch on every canonical path', () => {
  const seg = fc.constantFrom('a', 'b', 'ab', 'data', 'srv', '.env', '.x', 'x.json', 'it.json', '.json', 'json');
  const star = fc.tuple(fc.constantFrom('', 'a', '.', 'it'), fc.constantFrom('', '.json', 'a', '.env', 'json')).map(([pre, suf]) => `${pre}*${suf}`);
  const name = fc.constantFrom('a', '.env', 'x.json', 'data', 'json');
  const tail = fc.oneof(
    fc.constant(['**']),
    star.map((s) => [s]),
    star.map((s) => ['**', s]),
    name.map((n) => ['**', n]),
    name.map((n) => ['**', n, '**']),
  );
  const pattern = fc.tuple(fc.array(fc.constantFrom('data', 'a', '.x', 'srv'), { maxLength: 3 }), tail).map(([root, t]) => '/' + [...root, ...t].join('/'));
  const path = fc.array(seg, { maxLength: 6 }).map((segs) => '/' + segs.join('/'));
  fc.assert(
    fc.property(pattern, fc.array(path, { minLength: 1, maxLength: 20 }), (pat, paths) => {
      const fast = fastPathTest(pat);
      assert.ok(fast !== undefined, `${pat} has a fast path`);
      const general = compilePathGlob(pat).value?.alternatives.find((a) => !a.self)?.matcher;
      assert.ok(general !== undefined);
      for (const p of paths) assert.equal(fast(p), general.match(p), `${pat} vs ${p}`);
    }),
    { numRuns: 2000 },
  );
});

test('the segment matcher agrees with minimatch on every canonical path', () => {
  const seg = fc.constantFrom('a', 'b', 'ab', 'data', '.env', 'x.json', 'it.json', '.json');
  const patSeg = fc.oneof(
    fc.constantFrom('a', 'b', 'data', '.env', 'x.json'),
    fc.tuple(fc.constantFrom('', 'a', '.', 'it'), fc.constantFrom('', '.json', 'a', 'b')).map(([pre, suf]) => `${pre}*${suf}`),
  );
  const pattern = fc
    .tuple(fc.array(patSeg, { minLength: 0, maxLength: 3 }), fc.boolean(), fc.array(patSeg, { maxLength: 3 }))
    .filter(([head, star, tail]) => star || head.length + tail.length > 0)
    .map(([head, star, tail]) => '/' + [...head, ...(star ? ['**'] : []), ...tail].join('/'));
  const path = fc.array(seg, { maxLength: 7 }).map((segs) => '/' + segs.join('/'));
  fc.assert(
    fc.property(pattern, fc.array(path, { minLength: 1, maxLength: 20 }), (pat, paths) => {
      const test = segmentTest(pat);
      assert.ok(test !== undefined, `${pat} has a segment matcher`);
      const general = compilePathGlob(pat).value?.alternatives.find((a) => !a.self);
      for (const p of paths) {
        const expected = general?.matcher !== undefined ? general.matcher.match(p) : general?.literal === p;
        assert.equal(test(new PathView(p).segments), expected, `${pat} vs ${p}`);
        // The test the policy uses (string, segment or minimatch) agrees too.
        if (general?.test !== undefined) assert.equal(general.test(new PathView(p)), expected, `compiled ${pat} vs ${p}`);
      }
    }),
    { numRuns: 2000 },
  );
});

test('shapes without an exact fast path fall back to minimatch', () => {
  for (const g of ['/a/*/b', '/a/**/b/*.txt', '/a/[ab]', '/a/+(x|y)', '/a/*x*', '/a/?.txt', '/a/**/b/**/c']) assert.equal(fastPathTest(g), undefined, g);
  for (const g of ['/a/[ab]', '/a/+(x|y)', '/a/*x*', '/a/?.txt', '/a/**/b/**/c']) assert.equal(segmentTest(g), undefined, g);
});
