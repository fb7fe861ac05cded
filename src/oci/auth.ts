/**
 * Registry credentials, found the way container tools find them, and held so
 * that they cannot reach a log: the values live in private fields, and
 * `toJSON`/`inspect` show only where they came from.
 *
 * Order: AUTHORITY_REGISTRY_USERNAME + AUTHORITY_REGISTRY_PASSWORD (for any
 * registry the command talks to); then the `auths` of a docker-style
 * config.json: the file given, else $AUTHORITY_REGISTRY_CONFIG, else
 * $DOCKER_CONFIG/config.json, else ~/.docker/config.json. Credential helpers
 * (`credsStore`) are not run.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { AuthorityError, ErrorCode } from '../errors.ts';

export const USERNAME_ENV = 'AUTHORITY_REGISTRY_USERNAME';
export const PASSWORD_ENV = 'AUTHORITY_REGISTRY_PASSWORD';
export const CONFIG_ENV = 'AUTHORITY_REGISTRY_CONFIG';

/** A user name and password (or an identity token) for one registry. */
export class RegistryCredentials {
  readonly #username: string;
  readonly #secret: string;
  /** Where they came from, e.g. `env AUTHORITY_REGISTRY_USERNAME` or `/home/u/.docker/config.json auths["r.example"]`. */
  readonly source: string;
  /** An identity token (refresh token) rather than a password. */
  readonly identityToken: boolean;

  constructor(username: string, secret: string, source: string, identityToken = false) {
    this.#username = username;
    this.#secret = secret;
    this.source = source;
    this.identityToken = identityToken;
  }

  /** The `Authorization: Basic` value. */
  basic(): string {
    return `Basic ${Buffer.from(`${this.#username}:${this.#secret}`, 'utf8').toString('base64')}`;
  }

  /** Form fields for an OAuth2 token request with an identity token. */
  refreshToken(): string {
    return this.#secret;
  }

  toJSON(): { source: string } {
    return { source: this.source };
  }

  [inspect.custom](): string {
    return `RegistryCredentials(${this.source})`;
  }
}

/** `host:port` from a config.json `auths` key (`https://host:port/v1/`, `host:port`, ...). */
function authKeyHost(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

export interface CredentialOptions {
  /** A docker-style config.json to read instead of the default places. */
  configFile?: string | undefined;
  env?: Readonly<Record<string, string | undefined>>;
}

/** The config file that would be read, if any. */
export function credentialsFile(opts: CredentialOptions = {}): string | undefined {
  const env = opts.env ?? process.env;
  if (opts.configFile !== undefined) return opts.configFile;
  if ((env[CONFIG_ENV] ?? '') !== '') return env[CONFIG_ENV];
  if ((env['DOCKER_CONFIG'] ?? '') !== '') return join(env['DOCKER_CONFIG'] as string, 'config.json');
  const home = env['HOME'] ?? homedir();
  const file = join(home, '.docker', 'config.json');
  return existsSync(file) ? file : undefined;
}

/** Credentials for `registry` (host[:port]), or undefined when none are configured. */
export function findCredentials(registry: string, opts: CredentialOptions = {}): RegistryCredentials | undefined {
  const env = opts.env ?? process.env;
  const user = env[USERNAME_ENV];
  const pass = env[PASSWORD_ENV];
  if ((user ?? '') !== '' || (pass ?? '') !== '') {
    if ((user ?? '') === '' || (pass ?? '') === '') throw new AuthorityError(ErrorCode.CONFIG, `set both ${USERNAME_ENV} and ${PASSWORD_ENV}, or neither`);
    return new RegistryCredentials(user as string, pass as string, `env ${USERNAME_ENV}`);
  }
  const file = credentialsFile(opts);
  if (file === undefined) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    // A missing default file is normal; a named one that cannot be read is a mistake. Never echo its content.
    if (opts.configFile === undefined && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AuthorityError(ErrorCode.CONFIG, `cannot read registry credentials from ${file}: ${(e as NodeJS.ErrnoException).code ?? 'not JSON'}`, { data: { file } });
  }
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (typeof auths !== 'object' || auths === null) return undefined;
  const want = registry.toLowerCase();
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    if (authKeyHost(key) !== want || typeof value !== 'object' || value === null) continue;
    const v = value as { auth?: unknown; username?: unknown; password?: unknown; identitytoken?: unknown };
    const where = `${file} auths[${JSON.stringify(key)}]`;
    if (typeof v.auth === 'string' && v.auth !== '') {
      const decoded = Buffer.from(v.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new AuthorityError(ErrorCode.CONFIG, `${where}.auth is not base64 of user:password`, { data: { file } });
      const username = decoded.slice(0, colon);
      if (typeof v.identitytoken === 'string' && v.identitytoken !== '') return new RegistryCredentials(username, v.identitytoken, where, true);
      return new RegistryCredentials(username, decoded.slice(colon + 1), where);
    }
    if (typeof v.identitytoken === 'string' && v.identitytoken !== '') return new RegistryCredentials(typeof v.username === 'string' ? v.username : '<token>', v.identitytoken, where, true);
    if (typeof v.username === 'string' && typeof v.password === 'string') return new RegistryCredentials(v.username, v.password, where);
  }
  return undefined;
}

/** One `WWW-Authenticate` challenge. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parse a `WWW-Authenticate` header (RFC 7235 auth-params; quoted strings with escapes). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*(.*)$/s.exec(header);
  if (m === null) return undefined;
  const params: Record<string, string> = {};
  const re = /\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)/gy;
  const rest = m[2] as string;
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest)) !== null) {
    params[(p[1] as string).toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: (m[1] as string).toLowerCase(), params };
}
