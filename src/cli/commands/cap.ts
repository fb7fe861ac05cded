/**
 * `authority cap issue|inspect|verify|attenuate|revoke`: capability tokens
 * from the command line, over the library in src/capability/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AuthorityError, ErrorCode, toAuthorityError } from '../../errors.ts';
import { dataPaths, resolveDataDir } from '../../data-dir.ts';
import {
  KEYS_ENV,
  KINDS,
  Keyring,
  RevocationList,
  attenuateToken,
  checkCapability,
  formatRate,
  inspectToken,
  issueToken,
  parseDuration,
  parseRate,
  parseTime,
  parseToken,
  prepareGrants,
  verifyToken,
  type CapabilityKind,
  type LinkClaims,
  type TokenInfo,
} from '../../capability/index.ts';
import { emit, parse, usageError } from '../output.ts';
import { fleetOptions } from '../fleet-options.ts';
import { EXIT_FAIL, EXIT_OK, type CliIO, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage: authority cap <subcommand> ... [--data-dir DIR] [--json]

Capability tokens: HMAC-signed grants a run presents at every host call.
TOKEN is the token text, or @FILE to read it from a file (keeps it out of ps).

  issue --kind fs|net|secrets|tool --resource PATTERN --methods a,b
        [--ttl 1h] [--nbf TIME] [--rate 10/s] [--run RUN] [--key-id ID] [--keyring FILE]
        print a new token (default lifetime 1h)
  inspect TOKEN
        show the fields, caveats and effective scope, without verifying
  verify TOKEN [--kind K --resource R --method M] [--run RUN] [--now TIME] [--keyring FILE]
        check key, MAC, times, run binding and revocation; with --resource,
        also whether the token covers that request (exit 1 if not)
  attenuate TOKEN [--resource PATTERN] [--methods a,b] [--ttl D] [--nbf TIME] [--rate N/P] [--run RUN]
        derive a narrower token, offline (no key needed)
  revoke TOKEN | --id TOKEN_ID | --run RUN [--reason TEXT] [--redis URL]
        revoke a token (and every token derived from it) or a whole run;
        takes effect at the next host call of running invocations; with
        --redis (or $AUTHORITY_REDIS_URL), on every node of the fleet too

Methods: fs read,list,write,remove; net GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS or *;
secrets get,use; tool invoke. TIME is +DURATION, an ISO 8601 date-time, or ms since the epoch.
Keys come from --keyring FILE, else $AUTHORITY_KEYS, else the data folder's keys.json.
`;

const OPTIONS = {
  'data-dir': { type: 'string' },
  keyring: { type: 'string' },
  json: { type: 'boolean' },
  kind: { type: 'string' },
  resource: { type: 'string' },
  methods: { type: 'string' },
  method: { type: 'string' },
  ttl: { type: 'string' },
  nbf: { type: 'string' },
  rate: { type: 'string' },
  run: { type: 'string' },
  'key-id': { type: 'string' },
  id: { type: 'string' },
  reason: { type: 'string' },
  now: { type: 'string' },
  redis: { type: 'string' },
} as const;

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** Which options each subcommand accepts (besides --data-dir and --json). */
const ALLOWED: Readonly<Record<string, readonly (keyof typeof OPTIONS)[]>> = {
  issue: ['keyring', 'kind', 'resource', 'methods', 'ttl', 'nbf', 'rate', 'run', 'key-id', 'now'],
  inspect: [],
  verify: ['keyring', 'kind', 'resource', 'method', 'run', 'now'],
  attenuate: ['resource', 'methods', 'ttl', 'nbf', 'rate', 'run', 'now'],
  revoke: ['id', 'run', 'reason', 'redis'],
};

const iso = (ms: number): string => new Date(ms).toISOString();

function presentLink(l: LinkClaims): Record<string, unknown> {
  const out: Record<string, unknown> = { tokenId: l.tokenId };
  if (l.resource !== undefined) out['resource'] = l.resource;
  if (l.methods !== undefined) out['methods'] = l.methods;
  if (l.notBefore !== undefined) out['notBefore'] = iso(l.notBefore);
  if (l.expiresAt !== undefined) out['expiresAt'] = iso(l.expiresAt);
  if (l.rate !== undefined) out['rate'] = { ...l.rate, text: formatRate(l.rate) };
  if (l.runId !== undefined) out['runId'] = l.runId;
  return out;
}

/** A token's fields for people and JSON: times as ISO 8601, no MAC. */
function present(info: TokenInfo): Record<string, unknown> {
  const e = info.effective;
  return {
    kind: info.kind,
    keyId: info.keyId,
    tokenId: info.tokenId,
    rootTokenId: info.rootTokenId,
    chain: info.chain,
    issuedAt: iso(info.issuedAt),
    root: presentLink(info.root),
    caveats: info.caveats.map(presentLink),
    effective: {
      resources: e.resources,
      methods: e.methods,
      notBefore: iso(e.notBefore),
      expiresAt: iso(e.expiresAt),
      rates: e.rates.map((r) => ({ ...r, text: formatRate(r) })),
      runIds: e.runIds,
    },
  };
}

function humanInfo(info: TokenInfo): string {
  const e = info.effective;
  const lines = [
    `token     ${info.tokenId}${info.caveats.length > 0 ? ` (derived from ${info.rootTokenId}, ${info.caveats.length} caveat${info.caveats.length > 1 ? 's' : ''})` : ''}`,
    `kind      ${info.kind}`,
    `resource  ${e.resources.join('  AND  ')}`,
    `methods   ${e.methods.join(', ')}`,
    `valid     ${iso(e.notBefore)} .. ${iso(e.expiresAt)} (issued ${iso(info.issuedAt)})`,
    `key       ${info.keyId}`,
  ];
  if (e.rates.length > 0) lines.push(`rate      ${e.rates.map((r) => formatRate(r)).join('  AND  ')}`);
  if (e.runIds.length > 0) lines.push(`run       ${e.runIds.join('  AND  ')}`);
  return lines.join('\n');
}

function readToken(arg: string | undefined, io: CliIO, sub: string): string {
  if (arg === undefined) throw usageError(`cap ${sub}: TOKEN is required\n\n${USAGE}`);
  if (!arg.startsWith('@')) return arg.trim();
  try {
    return readFileSync(resolve(io.cwd, arg.slice(1)), 'utf8').trim();
  } catch (e) {
    throw new AuthorityError(ErrorCode.USAGE, `cannot read token file ${arg.slice(1)}`, { cause: e });
  }
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function loadKeyring(values: Values, io: CliIO, dataDir: string, create = false): Keyring {
  // Issuing on a fresh data folder makes its first key, as the runtime does; verifying never does.
  const file = values.keyring === undefined ? undefined : resolve(io.cwd, values.keyring);
  if (create && file === undefined && io.env[KEYS_ENV] === undefined && !existsSync(dataPaths(dataDir).keyring)) {
    io.err(`authority: no keyring yet; created one in ${dataPaths(dataDir).keyring}\n`);
    return Keyring.fromDataDir(dataDir, { create: true });
  }
  return Keyring.load({ file, env: io.env, dataDir });
}

function nowOf(values: Values): number {
  return values.now === undefined ? Date.now() : parseTime(values.now, Date.now(), '--now');
}

function issue(values: Values, io: CliIO, dataDir: string, json: boolean): number {
  for (const required of ['kind', 'resource', 'methods'] as const) {
    if (values[required] === undefined) throw usageError(`cap issue: --${required} is required\n\n${USAGE}`);
  }
  const kind = values.kind as string;
  if (!(KINDS as readonly string[]).includes(kind)) throw usageError(`--kind: "${kind}" is not one of ${KINDS.join(', ')}`);
  const now = nowOf(values);
  const keyring = loadKeyring(values, io, dataDir, true);
  const token = issueToken(keyring, {
    kind: kind as CapabilityKind,
    resource: values.resource as string,
    methods: splitList(values.methods as string),
    issuedAt: now,
    ttlMs: parseDuration(values.ttl ?? '1h', '--ttl'),
    notBefore: values.nbf === undefined ? undefined : parseTime(values.nbf, now, '--nbf'),
    rate: values.rate === undefined ? undefined : parseRate(values.rate, '--rate'),
    runId: values.run,
    keyId: values['key-id'],
  });
  const info = inspectToken(token);
  io.log.info({ tokenId: info.tokenId, kind: info.kind, keyId: info.keyId }, 'token issued');
  emit(io, json, { ok: true, token, ...present(info) }, token);
  return EXIT_OK;
}

function verify(values: Values, text: string, io: CliIO, dataDir: string, json: boolean): number {
  const now = nowOf(values);
  const keyring = loadKeyring(values, io, dataDir);
  const revocations = RevocationList.fromDataDir(dataDir);
  const context = { now, runId: values.run, revocations };
  if (values.resource === undefined && (values.method !== undefined || values.kind !== undefined)) {
    throw usageError('cap verify: --kind and --method go with --resource');
  }
  let tokenId: string | undefined;
  try {
    const token = verifyToken(keyring, text, context);
    tokenId = token.tokenId;
    if (values.resource !== undefined) {
      if (values.method === undefined) throw usageError('cap verify: --resource needs --method');
      const kind = (values.kind ?? token.kind) as CapabilityKind;
      if (!(KINDS as readonly string[]).includes(kind)) throw usageError(`--kind: "${kind}" is not one of ${KINDS.join(', ')}`);
      const decision = checkCapability(prepareGrants(keyring, [text]), { kind, resource: values.resource, method: values.method }, context);
      if (!decision.allow) {
        throw new AuthorityError(decision.code, decision.reason, { data: { tokenId } });
      }
      emit(io, json, { ok: true, valid: true, allowed: true, tokenId, reason: decision.reason, rates: decision.rates ?? [] }, `allowed: ${decision.reason}`);
      return EXIT_OK;
    }
    emit(io, json, { ok: true, valid: true, tokenId, ...present(token.toJSON()) }, `valid: token ${tokenId}\n${humanInfo(token.toJSON())}`);
    return EXIT_OK;
  } catch (e) {
    const err = toAuthorityError(e);
    if (err.code === ErrorCode.USAGE || err.code === ErrorCode.CONFIG) throw err;
    if (tokenId === undefined) {
      try {
        tokenId = parseToken(text).tokenId;
      } catch {
        tokenId = undefined;
      }
    }
    emit(io, json, { ok: false, valid: false, tokenId, error: err.toJSON() }, '');
    if (!json) io.err(`authority: denied: ${err.code}: ${err.message}\n`);
    return EXIT_FAIL;
  }
}

function attenuate(values: Values, text: string, io: CliIO, json: boolean): number {
  const now = nowOf(values);
  const child = attenuateToken(
    text,
    {
      resource: values.resource,
      methods: values.methods === undefined ? undefined : splitList(values.methods),
      ttlMs: values.ttl === undefined ? undefined : parseDuration(values.ttl, '--ttl'),
      notBefore: values.nbf === undefined ? undefined : parseTime(values.nbf, now, '--nbf'),
      rate: values.rate === undefined ? undefined : parseRate(values.rate, '--rate'),
      runId: values.run,
    },
    { now },
  );
  const info = inspectToken(child);
  io.log.info({ tokenId: info.tokenId, parentTokenId: info.chain[info.chain.length - 2] }, 'token attenuated');
  emit(io, json, { ok: true, token: child, ...present(info) }, child);
  return EXIT_OK;
}

async function revoke(values: Values, positional: string | undefined, io: CliIO, dataDir: string, json: boolean): Promise<number> {
  const given = [positional, values.id, values.run].filter((v) => v !== undefined).length;
  if (given !== 1) throw usageError(`cap revoke: give exactly one of TOKEN, --id TOKEN_ID, --run RUN\n\n${USAGE}`);
  const list = RevocationList.fromDataDir(dataDir);
  const options = values.reason === undefined ? {} : { reason: values.reason };
  const entry = asUsage(() => {
    if (values.run !== undefined) return list.revokeRun(values.run, options);
    const id = values.id ?? parseToken(readToken(positional, io, 'revoke')).tokenId;
    return list.revokeToken(id, options);
  });
  io.log.info({ type: entry.type, id: entry.id }, 'revoked');
  // In a fleet, the shared record and its push are what every other node acts on.
  const fleetOpts = fleetOptions({ redis: values.redis }, io);
  let fleet: string | undefined;
  if (fleetOpts !== undefined) {
    const { Fleet } = await import('../../fleet/fleet.ts');
    const f = await Fleet.connect({ ...fleetOpts, node: 'cap-cli' });
    try {
      if (entry.type === 'run') await f.revokeRun(entry.id, entry.reason);
      else await f.revokeToken(entry.id, entry.reason);
      fleet = f.url;
    } finally {
      await f.close();
    }
  }
  emit(
    io,
    json,
    { ok: true, revoked: { type: entry.type, id: entry.id, at: iso(entry.at), reason: entry.reason }, path: list.path, ...(fleet === undefined ? {} : { fleet }) },
    `revoked ${entry.type} ${entry.id}${fleet === undefined ? '' : ` (and in the fleet on ${fleet})`}`,
  );
  return EXIT_OK;
}

/** Bad input to the library (a pattern, a method, an id) is a usage error on the command line: exit 2. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AuthorityError && e.code === ErrorCode.INVALID_ARGUMENT) {
      throw new AuthorityError(ErrorCode.USAGE, e.message, { data: e.data === undefined ? undefined : { ...e.data }, cause: e });
    }
    throw e;
  }
}

export const capCommand: Command = {
  name: 'cap',
  summary: summaryOf('cap'),
  usage: USAGE,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values, positionals } = parse({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    const json = values.json === true;
    const [sub, ...rest] = positionals;
    if (sub === undefined) throw usageError(`cap: a subcommand is required\n\n${USAGE}`);
    const allowed = ALLOWED[sub];
    if (allowed === undefined) throw usageError(`cap: unknown subcommand "${sub}"\n\n${USAGE}`);
    for (const [name, value] of Object.entries(values)) {
      if (value !== undefined && name !== 'data-dir' && name !== 'json' && !allowed.includes(name as keyof typeof OPTIONS)) {
        throw usageError(`cap ${sub}: --${name} does not apply here`);
      }
    }
    const maxPositionals = sub === 'issue' ? 0 : 1;
    if (rest.length > maxPositionals) throw usageError(`cap ${sub}: unexpected argument "${rest[maxPositionals]}"`);
    const dataDir = resolveDataDir(values['data-dir'], io.env, io.cwd);

    switch (sub) {
      case 'issue':
        return asUsage(() => issue(values, io, dataDir, json));
      case 'inspect': {
        const info = inspectToken(readToken(rest[0], io, sub));
        emit(io, json, { ok: true, ...present(info) }, humanInfo(info));
        return EXIT_OK;
      }
      case 'verify':
        return verify(values, readToken(rest[0], io, sub), io, dataDir, json);
      case 'attenuate':
        return asUsage(() => attenuate(values, readToken(rest[0], io, sub), io, json));
      default:
        return revoke(values, rest[0], io, dataDir, json);
    }
  },
};
