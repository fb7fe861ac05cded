/**
 * Policy decision throughput for a warm policy of 50 rules, against a single
 * minimatch test and a plain Map lookup measured in the same run; and the
 * cost of the limit (GCRA) and budget (reserve + settle) stages per call.
 */
import { Minimatch } from 'minimatch';
import { Limiter, MemoryLimitStore, parseRate, type RateSpec } from '../src/limits/index.ts';
import { loadPolicy, type PolicyRequest } from '../src/policy/index.ts';
import { percentile, row, sampleUs, throughputSync, type Bench, type BenchRow } from './harness.ts';

const ROUNDS = 5;
const ROUND_MS = 200;

/**
 * Best of several short rounds, the subjects taking turns, so that a figure
 * and its baseline see the same load on a shared machine.
 */
function interleaved(fns: ReadonlyArray<(i: number) => unknown>): number[] {
  const best = fns.map(() => 0);
  for (let r = 0; r < ROUNDS; r++) {
    fns.forEach((fn, k) => {
      best[k] = Math.max(best[k] as number, throughputSync(fn, ROUND_MS));
    });
  }
  return best;
}

function fiftyRulePolicy() {
  const read = Array.from({ length: 20 }, (_, i) => `/srv/app${i}/**/*.json`);
  read.push(...Array.from({ length: 8 }, (_, i) => `/home/user${i}/docs/**`), '/etc/hosts', '/etc/resolv.conf');
  const write = Array.from({ length: 10 }, (_, i) => `/srv/app${i}/out/*.{json,txt}`);
  const deny = ['/srv/**/.env', '/home/*/docs/private/**', '/srv/app3/**', '/etc/shadow', '/**/*.pem'];
  const connect = ['https://api.example.com', 'https://*.cdn.example', 'http://127.0.0.1:*', 'https://upload.example'];
  const tools = { allow: ['*'], deny: ['shell-*'] };
  const { policy } = loadPolicy({ version: '1.0', fs: { read, write, deny }, net: { connect }, tools });
  const rules = read.length + write.length + deny.length + connect.length + tools.allow.length + tools.deny.length;
  return { policy, rules };
}

export const bench: Bench = async () => {
  const rows: BenchRow[] = [];
  const { policy, rules } = fiftyRulePolicy();

  // A mix of allowed and denied paths, most under some rule's root, some not.
  const paths = Array.from({ length: 1024 }, (_, i) => {
    switch (i % 8) {
      case 0:
        return `/srv/app${i % 20}/data/x/item-${i}.json`;
      case 1:
        return `/srv/app${i % 20}/item-${i}.txt`;
      case 2:
        return `/home/user${i % 8}/docs/notes/${i}.md`;
      case 3:
        return `/home/user${i % 8}/docs/private/${i}.md`;
      case 4:
        return `/srv/app${i % 20}/.env`;
      case 5:
        return '/etc/hosts';
      case 6:
        return `/var/log/syslog.${i}`;
      default:
        return `/srv/app${i % 20}/deep/a/b/c/d/e/f/${i}.json`;
    }
  });
  const fsReqs: PolicyRequest[] = paths.map((path) => ({ op: 'fs.read', path }));
  let allowed = 0;
  for (const r of fsReqs) if (policy.decide(r).allow) allowed++;
  // Warm: let the JIT settle on the decision path before it is timed.
  for (let i = 0; i < 200_000; i++) policy.decide(fsReqs[i & 1023] as PolicyRequest);

  const mm = new Minimatch('/srv/app0/**/*.json', { dot: true });
  const map = new Map(paths.map((p, i) => [p, i % 2 === 0]));
  const toolReqs: PolicyRequest[] = Array.from({ length: 64 }, (_, i) => ({ op: 'tool.invoke', name: i % 4 === 0 ? `shell-${i}` : `tool-${i}` }));
  const urls = ['https://api.example.com/v1/items?id=1', 'https://img.cdn.example/a.png', 'http://127.0.0.1:8080/x', 'https://evil.test/', 'http://169.254.169.254/latest'];
  const httpReqs: PolicyRequest[] = urls.map((url) => ({ op: 'http.fetch', url, method: 'GET' }));
  const [fsOps, minimatchOps, mapOps, toolOps, httpOps, urlParse, addressOps] = interleaved([
    (i) => policy.decide(fsReqs[i & 1023] as PolicyRequest),
    (i) => mm.match(paths[i & 1023] as string),
    (i) => map.get(paths[i & 1023] as string),
    (i) => policy.decide(toolReqs[i & 63] as PolicyRequest),
    (i) => policy.decide(httpReqs[i % 5] as PolicyRequest),
    (i) => new URL(urls[i % 5] as string),
    (i) => policy.decideAddress('https://api.example.com/', i % 2 === 0 ? '93.184.216.34' : '10.0.0.1'),
  ]) as [number, number, number, number, number, number, number];

  rows.push(
    row(`fs decision (${rules}-rule policy)`, fsOps, 'ops/s', {
      baseline: { name: 'one minimatch test', value: minimatchOps },
      target: '>= 1000000',
      note: `${allowed}/1024 paths allowed; best of ${ROUNDS}`,
    }),
  );
  rows.push(row('fs decision vs Map lookup', fsOps, 'ops/s', { baseline: { name: 'Map.get', value: mapOps } }));
  rows.push(row('tool decision', toolOps, 'ops/s', { baseline: { name: 'Map.get', value: mapOps } }));
  rows.push(row('http decision', httpOps, 'ops/s', { baseline: { name: 'new URL() alone', value: urlParse } }));
  rows.push(row('address check (URL + IP)', addressOps, 'ops/s', { baseline: { name: 'new URL() alone', value: urlParse } }));

  // Limits and budgets: async, through the in-memory store.
  const rate = parseRate('1000000000/s') as RateSpec;
  const limiter = new Limiter(
    {
      namespace: 'bench',
      rates: { fs: rate, per_token: rate, http: rate },
      run: { tool_calls: Number.MAX_SAFE_INTEGER, host_calls: Number.MAX_SAFE_INTEGER, http_bytes: Number.MAX_SAFE_INTEGER },
      shared: { host_calls: Number.MAX_SAFE_INTEGER },
      caps: { fsReadBytes: 1 << 23, httpResponseBytes: 1 << 22 },
    },
    new MemoryLimitStore(),
  );
  const ctx = { runId: 'bench-run', tool: 'bench-tool', tokenId: 'tok' };
  const n = 20_000;
  const tick = await sampleUs(() => Promise.resolve(), n);
  const rateUs = await sampleUs(() => limiter.rate(ctx, { op: 'fs.read' }), n);
  rows.push(row('limit stage (2 GCRA keys), p50', percentile(rateUs, 50), 'us', { baseline: { name: 'await Promise.resolve() p50', value: percentile(tick, 50) } }));
  rows.push(row('limit stage (2 GCRA keys), p99', percentile(rateUs, 99), 'us'));
  const call = { op: 'http.fetch', host: 'api.example.com', requestBytes: 100 } as const;
  const budgetUs = await sampleUs(async () => {
    const { reservation } = await limiter.reserve(ctx, call);
    if (reservation !== undefined) await limiter.settle(reservation, { requestBytes: 100, responseBytes: 1000 });
  }, n);
  rows.push(row('budget stage (reserve + settle, 3 counters), p50', percentile(budgetUs, 50), 'us', { baseline: { name: 'await Promise.resolve() p50', value: percentile(tick, 50) } }));
  rows.push(row('budget stage (reserve + settle, 3 counters), p99', percentile(budgetUs, 99), 'us'));
  return rows;
};
