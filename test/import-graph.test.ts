import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/**
 * The floors of src/, lowest first. A module may import its own folder and
 * any lower floor, never a floor above or a neighbour on its own floor: the
 * words every layer shares sit at the bottom, the command line at the top.
 */
const FLOORS: readonly (readonly string[])[] = [
  ['errors.ts'],
  ['host-call.ts', 'config-check.ts', 'types', 'data-dir.ts'],
  ['host', 'audit'],
  ['capability', 'limits', 'signing'],
  ['policy'],
  ['registry'],
  ['sandbox', 'console'],
  ['gate', 'fleet', 'undo'],
  ['runtime-options.ts'],
  ['run-end.ts'],
  ['runtime.ts'],
  ['adapters', 'fuzz', 'demo', 'oci'],
  ['serve'],
  ['index.ts', 'cli'],
];

function unitOf(file: string): string {
  return relative(src, file).split('/')[0] as string;
}

function floorOf(unit: string): number {
  const i = FLOORS.findIndex((f) => f.includes(unit));
  assert.notEqual(i, -1, `src/${unit} is on no floor: add it to FLOORS in test/import-graph.test.ts`);
  return i;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

// Static imports and re-exports (type-only ones too: they tie the modules as much), and dynamic import('...').
const SPECIFIER = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/g;

function importsOf(file: string): string[] {
  // Comments may show imports (examples); only code counts. A `//` inside a string is harmless here: no specifier holds one.
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  const out: string[] = [];
  for (const m of text.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2];
    if (spec === undefined || !spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    if (target.startsWith(src + '/')) out.push(target);
  }
  return out;
}

const files = sources(src);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

test('the import graph was read (a broken pattern would pass every check below)', () => {
  assert.ok(files.length > 100, `found ${files.length} modules`);
  const edges = [...graph.values()].reduce((n, xs) => n + xs.length, 0);
  assert.ok(edges > 300, `found ${edges} imports`);
  assert.ok(graph.get(join(src, 'gate', 'gate.ts'))?.includes(join(src, 'host-call.ts')), 'gate.ts imports host-call.ts');
});

test('no module imports a floor above its own or a neighbour on its floor', () => {
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    const from = unitOf(file);
    for (const target of targets) {
      const to = unitOf(target);
      if (to === from) continue;
      if (floorOf(to) >= floorOf(from)) wrong.push(`${relative(src, file)} -> ${relative(src, target)}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no import cycle, between folders or between the files of one folder', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const t of graph.get(f) ?? []) {
      if (state.get(t) === 'open') cycles.push([...stack.slice(stack.indexOf(t)), t].map((x) => relative(src, x)).join(' -> '));
      else if (!state.has(t)) visit(t);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});
