/**
 * The audit witness. Each node keeps its own durable, hash-chained log (its
 * local fsync stays the durability point) and publishes every signed
 * checkpoint to Redis. A checkpoint, once witnessed, cannot be taken back:
 * Redis keeps the largest one per log, and records an attempt to publish a
 * smaller one. So a node whose log was truncated or restored from an older
 * copy no longer reaches the size (and root) it once signed, and
 * `authority audit verify --witness` says so.
 *
 * `<prefix>:{fleet}:witness` is a hash: log origin -> JSON
 * `{ node, origin, size, root, time, records, cp, publishedAt, seenAt, regressed? }`
 * where `cp` is the signed checkpoint line exactly as the node wrote it.
 * @module
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/index.ts';
import { checkpointLine, parseCheckpointLine, type Checkpoint } from '../audit/checkpoint.ts';
import { readLines } from '../audit/lines.ts';
import { leafHash, LeafList, merkleRoot } from '../audit/merkle.ts';
import { auditPaths, type AuditLocation } from '../audit/paths.ts';
import { MAX_LINE_BYTES, parseRecordLine } from '../audit/record.ts';
import { publicKeyFrom } from '../audit/signing.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { RedisClient } from './redis.ts';
import { evalScript } from './scripts.ts';

// KEYS: witness. ARGV: origin, size, record json. Keeps the largest size per origin (Redis's clock for times).
const PUBLISH = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rec = cjson.decode(ARGV[3])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local c = cjson.decode(cur)
  if tonumber(c.size) > tonumber(ARGV[2]) then
    c.regressed = { size = tonumber(ARGV[2]), at = now, records = rec.records }
    c.seenAt = now
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(c))
    return 0
  end
  if tonumber(c.size) == tonumber(ARGV[2]) then
    c.seenAt = now
    c.records = rec.records
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(c))
    return 1
  end
end
rec.publishedAt = now
rec.seenAt = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1
`;

/** What the witness holds for one node's log. */
export interface WitnessEntry {
  node: string;
  origin: string;
  /** Records covered by the latest checkpoint the node published. */
  size: number;
  root: string;
  /** The checkpoint's own time. */
  time: string;
  /** Durable records in the node's log when it last reported. */
  records: number;
  /** The signed checkpoint line, as the node wrote it. */
  cp: string;
  /** Redis time (epoch ms) the checkpoint was first published, and the node was last heard from. */
  publishedAt: number;
  seenAt: number;
  /** The node later published a smaller checkpoint for this log: it was rolled back. */
  regressed?: { size: number; at: number; records?: number } | undefined;
}

/** Publish one checkpoint (and how many records the log holds). Resolves false if the witness holds a larger one. */
export async function publishCheckpoint(client: RedisClient, key: string, node: string, cp: Checkpoint, records: number): Promise<boolean> {
  const rec = { node, origin: cp.origin, size: cp.size, root: cp.root, time: cp.time, records, cp: checkpointLine(cp).toString('utf8').trimEnd() };
  const r = await evalScript(client, PUBLISH, [key], [cp.origin, String(cp.size), JSON.stringify(rec)], 'witness publish');
  return Number(r) === 1;
}

/** Every log the witness knows, by node then origin. */
export async function readWitness(client: RedisClient, key: string): Promise<WitnessEntry[]> {
  const flat = (await evalScript(client, "return redis.call('HGETALL', KEYS[1])", [key], [], 'witness read')) as string[];
  const out: WitnessEntry[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    try {
      out.push(JSON.parse(flat[i + 1] as string) as WitnessEntry);
    } catch {
      out.push({ node: '?', origin: flat[i] as string, size: 0, root: '', time: '', records: 0, cp: '', publishedAt: 0, seenAt: 0 });
    }
  }
  return out.sort((a, b) => a.node.localeCompare(b.node) || a.origin.localeCompare(b.origin));
}

/**
 * Publish the log's latest checkpoint whenever it grows, and a heartbeat
 * (the record count) every `everyMs`. Failures are logged and retried on the
 * next tick: the local log never waits on the witness. Returns a stop
 * function that publishes once more (the final checkpoint of a clean close).
 */
export function startWitness(fleet: { client: RedisClient; witnessKey: string; node: string }, audit: AuditLog, logger: Logger, everyMs = 500): () => Promise<void> {
  let running: Promise<void> | undefined;
  let warned = false;
  const tick = (): Promise<void> => {
    running ??= (async () => {
      const cp = audit.latestCheckpoint;
      if (cp === null) return;
      try {
        const accepted = await publishCheckpoint(fleet.client, fleet.witnessKey, fleet.node, cp, audit.stats.records);
        if (!accepted) logger.error({ origin: cp.origin, size: cp.size }, 'the audit witness holds a larger checkpoint of this log: it was rolled back');
        warned = false;
      } catch (err) {
        if (!warned) logger.warn({ err }, 'could not publish the audit checkpoint to the witness; retrying');
        warned = true;
      }
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void tick(), everyMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
    await tick();
  };
}

/** What the witness says about one local log. */
export interface WitnessCheck {
  ok: boolean;
  origin: string | null;
  /** The witnessed checkpoint, if the witness knows this log. */
  witnessed: { node: string; size: number; time: string } | null;
  /** Records in the local log. */
  records: number;
  /** Why not ok. */
  problem?: { code: 'rolled-back' | 'root-mismatch' | 'bad-signature' | 'regressed' | 'unwitnessed'; message: string } | undefined;
}

/**
 * Check a local log against what its node published: it must still hold at
 * least the witnessed size, with the same Merkle root over those records.
 */
export async function checkWitness(location: AuditLocation, entries: readonly WitnessEntry[]): Promise<WitnessCheck> {
  const paths = auditPaths(location);
  let origin: string | null = null;
  const leaves = new LeafList();
  if (fs.existsSync(paths.logFile)) {
    for await (const l of readLines(paths.logFile, 0, undefined, MAX_LINE_BYTES)) {
      if (!l.complete) break;
      if (leaves.length === 0) {
        const parsed = parseRecordLine(l.bytes);
        origin = parsed.ok ? (parsed.record.origin ?? null) : null;
      }
      leaves.push(leafHash(l.bytes));
    }
  }
  const records = leaves.length;
  const w = entries.find((e) => e.origin === origin);
  if (w === undefined) {
    return { ok: false, origin, witnessed: null, records, problem: { code: 'unwitnessed', message: `the witness holds no checkpoint of this log (${origin ?? 'no genesis record'}): it never published one, or the log was replaced` } };
  }
  const witnessed = { node: w.node, size: w.size, time: w.time };
  const key = publicKeyFrom(readKey(paths.publicKeyFile));
  const parsed = parseCheckpointLine(Buffer.from(w.cp, 'utf8'), key.publicKey, key.keyId);
  if (!parsed.ok || parsed.checkpoint.size !== w.size || parsed.checkpoint.root !== w.root || parsed.checkpoint.origin !== origin) {
    return { ok: false, origin, witnessed, records, problem: { code: 'bad-signature', message: `the witnessed checkpoint of ${w.node} does not verify under this log's key${parsed.ok ? '' : `: ${parsed.message}`}` } };
  }
  if (records < w.size) {
    return {
      ok: false,
      origin,
      witnessed,
      records,
      problem: { code: 'rolled-back', message: `the log holds ${records} records, but node ${w.node} published a checkpoint of ${w.size} records at ${w.time}: it was truncated or rolled back` },
    };
  }
  const cut = new LeafList();
  for (let i = 0; i < w.size; i++) cut.push(leaves.at(i) as Buffer);
  if (merkleRoot(cut).toString('hex') !== w.root) {
    return { ok: false, origin, witnessed, records, problem: { code: 'root-mismatch', message: `the log's first ${w.size} records differ from those node ${w.node} published a checkpoint of at ${w.time}: they were rewritten` } };
  }
  if (w.regressed !== undefined) {
    return { ok: false, origin, witnessed, records, problem: { code: 'regressed', message: `node ${w.node} published a checkpoint of ${w.regressed.size} records after one of ${w.size}: its log was rolled back at some point` } };
  }
  return { ok: true, origin, witnessed, records };
}

function readKey(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new AuthorityError(ErrorCode.CONFIG, `cannot read the audit public key ${file}`, { cause: e, data: { file } });
  }
}
