/**
 * Verifying an audit log against its signed checkpoints, offline and without
 * any secret: the chain line by line, every checkpoint's root against the
 * log's prefix of that size, consistency between consecutive checkpoints, and
 * the log's length against the latest checkpoint.
 * @module
 */
import fs from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { basename } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { ChainCursor, type ChainProblemCode } from './chain.ts';
import { checkpointLine, parseCheckpointLine, type Checkpoint } from './checkpoint.ts';
import { readLines } from './lines.ts';
import { lockHeldByLiveWriter } from './lock.ts';
import { CompactRange, consistencyProof, leafHash, LeafList, rangeHashFromFrontier, verifyConsistency } from './merkle.ts';
import { auditPaths, checkpointFileFor, CHECKPOINT_FILE_SUFFIX, type AuditLocation } from './paths.ts';
import { MAX_LINE_BYTES, OPEN_KIND, parseRecordLine } from './record.ts';
import { publicKeyFrom, type AuditPublicKey } from './signing.ts';

export type AuditProblemCode =
  | ChainProblemCode
  | 'log-missing'
  | 'key-missing'
  | 'no-checkpoint'
  | 'checkpoint-invalid'
  | 'checkpoint-torn'
  | 'checkpoint-order'
  | 'checkpoint-inconsistent'
  | 'checkpoints-removed'
  | 'foreign-checkpoints'
  | 'root-mismatch'
  | 'truncated'
  | 'after-close';

export interface AuditProblem {
  code: AuditProblemCode;
  /** What is wrong, for people. */
  message: string;
  /** The record concerned: the bad one, the first missing one, or the first that may have changed. */
  seq?: number;
  /** 1-based line of the log. */
  line?: number;
  /** Byte offset in the log. */
  offset?: number;
  /** The checkpoint concerned: its size, time and 1-based line in the checkpoint file. */
  checkpoint?: { size: number; time: string; line: number };
}

export interface AuditVerifyReport {
  /** No problem found. */
  ok: boolean;
  logFile: string;
  checkpointFile: string | null;
  origin: string | null;
  /** Id of the public key that verified the checkpoints. */
  keyId: string | null;
  /** Whole lines in the log. */
  records: number;
  bytes: number;
  /** Valid checkpoints. */
  checkpoints: number;
  latestCheckpoint: { size: number; root: string; time: string } | null;
  /** Consistency proofs built from the log and checked between consecutive checkpoints. */
  consistencyChecked: number;
  /** Records after the latest checkpoint: chained, but not yet anchored by a signature. */
  uncovered: number;
  /** A live writer holds the log: an unfinished last line (a write in flight) was left out. */
  inProgress: boolean;
  /** The earliest problem in log order (what to look at first). */
  firstBad: AuditProblem | null;
  /** At most 100 problems, log problems first in log order. */
  problems: AuditProblem[];
  /** Problems found beyond those listed. */
  moreProblems: number;
}

export interface VerifyAuditOptions extends AuditLocation {
  /** The public key to trust (SPKI PEM or KeyObject); default: the one beside the checkpoints. Pin it when you can. */
  publicKey?: KeyObject | string | undefined;
}

const MAX_PROBLEMS = 100;
/** What a writer appends during open(), before its first checkpoint. */
const OPEN_KINDS: ReadonlySet<string> = new Set([OPEN_KIND, 'repair']);
/** Problems that name one record (the rest name a range or a file). */
const PINPOINT: ReadonlySet<AuditProblemCode> = new Set<AuditProblemCode>([
  'torn-tail',
  'malformed',
  'non-canonical',
  'schema',
  'record-hash',
  'seq',
  'chain',
  'genesis',
  'truncated',
  'after-close',
  'log-missing',
]);

interface IndexedCheckpoint {
  cp: Checkpoint;
  line: number;
}

/**
 * Verify the log and its checkpoints. Returns a report; `ok` is false on any
 * problem. Throws E_CONFIG only when there is nothing to verify (no log and no
 * checkpoints) or a given public key is unreadable.
 *
 * @example
 * ```ts
 * const report = await verifyAudit({ dir: '.authority' });
 * if (!report.ok) console.error(report.firstBad?.message);
 * ```
 */
export async function verifyAudit(options: VerifyAuditOptions): Promise<AuditVerifyReport> {
  const paths = auditPaths(options);
  const problems: AuditProblem[] = [];
  let moreProblems = 0;
  const add = (p: AuditProblem): void => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
    else moreProblems += 1;
  };

  let key: AuditPublicKey | null = null;
  if (options.publicKey !== undefined) key = publicKeyFrom(options.publicKey);
  else if (fs.existsSync(paths.publicKeyFile)) key = publicKeyFrom(fs.readFileSync(paths.publicKeyFile, 'utf8'));

  const cpFiles = fs.existsSync(paths.checkpointDir) ? fs.readdirSync(paths.checkpointDir).filter((f) => f.endsWith(CHECKPOINT_FILE_SUFFIX)).sort() : [];
  const report: AuditVerifyReport = {
    ok: false,
    logFile: paths.logFile,
    checkpointFile: null,
    origin: null,
    keyId: key?.keyId ?? null,
    records: 0,
    bytes: 0,
    checkpoints: 0,
    latestCheckpoint: null,
    consistencyChecked: 0,
    uncovered: 0,
    inProgress: false,
    firstBad: null,
    problems,
    moreProblems: 0,
  };

  if (!fs.existsSync(paths.logFile)) {
    if (cpFiles.length === 0) throw new AuthorityError(ErrorCode.CONFIG, `there is no audit log at ${paths.logFile}`, { data: { logFile: paths.logFile } });
    add({ code: 'log-missing', message: `the audit log ${paths.logFile} is missing, but checkpoints of a log exist (${cpFiles.join(', ')})`, seq: 0, line: 1 });
    return finish(report, moreProblems);
  }
  const writerLive = lockHeldByLiveWriter(paths.lockFile);

  // The origin decides which checkpoint file belongs to this log.
  let origin: string | null = null;
  for await (const first of readLines(paths.logFile, 0, undefined, MAX_LINE_BYTES)) {
    const parsed = first.complete ? parseRecordLine(first.bytes) : null;
    if (parsed?.ok === true && parsed.record.seq === 0 && parsed.record.origin !== undefined) origin = parsed.record.origin;
    break;
  }
  let cpFile: string | null = null;
  if (origin !== null) cpFile = checkpointFileFor(paths.checkpointDir, origin);
  else if (cpFiles.length === 1) cpFile = `${paths.checkpointDir}/${cpFiles[0] as string}`;
  report.origin = origin;
  report.checkpointFile = cpFile;
  const foreign = cpFiles.filter((f) => cpFile === null || f !== basename(cpFile));
  if (foreign.length > 0) {
    add({
      code: 'foreign-checkpoints',
      message: `the checkpoint folder holds checkpoints of another log (${foreign.join(', ')}): the log may have been replaced by a new one`,
    });
  }

  // The writer's saved state names a checkpoint it wrote before saving it. Read it before the checkpoints,
  // or a live writer that checkpoints and saves while this runs makes the file look like it lost some.
  const saved = key === null || origin === null ? null : readSavedCheckpoint(paths.stateFile, key);
  // Checkpoints are read before the log, so a live writer can only have made the log longer than they say.
  const checkpoints: IndexedCheckpoint[] = [];
  if (cpFile !== null && fs.existsSync(cpFile)) {
    if (key === null) {
      add({ code: 'key-missing', message: `no public key to verify checkpoints with (${paths.publicKeyFile} is missing; pass one)` });
    } else {
      let lineNo = 0;
      for await (const line of readLines(cpFile, 0, undefined, 64 * 1024)) {
        lineNo += 1;
        if (!line.complete) {
          if (!writerLive) add({ code: 'checkpoint-torn', message: `checkpoint line ${lineNo} is unfinished (${line.length} bytes without a newline): a crash while checkpointing, or a cut` });
          break;
        }
        const parsed = parseCheckpointLine(line.bytes, key.publicKey, key.keyId);
        if (!parsed.ok) {
          add({ code: 'checkpoint-invalid', message: `checkpoint line ${lineNo}: ${parsed.message}` });
          continue;
        }
        const cp = parsed.checkpoint;
        const ref = { size: cp.size, time: cp.time, line: lineNo };
        if (origin !== null && cp.origin !== origin) {
          add({ code: 'checkpoint-invalid', message: `checkpoint line ${lineNo} is about log ${cp.origin}, not ${origin}`, checkpoint: ref });
          continue;
        }
        const prev = checkpoints[checkpoints.length - 1];
        // Sizes only grow; a clean close may re-sign the same size, with the same root.
        if (prev !== undefined && (cp.size < prev.cp.size || (cp.size === prev.cp.size && cp.root !== prev.cp.root))) {
          add({
            code: 'checkpoint-order',
            message: `checkpoint line ${lineNo} (size ${cp.size}) goes back from the one before it (size ${prev.cp.size}): checkpoints only ever grow`,
            checkpoint: ref,
          });
          continue;
        }
        checkpoints.push({ cp, line: lineNo });
      }
    }
  }
  report.checkpoints = checkpoints.length;
  const latest = checkpoints[checkpoints.length - 1]?.cp ?? null;
  report.latestCheckpoint = latest === null ? null : { size: latest.size, root: latest.root, time: latest.time };

  // One pass over the log: the chain, the tree of all whole lines, and each checkpoint as its size comes by.
  const cursor = new ChainCursor();
  const tree = new CompactRange();
  let nextCp = 0;
  let prevRange: CompactRange | null = null; // the tree at the previous valid-and-matching checkpoint
  let prevCp: IndexedCheckpoint | null = null;
  let prevMatched: IndexedCheckpoint | null = null;
  const since = new LeafList();
  let lineNo = 0;
  let end = 0;
  let lastHash: string | null = null;
  let firstAfterClose: { seq: number; line: number; offset: number; kind: string } | null = null;
  /** Records found where another seq was expected: matched up after the walk to tell moved records from missing ones. */
  const misplaced: Array<{ problem: AuditProblem; expected: number; found: number; line: number }> = [];
  const logSize = (await fs.promises.stat(paths.logFile)).size;
  for await (const line of readLines(paths.logFile, 0, logSize, MAX_LINE_BYTES)) {
    lineNo += 1;
    const at = { seq: cursor.seq, line: lineNo, offset: line.offset };
    if (!line.complete) {
      if (writerLive) report.inProgress = true;
      else {
        add({
          code: 'torn-tail',
          message: `the last line (line ${lineNo}) is unfinished: ${line.length} bytes without a newline. A crash mid-write leaves this (the writer cuts it on its next open); so does cutting a record`,
          ...at,
        });
      }
      break;
    }
    end = line.offset + line.length + 1;
    const leaf = leafHash(line.bytes);
    tree.append(leaf);
    if (nextCp < checkpoints.length) since.push(leaf);
    const step = cursor.step(line.bytes, line.offset, true);
    if (step.ok) {
      lastHash = step.record.hash;
      if (latest?.final === true && at.seq >= latest.size && firstAfterClose === null && !OPEN_KINDS.has(step.record.kind)) {
        firstAfterClose = { ...at, kind: step.record.kind };
      }
    } else {
      lastHash = step.record?.hash ?? null;
      const problem: AuditProblem = { code: step.problem, message: `record ${at.seq} (line ${lineNo}): ${step.message}`, ...at };
      add(problem);
      if (step.problem === 'seq' && step.record !== undefined) misplaced.push({ problem, expected: at.seq, found: step.record.seq, line: lineNo });
      // A record from earlier in the sequence (moved or copied here) is reported on its own; the walk
      // goes on from where it was, so the records after it are checked against their true neighbours.
      const goesBack = step.problem === 'seq' && step.record !== undefined && step.record.seq < at.seq;
      if (step.record === undefined) cursor.skipUnreadable(line.bytes, line.offset);
      else if (!goesBack) cursor.resyncAfter(step.record, line.bytes, line.offset);
    }
    // Every checkpoint whose size is the number of lines so far.
    while (nextCp < checkpoints.length && (checkpoints[nextCp] as IndexedCheckpoint).cp.size <= tree.size) {
      const ic = checkpoints[nextCp] as IndexedCheckpoint;
      nextCp += 1;
      if (ic.cp.size < tree.size) continue; // unreachable: sizes grow by one per line
      const cp = ic.cp;
      const ref = { size: cp.size, time: cp.time, line: ic.line };
      const matches = tree.root().toString('hex') === cp.root && end === cp.offset && lastHash === cp.last;
      if (!matches) {
        const from = prevMatched?.cp.size ?? 0;
        add({
          code: 'root-mismatch',
          message:
            `the first ${cp.size} records do not match the checkpoint of ${cp.time} (checkpoint line ${ic.line}): ` +
            `a record between seq ${from} and ${cp.size - 1} was changed, inserted, removed or rewritten` +
            (prevMatched === null ? '' : ` (the checkpoint of size ${from} still matches)`),
          seq: from,
          line: from + 1,
          checkpoint: ref,
        });
      } else if (prevCp !== null && prevRange !== null && prevMatched === prevCp) {
        // Both ends match the log: the log's own consistency proof must take the older signed root to the newer.
        const proof = consistencyProof(prevCp.cp.size, cp.size, rangeHashFromFrontier(prevRange, since));
        report.consistencyChecked += 1;
        if (!verifyConsistency(prevCp.cp.size, cp.size, proof, Buffer.from(prevCp.cp.root, 'hex'), Buffer.from(cp.root, 'hex'))) {
          add({ code: 'checkpoint-inconsistent', message: `checkpoint line ${ic.line} is not an append-only extension of checkpoint line ${prevCp.line}`, checkpoint: ref });
        }
      }
      if (matches) prevMatched = ic;
      prevCp = ic;
      prevRange = tree.clone();
      since.clear();
    }
  }
  report.records = tree.size;
  report.bytes = end;
  explainMisplaced(misplaced);

  // Checkpoints the log never reached: its tail is gone, or an older copy stands in its place.
  const beyond = checkpoints.filter((c) => c.cp.size > tree.size);
  const furthest = beyond[beyond.length - 1];
  if (furthest !== undefined) {
    const cp = furthest.cp;
    add({
      code: 'truncated',
      message:
        `the log ends after ${tree.size} records, but the checkpoint of ${cp.time} (checkpoint line ${furthest.line}) covers ${cp.size}: ` +
        `${cp.size - tree.size} records (seq ${tree.size} to ${cp.size - 1}) are missing. The tail was cut, or an older copy of the log was restored`,
      seq: tree.size,
      line: tree.size + 1,
      checkpoint: { size: cp.size, time: cp.time, line: furthest.line },
    });
  }
  if (key !== null && checkpoints.length === 0 && tree.size > 0 && cpFile !== null) {
    add({
      code: 'no-checkpoint',
      message: `no valid checkpoint covers this log (${fs.existsSync(cpFile) ? cpFile + ' holds none' : cpFile + ' is missing'}): nothing anchors it, so a rewrite could not be told apart`,
    });
  }
  // The checkpoint file must still hold one at least as new as the saved state names.
  if (saved !== null && saved.origin === origin && saved.size > (latest?.size ?? 0)) {
    add({
      code: 'checkpoints-removed',
      message: `the writer checkpointed ${saved.size} records at ${saved.time}, but the checkpoint file's latest covers ${latest?.size ?? 0}: checkpoints were removed`,
      checkpoint: { size: saved.size, time: saved.time, line: 0 },
    });
  }
  if (firstAfterClose !== null && !writerLive) {
    add({
      code: 'after-close',
      message:
        `record ${firstAfterClose.seq} (line ${firstAfterClose.line}, kind ${firstAfterClose.kind}) follows the final checkpoint of a clean close (${latest?.time ?? ''}) ` +
        'without a checkpoint of its own: a writer anchors its first records at open, so this was appended by something else',
      seq: firstAfterClose.seq,
      line: firstAfterClose.line,
      offset: firstAfterClose.offset,
    });
  }
  report.uncovered = latest === null ? tree.size : Math.max(0, tree.size - latest.size);
  return finish(report, moreProblems);
}

/**
 * A record that skips ahead reads as "records are missing" until the expected
 * one turns up later in the file: then nothing is missing, the records are out
 * of order (two neighbours swapped, or one moved). Say so, at both places.
 */
function explainMisplaced(misplaced: Array<{ problem: AuditProblem; expected: number; found: number; line: number }>): void {
  for (const ahead of misplaced) {
    if (ahead.found <= ahead.expected) continue;
    const later = misplaced.find((m) => m.line > ahead.line && m.found === ahead.expected && m.found < m.expected);
    if (later === undefined) continue;
    const swapped = later.line === ahead.line + 1 && ahead.found === ahead.expected + 1;
    const how = swapped ? `records ${ahead.expected} and ${ahead.found} were swapped` : `record ${ahead.expected} was moved`;
    ahead.problem.message =
      `record ${ahead.expected} (line ${ahead.line}): records are out of order, not missing: line ${ahead.line} holds seq ${ahead.found}, ` +
      `and seq ${ahead.expected} comes later, at line ${later.line} (${how})`;
    later.problem.message = `record ${later.found} (line ${later.line}) is out of order: it belongs at line ${ahead.line} (${how})`;
  }
}

function readSavedCheckpoint(stateFile: string, key: AuditPublicKey): Checkpoint | null {
  try {
    const doc = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { checkpoint?: Checkpoint };
    if (doc.checkpoint === undefined) return null;
    const parsed = parseCheckpointLine(checkpointLine(doc.checkpoint).subarray(0, -1), key.publicKey, key.keyId);
    return parsed.ok ? parsed.checkpoint : null;
  } catch {
    return null;
  }
}

function finish(report: AuditVerifyReport, moreProblems: number): AuditVerifyReport {
  // Problems naming one record first, in log order; then ranges and files, in log order where they have one.
  const rank = (p: AuditProblem): number => (PINPOINT.has(p.code) ? 0 : 1);
  report.problems.sort((a, b) => rank(a) - rank(b) || (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER));
  report.firstBad = report.problems[0] ?? null;
  report.moreProblems = moreProblems;
  report.ok = report.problems.length === 0;
  return report;
}
