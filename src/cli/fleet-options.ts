/**
 * The flags that put a command in a fleet: `--redis URL` (or
 * `AUTHORITY_REDIS_URL`), with the password from `AUTHORITY_REDIS_PASSWORD`
 * (kept out of command lines and process listings) and TLS from `rediss://`
 * plus `--redis-ca FILE` for a private CA.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { FleetOptions } from '../fleet/fleet.ts';
import type { CliIO } from './types.ts';

export const FLEET_FLAGS = {
  redis: { type: 'string' },
  'redis-ca': { type: 'string' },
  node: { type: 'string' },
  'fleet-grace': { type: 'string' },
} as const;

export const FLEET_FLAGS_HELP = `  --redis URL          join the fleet on this Redis (default $AUTHORITY_REDIS_URL); rediss:// for
                       TLS; the password from $AUTHORITY_REDIS_PASSWORD or the URL
  --redis-ca FILE      PEM file of the CA that signed the Redis server's certificate
  --node NAME          this node's name in the fleet (default <hostname>-<pid>)
  --fleet-grace MS     how long the shared state may go unconfirmed before calls fail closed (default 3000)`;

export interface FleetFlags {
  redis?: string | undefined;
  'redis-ca'?: string | undefined;
  node?: string | undefined;
  'fleet-grace'?: string | undefined;
}

/** The fleet options the flags and environment describe, or undefined outside a fleet. */
export function fleetOptions(flags: FleetFlags, io: Pick<CliIO, 'env' | 'cwd'>): FleetOptions | undefined {
  const url = flags.redis ?? io.env['AUTHORITY_REDIS_URL'];
  if (url === undefined || url === '') return undefined;
  let graceMs: number | undefined;
  if (flags['fleet-grace'] !== undefined) {
    graceMs = Number(flags['fleet-grace']);
    if (!Number.isInteger(graceMs) || graceMs < 1) throw new AuthorityError(ErrorCode.USAGE, '--fleet-grace takes a positive number of milliseconds');
  }
  let ca: Buffer | undefined;
  if (flags['redis-ca'] !== undefined) {
    const file = resolve(io.cwd, flags['redis-ca']);
    try {
      ca = readFileSync(file);
    } catch (e) {
      throw new AuthorityError(ErrorCode.CONFIG, `cannot read --redis-ca ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
  }
  const password = io.env['AUTHORITY_REDIS_PASSWORD'];
  return {
    url,
    ...(password === undefined || password === '' ? {} : { password }),
    ...(ca === undefined ? {} : { tls: { ca } }),
    ...(flags.node === undefined ? {} : { node: flags.node }),
    ...(graceMs === undefined ? {} : { graceMs }),
  };
}
