/**
 * RuntimeOptions checked where they enter (createRuntime): each field of the
 * wrong type or out of range is an E_CONFIG error naming it, before anything
 * is opened or created.
 * @module
 */
import { isBoolean, isFunction, isObject, isString, optionalInt, optionalOf, optionsObject } from './config-check.ts';
import { validatePoolOptions } from './sandbox/index.ts';

const DURABILITIES: ReadonlySet<unknown> = new Set(['fsync', 'none']);

/** Throw E_CONFIG (with `data.field`) for the first option that is wrong. */
export function validateRuntimeOptions(opts: unknown): void {
  const o = optionsObject(opts, 'runtime options');
  optionalOf(o, 'dataDir', '', 'a folder path', isString);
  optionalOf(o, 'policy', '', 'a Policy, a policy file path or a policy document', (v) => isString(v) || isObject(v));
  optionalOf(o, 'keys', '', 'an object { file?, env? }', isObject);
  if (isObject(o['keys'])) {
    const keys = o['keys'] as Record<string, unknown>;
    optionalOf(keys, 'file', 'keys.', 'a file path', isString);
    optionalOf(keys, 'env', 'keys.', 'an object of environment variables', isObject);
  }
  optionalOf(o, 'secrets', '', 'a SecretStore or its options', isObject);
  optionalOf(o, 'audit', '', 'an object', isObject);
  if (isObject(o['audit'])) {
    const audit = o['audit'] as Record<string, unknown>;
    optionalOf(audit, 'dir', 'audit.', 'a folder path', isString);
    optionalOf(audit, 'checkpointDir', 'audit.', 'a folder path', isString);
    optionalOf(audit, 'durability', 'audit.', "'fsync' or 'none'", (v) => DURABILITIES.has(v));
    optionalOf(audit, 'io', 'audit.', 'an object of file operations', isObject);
  }
  if (o['pool'] !== undefined) validatePoolOptions(o['pool'], 'pool.');
  optionalOf(o, 'cacheDir', '', 'a folder path', isString);
  optionalOf(o, 'limits', '', 'an object of tool limits', isObject);
  optionalOf(o, 'http', '', 'an object of HTTP client options', isObject);
  optionalOf(o, 'store', '', 'a LimitStore', isObject);
  optionalOf(o, 'logger', '', 'a pino logger', isObject);
  optionalOf(o, 'requireToolGrant', '', 'true or false', isBoolean);
  optionalInt(o, 'maxGrants', '', 1, 4096);
  optionalOf(o, 'approve', '', 'a function', isFunction);
  optionalOf(o, 'now', '', 'a function', isFunction);
}
