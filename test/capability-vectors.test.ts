import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AuthorityError } from '../src/errors.ts';
import {
  Keyring,
  RevocationList,
  attenuateToken,
  checkCapability,
  parseToken,
  prepareGrants,
  verifyToken,
  type CapabilityKind,
  type CaveatInput,
} from '../src/capability/index.ts';

interface Context {
  now: number;
  runId?: string;
  revokedTokens?: string[];
  revokedRuns?: string[];
}
type Case =
  | { name: string; op: 'verify'; token: string; context: Context; expect: Record<string, unknown> }
  | { name: string; op: 'attenuate'; token: string; caveat: CaveatInput; now: number; expect: Record<string, unknown> }
  | { name: string; op: 'check'; tokens: string[]; request: { kind: CapabilityKind; resource: string; method: string }; context: Context; expect: Record<string, unknown> };

const doc = JSON.parse(readFileSync(new URL('./fixtures/capability-vectors.json', import.meta.url), 'utf8')) as {
  keys: Array<{ id: string; secret: string; status: 'active' | 'retired' }>;
  t0: number;
  bitFlipToken: string;
  cases: Case[];
};
const keyring = Keyring.fromKeys(doc.keys);

function contextOf(c: Context): { now: number; runId: string | undefined; revocations: RevocationList } {
  const revocations = RevocationList.memory();
  for (const id of c.revokedTokens ?? []) revocations.revokeToken(id);
  for (const id of c.revokedRuns ?? []) revocations.revokeRun(id);
  return { now: c.now, runId: c.runId, revocations };
}

/** The MAC chain recomputed with createHmac, straight from the documented byte layout. */
function independentMacOk(text: string, secret: Buffer): boolean {
  const bytes = Buffer.from(text.slice('acap1.'.length), 'base64url');
  let p = 2;
  const blocks: Buffer[] = [];
  for (let i = 0; i <= (bytes[1] as number); i++) {
    const end = p + 3 + bytes.readUInt16BE(p + 1);
    blocks.push(bytes.subarray(p, end));
    p = end;
  }
  let mac = createHmac('sha256', secret).update(blocks[0] as Buffer).digest();
  for (const b of blocks.slice(1)) mac = createHmac('sha256', mac).update(b).digest();
  return mac.equals(bytes.subarray(p));
}

function assertNoTokenText(err: AuthorityError, text: string): void {
  const body = text.slice('acap1.'.length);
  const shown = JSON.stringify({ message: err.message, data: err.data, stack: err.stack });
  if (body.length >= 16) assert.ok(!shown.includes(body.slice(-43)), 'the error does not quote the MAC or the token text');
}

test('the vectors file holds at least 40 cases, each with a unique name', () => {
  assert.ok(doc.cases.length >= 40, `${doc.cases.length} cases`);
  assert.equal(new Set(doc.cases.map((c) => c.name)).size, doc.cases.length);
});

for (const c of doc.cases) {
  test(`vector: ${c.name}`, () => {
    switch (c.op) {
      case 'verify': {
        if (c.expect['ok'] === true) {
          const t = verifyToken(keyring, c.token, contextOf(c.context));
          assert.equal(t.tokenId, c.expect['tokenId']);
          if (c.expect['chain'] !== undefined) assert.deepEqual(t.chain, c.expect['chain']);
          if (c.expect['kind'] !== undefined) assert.equal(t.kind, c.expect['kind']);
          if (c.expect['methods'] !== undefined) assert.deepEqual(t.effective.methods, c.expect['methods']);
          if (c.expect['expiresAt'] !== undefined) assert.equal(t.effective.expiresAt, c.expect['expiresAt']);
          if (c.expect['rates'] !== undefined) assert.deepEqual(t.effective.rates, c.expect['rates']);
          const key = doc.keys.find((k) => k.id === t.keyId);
          assert.ok(key !== undefined && independentMacOk(c.token, Buffer.from(key.secret, 'base64url')), 'createHmac agrees with the MAC chain');
        } else {
          assert.throws(
            () => verifyToken(keyring, c.token, contextOf(c.context)),
            (e: unknown) => {
              assert.ok(e instanceof AuthorityError, 'an AuthorityError');
              assert.equal(e.code, c.expect['code'], e.message);
              assertNoTokenText(e, c.token);
              return true;
            },
          );
        }
        return;
      }
      case 'attenuate': {
        if (c.expect['token'] !== undefined) {
          assert.equal(attenuateToken(c.token, c.caveat, { now: c.now }), c.expect['token']);
        } else {
          assert.throws(
            () => attenuateToken(c.token, c.caveat, { now: c.now }),
            (e: unknown) => e instanceof AuthorityError && e.code === c.expect['code'],
          );
        }
        return;
      }
      case 'check': {
        const d = checkCapability(prepareGrants(keyring, c.tokens), c.request, contextOf(c.context));
        assert.equal(d.allow, c.expect['allow'], d.reason);
        if (!d.allow) assert.equal(d.code, c.expect['code'], d.reason);
        if (c.expect['tokenId'] !== undefined) {
          assert.equal(d.tokenId, c.expect['tokenId']);
          assert.ok(d.reason.includes(c.expect['tokenId'] as string), 'the reason names the token id');
        }
        if (c.expect['rates'] !== undefined) assert.deepEqual(d.rates, c.expect['rates']);
        for (const t of c.tokens) if (t.length > 40) assert.ok(!d.reason.includes(t.slice(-43)), 'the reason never quotes token text');
        return;
      }
    }
  });
}

const flipContext = (): { now: number; revocations: RevocationList } => ({ now: doc.t0 + 1000, revocations: RevocationList.memory() });

test('the bit-flip reference token verifies unmodified', () => {
  assert.equal(verifyToken(keyring, doc.bitFlipToken, flipContext()).tokenId, parseToken(doc.bitFlipToken).tokenId);
});

test('every single-bit flip of the token text is rejected', () => {
  const text = doc.bitFlipToken;
  let flips = 0;
  for (let i = 0; i < text.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const flipped = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ (1 << bit)) + text.slice(i + 1);
      assert.throws(
        () => verifyToken(keyring, flipped, flipContext()),
        (e: unknown) => e instanceof AuthorityError && e.code.startsWith('E_CAP_'),
        `flip of bit ${bit} of character ${i} was accepted`,
      );
      flips++;
    }
  }
  assert.equal(flips, text.length * 8);
});

test('every single-bit flip of the token bytes is rejected', () => {
  const bytes = Buffer.from(doc.bitFlipToken.slice('acap1.'.length), 'base64url');
  for (let i = 0; i < bytes.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const copy = Buffer.from(bytes);
      copy[i] = (copy[i] as number) ^ (1 << bit);
      const flipped = 'acap1.' + copy.toString('base64url');
      assert.throws(
        () => verifyToken(keyring, flipped, flipContext()),
        (e: unknown) => e instanceof AuthorityError && e.code.startsWith('E_CAP_'),
        `flip of bit ${bit} of byte ${i} was accepted`,
      );
    }
  }
});
