/**
 * Where Authority keeps its state when nothing else is configured: the HMAC
 * keyring, the audit log and its checkpoints, revocations, secrets and the
 * compile cache. Created 0700.
 * @module
 */
import { mkdirSync, chmodSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

export const DEFAULT_DATA_DIR = '.authority';

/** The folder: an explicit choice, else $AUTHORITY_DATA_DIR, else `.authority/` under `cwd`. */
export function resolveDataDir(explicit?: string, env: Readonly<Record<string, string | undefined>> = process.env, cwd = process.cwd()): string {
  const chosen = explicit ?? env['AUTHORITY_DATA_DIR'] ?? DEFAULT_DATA_DIR;
  return resolve(cwd, chosen);
}

/** Create `dir` (and parents) with mode 0700 if missing, and tighten an existing one. */
export function ensurePrivateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return dir;
}

/** The fixed layout inside a data folder. Every module takes its paths from here. */
export function dataPaths(dataDir: string) {
  return {
    root: dataDir,
    keyring: resolve(dataDir, 'keys.json'),
    /** The policy `authority run` and `authority mcp` use when no --policy is given. */
    policy: resolve(dataDir, 'policy.json'),
    revocations: resolve(dataDir, 'revocations.jsonl'),
    secrets: resolve(dataDir, 'secrets.json'),
    auditDir: resolve(dataDir, 'audit'),
    checkpointDir: resolve(dataDir, 'checkpoints'),
    auditSigningKey: resolve(dataDir, 'audit-signing-key.pem'),
    cacheDir: resolve(dataDir, 'cache'),
    /** Pulled registry content, by digest (`authority tools pull`). */
    ociCache: resolve(dataDir, 'oci'),
    toolsDir: resolve(dataDir, 'tools'),
    /** Pre-images of the files runs changed, kept so a run can be undone. */
    undoDir: resolve(dataDir, 'undo'),
    /** While this file exists, every runtime on this data folder is halted (`authority halt`). */
    haltFile: resolve(dataDir, 'HALT'),
  } as const;
}
export type DataPaths = ReturnType<typeof dataPaths>;

/**
 * The reason a HALT file gives: `authority halt` writes JSON with a `reason`;
 * a file made by hand may hold a line of text, or nothing. An unreadable file
 * still halts (fail closed); its reason is then empty.
 */
export function haltReason(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  let reason: unknown;
  try {
    reason = (JSON.parse(text) as { reason?: unknown }).reason;
  } catch {
    reason = undefined;
  }
  return (typeof reason === 'string' ? reason : (text.split('\n')[0] ?? '')).trim().slice(0, 200);
}
