/**
 * A real OCI registry for tests: Debian's `docker-registry` (the CNCF
 * distribution registry, 2.8: no referrers API) started on a free loopback
 * port with a temp storage folder and a generated config, optionally behind
 * htpasswd basic auth. Installed when missing and we are root; otherwise the
 * set-up fails with the command to run. The package's own service is never
 * started (policy-rc.d refuses it during the install) and the test's registry
 * is stopped by `stop()`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tempDir } from './runtime.ts';

const REGISTRY_BIN = '/usr/bin/docker-registry';
const HTPASSWD_BIN = '/usr/bin/htpasswd';
const OPENSSL_BIN = '/usr/bin/openssl';
const INSTALL = 'apt-get update && apt-get install -y docker-registry apache2-utils openssl';
const POLICY_RC = '/usr/sbin/policy-rc.d';

let installed = false;

/** Make sure the registry and htpasswd are installed (root: apt-get, without starting the package's service). */
export function ensureRegistryInstalled(): void {
  if (installed || (existsSync(REGISTRY_BIN) && existsSync(HTPASSWD_BIN) && existsSync(OPENSSL_BIN))) {
    installed = true;
    return;
  }
  if (process.getuid?.() !== 0) throw new Error(`docker-registry and htpasswd are needed for these tests and we are not root; run: sudo sh -c '${INSTALL}'`);
  // Debian's postinst would start the system service on :5000; refuse every service start while installing.
  const ownPolicy = !existsSync(POLICY_RC);
  if (ownPolicy) writeFileSync(POLICY_RC, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    execFileSync('sh', ['-c', INSTALL], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 });
  } catch (e) {
    throw new Error(`installing docker-registry failed; run: ${INSTALL}\n${String((e as { stderr?: Buffer }).stderr ?? e)}`);
  } finally {
    if (ownPolicy) rmSync(POLICY_RC, { force: true });
  }
  if (!existsSync(REGISTRY_BIN)) throw new Error(`docker-registry is still missing; run: ${INSTALL}`);
  installed = true;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TestRegistry {
  /** host:port, e.g. `127.0.0.1:41234`. */
  host: string;
  storage: string;
  stop(): Promise<void>;
}

async function waitUp(host: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${log()}`);
    try {
      const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      // Any HTTP answer means it listens (a TLS registry answers plain HTTP with 400).
      if (res.status > 0) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not come up on ${host}: ${log()}`);
}

/** A self-signed certificate for 127.0.0.1 (PEM files in `dir`). */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  ensureRegistryInstalled();
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    OPENSSL_BIN,
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/** Start a registry on loopback; with `auth`, it requires basic auth (htpasswd, bcrypt); with `tls`, it speaks only HTTPS. */
export async function startRegistry(opts: { auth?: { user: string; password: string }; tls?: { cert: string; key: string } } = {}): Promise<TestRegistry> {
  ensureRegistryInstalled();
  const dir = tempDir('authority-oci-');
  const storage = join(dir.path, 'storage');
  mkdirSync(storage);
  const tlsBlock = opts.tls === undefined ? '' : `  tls:\n    certificate: ${opts.tls.cert}\n    key: ${opts.tls.key}\n`;
  let authBlock = '';
  if (opts.auth !== undefined) {
    const file = join(dir.path, 'htpasswd');
    execFileSync(HTPASSWD_BIN, ['-B', '-b', '-c', file, opts.auth.user, opts.auth.password], { stdio: 'ignore' });
    authBlock = `auth:\n  htpasswd:\n    realm: authority-test\n    path: ${file}\n`;
  }
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const config = join(dir.path, 'config.yml');
    writeFileSync(
      config,
      `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n  secret: ${randomBytes(16).toString('hex')}\n${tlsBlock}${authBlock}`,
    );
    let output = '';
    const child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    try {
      await waitUp(host, child, () => output);
    } catch (e) {
      child.kill('SIGKILL');
      if (attempt < 2 && /address already in use/.test(output)) continue;
      dir.cleanup();
      throw e;
    }
    return {
      host,
      storage,
      stop: async () => {
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        }
        dir.cleanup();
      },
    };
  }
}
