/**
 * The vocabulary of a capability token: kinds, the methods of each kind, and
 * the shapes of the claims a token carries.
 * @module
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { CapabilityKind } from '../host-call.ts';

export type { CapabilityKind };

/**
 * The methods of each kind, in bit order: method `i` of a kind is bit `1 << i`
 * of the token's method mask. The order is part of the wire format; append only.
 */
export const METHODS = {
  fs: ['read', 'list', 'write', 'remove'],
  net: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'],
  secrets: ['get', 'use'],
  tool: ['invoke'],
} as const satisfies Record<CapabilityKind, readonly string[]>;

/** Every capability kind. */
export const KINDS = ['fs', 'net', 'secrets', 'tool'] as const satisfies readonly CapabilityKind[];

/** Kind codes on the wire. */
export const KIND_CODE: Readonly<Record<CapabilityKind, number>> = { fs: 1, net: 2, secrets: 3, tool: 4 };
/** Wire codes back to kinds (index = code). */
export const KIND_BY_CODE: ReadonlyArray<CapabilityKind | undefined> = [undefined, 'fs', 'net', 'secrets', 'tool'];

/** Every valid bit of a kind's method mask. */
export const ALL_METHODS: Readonly<Record<CapabilityKind, number>> = {
  fs: (1 << METHODS.fs.length) - 1,
  net: (1 << METHODS.net.length) - 1,
  secrets: (1 << METHODS.secrets.length) - 1,
  tool: (1 << METHODS.tool.length) - 1,
};

/** A rate limit a token carries: at most `count` calls per `periodMs`. */
export interface Rate {
  readonly count: number;
  readonly periodMs: number;
}

/** A rate the gate's limiter must enforce, keyed by the id of the token link that declared it. */
export interface KeyedRate extends Rate {
  /** The token id whose bucket this is: shared by every token derived from that link. */
  readonly key: string;
}

/** Whether `value` names a capability kind. */
export const isKind = (value: unknown): value is CapabilityKind =>
  typeof value === 'string' && (KINDS as readonly string[]).includes(value);

/** The bit of `method` in `kind`'s mask, or 0 when the kind has no such method. */
export function methodBit(kind: CapabilityKind, method: string): number {
  const i = (METHODS[kind] as readonly string[]).indexOf(method);
  return i < 0 ? 0 : 1 << i;
}

/** Method names to a mask; `*` stands for every method of `net`. Throws E_INVALID_ARGUMENT naming `at`. */
export function methodsToMask(kind: CapabilityKind, methods: readonly string[], at: string): number {
  if (methods.length === 0) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${at}: at least one method is required`, { data: { at } });
  let mask = 0;
  methods.forEach((m, i) => {
    if (m === '*' && kind === 'net') {
      mask |= ALL_METHODS.net;
      return;
    }
    const bit = methodBit(kind, m);
    if (bit === 0) {
      const allowed = [...METHODS[kind], ...(kind === 'net' ? ['*'] : [])].join(', ');
      throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, `${at}[${i}]: "${m}" is not a ${kind} method (one of ${allowed})`, {
        data: { at: `${at}[${i}]` },
      });
    }
    mask |= bit;
  });
  return mask;
}

/** A mask back to method names, in bit order. */
export function maskToMethods(kind: CapabilityKind, mask: number): string[] {
  return METHODS[kind].filter((_, i) => (mask & (1 << i)) !== 0);
}

/** Token ids: 16 random bytes, shown as 32 lowercase hex digits. */
export const TOKEN_ID_BYTES = 16;
export const TOKEN_ID_RE = /^[0-9a-f]{32}$/;

/** Key ids and run ids: short, printable, safe in a header, a file name and a log line. */
export const KEY_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const RUN_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Largest time value a token carries: the last millisecond a JS Date can represent. */
export const MAX_TIME = 8_640_000_000_000_000;
/** Rates: count and period are u32 on the wire, both at least 1. */
export const MAX_U32 = 0xffff_ffff;

/** Whether rate `a` lets through more calls on average than rate `b`. Exact: no floating point. */
export function rateIsHigher(a: Rate, b: Rate): boolean {
  return BigInt(a.count) * BigInt(b.periodMs) > BigInt(b.count) * BigInt(a.periodMs);
}
