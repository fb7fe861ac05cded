/**
 * `npm run soak [-- --seconds N]`: thousands of invocations, hostile ones
 * mixed in, for a few minutes. Passes when memory stays flat, no worker
 * leaks, and the audit log holds exactly one start and one end record for
 * every invocation made, and verifies. Not part of `npm test`.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { verifyAudit } from '../src/audit/index.ts';
import { AuthorityError } from '../src/errors.ts';
import { exampleTools, watFixture } from './helpers/fixtures.ts';
import { auditRecords, testRuntime } from './helpers/runtime.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const seconds = Number(process.argv.includes('--seconds') ? process.argv[process.argv.indexOf('--seconds') + 1] : (process.env['SOAK_SECONDS'] ?? 180));
const LOOPS = 4;
const mib = (n: number): string => `${(n / 1048576).toFixed(0)} MiB`;

writeFileSync('/tmp/hammer', 'x');
const tools = await exampleTools(['echo', 'word-count']);
const rt = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] }, fs: { read: ['/tmp/hammer'] } } });
await rt.register(tools['echo'] as string);
await rt.register(tools['word-count'] as string);
for (const name of ['counter', 'trap', 'bad-pointer', 'read-passwd', 'huge-output', 'recurse']) await rt.register(await watFixture(name), { limits: { timeoutMs: 5_000 } });
await rt.register(await watFixture('spin'), { limits: { timeoutMs: 100 } });
await rt.register(await watFixture('grow'), { limits: { maxMemoryBytes: 32 * 1024 * 1024, timeoutMs: 5_000 } });
await rt.register(await watFixture('hammer'), { limits: { timeoutMs: 5_000, maxHostCalls: 50 } });
const grant = rt.issueToken({ kind: 'fs', resource: '/tmp/hammer', methods: ['read'], ttlMs: (seconds + 600) * 1000 });

// The mix: mostly well-behaved, one in five hostile.
const mix: Array<[string, unknown]> = [
  ['echo', { hello: 'world' }],
  ['echo', { n: 1 }],
  ['counter', {}],
  ['word-count', { text: 'the quick brown fox' }],
  ['echo', { n: 2 }],
  ['hammer', { n: 20 }],
  ['read-passwd', {}],
  ['counter', {}],
  ['echo', { n: 3 }],
  ['spin', {}],
  ['echo', { n: 4 }],
  ['trap', {}],
  ['counter', {}],
  ['grow', {}],
  ['bad-pointer', {}],
  ['echo', { n: 5 }],
  ['huge-output', {}],
  ['hammer', { n: 80 }],
  ['recurse', {}],
  ['word-count', { text: 'jumps over the lazy dog' }],
];

const outcomes = new Map<string, number>();
let invocations = 0;
const samples: Array<{ t: number; rss: number; heap: number; workers: number }> = [];
const started = Date.now();
const stopAt = started + seconds * 1000;

async function loop(offset: number): Promise<void> {
  for (let i = offset; Date.now() < stopAt; i++) {
    const [name, input] = mix[i % mix.length] as [string, unknown];
    invocations++;
    let key: string;
    try {
      const r = await rt.invoke(name, input, { grants: [grant] });
      if (name === 'counter') assert.equal(r.output, '1,1', 'state leaked between runs');
      key = `${name}: ok`;
    } catch (e) {
      if (!(e instanceof AuthorityError)) throw e;
      key = `${name}: ${e.code}`;
    }
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
}

const sampler = setInterval(() => {
  gc();
  const m = process.memoryUsage();
  samples.push({ t: (Date.now() - started) / 1000, rss: m.rss, heap: m.heapUsed, workers: rt.load.workers });
  process.stderr.write(`soak: ${((Date.now() - started) / 1000).toFixed(0)} s, ${invocations} invocations, rss ${mib(m.rss)}, heap ${mib(m.heapUsed)}, workers ${rt.load.workers}\n`);
}, 10_000);

await Promise.all(Array.from({ length: LOOPS }, (_, k) => loop(k * 5)));
clearInterval(sampler);
await new Promise((r) => setTimeout(r, 1_000));
gc();

const third = Math.max(1, Math.floor(samples.length / 3));
const avg = (xs: typeof samples): number => xs.reduce((n, s) => n + s.rss, 0) / Math.max(1, xs.length);
const early = avg(samples.slice(0, third));
const late = avg(samples.slice(-third));
const workers = rt.load.workers;
const poolSize = 2;

const starts = await auditRecords(rt.dataDir, (r) => r.kind === 'invoke.start' && r.decision === 'allow');
const ends = await auditRecords(rt.dataDir, (r) => r.kind === 'invoke.end');
const endRuns = new Set(ends.map((r) => r.runId));
const unmatched = starts.filter((r) => !endRuns.has(r.runId)).length;
await rt.close();
const report = await verifyAudit({ dir: rt.dataDir });

process.stdout.write(`\nsoak: ${invocations} invocations in ${seconds} s (${(invocations / seconds).toFixed(0)}/s)\n`);
for (const [k, n] of [...outcomes].sort()) process.stdout.write(`  ${k.padEnd(40)} ${n}\n`);
process.stdout.write(`  rss: first third ${mib(early)}, last third ${mib(late)} (${late > early ? '+' : ''}${mib(late - early)})\n`);
process.stdout.write(`  workers at the end: ${workers} (pool size ${poolSize})\n`);
process.stdout.write(`  audit: ${starts.length} starts, ${ends.length} ends, ${unmatched} starts without an end; verify ${report.ok ? 'ok' : 'FAILED'} (${report.records} records)\n`);

let failed = false;
const check = (ok: boolean, what: string): void => {
  process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} ${what}\n`);
  failed ||= !ok;
};
check(late - early < 64 * 1024 * 1024, 'memory stays flat (last third within 64 MiB of the first)');
check(workers === poolSize, 'no worker leaks (the pool is back to its size)');
check(unmatched === 0 && starts.length === invocations - (outcomes.get('overloaded') ?? 0), 'every invocation has its start and end record');
check(report.ok, 'the audit chain verifies');
await rt.cleanup();
process.exitCode = failed ? 1 : 0;
