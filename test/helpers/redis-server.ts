/**
 * A real redis-server for tests: Debian's package, on a free loopback port,
 * with a temporary folder and no persistence, stopped after. Installed in the
 * set-up when missing and we are root; otherwise the error names the command.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const INSTALL_COMMAND = 'apt-get update && apt-get install -y redis-server';
const POLICY_RC_D = '/usr/sbin/policy-rc.d';

let checked: string | undefined;

function hasRedisServer(): boolean {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return r.status === 0 && /Redis server v=/.test(r.stdout);
}

/**
 * Make sure `redis-server` can be run. The package's install script would
 * start a system-wide service on port 6379 and leave it running; a
 * policy-rc.d that refuses (exit 101, Debian's own switch for this) keeps it
 * from starting while we install.
 */
export function ensureRedisServer(): void {
  if (checked !== undefined) return;
  if (hasRedisServer()) {
    checked = 'present';
    return;
  }
  if (process.getuid?.() !== 0) throw new Error(`redis-server is not installed; as root, run: ${INSTALL_COMMAND}`);
  const ownPolicy = !existsSync(POLICY_RC_D);
  if (ownPolicy) writeFileSync(POLICY_RC_D, '#!/bin/sh\n# No service may start during a test set-up install.\nexit 101\n', { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const opts = { env, encoding: 'utf8' as const, stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], timeout: 600_000 };
    // Another test file (or another package install) may hold the dpkg lock: wait for it.
    const update = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update'], opts);
    const install = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', 'redis-server'], opts);
    if (install.status !== 0 || !hasRedisServer()) {
      throw new Error(`installing redis-server failed (${install.stderr.trim().split('\n').pop() ?? update.stderr}); run: ${INSTALL_COMMAND}`);
    }
  } finally {
    if (ownPolicy) rmSync(POLICY_RC_D, { force: true });
  }
  checked = 'installed';
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** The server's process id (changes after a restart). */
  readonly pid: number | undefined;
  /** SIGKILL: the crash case. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** Start again on the same port and folder (after kill or stop). */
  restart(): Promise<void>;
  /** Stop it and remove its folder. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function launch(port: number, dir: string, extra: readonly string[]): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server did not start on port ${port}: ${out.slice(-500)}`));
    }, 10_000);
    const onData = (b: Buffer): void => {
      out += b.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.resume();
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code} on port ${port}: ${out.slice(-500)}`));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Start a redis-server for one test file. */
export async function startRedis(extraArgs: readonly string[] = []): Promise<TestRedis> {
  ensureRedisServer();
  const dir = mkdtempSync(join(tmpdir(), 'authority-redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  for (let attempt = 0; child === undefined; attempt++) {
    port = await freePort();
    try {
      child = await launch(port, dir, extraArgs);
    } catch (e) {
      // Another process took the port between our probe and the server's bind.
      if (attempt >= 3) throw e;
    }
  }
  let current: ChildProcess = child;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get pid() {
      return current.pid;
    },
    async kill() {
      current.kill('SIGKILL');
      await exited(current);
    },
    async restart() {
      await exited(current);
      current = await launch(port, dir, extraArgs);
    },
    async stop() {
      current.kill('SIGTERM');
      await exited(current);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
