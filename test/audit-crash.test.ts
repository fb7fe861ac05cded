/**
 * Kill a writer with SIGKILL at random points, many times over, and check
 * that every acknowledged record survives, that reopening cuts a torn tail and
 * records the repair, and that the log verifies after each round.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { AuditLog, verifyAudit } from '../src/audit/index.ts';
import { checkpointFile, logFile, logLines, tempDataDir } from './helpers/audit-util.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));

/**
 * Transpile the child and what it imports to plain JavaScript once, so each
 * round starts a bare `node` (tens of ms) rather than a TypeScript loader
 * (most of a second): that is what lets the test afford many rounds.
 */
function buildChild(outDir: string): string {
  const files = [
    ...fs.readdirSync(path.join(REPO, 'src', 'audit')).map((f) => path.join('src', 'audit', f)),
    path.join('src', 'errors.ts'),
    path.join('src', 'data-dir.ts'),
    path.join('test', 'helpers', 'audit-util.ts'),
    path.join('test', 'helpers', 'audit-crash-child.ts'),
  ];
  for (const rel of files) {
    const { outputText } = ts.transpileModule(fs.readFileSync(path.join(REPO, rel), 'utf8'), {
      fileName: rel,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2023, rewriteRelativeImportExtensions: true, verbatimModuleSyntax: true },
    });
    const out = path.join(outDir, rel.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, outputText);
  }
  fs.writeFileSync(path.join(outDir, 'package.json'), '{"type":"module"}\n');
  return path.join(outDir, 'test', 'helpers', 'audit-crash-child.js');
}
const ROUNDS = 20;

/** A small deterministic PRNG, so a failing round can be replayed from its seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Round {
  acked: number[];
  ready: boolean;
}

/** Run the child until `killAfterMs` after it is ready (or after spawn, if `early`), then SIGKILL it. */
function runAndKill(child: string, dir: string, killAfterMs: number, early: boolean): Promise<Round> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir, '32'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.dirname(child) });
    const round: Round = { acked: [], ready: false };
    let buffered = '';
    let stderr = '';
    const kill = (): void => void proc.kill('SIGKILL');
    if (early) setTimeout(kill, killAfterMs);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const p of parts) {
        if (p.startsWith('ready')) {
          round.ready = true;
          if (!early) setTimeout(kill, killAfterMs);
        } else if (p.length > 0) round.acked.push(Number(p));
      }
    });
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${String(code)} before the kill: ${stderr}`));
      else resolve(round);
    });
  });
}

/**
 * What a power cut could still take after a process kill: anything after the
 * last acknowledged record and the last checkpoint (both were synced).
 * Truncate at a random byte in that range, often mid-record.
 */
function losePowerAfterKill(dir: string, maxAcked: number, rand: () => number): void {
  const lines = logLines(dir);
  const ackedEnd = maxAcked >= 0 ? (lines[maxAcked]?.end ?? 0) : 0;
  let cpEnd = 0;
  const cps = fs.readFileSync(checkpointFile(dir), 'utf8').split('\n').filter((l) => l.endsWith('}'));
  const lastCp = cps[cps.length - 1];
  if (lastCp !== undefined) cpEnd = (JSON.parse(lastCp) as { offset: number }).offset;
  const from = Math.max(ackedEnd, cpEnd);
  const size = fs.statSync(logFile(dir)).size;
  if (size <= from) return;
  fs.truncateSync(logFile(dir), from + Math.floor(rand() * (size - from)));
}

test(`a writer killed ${ROUNDS} times under load loses no acknowledged record and recovers each time`, async (t) => {
  const { dir: root, cleanup } = tempDataDir('authority-crash-');
  t.after(cleanup);
  const child = buildChild(path.join(root, 'build'));
  const dir = path.join(root, 'data');
  const seed = 20261122;
  const rand = prng(seed);
  const everAcked = new Set<number>();
  let repairs = 0;
  let cutsSimulated = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const early = round % 5 === 4; // sometimes kill during open and recovery
    const r = await runAndKill(child, dir, early ? Math.floor(rand() * 150) : Math.floor(rand() * 120), early);
    for (const s of r.acked) everAcked.add(s);
    const where = `round ${round} (seed ${seed})`;
    if (!fs.existsSync(logFile(dir))) {
      assert.equal(r.acked.length, 0, `${where}: acknowledged records but no log`);
      continue;
    }
    const maxAcked = r.acked.length > 0 ? Math.max(...r.acked) : -1;
    if (round % 3 === 1 && r.ready) {
      losePowerAfterKill(dir, maxAcked, rand);
      cutsSimulated += 1;
    }
    const raw = fs.readFileSync(logFile(dir));
    const tornBytes = raw.length - (raw.lastIndexOf(0x0a) + 1);

    const log = await AuditLog.open({ dir });
    assert.equal(log.stats.repairedBytes, tornBytes, `${where}: cut exactly the torn tail`);
    await log.close();
    const records = logLines(dir).map((l) => JSON.parse(l.text) as { seq: number; kind: string; detail?: { cutBytes?: number } });
    if (tornBytes > 0) {
      repairs += 1;
      const repair = records.filter((x) => x.kind === 'repair').pop();
      assert.equal(repair?.detail?.cutBytes, tornBytes, `${where}: the repair record says how many bytes were cut`);
    }
    for (const s of everAcked) {
      assert.equal(records[s]?.seq, s, `${where}: acknowledged record ${s} is missing`);
      assert.ok(!['repair', 'log.open', 'genesis'].includes(records[s]?.kind ?? ''), `${where}: record ${s} was replaced`);
    }
    const report = await verifyAudit({ dir });
    assert.equal(report.ok, true, `${where}: ${JSON.stringify(report.problems)}`);
  }
  assert.ok(everAcked.size > 100, `only ${everAcked.size} acknowledged appends: the load was too light to mean much`);
  assert.ok(repairs > 0 && cutsSimulated > 0, 'at least one round had a torn tail to repair');
});
