/**
 * Signed checkpoints: the log's origin, a tree size and the Merkle root of the
 * first `size` records, with the time, signed with Ed25519. One canonical JSON
 * object per line in an append-only file per log, kept apart from the log.
 *
 * Signature: Ed25519 over the UTF-8 bytes of
 * `"authority-audit-checkpoint/v1\n" + canonicalJson(checkpoint without sig)`,
 * in standard base64. The prefix keeps these signatures from meaning anything
 * else.
 * @module
 */
import fs from 'node:fs';
import { sign, verify, type KeyObject } from 'node:crypto';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { canonicalJson, isSha256Hex } from './canonical-json.ts';
import { ORIGIN_RE } from './record.ts';
import type { AuditSigner } from './signing.ts';

export const CHECKPOINT_VERSION = 1;
const DOMAIN = 'authority-audit-checkpoint/v1\n';
const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const KEY_ID_RE = /^[0-9a-f]{16}$/;
const SIG_RE = /^[A-Za-z0-9+/]{86}==$/;

export interface Checkpoint {
  v: typeof CHECKPOINT_VERSION;
  /** The log this checkpoint is about ("authority-audit/<hex>", from its genesis record). */
  origin: string;
  /** Number of records covered: seq 0 .. size-1. */
  size: number;
  /** Hex Merkle root of those records' lines. */
  root: string;
  /** When the checkpoint was made (ISO 8601 UTC, ms). */
  time: string;
  /** Byte length of the log holding exactly those records. */
  offset: number;
  /** Hash of record size-1: lets an opener check where the checkpoint ends without rehashing. */
  last: string;
  /** Present (true) only on the checkpoint written by a clean close: nothing may follow it but the next open's own records. */
  final?: true;
  /** Which key signed (see keyIdOf). */
  keyId: string;
  /** Base64 Ed25519 signature. */
  sig: string;
}

export type CheckpointBody = Omit<Checkpoint, 'sig' | 'keyId' | 'v'>;

function signedBytes(body: Omit<Checkpoint, 'sig'>): Buffer {
  return Buffer.from(DOMAIN + canonicalJson(body), 'utf8');
}

/** Sign a checkpoint. */
export function signCheckpoint(body: CheckpointBody, signer: AuditSigner): Checkpoint {
  const unsigned = { v: CHECKPOINT_VERSION, ...body, keyId: signer.keyId } as const;
  const sig = sign(null, signedBytes(unsigned), signer.privateKey).toString('base64');
  return { ...unsigned, sig };
}

/** The checkpoint's line in the checkpoint file, newline included. */
export function checkpointLine(cp: Checkpoint): Buffer {
  return Buffer.from(canonicalJson(cp) + '\n', 'utf8');
}

export type ParsedCheckpoint = { ok: true; checkpoint: Checkpoint } | { ok: false; message: string };

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Check one checkpoint line (without its newline): canonical JSON, the fields,
 * and the signature under `publicKey` (whose id must match `keyId`).
 */
export function parseCheckpointLine(bytes: Uint8Array, publicKey: KeyObject, keyId: string): ParsedCheckpoint {
  let text: string;
  let v: unknown;
  try {
    text = decoder.decode(bytes);
    v = JSON.parse(text);
  } catch {
    return { ok: false, message: 'checkpoint line is not JSON text' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, message: 'checkpoint line is not a JSON object' };
  const c = v as Record<string, unknown>;
  try {
    if (canonicalJson(c) !== text) return { ok: false, message: 'checkpoint line is not in canonical JSON form' };
  } catch {
    return { ok: false, message: 'checkpoint line is not in canonical JSON form' };
  }
  const allowed = new Set(['v', 'origin', 'size', 'root', 'time', 'offset', 'last', 'final', 'keyId', 'sig']);
  for (const k of Object.keys(c)) if (!allowed.has(k)) return { ok: false, message: `checkpoint has an unknown field "${k}"` };
  if (c['v'] !== CHECKPOINT_VERSION) return { ok: false, message: `unknown checkpoint version ${JSON.stringify(c['v'])}` };
  if (typeof c['origin'] !== 'string' || !ORIGIN_RE.test(c['origin'])) return { ok: false, message: 'checkpoint `origin` is not valid' };
  if (!Number.isSafeInteger(c['size']) || (c['size'] as number) < 1) return { ok: false, message: 'checkpoint `size` is not a positive integer' };
  if (!Number.isSafeInteger(c['offset']) || (c['offset'] as number) < 1) return { ok: false, message: 'checkpoint `offset` is not a positive integer' };
  if (!isSha256Hex(c['root']) || !isSha256Hex(c['last'])) return { ok: false, message: 'checkpoint `root` or `last` is not a hex SHA-256' };
  if (typeof c['time'] !== 'string' || !TIME_RE.test(c['time'])) return { ok: false, message: 'checkpoint `time` is not an ISO 8601 UTC time' };
  if (c['final'] !== undefined && c['final'] !== true) return { ok: false, message: 'checkpoint `final` is not true' };
  if (typeof c['keyId'] !== 'string' || !KEY_ID_RE.test(c['keyId'])) return { ok: false, message: 'checkpoint `keyId` is not valid' };
  if (typeof c['sig'] !== 'string' || !SIG_RE.test(c['sig'])) return { ok: false, message: 'checkpoint `sig` is not a base64 Ed25519 signature' };
  if (c['keyId'] !== keyId) return { ok: false, message: `checkpoint is signed by key ${c['keyId']}, not by the audit key ${keyId}` };
  const { sig, ...unsigned } = c as unknown as Checkpoint;
  if (!verify(null, signedBytes(unsigned), publicKey, Buffer.from(sig, 'base64'))) {
    return { ok: false, message: 'checkpoint signature does not verify (the checkpoint was changed or forged)' };
  }
  return { ok: true, checkpoint: c as unknown as Checkpoint };
}

export interface CheckpointFileTail {
  /** The last whole, valid checkpoint, or null if the file is missing or empty. */
  latest: Checkpoint | null;
  /** Bytes in the file. */
  size: number;
  /** Bytes after the last newline: a torn append. */
  tornBytes: number;
}

/**
 * Read the last checkpoint of a checkpoint file (for the writer, which needs
 * no more). A last whole line that does not verify is tampering: E_AUDIT_TAMPERED.
 */
export async function readLatestCheckpoint(file: string, publicKey: KeyObject, keyId: string): Promise<CheckpointFileTail> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { latest: null, size: 0, tornBytes: 0 };
    throw e;
  }
  try {
    const size = (await handle.stat()).size;
    const window = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(window);
    await handle.read(buf, 0, window, size - window);
    const lastNl = buf.lastIndexOf(0x0a);
    if (lastNl === -1) {
      if (window < size) throw new AuthorityError(ErrorCode.AUDIT_TAMPERED, `${file}: its last 64 KiB hold no checkpoint line`, { data: { file } });
      return { latest: null, size, tornBytes: size };
    }
    const tornBytes = window - lastNl - 1;
    const prevNl = buf.lastIndexOf(0x0a, lastNl - 1);
    if (prevNl === -1 && window < size) throw new AuthorityError(ErrorCode.AUDIT_TAMPERED, `${file}: its last line is longer than any checkpoint`, { data: { file } });
    const line = buf.subarray(prevNl + 1, lastNl);
    const parsed = parseCheckpointLine(line, publicKey, keyId);
    if (!parsed.ok) throw new AuthorityError(ErrorCode.AUDIT_TAMPERED, `${file}: the latest checkpoint is not valid: ${parsed.message}`, { data: { file } });
    return { latest: parsed.checkpoint, size, tornBytes };
  } finally {
    await handle.close();
  }
}
