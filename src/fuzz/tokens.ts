/**
 * Minting the capability tokens a fuzz case grants, from a plain spec, at
 * the moment the case runs (so "expired by one millisecond" means exactly
 * that). Well-formed tokens come from `issueToken`/`attenuateToken`; caveats
 * that `attenuateToken` refuses as widening are forged with the documented
 * byte format and a correctly chained MAC, and "almost valid" tokens are
 * made by changing bytes after signing. Each token comes with the reference
 * model's view of it (`ModelGrant`).
 * @module
 */
import { createHmac, randomBytes } from 'node:crypto';
import { Keyring, attenuateToken, issueToken, type RevocationList } from '../capability/index.ts';
import { CAP_METHODS, type CapKind, type ModelGrant, type ModelLink } from './model.ts';

/** What a caveat restricts; times are offsets in ms from the moment the case runs. */
export interface CaveatSpec {
  readonly resource?: string | undefined;
  readonly methods?: readonly string[] | undefined;
  readonly nbf?: number | undefined;
  readonly exp?: number | undefined;
  readonly rate?: { readonly count: number; readonly periodMs: number } | undefined;
  readonly run?: 'this' | 'other' | undefined;
}

export type Mutation =
  | { readonly kind: 'bitflip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'truncate'; readonly keep: number }
  | { readonly kind: 'text'; readonly at: number; readonly char: string }
  | { readonly kind: 'swap-caveats' };

/** A token a case grants. */
export interface TokenSpec {
  readonly kind: CapKind;
  readonly resource: string;
  readonly methods: readonly string[];
  /** issued-at offset (ms from now). */
  readonly iat: number;
  /** not-before offset; absent: the issuer's default (issued-at minus 60 s). */
  readonly nbf?: number | undefined;
  readonly exp: number;
  readonly rate?: { readonly count: number; readonly periodMs: number } | undefined;
  readonly run?: 'this' | 'other' | undefined;
  readonly key: 'active' | 'unknown' | 'bad-secret';
  readonly caveats: readonly CaveatSpec[];
  readonly revoke?: 'root' | 'leaf' | undefined;
  readonly mutate?: Mutation | undefined;
}

export interface Minted {
  readonly text: string;
  readonly model: ModelGrant;
  /** Token ids root first (for revocation). */
  readonly chain: readonly string[];
}

const OTHER_RUN = 'run-someone-else';

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** A caveat block in the documented wire format (fields in ascending tag order). */
function caveatBlock(kind: CapKind, id: Buffer, c: { resource?: string; methods?: readonly string[]; notBefore?: number; expiresAt?: number; rate?: { count: number; periodMs: number }; runId?: string }): Buffer {
  const fields: Buffer[] = [Buffer.from([3]), id];
  if (c.notBefore !== undefined) fields.push(Buffer.from([5]), u64(c.notBefore));
  if (c.expiresAt !== undefined) fields.push(Buffer.from([6]), u64(c.expiresAt));
  if (c.methods !== undefined) {
    let mask = 0;
    for (const m of c.methods) {
      const i = (CAP_METHODS[kind] as readonly string[]).indexOf(m);
      if (i >= 0) mask |= 1 << i;
    }
    fields.push(Buffer.from([7, mask]));
  }
  if (c.resource !== undefined) {
    const r = Buffer.from(c.resource, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(r.length);
    fields.push(Buffer.from([8]), len, r);
  }
  if (c.rate !== undefined) {
    const r = Buffer.alloc(8);
    r.writeUInt32BE(c.rate.count, 0);
    r.writeUInt32BE(c.rate.periodMs, 4);
    fields.push(Buffer.from([9]), r);
  }
  if (c.runId !== undefined) fields.push(Buffer.from([10, c.runId.length]), Buffer.from(c.runId, 'ascii'));
  const body = Buffer.concat(fields);
  const head = Buffer.alloc(3);
  head[0] = 2;
  head.writeUInt16BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Append a caveat the issuer's API would refuse: the holder knows the last MAC, which is all a caveat needs. */
function forgeCaveat(text: string, kind: CapKind, fields: Parameters<typeof caveatBlock>[2]): { text: string; id: string } {
  const bytes = Buffer.from(text.slice('acap1.'.length), 'base64url');
  const mac = bytes.subarray(bytes.length - 32);
  const id = randomBytes(16);
  const block = caveatBlock(kind, id, fields);
  const next = createHmac('sha256', mac).update(block).digest();
  const out = Buffer.concat([bytes.subarray(0, 1), Buffer.from([(bytes[1] as number) + 1]), bytes.subarray(2, bytes.length - 32), block, next]);
  return { text: `acap1.${b64url(out)}`, id: id.toString('hex') };
}

function mutate(text: string, m: Mutation): string {
  const body = text.slice('acap1.'.length);
  switch (m.kind) {
    case 'bitflip': {
      const bytes = Buffer.from(body, 'base64url');
      const i = Math.min(bytes.length - 1, Math.floor(m.at * bytes.length));
      bytes[i] = (bytes[i] as number) ^ (1 << (m.bit & 7));
      return `acap1.${b64url(bytes)}`;
    }
    case 'truncate':
      return text.slice(0, Math.max(0, Math.min(text.length - 1, m.keep)));
    case 'text': {
      const i = Math.min(text.length - 1, Math.floor(m.at * text.length));
      const replaced = text.slice(0, i) + m.char + text.slice(i + 1);
      // Replacing a character with itself changes nothing: make it a real change.
      return replaced === text ? text + m.char : replaced;
    }
    case 'swap-caveats': {
      const bytes = Buffer.from(body, 'base64url');
      const blocks: Buffer[] = [];
      let at = 2;
      while (at < bytes.length - 32) {
        const len = bytes.readUInt16BE(at + 1);
        blocks.push(bytes.subarray(at, at + 3 + len));
        at += 3 + len;
      }
      if (blocks.length < 3) return `acap1.${b64url(Buffer.concat([bytes.subarray(0, bytes.length - 1), Buffer.from([(bytes[bytes.length - 1] as number) ^ 1])]))}`;
      const [root, first, second, ...rest] = blocks as [Buffer, Buffer, Buffer, ...Buffer[]];
      return `acap1.${b64url(Buffer.concat([bytes.subarray(0, 2), root, second, first, ...rest, bytes.subarray(bytes.length - 32)]))}`;
    }
  }
}

/** Keyrings for tokens the runtime must not accept: an unknown key id, and the active id with another secret. */
export class ForeignKeys {
  readonly unknown = Keyring.generate({ keyId: 'fuzz-unknown-key' });
  readonly #impostors = new Map<string, Keyring>();

  impostor(activeKeyId: string): Keyring {
    let k = this.#impostors.get(activeKeyId);
    if (k === undefined) {
      k = Keyring.fromKeys([{ id: activeKeyId, secret: randomBytes(32) }]);
      this.#impostors.set(activeKeyId, k);
    }
    return k;
  }
}

/**
 * Mint a spec now. Returns undefined when the issuer refuses the spec (the
 * generators avoid that; a refused token is simply not granted).
 */
export function mint(spec: TokenSpec, keyring: Keyring, foreign: ForeignKeys, now: number, runId: string, revocations: RevocationList | undefined): Minted | undefined {
  const runOf = (r: 'this' | 'other' | undefined): string | undefined => (r === 'this' ? runId : r === 'other' ? OTHER_RUN : undefined);
  const ring = spec.key === 'active' ? keyring : spec.key === 'unknown' ? foreign.unknown : foreign.impostor(keyring.activeKeyId as string);
  const issuedAt = now + spec.iat;
  const notBefore = spec.nbf === undefined ? Math.max(0, issuedAt - 60_000) : now + spec.nbf;
  const expiresAt = now + spec.exp;
  const rootId = randomBytes(16).toString('hex');
  let text: string;
  try {
    text = issueToken(ring, {
      kind: spec.kind,
      resource: spec.resource,
      methods: spec.methods,
      issuedAt,
      notBefore: spec.nbf === undefined ? undefined : notBefore,
      expiresAt,
      rate: spec.rate,
      runId: runOf(spec.run),
      tokenId: rootId,
    });
  } catch {
    return undefined;
  }
  const links: ModelLink[] = [{ id: rootId, resource: spec.resource, methods: spec.methods, notBefore, expiresAt, rate: spec.rate, runId: runOf(spec.run) }];
  for (const c of spec.caveats) {
    const fields = {
      resource: c.resource,
      methods: c.methods,
      notBefore: c.nbf === undefined ? undefined : now + c.nbf,
      expiresAt: c.exp === undefined ? undefined : now + c.exp,
      rate: c.rate,
      runId: runOf(c.run),
    };
    if (fields.notBefore !== undefined && fields.notBefore < 0) continue;
    if (fields.expiresAt !== undefined && fields.expiresAt < 0) continue;
    let id: string;
    try {
      id = randomBytes(16).toString('hex');
      text = attenuateToken(text, { ...fields, tokenId: id }, { now });
    } catch {
      // Widening, or never valid: the API refuses; a holder can still append the bytes.
      const forged = forgeCaveat(text, spec.kind, fields);
      text = forged.text;
      id = forged.id;
    }
    links.push({ id, ...fields });
  }
  const chain = links.map((l) => l.id);
  if (spec.revoke !== undefined && revocations !== undefined) revocations.revokeToken(spec.revoke === 'root' ? rootId : (chain[chain.length - 1] as string), { reason: 'fuzz' });
  const mac = spec.mutate !== undefined ? 'mutated' : spec.key === 'unknown' ? 'unknown-key' : spec.key === 'bad-secret' ? 'bad-mac' : 'ok';
  if (spec.mutate !== undefined) text = mutate(text, spec.mutate);
  return { text, chain, model: { kind: spec.kind, mac, issuedAt, links } };
}
