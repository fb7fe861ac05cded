import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorityError, ErrorCode, isErrorCode, toAuthorityError } from '../src/errors.ts';
import type * as ErrorsModule from '../src/errors.ts';

test('every error code is a stable E_ string, unique, and round-trips through AuthorityError', () => {
  const codes = Object.values(ErrorCode);
  assert.equal(new Set(codes).size, codes.length, 'codes are unique');
  for (const [name, code] of Object.entries(ErrorCode)) {
    assert.equal(code, `E_${name}`, `${name} is spelled E_${name}`);
    assert.ok(isErrorCode(code));
    const cause = new Error('inner');
    const err = new AuthorityError(code, `msg for ${code}`, { data: { at: 'x' }, cause });
    assert.equal(err.code, code);
    assert.equal(err.cause, cause);
    assert.deepEqual(err.toJSON(), { code, message: `msg for ${code}`, data: { at: 'x' } });
    assert.ok(Object.isFrozen(err.data));
  }
});

test('isErrorCode rejects strings that are not codes', () => {
  assert.equal(isErrorCode('E_NOPE'), false);
  assert.equal(isErrorCode(42), false);
});

test('toAuthorityError keeps an AuthorityError and wraps anything else with its cause', () => {
  const original = new AuthorityError(ErrorCode.TIMEOUT, 'late');
  assert.equal(toAuthorityError(original), original);
  const wrapped = toAuthorityError(new TypeError('bad'), ErrorCode.IO);
  assert.equal(wrapped.code, ErrorCode.IO);
  assert.equal(wrapped.message, 'bad');
  assert.ok(wrapped.cause instanceof TypeError);
});

// The list of codes is public contract: a code is never renamed or removed, and a new one is a deliberate act.
const CODES = [
  'E_CAP_MISSING', 'E_CAP_INVALID', 'E_CAP_EXPIRED', 'E_CAP_NOT_YET_VALID', 'E_CAP_REVOKED', 'E_CAP_SCOPE', 'E_CAP_RUN_MISMATCH',
  'E_CAP_UNKNOWN_KEY', 'E_CAP_WIDENING', 'E_POLICY_DENY', 'E_POLICY_INVALID', 'E_APPROVAL_REQUIRED', 'E_APPROVAL_DENIED',
  'E_RATE_LIMITED', 'E_BUDGET_EXCEEDED', 'E_SECRET_LEAK', 'E_INVALID_ARGUMENT', 'E_NOT_FOUND', 'E_TOO_LARGE', 'E_IO',
  'E_TOOL_NOT_FOUND', 'E_TOOL_FAILED', 'E_TOOL_TRAPPED', 'E_TOOL_OUTPUT', 'E_COMPONENT_INVALID', 'E_COMPONENT_IMPORT',
  'E_TIMEOUT', 'E_OVERLOADED', 'E_HALTED', 'E_STATE_UNAVAILABLE',
  'E_REGISTRY_NOT_FOUND', 'E_REGISTRY_UNAUTHORIZED', 'E_REGISTRY_PROTOCOL', 'E_REGISTRY_UNREACHABLE', 'E_DIGEST_MISMATCH',
  'E_SIGNATURE_INVALID', 'E_TOOL_UNSIGNED', 'E_TOOL_UNTRUSTED', 'E_TOOL_PIN_MISMATCH',
  'E_AUDIT_WRITE', 'E_AUDIT_TAMPERED', 'E_CONFIG', 'E_USAGE', 'E_INTERNAL',
];

test('the error-code list is frozen: exactly these codes, and the object cannot be changed at run time', () => {
  assert.deepEqual(Object.values(ErrorCode), CODES);
  assert.ok(Object.isFrozen(ErrorCode));
  assert.throws(() => {
    (ErrorCode as Record<string, string>)['NEW'] = 'E_NEW';
  }, TypeError);
});

test('instanceof AuthorityError holds for an error made by another copy of the package, and only for those', async () => {
  const other = (await import(`../src/errors.ts?copy=${Date.now()}`)) as typeof ErrorsModule;
  assert.notEqual(other.AuthorityError, AuthorityError, 'a second module instance');
  const foreign = new other.AuthorityError(other.ErrorCode.TIMEOUT, 'from the other copy');
  assert.ok(foreign instanceof AuthorityError);
  assert.ok(new AuthorityError(ErrorCode.IO, 'x') instanceof other.AuthorityError);
  assert.equal(toAuthorityError(foreign), foreign, 'kept as it is, not wrapped');
  for (const notOne of [new Error('plain'), { code: 'E_IO', message: 'look-alike', name: 'AuthorityError' }, null, 'E_IO', Object.create(null)]) {
    assert.equal(notOne instanceof AuthorityError, false);
  }
  class Narrower extends AuthorityError {}
  assert.ok(new Narrower(ErrorCode.IO, 'n') instanceof Narrower);
  assert.equal(new AuthorityError(ErrorCode.IO, 'x') instanceof Narrower, false, 'a subclass keeps the prototype check');
});
