/**
 * `authority runs list|show|undo|prune`: what runs did, and taking a run's
 * file changes back. Exit 0 ok, 1 an undo left conflicts or blocked changes
 * (or was refused), 2 usage or configuration.
 */
import { dataPaths, resolveDataDir } from '../../data-dir.ts';
import { auditPaths } from '../../audit/index.ts';
import { parseBytes } from '../../policy/index.ts';
import { emit, parse, usageError } from '../output.ts';
import { openRuntime, RUNTIME_FLAGS, RUNTIME_FLAGS_HELP } from '../runtime-options.ts';
import { EXIT_FAIL, EXIT_OK, type CliIO, type Command } from '../types.ts';

const USAGE = `usage: authority runs <subcommand> [options]

  list [--tool NAME] [--code CODE] [--limit N]
                       runs, newest first: tool, start, duration, outcome, calls, denials, reversible changes
  show RUN             one run's host calls: op, target, decision and code, timing, bytes, audit record ids
  undo RUN [--force] [--dry-run]
                       put back the files RUN wrote or removed, newest change first, each only while
                       it still holds what the run left (else a conflict, left alone unless --force);
                       --dry-run prints the plan. The policy must name the tool in undo.tools. Run it
                       again to resume an undo that was cut short.
  prune [--max-age DURATION] [--max-size BYTES] [--dry-run]
                       drop kept pre-images last used longer ago than DURATION (30d, 12h, 90m), then the
                       oldest until the rest fit in BYTES ("1 GiB"); a pruned change cannot be undone

options:
${RUNTIME_FLAGS_HELP}

Exit codes: 0 ok, 1 an undo was refused or left changes in place, 2 usage or configuration error.`;

const options = {
  ...RUNTIME_FLAGS,
  tool: { type: 'string' },
  code: { type: 'string' },
  limit: { type: 'string' },
  force: { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
  'max-age': { type: 'string' },
  'max-size': { type: 'string' },
} as const;

function duration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim());
  if (m === null) throw usageError(`--max-age takes a duration such as 30d, 12h, 90m or 45s, not "${text}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

const fmtMs = (ms: number | null): string => (ms === null ? '-' : ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`);

async function index(dir: string) {
  const { LogIndex } = await import('../../console/index.ts');
  const idx = new LogIndex(auditPaths({ dir }).logFile);
  await idx.refresh();
  return idx;
}

export const runsCommand: Command = {
  name: 'runs',
  summary: 'list runs, show what one did, undo its file changes, prune kept pre-images',
  usage: USAGE,
  async run(argv, io: CliIO) {
    const { values: v, positionals } = parse({ args: argv, options, allowPositionals: true, strict: true });
    const [sub, runId, ...extra] = positionals;
    if (extra.length > 0) throw usageError(`unexpected argument "${extra[0]}"\n\n${USAGE}`);
    const dir = resolveDataDir(v['data-dir'], io.env, io.cwd);
    switch (sub) {
      case 'list': {
        const limit = v.limit === undefined ? 50 : Number(v.limit);
        if (!Number.isSafeInteger(limit) || limit < 1) throw usageError(`--limit takes a positive integer, not "${v.limit}"`);
        const { runJson } = await import('../../console/index.ts');
        const page = (await index(dir)).runsPage({ tool: v.tool, code: v.code }, undefined, limit);
        const runs = page.runs.map(runJson);
        const lines = runs.map((r) =>
          [String(r['id']).padEnd(24), String(r['tool'] ?? '-').padEnd(16), String(r['start'] ?? '-').padEnd(24), fmtMs(r['durationMs'] as number | null).padStart(8), String(r['outcome'] ?? 'running').padEnd(16), `calls ${r['calls']}`, `denied ${r['denials']}`, `reversible ${r['reversible']}`].join('  '),
        );
        emit(io, v.json, { ok: true, runs, total: page.total }, runs.length === 0 ? 'no runs in the log' : lines.join('\n'));
        return EXIT_OK;
      }
      case 'show': {
        if (runId === undefined) throw usageError('runs show needs a run id');
        const { runJson, runTimeline } = await import('../../console/index.ts');
        const idx = await index(dir);
        const run = idx.run(runId);
        if (run === undefined) throw usageError(`no run "${runId}" in the audit log (authority runs list shows them)`);
        const t = await runTimeline(idx, run, 0, 10_000);
        const r = runJson(run);
        const human = [
          `run ${r['id']}  tool ${r['tool'] ?? '-'}  start ${r['start'] ?? '-'}  ${fmtMs(r['durationMs'] as number | null)}  outcome ${r['outcome'] ?? 'running'}`,
          ...t.calls.map((c, i) => `  ${String(i + 1).padStart(3)}  ${(c.op ?? '-').padEnd(11)} ${(c.decision ?? '-').padEnd(5)} ${(c.code ?? '-').padEnd(16)} ${fmtMs(c.durationMs).padStart(7)}  ${c.target ?? '-'}  #${c.records.join(' #')}${c.preImage === null ? '' : '  (reversible)'}`),
        ];
        emit(io, v.json, { ok: true, run: r, calls: t.calls }, human.join('\n'));
        return EXIT_OK;
      }
      case 'undo': {
        if (runId === undefined) throw usageError('runs undo needs a run id');
        const rt = await openRuntime(v, io);
        try {
          if (v['dry-run']) {
            const plan = await rt.undoPlan(runId);
            const human = [`undo of ${runId}: ${plan.allowed ? 'allowed' : 'REFUSED'} (${plan.reason})`, ...plan.steps.map((s) => `  ${s.state.padEnd(8)} ${s.action.padEnd(7)} ${s.path}${s.why ? `  (${s.why})` : ''}`)];
            emit(io, v.json, { ok: plan.allowed, plan }, human.join('\n'));
            return plan.allowed ? EXIT_OK : EXIT_FAIL;
          }
          const r = await rt.undoRun(runId, { force: v.force });
          const human = [
            `undo of ${runId}: restored ${r.restored}, conflicts ${r.conflicts}, blocked ${r.blocked}, already done ${r.skipped}${r.forced ? `, forced ${r.forced}` : ''} (audit #${r.audit.start}-#${r.audit.end})`,
            ...r.steps.filter((s) => s.state === 'conflict' || s.state === 'blocked').map((s) => `  ${s.state} ${s.path}: ${s.why ?? ''}`),
          ];
          emit(io, v.json, { ok: r.conflicts + r.blocked === 0, result: r }, human.join('\n'));
          return r.conflicts + r.blocked === 0 ? EXIT_OK : EXIT_FAIL;
        } finally {
          await rt.close();
        }
      }
      case 'prune': {
        if (v['max-age'] === undefined && v['max-size'] === undefined) throw usageError('runs prune needs --max-age, --max-size or both');
        const maxAgeMs = v['max-age'] === undefined ? undefined : duration(v['max-age']);
        let maxTotalBytes: number | undefined;
        if (v['max-size'] !== undefined) {
          const b = parseBytes(v['max-size']);
          if (typeof b !== 'number') throw usageError(`--max-size: ${b.problem}`);
          maxTotalBytes = b;
        }
        const { PreImageStore } = await import('../../undo/index.ts');
        const report = new PreImageStore(dataPaths(dir).undoDir).prune({ maxAgeMs, maxTotalBytes, dryRun: v['dry-run'] });
        emit(io, v.json, { ok: true, dryRun: v['dry-run'], ...report }, `${v['dry-run'] ? 'would remove' : 'removed'} ${report.removed} pre-images (${report.removedBytes} bytes); kept ${report.kept} (${report.keptBytes} bytes)`);
        return EXIT_OK;
      }
      default:
        throw usageError(sub === undefined ? USAGE : `unknown subcommand "${sub}"\n\n${USAGE}`);
    }
  },
};
