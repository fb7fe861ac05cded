/**
 * `npm run bench`: runs every `bench/*.bench.ts` (or those named on the command
 * line), prints one table, and writes the rows to bench/results/latest.json.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import os from 'node:os';
import type { Bench, BenchRow } from './harness.ts';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();

const fmt = (n: number): string => {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
};

const all: Array<BenchRow & { suite: string }> = [];
for (const file of files) {
  const suite = file.replace(/\.bench\.ts$/, '');
  const mod = (await import(pathToFileURL(join(here, file)).href)) as { bench: Bench };
  process.stderr.write(`bench: ${suite}...\n`);
  const rows = await mod.bench();
  for (const r of rows) all.push({ suite, ...r });
  const width = Math.max(...rows.map((r) => r.name.length), 10);
  process.stdout.write(`\n${suite}\n`);
  for (const r of rows) {
    const base = r.baseline ? `  vs ${r.baseline.name} ${fmt(r.baseline.value)} (x${fmt(r.ratio ?? Number.NaN)})` : '';
    const target = r.target ? `  target ${r.target}` : '';
    const note = r.note ? `  ${r.note}` : '';
    process.stdout.write(`  ${r.name.padEnd(width)}  ${fmt(r.value).padStart(12)} ${r.unit}${base}${target}${note}\n`);
  }
}

const out = join(here, 'results');
mkdirSync(out, { recursive: true });
const doc = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  rows: all,
};
writeFileSync(join(out, 'latest.json'), JSON.stringify(doc, null, 2) + '\n');
process.stderr.write(`bench: wrote ${join('bench', 'results', 'latest.json')}\n`);
