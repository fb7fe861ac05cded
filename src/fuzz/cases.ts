/**
 * Fuzz cases as JSON: counterexamples printed in a report and regression
 * cases committed under test/fixtures/fuzz. Bytes are base64; the world's
 * scratch folder, the folder outside it and the canary's port are written
 * as `$SCRATCH`, `$OUTSIDE` and `$PORT`, and the fake secret values as
 * `$SECRET(NAME)`, so a case replays in any world.
 * @module
 */
import type { AbiProgram } from './abi-harness.ts';
import type { Op, Scenario } from './generators.ts';
import type { World } from './world.ts';

export type Layer = 'gate' | 'guest' | 'abi';
export const LAYERS: readonly Layer[] = ['gate', 'guest', 'abi'];

/** A committed regression case. */
export interface RegressionCase {
  /** What broke, as a sentence: the test is named after it. */
  readonly name: string;
  readonly layer: Layer;
  /** The host function the case was found for (`abi` cases: `abi`). */
  readonly op: Op | 'abi';
  /** Which built-in policy variants to run it under; default all. */
  readonly variant?: number | undefined;
  readonly case: unknown;
  /** The commit or report that explains it. */
  readonly note?: string | undefined;
}

function portPattern(port: number): RegExp {
  return new RegExp(`(?<![0-9])${port}(?![0-9])`, 'g');
}

type Where = Pick<World, 'scratch' | 'outside' | 'port'> & { readonly secrets?: Readonly<Record<string, string>> | undefined };

/** A case as portable JSON. */
export function caseToJson(value: Scenario | AbiProgram | unknown, world: Where): unknown {
  const port = portPattern(world.port);
  const secrets = Object.entries(world.secrets ?? {});
  return JSON.parse(
    JSON.stringify(value, function (this: unknown, key: string, v: unknown) {
      const raw = (this as Record<string, unknown>)[key];
      if (raw instanceof Uint8Array) return { $bytes: Buffer.from(raw).toString('base64') };
      if (typeof v === 'bigint') return `${v}n`;
      if (typeof v === 'string') {
        let out = v.replaceAll(world.scratch, '$SCRATCH').replaceAll(world.outside, '$OUTSIDE').replace(port, '$PORT');
        for (const [name, value] of secrets) out = out.replaceAll(value, `$SECRET(${name})`);
        return out;
      }
      return v;
    }),
  );
}

/** A case from portable JSON, for this world. */
export function caseFromJson<T>(json: unknown, world: Where): T {
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      return v
        .replaceAll('$SCRATCH', world.scratch)
        .replaceAll('$OUTSIDE', world.outside)
        .replaceAll('$PORT', String(world.port))
        .replace(/\$SECRET\(([A-Za-z0-9_.-]+)\)/g, (whole, name: string) => world.secrets?.[name] ?? whole);
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o['$bytes'] === 'string' && Object.keys(o).length === 1) return new Uint8Array(Buffer.from(o['$bytes'], 'base64'));
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(json) as T;
}
