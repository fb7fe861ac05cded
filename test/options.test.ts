import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { createRuntime, type RuntimeOptions } from '../src/runtime.ts';
import { WorkerPool, type PoolOptions } from '../src/sandbox/index.ts';
import { tempDir } from './helpers/runtime.ts';

const configError = (field: string) => (e: unknown) => {
  assert.ok(e instanceof AuthorityError, String(e));
  assert.equal(e.code, ErrorCode.CONFIG);
  assert.equal(e.data?.['field'], field);
  assert.ok(e.message.startsWith(`${field} must be`), e.message);
  return true;
};

test('a pool of NaN workers is refused where the options enter, naming the field', async () => {
  assert.throws(() => new WorkerPool({ size: Number.NaN }), configError('size'));
  const dir = tempDir();
  try {
    const dataDir = join(dir.path, 'data');
    await assert.rejects(createRuntime({ dataDir, pool: { size: Number.NaN } }), configError('pool.size'));
    assert.equal(existsSync(dataDir), false, 'nothing was created before the check');
  } finally {
    dir.cleanup();
  }
});

test('each wrong pool option is an E_CONFIG error naming it', () => {
  const cases: [PoolOptions, string][] = [
    [{ size: 0 }, 'size'],
    [{ size: 1.5 }, 'size'],
    [{ size: Number.POSITIVE_INFINITY }, 'size'],
    [{ maxQueue: -1 }, 'maxQueue'],
    [{ heapLimitMb: 1 }, 'heapLimitMb'],
    [{ workerSpinUs: Number.NaN }, 'workerSpinUs'],
    [{ mainSpinUs: '200' as never }, 'mainSpinUs'],
    [{ prepareTimeoutMs: 0 }, 'prepareTimeoutMs'],
  ];
  for (const [opts, field] of cases) assert.throws(() => new WorkerPool(opts), configError(field), JSON.stringify(opts));
  assert.throws(() => new WorkerPool('big' as never), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
});

test('each wrong runtime option is an E_CONFIG error naming it, before anything is opened', async () => {
  const dir = tempDir();
  try {
    const dataDir = join(dir.path, 'data');
    const cases: [Record<string, unknown>, string][] = [
      [{ maxGrants: 0 }, 'maxGrants'],
      [{ maxGrants: Number.NaN }, 'maxGrants'],
      [{ requireToolGrant: 'yes' }, 'requireToolGrant'],
      [{ approve: 'alice' }, 'approve'],
      [{ audit: { durability: 'sometimes' } }, 'audit.durability'],
      [{ audit: { dir: 42 } }, 'audit.dir'],
      [{ keys: { file: '' } }, 'keys.file'],
      [{ pool: { maxQueue: -5 } }, 'pool.maxQueue'],
      [{ policy: 7 }, 'policy'],
      [{ cacheDir: {} }, 'cacheDir'],
      [{ limits: 'none' }, 'limits'],
      [{ store: 'redis' }, 'store'],
    ];
    for (const [opts, field] of cases) {
      await assert.rejects(createRuntime({ dataDir, ...(opts as RuntimeOptions) }), configError(field), JSON.stringify(opts));
    }
    await assert.rejects(createRuntime(null as never), (e: AuthorityError) => e.code === ErrorCode.CONFIG);
    assert.equal(existsSync(dataDir), false);
  } finally {
    dir.cleanup();
  }
});
