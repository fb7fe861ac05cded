/**
 * The fleet side of `authority audit`: `verify --witness` checks the local
 * log against the checkpoints its node published to Redis, and `fleet` lists
 * every node the witness knows. The Redis client loads only here.
 */
import type { AuditLocation } from '../../audit/index.ts';
import { AuthorityError, ErrorCode } from '../../errors.ts';
import type { WitnessCheck, WitnessEntry } from '../../fleet/witness.ts';
import { fleetOptions, type FleetFlags } from '../fleet-options.ts';
import type { CliIO } from '../types.ts';

async function withWitness<T>(flags: FleetFlags, io: CliIO, use: (entries: WitnessEntry[]) => Promise<T>): Promise<T> {
  const opts = fleetOptions(flags, io);
  if (opts === undefined) throw new AuthorityError(ErrorCode.USAGE, 'the witness is in the fleet\'s Redis: give --redis URL (or set AUTHORITY_REDIS_URL)');
  const { Fleet, readWitness } = await import('../../fleet/index.ts');
  const fleet = await Fleet.connect({ ...opts, node: opts.node ?? 'audit-cli' });
  try {
    return await use(await readWitness(fleet.client, fleet.witnessKey));
  } finally {
    await fleet.close();
  }
}

export function witnessCheck(location: AuditLocation, flags: FleetFlags, io: CliIO): Promise<WitnessCheck> {
  return withWitness(flags, io, async (entries) => {
    const { checkWitness } = await import('../../fleet/witness.ts');
    return checkWitness(location, entries);
  });
}

export function witnessText(c: WitnessCheck): string {
  if (c.ok) return `witness: OK: node ${c.witnessed?.node} published a checkpoint of ${c.witnessed?.size} records (${c.witnessed?.time}); the log holds ${c.records}, and the same first ${c.witnessed?.size}`;
  return `witness: PROBLEM (${c.problem?.code}): ${c.problem?.message}`;
}

export interface FleetRow {
  node: string;
  origin: string;
  checkpoint: { size: number; time: string; publishedAt: string };
  records: number;
  /** Records the node holds that no witnessed checkpoint covers yet. */
  behind: number;
  /** Since the node last reported, in seconds. */
  lastSeenS: number;
  regressed: WitnessEntry['regressed'] | null;
}

export function fleetRows(flags: FleetFlags, io: CliIO): Promise<FleetRow[]> {
  return withWitness(flags, io, async (entries) => {
    const now = Date.now();
    return entries.map((e) => ({
      node: e.node,
      origin: e.origin,
      checkpoint: { size: e.size, time: e.time, publishedAt: new Date(e.publishedAt).toISOString() },
      records: e.records,
      behind: Math.max(0, e.records - e.size),
      lastSeenS: Math.max(0, Math.round((now - e.seenAt) / 100) / 10),
      regressed: e.regressed ?? null,
    }));
  });
}

export function fleetText(rows: readonly FleetRow[]): string {
  if (rows.length === 0) return 'the witness knows no node yet';
  const lines = rows.map(
    (r) =>
      `${r.node.padEnd(24)} checkpoint ${String(r.checkpoint.size).padStart(8)} at ${r.checkpoint.time}  records ${String(r.records).padStart(8)}  behind ${String(r.behind).padStart(6)}  seen ${r.lastSeenS}s ago` +
      (r.regressed === null || r.regressed === undefined ? '' : `  ROLLED BACK to ${r.regressed.size}`),
  );
  return ['node                     latest checkpoint                         log        unanchored  last report', ...lines].join('\n');
}
