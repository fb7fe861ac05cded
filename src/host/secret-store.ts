/**
 * The secret store: values the deployment holds for tools (API keys...), from
 * a 0600 JSON file in the data folder, from environment variables by explicit
 * mapping, or given in memory by the embedder. Values never leave through
 * `toString`, `toJSON`, `util.inspect` or an error message; the store also
 * carries the scanner that finds them in requests, responses and tool output.
 * @module
 */
import fs from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { SECRET_NAME } from '../host-call.ts';
import { MIN_SECRET_BYTES, SecretScanner, type Redaction } from './secret-scan.ts';

/** Secret names: what `{{secret:NAME}}` and `secrets.get(NAME)` accept (one spelling, in host-call.ts). */
export { SECRET_NAME };
/** Largest value, in UTF-8 bytes. */
export const MAX_SECRET_BYTES = 16 * 1024;
const MAX_FILE_BYTES = 1024 * 1024;

/** Where a value comes from in the secrets file: the value itself, or an environment variable. */
export type SecretSource = string | { readonly env: string };

export interface SecretStoreOptions {
  /** The secrets file (`dataPaths(dir).secrets`): a JSON object `{ NAME: "value" | { "env": "VAR" } }`, mode 0600. */
  file?: string | undefined;
  /** A missing `file` means no secrets from it, instead of an error. */
  fileOptional?: boolean | undefined;
  /** Secrets read from environment variables, by explicit mapping: `{ WEATHER_KEY: { env: 'WEATHER_API_KEY' } }`. */
  env?: Readonly<Record<string, { readonly env: string }>> | undefined;
  /** Secrets the embedder holds in memory. */
  values?: Readonly<Record<string, string>> | undefined;
  /** The environment to read from (default `process.env`). */
  environment?: Readonly<Record<string, string | undefined>> | undefined;
}

const config = (message: string, at: string): AuthorityError => new AuthorityError(ErrorCode.CONFIG, message, { data: { at } });

function checkName(name: string, at: string): void {
  if (!SECRET_NAME.test(name)) throw config(`secret name "${name.slice(0, 140)}" must match ${SECRET_NAME.source}`, at);
}

/** Validate a value without ever putting it in a message. */
function checkValue(name: string, value: unknown, at: string): string {
  if (typeof value !== 'string') throw config(`secret ${name} must be a string`, at);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes < MIN_SECRET_BYTES) {
    throw config(`secret ${name} is shorter than ${MIN_SECRET_BYTES} bytes: too short to be found reliably if it leaks`, at);
  }
  if (bytes > MAX_SECRET_BYTES) throw config(`secret ${name} is longer than ${MAX_SECRET_BYTES} bytes`, at);
  if (/[\r\n\0]/.test(value)) throw config(`secret ${name} contains CR, LF or NUL, which no header may carry`, at);
  return value;
}

/**
 * The secrets of a deployment.
 *
 * @example
 * ```ts
 * const secrets = SecretStore.load({ file: dataPaths(dir).secrets, fileOptional: true, env: { WEATHER_KEY: { env: 'WEATHER_API_KEY' } } });
 * secrets.get('WEATHER_KEY');            // the value (after the gate allowed `secrets.get`)
 * secrets.redactText(toolOutput).text;   // values replaced by [REDACTED:WEATHER_KEY]
 * ```
 */
export class SecretStore {
  readonly #values: ReadonlyMap<string, string>;
  readonly #scanner: SecretScanner;

  /** A store of in-memory values; each name and value is validated (names in messages, never values). */
  constructor(values: Iterable<readonly [string, string]> | Readonly<Record<string, string>> = {}) {
    const entries = Symbol.iterator in values ? [...(values as Iterable<readonly [string, string]>)] : Object.entries(values);
    const map = new Map<string, string>();
    for (const [name, value] of entries) {
      checkName(name, `secrets.${name}`);
      if (map.has(name)) throw config(`secret ${name} is defined twice`, `secrets.${name}`);
      map.set(name, checkValue(name, value, `secrets.${name}`));
    }
    this.#values = map;
    this.#scanner = new SecretScanner(map);
    Object.freeze(this);
  }

  /** Combine the file, the environment mapping and in-memory values; a name defined twice is an error. */
  static load(options: SecretStoreOptions = {}): SecretStore {
    const environment = options.environment ?? process.env;
    const entries: [string, string][] = [];
    if (options.file !== undefined) entries.push(...readSecretsFile(options.file, { optional: options.fileOptional === true, environment }));
    for (const [name, ref] of Object.entries(options.env ?? {})) entries.push([name, fromEnv(name, ref, environment, `env.${name}`)]);
    for (const [name, value] of Object.entries(options.values ?? {})) entries.push([name, value]);
    return new SecretStore(entries);
  }

  /** The value of `name`; `E_NOT_FOUND` when there is none. The gate has already allowed `secrets.get`. */
  get(name: string): string {
    const value = typeof name === 'string' ? this.#values.get(name) : undefined;
    if (value === undefined) {
      const shown = typeof name === 'string' && SECRET_NAME.test(name) ? name : '(invalid name)';
      throw new AuthorityError(ErrorCode.NOT_FOUND, `secret ${shown} is not defined`, { data: { name: shown } });
    }
    return value;
  }

  has(name: string): boolean {
    return this.#values.has(name);
  }

  /** The names, sorted; names are not secret. */
  names(): string[] {
    return [...this.#values.keys()].sort();
  }

  get size(): number {
    return this.#values.size;
  }

  /** The compiled search over every value. */
  get scanner(): SecretScanner {
    return this.#scanner;
  }

  /** Replace every value in `text` with `[REDACTED:NAME]` and say what was found: run it on tool output. */
  redactText(text: string, where = 'output'): { text: string; redactions: Redaction[] } {
    return this.#scanner.redactText(text, where);
  }

  /** `redactText` for bytes. */
  redactBytes(bytes: Uint8Array, where = 'output'): { bytes: Uint8Array; redactions: Redaction[] } {
    return this.#scanner.redactBytes(bytes, where);
  }

  /** Names of the secrets whose values occur in `text`. */
  findText(text: string): string[] {
    return this.#scanner.findText(text);
  }

  toJSON(): { secrets: string[] } {
    return { secrets: this.names() };
  }

  toString(): string {
    return `[SecretStore: ${this.names().join(', ')}]`;
  }

  [inspect.custom](): string {
    return `SecretStore { names: [${this.names().join(', ')}] }`;
  }
}

function envVariable(name: string, ref: unknown, at: string): string {
  if (ref === null || typeof ref !== 'object' || Object.keys(ref).length !== 1 || typeof (ref as { env?: unknown }).env !== 'string') {
    throw config(`secret ${name} must be a string or { "env": "VARIABLE" }`, at);
  }
  return (ref as { env: string }).env;
}

function fromEnv(name: string, ref: unknown, environment: Readonly<Record<string, string | undefined>>, at: string): string {
  const variable = envVariable(name, ref, at);
  const value = environment[variable];
  if (value === undefined) throw config(`environment variable ${variable} (for secret ${name}) is not set`, at);
  return checkValue(name, value, at);
}

/**
 * Read and check a secrets file. It must be a regular file owned by this
 * process's user, readable and writable by nobody else (mode 0600 or
 * stricter), like ssh's private keys; anything looser is refused, because a
 * secret another account can read is no longer a secret. Parse errors say
 * where, never what (a JSON parser's message can quote the file).
 */
export function readSecretsFile(
  path: string,
  options: { optional?: boolean; environment?: Readonly<Record<string, string | undefined>> } = {},
): [string, string][] {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && options.optional === true) return [];
    throw new AuthorityError(ErrorCode.CONFIG, `cannot open the secrets file ${path}`, { data: { at: path }, cause: err });
  }
  let text: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw config(`the secrets file ${path} is not a regular file`, path);
    if ((st.mode & 0o077) !== 0) {
      throw config(`the secrets file ${path} is accessible to group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`, path);
    }
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) throw config(`the secrets file ${path} is owned by uid ${st.uid}, not by this process (uid ${uid})`, path);
    if (st.size > MAX_FILE_BYTES) throw config(`the secrets file ${path} is larger than ${MAX_FILE_BYTES} bytes`, path);
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    let len = 0;
    for (let n; len < buf.length && (n = fs.readSync(fd, buf, len, buf.length - len, null)) > 0; ) len += n;
    if (len > MAX_FILE_BYTES) throw config(`the secrets file ${path} is larger than ${MAX_FILE_BYTES} bytes`, path);
    text = buf.toString('utf8', 0, len);
    buf.fill(0);
  } finally {
    fs.closeSync(fd);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // No cause: V8's SyntaxError quotes the text around the fault, which may be a value.
    throw config(`the secrets file ${path} is not valid JSON`, path);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw config(`the secrets file ${path} must hold a JSON object of NAME: value`, '$');
  const environment = options.environment ?? process.env;
  return Object.entries(doc as Record<string, unknown>).map(([name, v]): [string, string] => {
    const at = `$.${name}`;
    checkName(name, at);
    return [name, typeof v === 'string' ? checkValue(name, v, at) : fromEnv(name, v, environment, at)];
  });
}

/**
 * Write a secrets file atomically with mode 0600 (temp file created
 * `O_EXCL`, fsynced, renamed over the target, directory fsynced).
 */
export function writeSecretsFile(path: string, entries: Readonly<Record<string, SecretSource>>): void {
  for (const [name, v] of Object.entries(entries)) {
    checkName(name, `$.${name}`);
    if (typeof v === 'string') checkValue(name, v, `$.${name}`);
    else envVariable(name, v, `$.${name}`);
  }
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    try {
      fs.fchmodSync(fd, 0o600);
      fs.writeFileSync(fd, `${JSON.stringify(entries, null, 2)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new AuthorityError(ErrorCode.CONFIG, `cannot write the secrets file ${path}`, { data: { at: path }, cause: err });
  }
  const dfd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}
