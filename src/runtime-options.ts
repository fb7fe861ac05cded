/**
 * What a runtime is given and what an invocation returns. RuntimeOptions are
 * checked where they enter (createRuntime): each field of the wrong type or
 * out of range is an E_CONFIG error naming it, before anything is opened.
 * @module
 */
import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import type { AuditDurability, AuditIo } from './audit/index.ts';
import { AuthorityError, ErrorCode } from './errors.ts';
import { isBoolean, isFunction, isObject, isString, optionalInt, optionalOf, optionsObject } from './config-check.ts';
import { DEFAULT_POLICY_NAME, type Approver, type Denial } from './gate/index.ts';
import type { SecretStore} from './host/index.ts';
import { type HttpClientOptions, type SecretStoreOptions } from './host/index.ts';
import type { Fleet, FleetOptions } from './fleet/fleet.ts';
import type { LimitStore } from './limits/index.ts';
import { Policy, loadPolicy, loadPolicyFile } from './policy/index.ts';
import type { ToolLimits } from './registry/index.ts';
import { validatePoolOptions, type PoolOptions } from './sandbox/index.ts';

const DURABILITIES: ReadonlySet<unknown> = new Set(['fsync', 'none']);

/** Throw E_CONFIG (with `data.field`) for the first option that is wrong. */
export function validateRuntimeOptions(opts: unknown): void {
  const o = optionsObject(opts, 'runtime options');
  optionalOf(o, 'dataDir', '', 'a folder path', isString);
  optionalOf(o, 'policy', '', 'a Policy, a policy file path or a policy document', (v) => isString(v) || isObject(v));
  optionalOf(o, 'keys', '', 'an object { file?, env? }', isObject);
  if (isObject(o['keys'])) {
    const keys = o['keys'] as Record<string, unknown>;
    optionalOf(keys, 'file', 'keys.', 'a file path', isString);
    optionalOf(keys, 'env', 'keys.', 'an object of environment variables', isObject);
  }
  optionalOf(o, 'secrets', '', 'a SecretStore or its options', isObject);
  optionalOf(o, 'audit', '', 'an object', isObject);
  if (isObject(o['audit'])) {
    const audit = o['audit'] as Record<string, unknown>;
    optionalOf(audit, 'dir', 'audit.', 'a folder path', isString);
    optionalOf(audit, 'checkpointDir', 'audit.', 'a folder path', isString);
    optionalOf(audit, 'durability', 'audit.', "'fsync' or 'none'", (v) => DURABILITIES.has(v));
    optionalOf(audit, 'io', 'audit.', 'an object of file operations', isObject);
  }
  if (o['pool'] !== undefined) validatePoolOptions(o['pool'], 'pool.');
  optionalOf(o, 'cacheDir', '', 'a folder path', isString);
  optionalOf(o, 'limits', '', 'an object of tool limits', isObject);
  optionalOf(o, 'http', '', 'an object of HTTP client options', isObject);
  optionalOf(o, 'store', '', 'a LimitStore', isObject);
  optionalOf(o, 'redis', '', 'a Redis URL, fleet options or a Fleet', (v) => isString(v) || isObject(v));
  optionalOf(o, 'logger', '', 'a pino logger', isObject);
  optionalOf(o, 'requireToolGrant', '', 'true or false', isBoolean);
  optionalInt(o, 'maxGrants', '', 1, 4096);
  optionalOf(o, 'approve', '', 'a function', isFunction);
  optionalOf(o, 'now', '', 'a function', isFunction);
}

export interface RuntimeOptions {
  /** The data folder (keyring, audit log, revocations, secrets, compile cache). Default: $AUTHORITY_DATA_DIR or ./.authority */
  dataDir?: string;
  /**
   * The deployment policy: a loaded Policy, a path to a policy JSON file, or a
   * policy document. Default: `{ "version": "1.0" }`, which denies everything.
   */
  policy?: Policy | string | Record<string, unknown>;
  /** Where HMAC keys come from: a keyring file, or `AUTHORITY_KEYS` in `env`. Default: the data folder's keyring, created if missing. */
  keys?: { file?: string; env?: Readonly<Record<string, string | undefined>> };
  /** Secrets for tools: a store, or where to load one from. Default: the data folder's secrets.json if it exists. */
  secrets?: SecretStore | SecretStoreOptions;
  audit?: {
    /** Folder of the log. Default `<dataDir>/audit`. */
    dir?: string;
    /** Folder of the signed checkpoints, ideally on other storage. Default `<dataDir>/checkpoints`. */
    checkpointDir?: string;
    /** `'fsync'` (default): nothing is acknowledged before it is on disk. `'none'`: for tests on tmpfs and benchmarks. */
    durability?: AuditDurability;
    /** The log's file operations (fault injection in tests). */
    io?: AuditIo;
  };
  pool?: PoolOptions;
  /** Where transpiled tools are cached, by digest. Default `<dataDir>/cache`. */
  cacheDir?: string;
  /**
   * Default limits of every tool (each registration may override them),
   * checked where they enter: an unknown or non-positive field is E_CONFIG naming it.
   * `describeTimeoutMs` bounds describe() at registration (default 5 s).
   */
  limits?: Partial<ToolLimits>;
  /**
   * Options of the one HTTP client every http.fetch goes through. Tests use
   * `lookup` (a resolver) and `connect` (a hook that sees every dial) to keep
   * traffic on loopback whatever a tool asks for.
   */
  http?: HttpClientOptions;
  /** Where rate limits and budgets are counted. Default: in memory, or the fleet's Redis with `redis`. */
  store?: LimitStore;
  /**
   * Join a fleet of runtimes on one Redis: a URL (`redis://`, `rediss://` for
   * TLS), connection options, or a connected Fleet that several runtimes share.
   * Rate limits and budgets, revocations, the stop switch and the audit
   * witness are then shared (see docs/fleet.md). Default: none, everything local.
   */
  redis?: string | FleetOptions | Fleet;
  /** Operational logs (never the audit log). Default: pino at level warn on stderr. */
  logger?: Logger;
  /** Invocations need a `tool` capability token with method `invoke` covering the tool's name. Default false. */
  requireToolGrant?: boolean;
  /** Most grants one invocation may carry. Default 64. */
  maxGrants?: number;
  /**
   * Who approves what the policy's `approvals` section marks (a tool's
   * invocations, or host operations). Without one, such requests are denied
   * with `E_APPROVAL_REQUIRED`. `InvokeOptions.approve` overrides it per call.
   */
  approve?: Approver | undefined;
  /** Clock (tests). */
  now?: () => number;
}

export interface InvokeOptions {
  /** Capability tokens for this run (text form). Without them, every host call is denied. */
  grants?: readonly string[];
  /** The run this invocation belongs to (an agent session); budgets and revocations by run apply. Default: a fresh id. */
  runId?: string;
  /** Lower this invocation's deadline below the tool's. */
  timeoutMs?: number | undefined;
  /** The approver for this invocation (e.g. an MCP session's user); default `RuntimeOptions.approve`. */
  approve?: Approver | undefined;
}


export interface InvokeResult {
  ok: true;
  tool: string;
  runId: string;
  /** The tool's output, with any secret value redacted. */
  output: string;
  /** Sequence numbers of this invocation's first and last audit records. */
  audit: { start: number; end: number };
  stats: InvokeStats;
  /** Host calls the gate refused during the run (the first 16). */
  denials: Denial[];
}

export interface InvokeStats {
  durationMs: number;
  hostCalls: number;
  allowed: number;
  denied: number;
  redactions: number;
  /** The instance was made ahead of time (no instantiation on this call's path). */
  preparedInstance: boolean;
  /**
   * How long the run's host calls took as the tool saw them, from the
   * import's entry to its return (the bridge, the gate, the audit records and
   * the effect), in microseconds, to within 9%. Only when it made any.
   */
  hostCallUs?: { p50: number; p99: number } | undefined;
}

export function defaultLogger(): Logger {
  return pino(
    {
      level: process.env['AUTHORITY_LOG_LEVEL'] ?? 'warn',
      name: 'authority',
      redact: { paths: ['grants', '*.grants', 'token', '*.token', 'secret', '*.secret', 'value', '*.value', 'headers', '*.headers'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}

export async function resolvePolicy(p: RuntimeOptions['policy']): Promise<Policy> {
  if (p === undefined) return loadPolicy({ version: '1.0', name: DEFAULT_POLICY_NAME }, { source: 'default (deny everything)' }).policy;
  if (p instanceof Policy) return p;
  if (typeof p === 'string') return (await loadPolicyFile(p)).policy;
  return loadPolicy(p, { source: 'runtime options' }).policy;
}


const RUN_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const DEFAULT_MAX_GRANTS = 64;
// Run ids: a random prefix per process and a counter: unique, and no entropy to draw per call.
const RUN_PREFIX = randomBytes(6).toString('base64url');
let runCounter = 0;

/** An invocation's arguments, checked where they enter: its run id (a fresh one by default), its grants, its input as JSON text. */
export function invocationInput(input: unknown, opts: InvokeOptions, maxGrants = DEFAULT_MAX_GRANTS): { runId: string; grants: readonly string[]; text: string } {
  const runId = opts.runId ?? `run-${RUN_PREFIX}-${(++runCounter).toString(36)}`;
  if (!RUN_ID.test(runId)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'runId must match [A-Za-z0-9._:-]{1,128}', { data: { field: 'runId' } });
  const grants = opts.grants ?? [];
  if (grants.length > maxGrants) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `at most ${maxGrants} grants per invocation`, { data: { field: 'grants' } });
  try {
    return { runId, grants, text: JSON.stringify(input ?? {}) };
  } catch (e) {
    throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `input is not JSON: ${(e as Error).message}`, { cause: e });
  }
}
