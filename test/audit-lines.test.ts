import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readLines, readLinesBackward } from '../src/audit/lines.ts';
import { tempDataDir } from './helpers/audit-util.ts';

/** Lines of awkward lengths: empty, tiny, and straddling the 64 KiB and 1 MiB read sizes. */
function awkwardLines(): string[] {
  const lengths = [0, 1, 5, 0, 65535, 65536, 65537, 3, 131072 - 1, 0, 1 << 20, (1 << 20) + 7, 12];
  return lengths.map((n, i) => String.fromCharCode(97 + (i % 26)).repeat(n));
}

test('lines read backward are the lines read forward, reversed, with their offsets', async (t) => {
  const { dir, cleanup } = tempDataDir('authority-lines-');
  t.after(cleanup);
  const file = path.join(dir, 'f');
  const lines = awkwardLines();
  for (const tail of ['', 'unfinished']) {
    fs.writeFileSync(file, lines.map((l) => l + '\n').join('') + tail);
    const forward: Array<{ text: string; offset: number }> = [];
    for await (const l of readLines(file, 0, undefined, 2 << 20)) {
      if (l.complete) forward.push({ text: l.bytes.toString(), offset: l.offset });
      else assert.equal(l.bytes.toString(), tail);
    }
    assert.deepEqual(
      forward.map((l) => l.text),
      lines,
    );
    const backward: Array<{ text: string; offset: number }> = [];
    for await (const l of readLinesBackward(file)) backward.push({ text: l.bytes.toString(), offset: l.offset });
    assert.deepEqual(backward.reverse(), forward, `with tail "${tail}"`);
  }
});

test('a line longer than the cap is flagged, not buffered whole, and reading goes on after it', async (t) => {
  const { dir, cleanup } = tempDataDir('authority-lines-');
  t.after(cleanup);
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, 'short\n' + 'x'.repeat(5000) + '\nafter\n');
  const got: Array<{ len: number; length: number; overlong: boolean }> = [];
  for await (const l of readLines(file, 0, undefined, 100)) got.push({ len: l.bytes.length, length: l.length, overlong: l.overlong });
  assert.deepEqual(got, [
    { len: 5, length: 5, overlong: false },
    { len: 101, length: 5000, overlong: true },
    { len: 5, length: 5, overlong: false },
  ]);
});

test('reading from an offset starts at that byte', async (t) => {
  const { dir, cleanup } = tempDataDir('authority-lines-');
  t.after(cleanup);
  const file = path.join(dir, 'f');
  fs.writeFileSync(file, 'one\ntwo\nthree\n');
  const got: string[] = [];
  for await (const l of readLines(file, 4)) got.push(`${l.offset}:${l.bytes.toString()}`);
  assert.deepEqual(got, ['4:two', '8:three']);
});
