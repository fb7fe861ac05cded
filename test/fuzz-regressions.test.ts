import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RegressionCase } from '../src/fuzz/cases.ts';
import { replayRegressions } from '../src/fuzz/run.ts';
import { FIXTURES } from './helpers/fixtures.ts';
import { SHARED_CACHE } from './helpers/runtime.ts';

// Cases the fuzzer found, each named after what broke; `authority fuzz` prints new ones as they are found.
const cases = JSON.parse(readFileSync(join(FIXTURES, 'fuzz', 'regressions.json'), 'utf8')) as RegressionCase[];

describe('fuzz regressions', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const failures = await replayRegressions([c], { cacheDir: SHARED_CACHE });
      assert.deepEqual(failures, []);
    });
  }
});
