/**
 * `authority audit verify|show|tail|prove|verify-proof`: inspect and check the
 * audit log offline. Exit 0 ok, 1 a problem (tampering, damage, a bad proof),
 * 2 usage or configuration.
 */
import fs from 'node:fs';
import { resolve } from 'node:path';
import {
  followAuditRecords,
  proveConsistency,
  proveRecord,
  readAuditRecords,
  tailAuditRecords,
  verifyAudit,
  verifyAuditProof,
  auditPaths,
  type AuditLine,
  type AuditRecordFilter,
  type AuditVerifyReport,
  type AuditLocation,
  type ProofCheck,
} from '../../audit/index.ts';
import { resolveDataDir } from '../../data-dir.ts';
import { EXIT_FAIL, EXIT_OK, type CliIO, type Command } from '../types.ts';
import { FLEET_FLAGS } from '../fleet-options.ts';
import { fleetRows, fleetText, witnessCheck, witnessText } from './audit-fleet.ts';
import { emit, parse, usageError } from '../output.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage: authority audit <subcommand> [options]

  verify [--proof FILE]        check the log against its signed checkpoints (exit 1 on any problem,
                               naming the first bad record); with --proof, check a proof file instead
  show [--from SEQ] [--limit N]
                               print records, oldest first
  tail [-n N] [--follow]       print the last N records (default 20); --follow keeps printing new
                               ones until interrupted (--jsonl: one JSON record per line)
  prove SEQ [--out FILE]       the inclusion proof of record SEQ against the latest checkpoint, verified
  prove --from-size N          the consistency proof from the log's first N records to the latest checkpoint
  verify-proof FILE            check a proof made by \`prove\` (same as verify --proof FILE)
  verify --witness             also check the log against the checkpoints its node published to the
                               fleet's Redis: a log truncated or rolled back below one is a problem
  fleet                        every node the witness knows: its latest checkpoint, and how far it is behind

options:
  --data-dir DIR               the data folder (default $AUTHORITY_DATA_DIR or ./.authority)
  --audit-dir DIR              the log's folder, if not the data folder's
  --checkpoints DIR            the checkpoints' folder, if not the data folder's
  --public-key FILE            the Ed25519 public key to trust (default: the one beside the checkpoints)
  --run ID  --tool NAME  --decision allow|deny  --kind KIND[,KIND]   filters for show and tail
                               (a kind ending in * matches a prefix: --kind 'call.*')
  --redis URL                  the fleet's Redis, for --witness and fleet (default $AUTHORITY_REDIS_URL)
  --json                       one JSON document on stdout

Exit codes: 0 ok, 1 a problem was found, 2 usage or configuration error.`;

const options = {
  'data-dir': { type: 'string' },
  'audit-dir': { type: 'string' },
  checkpoints: { type: 'string' },
  'public-key': { type: 'string' },
  proof: { type: 'string' },
  from: { type: 'string' },
  'from-size': { type: 'string' },
  limit: { type: 'string' },
  n: { type: 'string', short: 'n' },
  follow: { type: 'boolean', short: 'f' },
  jsonl: { type: 'boolean' },
  out: { type: 'string' },
  run: { type: 'string' },
  tool: { type: 'string' },
  decision: { type: 'string' },
  kind: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  witness: { type: 'boolean' },
  ...FLEET_FLAGS,
} as const;

type Values = ReturnType<typeof parse<{ args: string[]; options: typeof options; allowPositionals: true; strict: true }>>['values'];

function count(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw usageError(`--${name} takes a non-negative integer, not "${value}"`);
  return Number(value);
}

function location(v: Values, io: CliIO): AuditLocation {
  const dir = v['audit-dir'] !== undefined && v.checkpoints !== undefined && v['data-dir'] === undefined ? undefined : resolveDataDir(v['data-dir'], io.env, io.cwd);
  return {
    dir,
    auditDir: v['audit-dir'] === undefined ? undefined : resolve(io.cwd, v['audit-dir']),
    checkpointDir: v.checkpoints === undefined ? undefined : resolve(io.cwd, v.checkpoints),
  };
}

function filterOf(v: Values): AuditRecordFilter {
  if (v.decision !== undefined && v.decision !== 'allow' && v.decision !== 'deny') throw usageError(`--decision takes allow or deny, not "${v.decision}"`);
  const kinds = (v.kind ?? []).flatMap((k) => k.split(',')).filter((k) => k.length > 0);
  return { runId: v.run, tool: v.tool, decision: v.decision, kinds };
}

function readPublicKey(v: Values, io: CliIO): string | undefined {
  if (v['public-key'] === undefined) return undefined;
  try {
    return fs.readFileSync(resolve(io.cwd, v['public-key']), 'utf8');
  } catch (e) {
    throw usageError(`cannot read --public-key ${v['public-key']}: ${(e as Error).message}`);
  }
}

/** One record per line, for people: seq, time, kind, decision and code, who and what, then why. */
export function formatLine(l: AuditLine): string {
  const r = l.record;
  if (r === null) return `!! ${l.line === null ? '' : `line ${l.line} `}(byte ${l.offset}): ${l.problem ?? 'not a record'}`;
  const parts = [`#${r.seq}`, r.time, r.kind.padEnd(12)];
  const verdict = [r.decision, r.code].filter((x) => x !== undefined).join(' ');
  if (verdict.length > 0) parts.push(verdict);
  for (const [k, val] of [
    ['run', r.runId],
    ['tool', r.tool],
    ['op', r.op],
    ['token', r.tokenId],
  ] as const) {
    if (val !== undefined) parts.push(`${k}=${val}`);
  }
  if (r.reason !== undefined) parts.push(JSON.stringify(r.reason));
  if (r.detail !== undefined) parts.push(JSON.stringify(r.detail));
  if (r.origin !== undefined) parts.push(`origin=${r.origin}`);
  return parts.join('  ');
}

function verifyText(r: AuditVerifyReport): string {
  const lines = [
    `audit log    ${r.logFile}`,
    `origin       ${r.origin ?? '(unknown)'}`,
    `records      ${r.records} (${r.bytes} bytes); ${r.uncovered} after the latest checkpoint${r.inProgress ? '; a write in progress was left out' : ''}`,
    `checkpoints  ${r.checkpoints}` +
      (r.latestCheckpoint === null ? '' : `, latest: ${r.latestCheckpoint.size} records at ${r.latestCheckpoint.time}`) +
      (r.keyId === null ? '' : `, key ${r.keyId}`),
  ];
  if (r.ok) {
    lines.push('', 'OK: every record is whole and chained, and the log matches every signed checkpoint.');
    if (r.uncovered > 0) lines.push(`(${r.uncovered} newest records are chained but not yet under a checkpoint; the writer anchors them within a second.)`);
  } else {
    const first = r.firstBad;
    lines.push('', `FAILED: ${first?.message ?? 'problems found'}`);
    for (const p of r.problems.slice(1, 20)) lines.push(`  also [${p.code}] ${p.message}`);
    const more = r.problems.length - 20 + r.moreProblems;
    if (more > 0) lines.push(`  ... and ${more} more`);
  }
  return lines.join('\n');
}

function proofText(c: ProofCheck, file: string): string {
  const cp = c.checkpoint;
  const where = cp === null ? '' : ` against the checkpoint of ${cp.time} (${cp.size} records, root ${cp.root})`;
  if (!c.ok) return `INVALID proof ${file}${where}:\n  ${c.problems.join('\n  ')}`;
  const key =
    c.keySource === 'embedded'
      ? `\nchecked with the key the proof carries (${c.keyId ?? '?'}): compare it with the key you trust, or pass --public-key`
      : `\nsigned by key ${c.keyId ?? '?'}`;
  return `OK: ${c.type === 'authority-audit/consistency-proof' ? 'consistency' : 'inclusion'} proof ${file} holds${where}${key}`;
}

async function runVerifyProof(file: string, v: Values, io: CliIO, json: boolean): Promise<number> {
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(resolve(io.cwd, file), 'utf8'));
  } catch (e) {
    throw usageError(`cannot read proof ${file}: ${(e as Error).message}`);
  }
  let publicKey = readPublicKey(v, io);
  if (publicKey === undefined) {
    // The key beside this data folder's checkpoints, when there is one, is a better anchor than the proof's own.
    const { publicKeyFile } = auditPaths(location(v, io));
    if (fs.existsSync(publicKeyFile)) publicKey = fs.readFileSync(publicKeyFile, 'utf8');
  }
  const check = verifyAuditProof(doc, { publicKey });
  emit(io, json, check, proofText(check, file));
  return check.ok ? EXIT_OK : EXIT_FAIL;
}

async function run(argv: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = argv;
  const { values: v, positionals } = parse({ args: rest, options, allowPositionals: true, strict: true });
  const json = v.json === true;
  const loc = (): AuditLocation => location(v, io);
  const noPositionals = (): void => {
    if (positionals.length > 0) throw usageError(`unexpected argument "${positionals[0] as string}" for audit ${sub ?? ''}`);
  };
  switch (sub) {
    case 'verify': {
      noPositionals();
      if (v.proof !== undefined) return runVerifyProof(v.proof, v, io, json);
      const report = await verifyAudit({ ...loc(), publicKey: readPublicKey(v, io) });
      if (v.witness === true) {
        const witness = await witnessCheck(loc(), v, io);
        emit(io, json, { ...report, ok: report.ok && witness.ok, witness }, `${verifyText(report)}\n${witnessText(witness)}`);
        return report.ok && witness.ok ? EXIT_OK : EXIT_FAIL;
      }
      emit(io, json, report, verifyText(report));
      return report.ok ? EXIT_OK : EXIT_FAIL;
    }
    case 'fleet': {
      const rows = await fleetRows(v, io);
      emit(io, json, { ok: rows.every((r) => r.regressed === null), nodes: rows }, fleetText(rows));
      return rows.every((r) => r.regressed === null) ? EXIT_OK : EXIT_FAIL;
    }
    case 'verify-proof': {
      if (positionals.length !== 1) throw usageError('usage: authority audit verify-proof FILE');
      return runVerifyProof(positionals[0] as string, v, io, json);
    }
    case 'show': {
      noPositionals();
      const from = v.from === undefined ? undefined : count(v.from, 'from', 0);
      const limit = count(v.limit, 'limit', Number.MAX_SAFE_INTEGER);
      const out: AuditLine[] = [];
      for await (const l of readAuditRecords(loc(), { fromSeq: from, filter: filterOf(v) })) {
        if (out.length >= limit) break;
        out.push(l);
      }
      emit(io, json, { records: out }, out.map(formatLine).join('\n'));
      return EXIT_OK;
    }
    case 'tail': {
      noPositionals();
      const n = count(v.n, 'n', 20);
      const filter = filterOf(v);
      const last = await tailAuditRecords(loc(), n, filter);
      if (v.follow !== true) {
        emit(io, json, { records: last }, last.map(formatLine).join('\n'));
        return EXIT_OK;
      }
      if (json) throw usageError('--follow streams records: use --jsonl (one JSON record per line), not --json');
      const print = (l: AuditLine): void => io.out((v.jsonl === true ? JSON.stringify(l) : formatLine(l)) + '\n');
      for (const l of last) print(l);
      // Go on from just after the last line shown, so nothing is printed twice or skipped.
      const from = last.length > 0 ? (last[last.length - 1] as AuditLine).end : undefined;
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        for await (const l of followAuditRecords(loc(), { signal: stop.signal, filter, fromOffset: from })) print(l);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      return EXIT_OK;
    }
    case 'prove': {
      const publicKey = readPublicKey(v, io);
      if (v['from-size'] !== undefined) {
        noPositionals();
        const doc = await proveConsistency({ ...loc(), publicKey }, count(v['from-size'], 'from-size', 0));
        if (v.out !== undefined) fs.writeFileSync(resolve(io.cwd, v.out), JSON.stringify(doc, null, 2) + '\n');
        emit(
          io,
          json,
          doc,
          `the checkpoint of ${doc.checkpoint.time} (${doc.newSize} records) extends the first ${doc.oldSize} records (root ${doc.oldRoot}): ` +
            `consistency proof of ${doc.proof.length} hashes, verified${v.out === undefined ? '' : `, written to ${v.out}`}`,
        );
        return EXIT_OK;
      }
      if (positionals.length !== 1) throw usageError('usage: authority audit prove SEQ [--out FILE] | prove --from-size N');
      const doc = await proveRecord({ ...loc(), publicKey }, count(positionals[0], 'seq', 0));
      if (v.out !== undefined) fs.writeFileSync(resolve(io.cwd, v.out), JSON.stringify(doc, null, 2) + '\n');
      const human = [
        `record ${doc.seq} is in the log the checkpoint of ${doc.checkpoint.time} commits to (${doc.treeSize} records, root ${doc.checkpoint.root}); proof verified.`,
        `leaf   ${doc.leafHash}`,
        ...doc.path.map((h, i) => `path[${i}] ${h}`),
        v.out === undefined ? 'save it with --out FILE (or --json > FILE) and check it with `authority audit verify-proof FILE`' : `written to ${v.out}`,
      ].join('\n');
      emit(io, json, doc, human);
      return EXIT_OK;
    }
    default:
      throw usageError(sub === undefined ? USAGE : `unknown audit subcommand "${sub}"\n\n${USAGE}`);
  }
}

export const auditCommand: Command = {
  name: 'audit',
  summary: summaryOf('audit'),
  usage: USAGE,
  run,
};
