/**
 * Running a Lua script: EVALSHA first (the script body is sent once per
 * server), EVAL when the server does not have it yet (a restart, a failover).
 * @module
 */
import { createHash } from 'node:crypto';
import { redisFailure, type RedisClient } from './redis.ts';

const shas = new Map<string, string>();

function shaOf(source: string): string {
  let sha = shas.get(source);
  if (sha === undefined) {
    sha = createHash('sha1').update(source).digest('hex');
    shas.set(source, sha);
  }
  return sha;
}

/** Run `source` with `keys` and `args`; any failure rejects with E_STATE_UNAVAILABLE naming `what`. */
export async function evalScript(client: RedisClient, source: string, keys: readonly string[], args: readonly string[], what: string): Promise<unknown> {
  const tail = [String(keys.length), ...keys, ...args];
  try {
    try {
      return await client.sendCommand(['EVALSHA', shaOf(source), ...tail]);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return await client.sendCommand(['EVAL', source, ...tail]);
    }
  } catch (e) {
    throw redisFailure(e, what);
  }
}
