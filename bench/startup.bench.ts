/**
 * Start-up: what a command line and an `import` cost before any tool runs,
 * measured on the compiled package (dist/, built first), as a user runs it.
 * The baseline is `node -e 0` in the same run, so a loaded machine shows as
 * a slower baseline rather than a slower CLI. Each subject runs in turns with
 * the others; the median wall time and the largest resident set count.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { row, type Bench, type BenchRow } from './harness.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = 15;

/** Reports the process's peak RSS on fd 3 at exit; loaded into every subject alike, the baseline included. */
const RSS_PROBE = `data:text/javascript,${encodeURIComponent("import { writeSync } from 'node:fs'; process.on('exit', () => { try { writeSync(3, String(process.resourceUsage().maxRSS)); } catch {} });")}`;

interface Subject {
  name: string;
  args: string[];
  target?: { ms?: number; rssMb?: number };
}

function once(args: readonly string[], cwd: string): { ms: number; rssKb: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['--import', RSS_PROBE, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe', 'pipe'], encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0 && r.status !== 1) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, rssKb: Number((r.output[3] as string | null) ?? 'NaN') };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

export const bench: Bench = async () => {
  process.stderr.write('bench: startup: building dist/ (tsc)...\n');
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  const dir = mkdtempSync(join(tmpdir(), 'authority-bench-startup-'));
  try {
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ version: '1.0', fs: { read: ['/srv/data/**'] }, tools: { allow: ['*'] } }));
    const cli = join(ROOT, 'dist', 'cli', 'main.js');
    const index = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
    const subjects: Subject[] = [
      { name: 'node -e 0', args: ['-e', '0'] },
      { name: 'authority --version', args: [cli, '--version'], target: { ms: 150 } },
      { name: 'authority --help', args: [cli, '--help'] },
      { name: 'authority policy test', args: [cli, 'policy', 'test', policy, '--op', 'fs.read', '--target', '/srv/data/a.txt'], target: { ms: 150, rssMb: 80 } },
      { name: "import('authority-sandbox')", args: ['--input-type=module', '-e', `await import(${JSON.stringify(index)})`], target: { ms: 200 } },
    ];
    const ms = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
    const rss = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
    for (const s of subjects) once(s.args, dir); // warm the file cache
    for (let i = 0; i < ROUNDS; i++) {
      for (const s of subjects) {
        const r = once(s.args, dir);
        ms.get(s.name)?.push(r.ms);
        rss.get(s.name)?.push(r.rssKb);
      }
    }
    const baseMs = median(ms.get('node -e 0') as number[]);
    const baseRss = Math.max(...(rss.get('node -e 0') as number[])) / 1024;
    const rows: BenchRow[] = [];
    for (const s of subjects) {
      const m = median(ms.get(s.name) as number[]);
      const peak = Math.max(...(rss.get(s.name) as number[])) / 1024;
      const isBase = s.name === 'node -e 0';
      rows.push(row(`${s.name}: wall`, m, 'ms p50', { ...(isBase ? {} : { baseline: { name: 'node -e 0', value: baseMs } }), ...(s.target?.ms ? { target: `< ${s.target.ms}` } : {}) }));
      rows.push(row(`${s.name}: peak RSS`, peak, 'MB', { ...(isBase ? {} : { baseline: { name: 'node -e 0', value: baseRss } }), ...(s.target?.rssMb ? { target: `< ${s.target.rssMb}` } : {}) }));
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};
