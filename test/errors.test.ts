import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorityError, ErrorCode, isErrorCode, toAuthorityError } from '../src/errors.ts';

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
