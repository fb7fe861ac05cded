import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { GUEST_ERROR_CASE, SECRET_NAME, guestError, placeholdersIn } from '../src/host-call.ts';
import { denialToGuest } from '../src/gate/index.ts';
import { SecretStore, toGuestError } from '../src/host/index.ts';
import { loadPolicy } from '../src/policy/index.ts';

const VALUE = 'a-secret-value-long-enough';

test('a secret name the store accepts can be named in a policy and read through it', () => {
  for (const name of ['api.key', 'weather-key', 'K', '_x.y-z']) {
    assert.equal(new SecretStore({ [name]: VALUE }).get(name), VALUE);
    const { policy } = loadPolicy({ version: '1.0', secrets: { [name]: { reveal: true } } });
    const d = policy.decide({ op: 'secrets.get', name });
    assert.equal(d.allow, true, `${name}: ${d.reason}`);
  }
});

test('a name the store refuses is refused by the policy too, naming the pattern', () => {
  for (const name of ['1abc', 'a b', 'x/y', '.hidden', 'A'.repeat(129)]) {
    assert.equal(SECRET_NAME.test(name), false, name);
    assert.throws(() => new SecretStore({ [name]: VALUE }), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
    assert.throws(
      () => loadPolicy({ version: '1.0', secrets: { [name]: {} } }),
      (e: AuthorityError) => e.code === ErrorCode.POLICY_INVALID && e.message.includes('[A-Za-z_][A-Za-z0-9_.-]{0,127}'),
    );
  }
});

test('the gate asks for exactly the placeholders the host would fill', () => {
  const headers: [string, string][] = [
    ['authorization', 'Bearer {{secret:api.key}} {{secret:B}}'],
    ['x-a', '{{secret:B}}{{secret:1bad}}{{secret:a b}}{{ secret:C }}'],
  ];
  assert.deepEqual(placeholdersIn(headers), ['B', 'api.key']);
});

test('every error code reaches the guest as one WIT error case, whichever side raised it', () => {
  for (const code of Object.values(ErrorCode)) {
    const fromGate = denialToGuest({ code, reason: 'why', retryAfterMs: 1500.2 });
    const fromHost = toGuestError(new AuthorityError(code, 'why', { data: { retryAfterMs: 1500.2 } }));
    assert.deepEqual(fromGate, fromHost, code);
    const tag = GUEST_ERROR_CASE[code] ?? 'denied';
    assert.equal(fromGate.tag, tag, code);
    if (tag === 'denied') assert.deepEqual(fromGate.val, { code, message: 'why' });
    else if (tag === 'rate-limited') assert.equal(fromGate.val, 1501n);
    else assert.equal(fromGate.val, 'why');
  }
});

test('a rate-limited error with no usable wait says 0 ms rather than failing', () => {
  for (const after of [undefined, Number.NaN, -5, Number.POSITIVE_INFINITY]) {
    assert.deepEqual(guestError(ErrorCode.RATE_LIMITED, 'slow down', after), { tag: 'rate-limited', val: 0n });
  }
});
