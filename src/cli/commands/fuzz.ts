/**
 * `authority fuzz`: fuzz the host-function boundary against a policy (the
 * built-in ones, or yours) and report either "no violation in N runs" or the
 * shrunk counterexample and one command that replays it.
 */
import { resolve } from 'node:path';
import type { FuzzReport, Layer, Op } from '../../fuzz/index.ts';
import { COMPONENTIZE_PACKAGE } from '../../registry/build.ts';
import { emit, parse, progressLines, usageError } from '../output.ts';
import { EXIT_FAIL, EXIT_OK, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

/**
 * The fuzzed host functions, for the usage text only: the fuzzer itself (and
 * fast-check) loads when a run starts, so `authority --help` stays fast. A
 * test checks this list against the fuzzer's.
 */
export const FUZZ_OPS = ['fs.read', 'fs.write', 'fs.list', 'fs.stat', 'fs.remove', 'fs.mkdir', 'http.fetch', 'secrets.get'] as const;

const USAGE = `usage: authority fuzz [--policy FILE] [--runs N] [--seed S] [--target fs|http|secrets|all] [--json]

Fuzzes every host function (fs read/write/list/stat/remove, http fetch,
secrets get) with hostile arguments and almost-valid capability tokens, and
checks after every call: the gate decides as an independent reference model
does, the audit log has the call's records and verifies, nothing denied
happened (canary files, a canary HTTP server on 127.0.0.1), budgets stay in
bounds, no secret value leaks, and the host never crashes or hangs. All
traffic stays on 127.0.0.1; files live in a scratch folder.

  --policy FILE        your policy (fs globs are moved under a scratch folder;
                       default: the built-in policies)
  --runs N             host calls per host function (default 100000)
  --seed S             fast-check seed (default: a fresh one, printed)
  --target T           fs, http, secrets or all (default all)
  --op OP              only this host function (${FUZZ_OPS.join(', ')})
  --layer L            gate, guest, abi; repeatable (default all three)
                         gate   straight into the gate (fast; most runs)
                         guest  through the echo guest, jco and the worker bridge
                         abi    canonical-ABI abuse programs from a WAT guest, and
                                (from 100 programs) bad pointers for every pointer
                                parameter of every import, derived from the WIT
  --guest-share F      share of each host function's runs made through the guest (default 0.1)
  --abi-programs N     abuse programs (default runs / 50)
  --jobs N             parallel jobs, each with its own scratch world (default 2
                       on a machine with 2 cores or more; findings do not depend on it)
  --path P             replay one counterexample (with --seed, --layer and --op)
  --json               print exactly one JSON document on stdout

Exit codes: 0 no violation, 1 a violation was found, 2 usage or configuration error.
`;

function positiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw usageError(`${flag} takes a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

function human(r: FuzzReport, runs: number): string {
  const lines: string[] = [];
  const width = Math.max(...r.results.map((x) => x.op.length), 6);
  for (const x of r.results) {
    const unit = x.layer === 'abi' ? 'programs' : 'runs';
    lines.push(`  ${x.layer.padEnd(5)}  ${x.op.padEnd(width)}  ${x.runs.toLocaleString('en-US').padStart(9)} ${unit.padEnd(8)}  ${Math.round(x.perSecond).toLocaleString('en-US').padStart(7)}/s  ${x.failure ? 'FAILED' : 'ok'}`);
  }
  const calls = r.results.filter((x) => x.layer !== 'abi').reduce((n, x) => n + x.runs, 0);
  const programs = r.results.filter((x) => x.layer === 'abi').reduce((n, x) => n + x.runs, 0);
  lines.push('', 'invariants checked:', ...r.invariants.map((i) => `  - ${i}`));
  lines.push('', `differential: ${r.differential.compared.toLocaleString('en-US')} calls compared with the reference model (${r.differential.opaque} not modelled, ${r.differential.ambiguous} decided at a time boundary)`);
  if (r.model.opaque.length > 0) lines.push(`  rules the model does not reproduce (not compared): ${r.model.opaque.join('; ')}`);
  if (r.failure === undefined) {
    lines.push('', `no violation in ${calls.toLocaleString('en-US')} runs${programs > 0 ? ` and ${programs.toLocaleString('en-US')} abuse programs` : ''} (seed ${r.seed}; asked ${runs.toLocaleString('en-US')} per host function)`);
    return lines.join('\n');
  }
  const f = r.failure;
  lines.push('', `VIOLATION (${f.layer} ${f.op}), seed ${f.seed}, path ${f.path}:`);
  for (const p of f.problems) lines.push(`  - ${p}`);
  if (f.step >= 0) lines.push(`  at step ${f.step} of the shrunk case`);
  if (f.call !== null && f.call !== undefined) lines.push(`  call: ${JSON.stringify(f.call)}`);
  if (f.records !== null && f.records !== undefined) lines.push(`  audit records: ${JSON.stringify(f.records)}`);
  if (f.reply !== null && f.reply !== undefined) lines.push(`  reply: ${JSON.stringify(f.reply)}`);
  lines.push(`  counterexample: ${JSON.stringify(f.counterexample)}`);
  if (f.replay !== '') lines.push('', `replay: ${f.replay}`);
  return lines.join('\n');
}

export const fuzzCommand: Command = {
  name: 'fuzz',
  summary: summaryOf('fuzz'),
  usage: USAGE,
  async run(argv, io) {
    const { values } = parse({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        policy: { type: 'string' },
        runs: { type: 'string' },
        seed: { type: 'string' },
        path: { type: 'string' },
        target: { type: 'string' },
        op: { type: 'string' },
        layer: { type: 'string', multiple: true },
        'guest-share': { type: 'string' },
        'abi-programs': { type: 'string' },
        jobs: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const json = values.json === true;
    const { ALL_OPS, LAYERS, runFuzz } = await import('../../fuzz/index.ts');
    const runs = positiveInt(values.runs, '--runs') ?? 100_000;
    let seed: number | undefined;
    if (values.seed !== undefined) {
      seed = Number(values.seed);
      if (!Number.isSafeInteger(seed)) throw usageError(`--seed takes a whole number, got ${JSON.stringify(values.seed)}`);
    }
    const target = values.target ?? 'all';
    if (!['fs', 'http', 'secrets', 'all'].includes(target)) throw usageError(`--target takes fs, http, secrets or all, got ${JSON.stringify(target)}`);
    const op = values.op as Op | undefined;
    if (op !== undefined && !ALL_OPS.includes(op)) throw usageError(`--op takes one of ${ALL_OPS.join(', ')}, got ${JSON.stringify(op)}`);
    const layers = (values.layer ?? []).flatMap((l) => l.split(','));
    for (const l of layers) if (!(LAYERS as readonly string[]).includes(l)) throw usageError(`--layer takes gate, guest or abi, got ${JSON.stringify(l)}`);
    if (layers.length === 0 && values.path === undefined) {
      // The guest layer's echo guest is JavaScript: without the JS tool builder (an optional peer) the default run skips it, and says so.
      const { echoGuestAvailable } = await import('../../fuzz/guests.ts');
      if (!echoGuestAvailable()) {
        layers.push('gate', 'abi');
        io.err(`authority fuzz: skipping the guest layer: its echo guest is built with ${COMPONENTIZE_PACKAGE}, which is not installed (npm install ${COMPONENTIZE_PACKAGE}@0.23 to include it)\n`);
      }
    }
    if (values.path !== undefined && (seed === undefined || layers.length !== 1)) throw usageError('--path replays one counterexample: give --seed and one --layer too (and --op for gate and guest)');
    let guestShare: number | undefined;
    if (values['guest-share'] !== undefined) {
      guestShare = Number(values['guest-share']);
      if (!(guestShare >= 0 && guestShare <= 1)) throw usageError('--guest-share takes a number from 0 to 1');
    }
    let policy: Record<string, unknown> | undefined;
    if (values.policy !== undefined) {
      // Validated by the real loader first: the fuzzer runs only policies the runtime would accept.
      const { loadPolicyFile } = await import('../../policy/index.ts');
      const loaded = await loadPolicyFile(resolve(io.cwd, values.policy));
      policy = loaded.policy.toJSON() as Record<string, unknown>;
    }
    const report = await runFuzz({
      runs,
      seed,
      path: values.path,
      target: target as 'fs' | 'http' | 'secrets' | 'all',
      op,
      layers: layers.length > 0 ? (layers as Layer[]) : undefined,
      guestShare,
      abiPrograms: positiveInt(values['abi-programs'], '--abi-programs'),
      jobs: positiveInt(values.jobs, '--jobs'),
      policy,
      policyArg: values.policy,
      progress: json ? undefined : progressLines(io),
    });
    emit(io, json, report, human(report, runs));
    return report.ok ? EXIT_OK : EXIT_FAIL;
  },
};
