import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { toGuestError } from '../src/host/index.ts';

test('every error code maps to its WIT error case', () => {
  const own: Partial<Record<ErrorCode, string>> = {
    [ErrorCode.NOT_FOUND]: 'not-found',
    [ErrorCode.INVALID_ARGUMENT]: 'invalid',
    [ErrorCode.TOO_LARGE]: 'too-large',
    [ErrorCode.IO]: 'io',
    [ErrorCode.TIMEOUT]: 'timeout',
    [ErrorCode.RATE_LIMITED]: 'rate-limited',
    [ErrorCode.BUDGET_EXCEEDED]: 'budget-exhausted',
  };
  for (const code of Object.values(ErrorCode)) {
    const g = toGuestError(new AuthorityError(code, `because ${code}`));
    const expected = own[code] ?? 'denied';
    assert.equal(g.tag, expected, code);
    if (g.tag === 'denied') assert.deepEqual(g.val, { code, message: `because ${code}` });
    else if (g.tag === 'rate-limited') assert.equal(typeof g.val, 'bigint');
    else assert.equal(g.val, `because ${code}`);
  }
});

test('rate-limited carries the retry delay from the error data', () => {
  assert.deepEqual(toGuestError(new AuthorityError(ErrorCode.RATE_LIMITED, 'slow down', { data: { retryAfterMs: 1500.2 } })), { tag: 'rate-limited', val: 1501n });
  assert.deepEqual(toGuestError(new AuthorityError(ErrorCode.RATE_LIMITED, 'slow down', { data: { retryAfterMs: 'soon' } })), { tag: 'rate-limited', val: 0n });
});

test('anything that is not an AuthorityError becomes denied(E_INTERNAL) without its message, which may name host paths', () => {
  const g = toGuestError(new Error("ENOENT: no such file or directory, open '/srv/secret/host/path'"));
  assert.deepEqual(g, { tag: 'denied', val: { code: ErrorCode.INTERNAL, message: 'internal error in the host' } });
  assert.equal(toGuestError('a string').tag, 'denied');
});

test('a redact function scrubs the message, and very long messages are cut', () => {
  const g = toGuestError(new AuthorityError(ErrorCode.IO, 'failed with sk-abcdefgh123'), (t) => t.replace('sk-abcdefgh123', '[REDACTED:K]'));
  assert.deepEqual(g, { tag: 'io', val: 'failed with [REDACTED:K]' });
  const long = toGuestError(new AuthorityError(ErrorCode.IO, 'x'.repeat(5000)));
  assert.ok(long.tag === 'io' && long.val.length < 1100);
});
