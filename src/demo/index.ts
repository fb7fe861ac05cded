/**
 * `npm start`: a short scripted session with real tools, real files and a
 * real HTTP server on 127.0.0.1, ending with a check of the audit chain.
 *
 * An agent holds broad capability tokens; the operator's policy bounds them.
 * Some calls are allowed, some are denied, and every one is in the audit log.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyAudit } from '../audit/index.ts';
import { AuthorityError } from '../errors.ts';
import { SecretStore } from '../host/index.ts';
import { createRuntime } from '../runtime.ts';
import { ensureTools } from '../../tools/build.ts';

const color = process.stdout.isTTY && process.env['NO_COLOR'] === undefined;
const paint = (code: number, s: string): string => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const green = (s: string): string => paint(32, s);
const red = (s: string): string => paint(31, s);
const dim = (s: string): string => paint(2, s);
const bold = (s: string): string => paint(1, s);
const say = (s = ''): void => void process.stdout.write(s + '\n');

/** A demo secret: a real value the weather server checks, which the tool never sees. */
const WEATHER_KEY = 'demo-weather-key-4f1c2a9e';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function main(): Promise<number> {
  say(bold('Authority demo: sandboxed tools behind one audited gate'));
  say(dim('building the example tools if needed...'));
  const tools = await ensureTools(['word-count', 'read-file', 'write-file', 'fetch-url', 'weather'], { log: (l) => say(dim(l)) });

  // A workspace with a file to read, and a folder the policy lets tools write to.
  const workspace = mkdtempSync(join(tmpdir(), 'authority-demo-'));
  mkdirSync(join(workspace, 'out'));
  writeFileSync(join(workspace, 'notes.txt'), 'Agents should only touch what they were granted.\n');

  // The API the agent may call, and another server on this machine it may not.
  let weatherHits = 0;
  const api = createServer((req, res) => {
    if (req.url?.startsWith('/v1/current')) {
      weatherHits++;
      if (req.headers.authorization !== `Bearer ${WEATHER_KEY}`) {
        res.writeHead(401).end('{"error":"bad key"}');
        return;
      }
      const city = new URL(req.url, 'http://x').searchParams.get('city') ?? '?';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ city, tempC: 21, sky: 'clear' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('hello from the allowed API\n');
  });
  let canaryHits = 0;
  const canary = createServer((_req, res) => {
    canaryHits++;
    res.end('you should never see this');
  });
  const apiPort = await listen(api);
  const canaryPort = await listen(canary);
  const apiOrigin = `http://127.0.0.1:${apiPort}`;

  const runtime = await createRuntime({
    policy: {
      version: '1.0',
      name: 'demo',
      fs: { read: [`${workspace}/**`], write: [`${workspace}/out/**`] },
      // Loopback is a private destination: allowed only because a rule names it, with its port.
      net: { connect: [apiOrigin] },
      secrets: { WEATHER_KEY: { hosts: [apiOrigin] } },
      tools: { allow: ['*'] },
      budgets: { tool_calls: 50, host_calls: 500 },
    },
    secrets: SecretStore.load({ values: { WEATHER_KEY } }),
  });

  try {
    for (const name of Object.keys(tools)) {
      const t = await runtime.register(tools[name] as string);
      say(`${dim('registered')} ${t.name.padEnd(10)} ${dim(`sha256:${t.digest.slice(0, 12)}  imports: ${t.imports.length ? t.imports.join(', ') : 'none'}`)}`);
    }

    // The agent's grants: wide on purpose. The policy is what keeps them in bounds.
    const runId = `demo-${Date.now()}`;
    const grants = [
      runtime.issueToken({ kind: 'fs', resource: '/**', methods: ['read', 'list'], ttlMs: 600_000 }),
      runtime.issueToken({ kind: 'fs', resource: `${workspace}/out/**`, methods: ['write'], ttlMs: 600_000 }),
      runtime.issueToken({ kind: 'net', resource: 'http://*:*/**', methods: ['GET'], ttlMs: 600_000 }),
      runtime.issueToken({ kind: 'secrets', resource: 'WEATHER_KEY', methods: ['use'], ttlMs: 600_000 }),
    ];
    say();
    say(`${bold('session')} ${runId}: 4 capability tokens (fs read /**, fs write ${workspace}/out/**, net GET *, secret WEATHER_KEY use)`);
    say(dim(`policy "demo": read ${workspace}/**, write ${workspace}/out/**, connect ${apiOrigin}, WEATHER_KEY bound to that host`));
    say();

    const steps: Array<{ title: string; tool: string; input: unknown; expect: 'allow' | 'deny' }> = [
      { title: 'count words (a pure tool: no imports at all)', tool: 'word-count', input: { text: 'only what they were granted' }, expect: 'allow' },
      { title: 'read a file inside the workspace', tool: 'read-file', input: { path: join(workspace, 'notes.txt') }, expect: 'allow' },
      { title: 'read /etc/passwd (the token allows it, the policy does not)', tool: 'read-file', input: { path: '/etc/passwd' }, expect: 'deny' },
      { title: 'write a report into the workspace', tool: 'write-file', input: { path: join(workspace, 'out', 'report.txt'), content: 'all good\n' }, expect: 'allow' },
      { title: 'write outside it', tool: 'write-file', input: { path: join(workspace, 'notes.txt'), content: 'overwritten' }, expect: 'deny' },
      { title: 'fetch from the allowed API', tool: 'fetch-url', input: { url: `${apiOrigin}/hello` }, expect: 'allow' },
      { title: 'fetch from another server on this machine', tool: 'fetch-url', input: { url: `http://127.0.0.1:${canaryPort}/` }, expect: 'deny' },
      { title: 'weather, with a key the tool never sees', tool: 'weather', input: { city: 'Lisbon', endpoint: apiOrigin }, expect: 'allow' },
    ];

    let surprises = 0;
    for (const [i, step] of steps.entries()) {
      say(`${bold(`${i + 1}.`)} ${step.title}`);
      say(dim(`   ${step.tool} ${JSON.stringify(step.input)}`));
      try {
        const r = await runtime.invoke(step.tool, step.input, { grants, runId });
        const shown = r.output.length > 160 ? `${r.output.slice(0, 157)}...` : r.output;
        say(`   ${green('allowed')}  ${shown.trim()}`);
        say(dim(`   audit #${r.audit.start}-#${r.audit.end}, ${r.stats.hostCalls} host call(s), ${r.stats.durationMs.toFixed(1)} ms`));
        if (step.expect !== 'allow') surprises++;
      } catch (e) {
        if (!(e instanceof AuthorityError)) throw e;
        const audit = e.data?.['audit'] as { start: number; end: number } | undefined;
        // The tool failed because the gate refused one of its host calls: show the gate's own code.
        const denial = (e.data?.['denials'] as Array<{ op: string; code: string; reason: string }> | undefined)?.[0];
        if (denial) say(`   ${red('denied')}   ${denial.op} ${denial.code}: ${denial.reason}`);
        else say(`   ${red('denied')}   ${e.code}: ${e.message}`);
        if (audit) say(dim(`   audit #${audit.start}-#${audit.end}`));
        if (step.expect !== 'deny') surprises++;
      }
    }

    say();
    say(`the other server saw ${canaryHits} request(s); the weather API saw ${weatherHits} (each with the right key)`);
    if (canaryHits !== 0) surprises++;
    await runtime.close();

    const report = await verifyAudit({ dir: runtime.dataDir });
    say();
    if (report.ok) {
      say(
        `${green('audit chain verified')}: ${report.records} records, ${report.checkpoints} signed checkpoint(s), latest root ${report.latestCheckpoint?.root.slice(0, 16)}... ${dim(`(${report.logFile})`)}`,
      );
    } else {
      say(`${red('audit chain FAILED verification')}: ${JSON.stringify(report.firstBad)}`);
      surprises++;
    }
    say(dim('see it yourself: npx authority audit show --run ' + runId));
    return surprises === 0 ? 0 : 1;
  } finally {
    await runtime.close();
    api.close();
    canary.close();
    rmSync(workspace, { recursive: true, force: true });
  }
}

process.exitCode = await main();
