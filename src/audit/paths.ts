/**
 * Where the audit log keeps its files. By default everything comes from the
 * data folder's layout (`dataPaths()`); an embedder may move the log or the
 * checkpoints (checkpoints belong on another disk or host when possible).
 * @module
 */
import { join } from 'node:path';
import { dataPaths } from '../data-dir.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';

export interface AuditLocation {
  /** The data folder; its layout gives every path not set below. */
  dir?: string | undefined;
  /** Folder of the log file (default `dataPaths(dir).auditDir`). */
  auditDir?: string | undefined;
  /** Folder of the checkpoints and the public key (default `dataPaths(dir).checkpointDir`). */
  checkpointDir?: string | undefined;
}

export interface AuditPaths {
  auditDir: string;
  /** The log: one canonical JSON record per line. */
  logFile: string;
  /** Held by the one writer: pid, host, time. */
  lockFile: string;
  /** Tree state saved at a clean close so the next open need not rehash the log. */
  stateFile: string;
  checkpointDir: string;
  /** The Ed25519 public key that verifies checkpoints (SPKI PEM). */
  publicKeyFile: string;
  /** The Ed25519 private key (PKCS#8 PEM, 0600) when the data folder holds it. */
  signingKeyFile: string | undefined;
}

export const LOG_FILE_NAME = 'log.jsonl';
export const PUBLIC_KEY_FILE_NAME = 'audit-signing-key.pub.pem';
export const CHECKPOINT_FILE_SUFFIX = '.checkpoints.jsonl';

/** Resolve the audit files from a data folder and optional overrides. */
export function auditPaths(loc: AuditLocation): AuditPaths {
  const base = loc.dir === undefined ? undefined : dataPaths(loc.dir);
  const auditDir = loc.auditDir ?? base?.auditDir;
  const checkpointDir = loc.checkpointDir ?? base?.checkpointDir;
  if (auditDir === undefined || checkpointDir === undefined) {
    throw new AuthorityError(ErrorCode.CONFIG, 'the audit log needs a data folder (`dir`) or both `auditDir` and `checkpointDir`', {
      data: { field: loc.auditDir === undefined ? 'auditDir' : 'checkpointDir' },
    });
  }
  return {
    auditDir,
    logFile: join(auditDir, LOG_FILE_NAME),
    lockFile: join(auditDir, 'log.lock'),
    stateFile: join(auditDir, 'state.json'),
    checkpointDir,
    publicKeyFile: join(checkpointDir, PUBLIC_KEY_FILE_NAME),
    signingKeyFile: base?.auditSigningKey,
  };
}

/** The checkpoint file of the log with this origin ("authority-audit/<hex>"). */
export function checkpointFileFor(checkpointDir: string, origin: string): string {
  const id = origin.slice(origin.lastIndexOf('/') + 1);
  return join(checkpointDir, `${id}${CHECKPOINT_FILE_SUFFIX}`);
}
