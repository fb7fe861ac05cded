/**
 * The real browser for page tests: Debian's `chromium`, driven by
 * playwright-core at the system executable (nothing downloads a browser).
 * Installed here when missing and we are root; otherwise the test fails with
 * the exact command to run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
const INSTALL = 'apt-get update && apt-get install -y chromium';

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error(`\`${cmd} ${args.join(' ')}\` failed (exit ${r.status ?? r.signal}); install the browser with: ${INSTALL}`);
}

/** The path of the system Chromium, installing it first when it is missing and we may. */
export function ensureChromium(): string {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  if (process.getuid?.() !== 0) throw new Error(`the console's browser tests need Debian's chromium at ${CHROMIUM}; install it with: sudo sh -c '${INSTALL}'`);
  // Another apt run on the machine holds the lock for a while: wait for it rather than fail.
  run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update']);
  run('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', 'chromium']);
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is missing; install it with: ${INSTALL}`);
  return CHROMIUM;
}

/**
 * A headless Chromium with a fresh profile (its --user-data-dir, which
 * playwright takes as the persistent context's folder), removed on close.
 */
export async function launchChromium(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const executablePath = ensureChromium();
  const profile = mkdtempSync(join(tmpdir(), 'authority-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
