/**
 * One runtime of a fleet in its own process, for tests and the bench: a
 * child started with `startFleetNode`, driven by IPC messages. Each node has
 * its own data folder (its own audit log) and shares the keyring file and
 * Redis with the others.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { AuthorityError } from '../../src/errors.ts';
import { loadPolicy } from '../../src/policy/index.ts';
import type { Runtime } from '../../src/runtime.ts';

export interface FleetNodeConfig {
  node: string;
  dataDir: string;
  keysFile: string;
  redisUrl: string;
  policy: Record<string, unknown>;
  tools: string[];
  cacheDir: string;
  graceMs?: number;
}

type Reply = { id: number; ok: true; value?: unknown } | { id: number; ok: false; code: string; message: string };

export interface FleetNode {
  readonly name: string;
  readonly proc: ChildProcess;
  call(cmd: string, args?: Record<string, unknown>): Promise<Reply>;
  /** Ask the node to close its runtime, then wait for the process to exit. */
  close(): Promise<void>;
}

const SELF = fileURLToPath(import.meta.url);

/** Start a node; resolves once its runtime is up and its tools are registered. */
export function startFleetNode(config: FleetNodeConfig): Promise<FleetNode> {
  const proc = fork(SELF, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, AUTHORITY_FLEET_NODE: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let next = 0;
  const pending = new Map<number, (r: Reply) => void>();
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`fleet node ${config.node} exited with ${code} before it was ready`));
    proc.once('exit', onExit);
    proc.on('message', (m: { ready?: boolean; id?: number }) => {
      if (m.ready === true) {
        proc.off('exit', onExit);
        proc.once('exit', (code, signal) => {
          for (const done of pending.values()) done({ id: -1, ok: false, code: 'E_NODE_EXIT', message: `node exited (${code ?? signal})` });
          pending.clear();
        });
        resolve({
          name: config.node,
          proc,
          call(cmd, args = {}) {
            const id = ++next;
            return new Promise((done) => {
              pending.set(id, done);
              proc.send({ id, cmd, ...args });
            });
          },
          async close() {
            if (proc.exitCode === null && proc.signalCode === null) proc.send({ id: ++next, cmd: 'close' });
            await exited;
          },
        });
        return;
      }
      const r = m as Reply;
      pending.get(r.id)?.(r);
      pending.delete(r.id);
    });
  });
}

async function child(config: FleetNodeConfig): Promise<void> {
  const { createRuntime } = await import('../../src/runtime.ts');
  const rt: Runtime = await createRuntime({
    dataDir: config.dataDir,
    keys: { file: config.keysFile },
    cacheDir: config.cacheDir,
    logger: pino({ level: 'silent' }),
    pool: { size: 2 },
    // 64 invocations queue on six workers of a loaded machine: the deadline is not what these tests measure.
    limits: { timeoutMs: 120_000 },
    policy: config.policy,
    audit: { durability: 'fsync' },
    redis: { url: config.redisUrl, node: config.node, graceMs: config.graceMs, commandTimeoutMs: 500 },
  });
  for (const t of config.tools) await rt.register(t);
  const send = (m: unknown): void => void process.send?.(m);
  process.on('message', (m: { id: number; cmd: string; [k: string]: unknown }) => {
    void (async () => {
      try {
        let value: unknown;
        switch (m.cmd) {
          case 'invoke': {
            const r = await rt.invoke(m['tool'] as string, m['input'], { grants: m['grants'] as string[], runId: m['runId'] as string });
            value = { output: r.output, audit: r.audit };
            break;
          }
          case 'setPolicy':
            rt.setPolicy(loadPolicy(m['policy'] as Record<string, unknown>).policy);
            break;
          case 'revokeToken':
            await rt.revokeToken(m['tokenId'] as string, 'test');
            break;
          case 'revokeRun':
            await rt.revokeRun(m['runId'] as string, 'test');
            break;
          case 'halt':
            await rt.fleet?.halt(m['reason'] as string);
            break;
          case 'state':
            value = { halted: rt.halted ?? null, fleet: rt.fleet?.state, audit: rt.auditStatus.stats };
            break;
          case 'close':
            await rt.close();
            send({ id: m.id, ok: true });
            process.disconnect();
            return;
          default:
            throw new Error(`unknown command ${m.cmd}`);
        }
        send({ id: m.id, ok: true, value });
      } catch (e) {
        const code = e instanceof AuthorityError ? e.code : 'E_TEST';
        send({ id: m.id, ok: false, code, message: (e as Error).message });
      }
    })();
  });
  send({ ready: true });
}

const configText = process.env['AUTHORITY_FLEET_NODE'];
if (configText !== undefined && process.send !== undefined) {
  child(JSON.parse(configText) as FleetNodeConfig).catch((e: unknown) => {
    process.stderr.write(`fleet node failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
    process.disconnect();
  });
}
