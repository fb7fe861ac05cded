/**
 * The HMAC keyring: keys with ids, one active key for issuing, retired keys
 * kept for verification only. Key material never leaves this file except into
 * the keyring file itself: not into errors, logs, `inspect` or JSON.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { inspect } from 'node:util';
import { z } from 'zod';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { dataPaths, ensurePrivateDir } from '../data-dir.ts';
import { KEY_ID_RE } from './claims.ts';
import { hmacPads, hmacWithPads, type HmacPads } from './hmac.ts';
import { writeFileAtomic } from './files.ts';

/** Environment variable holding keys: `id:base64url-secret[,id:secret...]` (first is active) or the keyring JSON. */
export const KEYS_ENV = 'AUTHORITY_KEYS';
/** Secrets are 32 to 128 random bytes; `keys new` makes 32. */
export const MIN_SECRET_BYTES = 32;
export const MAX_SECRET_BYTES = 128;

export type KeyStatus = 'active' | 'retired';
export type KeyringSource = 'memory' | 'env' | 'file';

/** What may be shown about a key: never its secret. */
export interface KeyInfo {
  readonly id: string;
  readonly status: KeyStatus;
  readonly createdAt: number;
}

interface KeyEntry extends KeyInfo {
  readonly secret: Buffer;
  readonly pads: HmacPads;
}

/** A key as an embedder hands it over. */
export interface KeyInput {
  id: string;
  /** Raw bytes, or base64url text. */
  secret: Uint8Array | string;
  status?: KeyStatus | undefined;
  createdAt?: number | undefined;
}

const B64URL_RE = /^[A-Za-z0-9_-]+$/;

const FILE_SCHEMA = z.strictObject({
  version: z.literal(1),
  keys: z.array(
    z.strictObject({
      id: z.string(),
      status: z.enum(['active', 'retired']),
      createdAt: z.iso.datetime(),
      secret: z.string(),
    }),
  ),
});

function configError(message: string, at: string, source: string): AuthorityError {
  return new AuthorityError(ErrorCode.CONFIG, `keyring (${source}): ${at}: ${message}`, { data: { at, source } });
}

function decodeSecret(secret: Uint8Array | string, at: string, source: string): Buffer {
  let bytes: Buffer;
  if (typeof secret === 'string') {
    // Messages below never include the text: it is key material.
    if (!B64URL_RE.test(secret)) throw configError('secret is not unpadded base64url', at, source);
    bytes = Buffer.from(secret, 'base64url');
    if (bytes.toString('base64url') !== secret) throw configError('secret is not canonical base64url', at, source);
  } else {
    bytes = Buffer.from(secret);
  }
  if (bytes.length < MIN_SECRET_BYTES || bytes.length > MAX_SECRET_BYTES) {
    throw configError(`secret must be ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes`, at, source);
  }
  return bytes;
}

function makeEntries(inputs: readonly KeyInput[], source: string, at: string): Map<string, KeyEntry> {
  const keys = new Map<string, KeyEntry>();
  let active = 0;
  inputs.forEach((k, i) => {
    const where = `${at}[${i}]`;
    if (typeof k.id !== 'string' || !KEY_ID_RE.test(k.id)) throw configError('id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}', `${where}.id`, source);
    if (keys.has(k.id)) throw configError(`duplicate key id "${k.id}"`, `${where}.id`, source);
    const status = k.status ?? (i === 0 ? 'active' : 'retired');
    if (status === 'active') active++;
    const secret = decodeSecret(k.secret, `${where}.secret`, source);
    keys.set(k.id, Object.freeze({ id: k.id, status, createdAt: k.createdAt ?? 0, secret, pads: hmacPads(secret) }));
  });
  if (active > 1) throw configError('more than one key is active', at, source);
  return keys;
}

function newKeyId(taken: ReadonlyMap<string, unknown>): string {
  for (;;) {
    const id = `k-${randomBytes(4).toString('hex')}`;
    if (!taken.has(id)) return id;
  }
}

function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface KeyringFileOptions {
  /** Create the file with one fresh key when it does not exist (default false). */
  create?: boolean | undefined;
  /** Refuse a file that group or others can read (default true). A mounted secret may need false. */
  checkMode?: boolean | undefined;
}

export interface KeyringLoadOptions extends KeyringFileOptions {
  /** The data folder: its `keys.json` is used when neither `file` nor the environment gives keys. */
  dataDir?: string | undefined;
  /** A keyring file chosen by the embedder; wins over everything else. */
  file?: string | undefined;
  /** Environment to read `AUTHORITY_KEYS` from (default: none is read). */
  env?: Readonly<Record<string, string | undefined>> | undefined;
}

/**
 * HMAC keys by id. Verification picks the key named by the token (it never
 * tries every key). Rotation adds a key and retires the old active one, which
 * stays in the ring for verification until it is removed.
 *
 * @example
 * ```ts
 * const keyring = Keyring.fromDataDir(resolveDataDir(), { create: true });
 * const token = issueToken(keyring, { kind: 'fs', resource: '/data/**', methods: ['read'], ttlMs: 3_600_000 });
 * keyring.rotate(); // new tokens use the new key; `token` still verifies
 * ```
 */
export class Keyring {
  #keys: Map<string, KeyEntry>;
  #source: KeyringSource;
  #path: string | undefined;
  #diskDigest: string | undefined;
  #checkMode: boolean;
  #generation = 0;

  private constructor(keys: Map<string, KeyEntry>, source: KeyringSource, path?: string, diskDigest?: string, checkMode = true) {
    this.#keys = keys;
    this.#source = source;
    this.#path = path;
    this.#diskDigest = diskDigest;
    this.#checkMode = checkMode;
  }

  /** A fresh in-memory keyring with one new active key. */
  static generate(options: { keyId?: string; now?: number } = {}): Keyring {
    const ring = new Keyring(new Map(), 'memory');
    ring.#addKey(options.keyId, options.now ?? Date.now());
    return ring;
  }

  /** An in-memory keyring from keys the embedder holds. Without statuses, the first key is active. */
  static fromKeys(keys: readonly KeyInput[]): Keyring {
    return new Keyring(makeEntries(keys, 'memory', 'keys'), 'memory');
  }

  /**
   * Keys from `AUTHORITY_KEYS` (or `variable`): `id:secret,id:secret` with
   * base64url secrets, the first one active; or the keyring file's JSON.
   * Returns undefined when the variable is unset or empty.
   */
  static fromEnv(env: Readonly<Record<string, string | undefined>> = process.env, variable = KEYS_ENV): Keyring | undefined {
    const text = env[variable]?.trim();
    if (text === undefined || text === '') return undefined;
    if (text.startsWith('{')) return new Keyring(parseFileText(text, `$${variable}`), 'env');
    const inputs = text.split(',').map((entry, i): KeyInput => {
      const colon = entry.indexOf(':');
      if (colon <= 0) throw configError('expected id:base64url-secret', `${variable}[${i}]`, 'env');
      return { id: entry.slice(0, colon).trim(), secret: entry.slice(colon + 1).trim() };
    });
    return new Keyring(makeEntries(inputs, 'env', variable), 'env');
  }

  /** The keyring file at `path` (mode 0600, written atomically). */
  static fromFile(path: string, options: KeyringFileOptions = {}): Keyring {
    const checkMode = options.checkMode ?? true;
    if (!existsSync(path)) {
      if (options.create !== true) {
        throw new AuthorityError(ErrorCode.CONFIG, `no keyring at ${path}; create one with \`authority keys new\``, { data: { path } });
      }
      ensurePrivateDir(dirname(path));
      const ring = new Keyring(new Map(), 'file', path, undefined, checkMode);
      ring.#addKey(undefined, Date.now());
      ring.#save();
      return ring;
    }
    const { keys, diskDigest } = readKeyFile(path, checkMode);
    return new Keyring(keys, 'file', path, diskDigest, checkMode);
  }

  /** The keyring of a data folder (`keys.json`); the folder is created 0700 when `create` is set. */
  static fromDataDir(dataDir: string, options: KeyringFileOptions = {}): Keyring {
    if (options.create === true) ensurePrivateDir(dataDir);
    return Keyring.fromFile(dataPaths(dataDir).keyring, options);
  }

  /** The embedder's file if given, else `AUTHORITY_KEYS` if set in `env`, else the data folder's keyring. */
  static load(options: KeyringLoadOptions): Keyring {
    if (options.file !== undefined) return Keyring.fromFile(options.file, options);
    const fromEnv = options.env === undefined ? undefined : Keyring.fromEnv(options.env);
    if (fromEnv !== undefined) return fromEnv;
    if (options.dataDir === undefined) throw new AuthorityError(ErrorCode.CONFIG, 'no keyring: give a data folder, a keyring file or AUTHORITY_KEYS');
    return Keyring.fromDataDir(options.dataDir, options);
  }

  /** Where the keys came from. */
  get source(): KeyringSource {
    return this.#source;
  }

  /** The keyring file, when file-backed. */
  get path(): string | undefined {
    return this.#path;
  }

  /** The key new tokens are signed with, if any key is active. */
  get activeKeyId(): string | undefined {
    for (const k of this.#keys.values()) if (k.status === 'active') return k.id;
    return undefined;
  }

  /** Bumped on every change, so prepared grant sets know to re-verify. */
  get generation(): number {
    return this.#generation;
  }

  /** Ids, statuses and creation times: never key material. */
  list(): KeyInfo[] {
    return [...this.#keys.values()].map(({ id, status, createdAt }) => ({ id, status, createdAt }));
  }

  /** Whether the ring holds `keyId` (active or retired). */
  has(keyId: string): boolean {
    return this.#keys.has(keyId);
  }

  /**
   * HMAC-SHA256 of `data` under key `keyId`, or undefined when the ring has no
   * such key. The key itself never leaves the keyring.
   */
  hmac(keyId: string, data: Uint8Array): Buffer | undefined {
    const key = this.#keys.get(keyId);
    return key === undefined ? undefined : hmacWithPads(key.pads, data);
  }

  /** The status of `keyId`, or undefined when unknown. */
  status(keyId: string): KeyStatus | undefined {
    return this.#keys.get(keyId)?.status;
  }

  /**
   * Add a new active key and retire the current active one (kept for
   * verification). With `dropRetired`, keys retired before this rotation are
   * removed, so their tokens stop verifying (E_CAP_UNKNOWN_KEY).
   * File-backed keyrings are saved atomically.
   */
  rotate(options: { keyId?: string; now?: number; dropRetired?: boolean } = {}): KeyInfo {
    this.#assertWritable();
    const next = new Map(this.#keys);
    for (const [id, k] of next) {
      if (k.status === 'retired' && options.dropRetired === true) next.delete(id);
      else if (k.status === 'active') next.set(id, Object.freeze({ ...k, status: 'retired' }));
    }
    const previous = this.#keys;
    this.#keys = next;
    try {
      const info = this.#addKey(options.keyId, options.now ?? Date.now());
      this.#save();
      return info;
    } catch (e) {
      this.#keys = previous;
      throw e;
    }
  }

  /** Make `keyId` verify-only. */
  retire(keyId: string): void {
    this.#change(keyId, (next, k) => next.set(keyId, Object.freeze({ ...k, status: 'retired' })));
  }

  /** Remove `keyId`: tokens it signed fail with E_CAP_UNKNOWN_KEY from now on. */
  remove(keyId: string): void {
    this.#change(keyId, (next) => next.delete(keyId));
  }

  /** Re-read a file-backed keyring (picks up a rotation made by another process). */
  reload(): void {
    if (this.#path === undefined) return;
    const { keys, diskDigest } = readKeyFile(this.#path, this.#checkMode);
    this.#keys = keys;
    this.#diskDigest = diskDigest;
    this.#generation++;
  }

  /** Safe to log: ids and statuses only. */
  toJSON(): { source: KeyringSource; keys: KeyInfo[] } {
    return { source: this.#source, keys: this.list() };
  }

  [inspect.custom](): string {
    return `Keyring ${inspect(this.toJSON(), { depth: 3 })}`;
  }

  #change(keyId: string, apply: (next: Map<string, KeyEntry>, key: KeyEntry) => void): void {
    this.#assertWritable();
    const key = this.#keys.get(keyId);
    if (key === undefined) throw new AuthorityError(ErrorCode.CAP_UNKNOWN_KEY, `no key "${keyId}" in the keyring`, { data: { keyId } });
    const next = new Map(this.#keys);
    apply(next, key);
    const previous = this.#keys;
    this.#keys = next;
    try {
      this.#save();
      this.#generation++;
    } catch (e) {
      this.#keys = previous;
      throw e;
    }
  }

  #addKey(keyId: string | undefined, now: number): KeyInfo {
    const id = keyId ?? newKeyId(this.#keys);
    if (!KEY_ID_RE.test(id)) throw configError('id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,63}', 'keyId', this.#source);
    if (this.#keys.has(id)) throw configError(`key id "${id}" is taken`, 'keyId', this.#source);
    const secret = randomBytes(MIN_SECRET_BYTES);
    const entry: KeyEntry = Object.freeze({ id, status: 'active', createdAt: now, secret, pads: hmacPads(secret) });
    this.#keys.set(id, entry);
    this.#generation++;
    return { id, status: entry.status, createdAt: now };
  }

  #assertWritable(): void {
    if (this.#source === 'env') throw new AuthorityError(ErrorCode.CONFIG, 'keys from the environment are read-only; change AUTHORITY_KEYS instead');
  }

  #save(): void {
    if (this.#path === undefined) return;
    // Optimistic concurrency: refuse to overwrite a file another process changed since we read it.
    const current = existsSync(this.#path) ? digest(readFileSync(this.#path)) : undefined;
    if (current !== this.#diskDigest) {
      throw new AuthorityError(ErrorCode.CONFIG, `keyring ${this.#path} changed on disk since it was loaded; reload and retry`, {
        data: { path: this.#path },
      });
    }
    const doc = {
      version: 1,
      keys: [...this.#keys.values()].map((k) => ({
        id: k.id,
        status: k.status,
        createdAt: new Date(k.createdAt).toISOString(),
        secret: k.secret.toString('base64url'),
      })),
    };
    const text = JSON.stringify(doc, null, 2) + '\n';
    ensurePrivateDir(dirname(this.#path));
    writeFileAtomic(this.#path, text, 0o600);
    this.#diskDigest = digest(Buffer.from(text, 'utf8'));
  }
}

function parseFileText(text: string, source: string): Map<string, KeyEntry> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // No cause and no parser message: V8 quotes the offending text, which holds key material.
    throw configError('not valid JSON', '$', source);
  }
  const parsed = FILE_SCHEMA.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue === undefined ? '$' : ['$', ...issue.path.map(String)].join('.');
    throw configError(issue?.code === 'unrecognized_keys' ? 'unknown field' : `invalid (${issue?.code ?? 'unknown'})`, at, source);
  }
  return makeEntries(
    parsed.data.keys.map((k) => ({ id: k.id, secret: k.secret, status: k.status, createdAt: Date.parse(k.createdAt) })),
    source,
    '$.keys',
  );
}

function readKeyFile(path: string, checkMode: boolean): { keys: Map<string, KeyEntry>; diskDigest: string } {
  if (checkMode && process.platform !== 'win32') {
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new AuthorityError(
        ErrorCode.CONFIG,
        `keyring ${path} is readable by group or others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${path}`,
        { data: { path, mode } },
      );
    }
  }
  const bytes = readFileSync(path);
  return { keys: parseFileText(bytes.toString('utf8'), path), diskDigest: digest(bytes) };
}
