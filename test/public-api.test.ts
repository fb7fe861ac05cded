import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as api from '../src/index.ts';

// Every runtime name the package exports. A new public name is a deliberate act: add it here.
const EXPECTED = [
  'AuditLog',
  'AuthorityError',
  'DEFAULT_DATA_DIR',
  'DEFAULT_LIMITS',
  'DEFAULT_POLICY_NAME',
  'ErrorCode',
  'Fleet',
  'HOST_OPS',
  'Keyring',
  'MemoryLimitStore',
  'Policy',
  'RedisLimitStore',
  'RevocationList',
  'Runtime',
  'SecretStore',
  'TOOL_NAME_RE',
  'attenuateToken',
  'buildTool',
  'checkCapability',
  'connectRedis',
  'createRuntime',
  'dataPaths',
  'inspectToken',
  'isErrorCode',
  'issueToken',
  'loadPolicy',
  'loadPolicyFile',
  'parsePolicy',
  'parseToken',
  'prepareGrants',
  'proveRecord',
  'readAuditRecords',
  'resolveDataDir',
  'toAuthorityError',
  'verifyAudit',
  'verifyAuditProof',
  'verifyToken',
];

test('the package exports exactly the public names', () => {
  assert.deepEqual(Object.keys(api).sort(), EXPECTED);
});
