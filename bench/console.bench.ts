/**
 * The console's page time on a log of 10^6 records (written by the real audit
 * log, a runtime's mix of runs: start, host calls, some denials, end), asked
 * over real HTTP on loopback with the token. Baseline, same run: the same
 * page found the way `authority audit show` would, by one scan of the log.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { AuditLog, hashRequest, readAuditRecords, type AuditEntry } from '../src/audit/index.ts';
import { startConsole } from '../src/console/index.ts';
import { percentile, row, type Bench, type BenchRow } from './harness.ts';

const RECORDS = Number(process.env['CONSOLE_BENCH_RECORDS'] ?? 1_000_000);
const TOOLS = ['fetcher', 'write-file', 'read-file', 'word-count', 'weather'];

/** The records of run `n`: start, four calls (every 7th run has a denial), end: 10 records (9 with a denial). */
function runEntries(n: number): AuditEntry[] {
  const tool = TOOLS[n % TOOLS.length] as string;
  const runId = `run-${n}`;
  const base = { runId, tool, toolDigest: 'sha256:' + 'ab'.repeat(32) };
  const out: AuditEntry[] = [{ ...base, kind: 'invoke.start', decision: 'allow', code: 'ok', detail: { grants: ['tok_1'], inputBytes: 40 } }];
  for (let c = 0; c < 4; c++) {
    const target = `/data/${runId}/file-${c}.txt`;
    if (c === 3 && n % 7 === 0) {
      out.push({ ...base, kind: 'call.denied', op: 'fs.write', decision: 'deny', code: 'E_POLICY_DENY', reason: 'no fs.write rule matches', detail: { path: '/etc/passwd' } });
      continue;
    }
    out.push({ ...base, kind: 'call.intent', op: 'fs.read', decision: 'allow', requestHash: hashRequest({ target }), reason: 'rule fs.read[0]', detail: { path: target } });
    out.push({ ...base, kind: 'call.outcome', op: 'fs.read', decision: 'allow', code: 'ok', detail: { bytes: 100 + c } });
  }
  out.push({ ...base, kind: 'invoke.end', decision: 'allow', code: n % 7 === 0 ? 'E_TOOL_FAILED' : 'ok', detail: { durationMs: 12, hostCalls: 4 } });
  return out;
}

function get(port: number, token: string, urlPath: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function pageMs(port: number, token: string, urlPath: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n + 3; i++) {
    const t0 = performance.now();
    const r = await get(port, token, urlPath);
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`${urlPath}: HTTP ${r.status}`);
    if (i >= 3) out.push(ms);
  }
  return out.sort((a, b) => a - b);
}

export const bench: Bench = async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'authority-console-bench-'));
  const rows: BenchRow[] = [];
  try {
    const dir = path.join(root, 'data');
    const log = await AuditLog.open({ dir, durability: 'none', checkpointEvery: { records: 100_000, ms: 60_000 } });
    let written = 0;
    for (let n = 0; written < RECORDS - 1; n++) {
      const batch = runEntries(n);
      await Promise.all(batch.map((e) => log.append(e)));
      written += batch.length;
    }
    await log.close();
    const size = fs.statSync(path.join(dir, 'audit', 'log.jsonl')).size;

    const t0 = performance.now();
    const server = await startConsole({ dir });
    const buildMs = performance.now() - t0;
    const records = server.index.size;
    try {
      const midRun = Math.floor(server.index.runs.length / 2);
      const midSeq = Math.floor(records / 2);
      const pages: [string, string][] = [
        ['runs, first page', '/api/runs?limit=50'],
        ['runs, a deep page', `/api/runs?limit=50&before=${midRun}`],
        ['runs, filtered by tool+code', '/api/runs?limit=50&tool=write-file&code=E_POLICY_DENY'],
        ['records, a deep page', `/api/records?limit=100&before=${midSeq}`],
        ['records, filtered by code', `/api/records?limit=100&code=E_POLICY_DENY&before=${midSeq}`],
        ['one run timeline', `/api/runs/run-${midRun}`],
      ];
      for (const [name, url] of pages) {
        const ms = await pageMs(server.port, server.token, url, 30);
        rows.push(row(`console page: ${name} p99`, percentile(ms, 99), 'ms', { target: '< 200', note: `p50 ${percentile(ms, 50).toFixed(1)} ms` }));
      }
      // Baseline: the filtered runs page by one scan of the log (what `audit show --tool` does).
      const b0 = performance.now();
      const denied = new Set<string>();
      for await (const { record } of readAuditRecords({ dir }, { filter: { tool: 'write-file' } })) {
        if (record?.code === 'E_POLICY_DENY' && record.runId !== undefined) denied.add(record.runId);
      }
      const scanMs = performance.now() - b0;
      const filtered = await pageMs(server.port, server.token, pages[2]?.[1] as string, 30);
      rows.push(
        row('console page: filtered runs, p99', percentile(filtered, 99), 'ms', {
          baseline: { name: 'the same page by a scan of the log', value: scanMs },
          target: '< 200',
          note: `${records.toLocaleString('en-US')} records, ${(size / 2 ** 20).toFixed(0)} MiB; ${denied.size} runs matched`,
        }),
      );
      rows.push(row('console index build at start', buildMs, 'ms', { note: `${Math.round(records / (buildMs / 1000)).toLocaleString('en-US')} records/s; once per start, then incremental` }));
      rows.push(row('console RSS after indexing', process.memoryUsage().rss / 2 ** 20, 'MiB'));
    } finally {
      await server.close();
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  return rows;
};
