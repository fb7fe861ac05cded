/**
 * The options every command that runs tools shares (`run`, `tools`, `mcp`),
 * and how they become a runtime.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { dataPaths, resolveDataDir } from '../data-dir.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { isOciReference } from '../oci/reference.ts';
import type { ToolInfo } from '../registry/index.ts';
import type { Runtime, RuntimeOptions } from '../runtime.ts';
import { createLogger } from './log.ts';
import type { CliIO } from './types.ts';

export const RUNTIME_FLAGS = {
  'data-dir': { type: 'string' },
  policy: { type: 'string' },
  tools: { type: 'string', multiple: true },
  'secret-env': { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'plain-http': { type: 'boolean', default: false },
  'registry-config': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

export const RUNTIME_FLAGS_HELP = `  --data-dir DIR       state folder (default $AUTHORITY_DATA_DIR or ./.authority)
  --policy FILE        deployment policy (default <data-dir>/policy.json; none: deny everything)
  --tools DIR          folder of tool components (*.wasm); repeatable (default <data-dir>/tools)
  --secret-env N=VAR   secret N from environment variable VAR; repeatable
  --log-level LEVEL    pino level on stderr (default warn)
  --plain-http         reach oci:// registries over HTTP, not HTTPS (loopback or known-insecure ones)
  --registry-config F  docker-style config.json with registry "auths" (see authority tools --help)
  --json               print exactly one JSON document on stdout`;

export interface RuntimeFlags {
  'data-dir'?: string | undefined;
  policy?: string | undefined;
  tools?: string[] | undefined;
  'secret-env'?: string[] | undefined;
  'log-level'?: string | undefined;
  'plain-http'?: boolean | undefined;
  'registry-config'?: string | undefined;
}

function secretEnv(pairs: readonly string[]): Record<string, { env: string }> {
  const out: Record<string, { env: string }> = {};
  for (const pair of pairs) {
    const m = /^([A-Za-z0-9_.-]+)=([A-Za-z_][A-Za-z0-9_]*)$/.exec(pair);
    if (m === null) throw new AuthorityError(ErrorCode.USAGE, `--secret-env takes NAME=ENV_VAR, got ${JSON.stringify(pair)}`);
    out[m[1] as string] = { env: m[2] as string };
  }
  return out;
}

/** Open a runtime as the CLI flags describe it. */
export async function openRuntime(flags: RuntimeFlags, io: CliIO, extra: Pick<RuntimeOptions, 'requireToolGrant' | 'approve' | 'limits' | 'cacheDir' | 'redis'> = {}): Promise<Runtime> {
  const dataDir = resolveDataDir(flags['data-dir'], io.env, io.cwd);
  const defaultPolicy = dataPaths(dataDir).policy;
  const policy = flags.policy !== undefined ? resolve(io.cwd, flags.policy) : existsSync(defaultPolicy) ? defaultPolicy : undefined;
  const logger = createLogger({ level: flags['log-level'], env: io.env });
  // The runtime (jco glue, worker pool, HTTP client) loads only for commands that run tools.
  const [{ createRuntime }, { SecretStore }] = await Promise.all([import('../runtime.ts'), import('../host/index.ts')]);
  return createRuntime({
    dataDir,
    policy,
    logger,
    secrets: SecretStore.load({ file: dataPaths(dataDir).secrets, fileOptional: true, env: secretEnv(flags['secret-env'] ?? []), environment: io.env }),
    ...extra,
  });
}

/** The folders `--tools` names, or the data folder's tools/. */
export function toolDirs(flags: RuntimeFlags, io: CliIO): string[] {
  if (flags.tools !== undefined && flags.tools.length > 0) return flags.tools.map((d) => resolve(io.cwd, d));
  return [dataPaths(resolveDataDir(flags['data-dir'], io.env, io.cwd)).toolsDir];
}

/** Every component file in the tool folders. */
export function componentFiles(dirs: readonly string[]): string[] {
  const files: string[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.wasm')) files.push(join(dir, f));
  }
  return files;
}

/** A tool argument: a path to a component, or the name of one in the tool folders. */
export function resolveToolArg(arg: string, flags: RuntimeFlags, io: CliIO): string {
  const asPath = resolve(io.cwd, arg);
  if (arg.endsWith('.wasm') || arg.includes('/')) {
    if (!existsSync(asPath)) throw new AuthorityError(ErrorCode.TOOL_NOT_FOUND, `no component at ${asPath}`);
    return asPath;
  }
  for (const dir of toolDirs(flags, io)) {
    const candidate = join(dir, `${arg}.wasm`);
    if (existsSync(candidate)) return candidate;
  }
  throw new AuthorityError(ErrorCode.TOOL_NOT_FOUND, `no tool named ${arg}: pass a .wasm path, or put ${arg}.wasm in ${toolDirs(flags, io).join(' or ')} (--tools DIR)`);
}

/**
 * Register a tool argument: an `oci://` reference is pulled (digests and
 * signatures checked) with the registry code loaded only then; anything else
 * is a path or a name in the tool folders.
 */
export async function registerToolArg(runtime: Runtime, arg: string, flags: RuntimeFlags, io: CliIO): Promise<ToolInfo> {
  if (!isOciReference(arg)) return runtime.register(resolveToolArg(arg, flags, io));
  const { registerReference } = await import('../oci/register.ts');
  const tool = await registerReference(runtime, arg, registryAccess(flags, io));
  const { pulled: _pulled, ...info } = tool;
  return info;
}

/** How `--plain-http` and `--registry-config` say registries are reached. */
export function registryAccess(flags: RuntimeFlags, io: CliIO): { plainHttp: boolean; configFile: string | undefined; env: CliIO['env'] } {
  return { plainHttp: flags['plain-http'] === true, configFile: flags['registry-config'] === undefined ? undefined : resolve(io.cwd, flags['registry-config']), env: io.env };
}
