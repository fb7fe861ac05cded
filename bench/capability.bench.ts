/**
 * Capability tokens: verification throughput against a bare HMAC-SHA256 of
 * the same bytes, and the capability stage's cost per host call.
 *
 *   node --import tsx bench/index.ts capability
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Keyring,
  RevocationList,
  attenuateToken,
  checkCapability,
  issueToken,
  parseToken,
  prepareGrants,
  verifyToken,
  type CapabilityRequest,
} from '../src/capability/index.ts';
import { hmacPads, hmacWithPads } from '../src/capability/hmac.ts';
import { row, sampleUs, throughputSync, type Bench, type BenchRow } from './harness.ts';

const MS = 600;

export const bench: Bench = async () => {
  const secret = Buffer.alloc(32, 7);
  const keyring = Keyring.fromKeys([{ id: 'bench-key', secret }]);
  const now = Date.now();
  const token = issueToken(keyring, {
    kind: 'fs',
    resource: '/data/**',
    methods: ['read', 'list'],
    issuedAt: now,
    ttlMs: 3_600_000,
    rate: { count: 100, periodMs: 1000 },
  });
  const child = attenuateToken(attenuateToken(token, { methods: ['read'] }), { resource: '/data/reports/**', runId: 'run-1' });
  // The root block is exactly what the root MAC covers.
  const bytes = Buffer.from(token.slice('acap1.'.length), 'base64url');
  const rootBlock = bytes.subarray(2, bytes.length - 32);

  const rows: BenchRow[] = [];
  const createHmacOps = throughputSync(() => createHmac('sha256', secret).update(rootBlock).digest(), MS);
  const bare = { name: 'createHmac of the root block', value: createHmacOps };
  rows.push(row('HMAC-SHA256, createHmac (baseline)', createHmacOps, 'ops/s', { note: `${rootBlock.length} bytes` }));
  const pads = hmacPads(secret);
  rows.push(row('HMAC-SHA256, prepared pads + crypto.hash', throughputSync(() => hmacWithPads(pads, rootBlock), MS), 'ops/s', { baseline: bare }));

  const none = { now: now + 1, revocations: null };
  for (let i = 0; i < 20_000; i++) verifyToken(keyring, token, none);
  rows.push(
    row('verifyToken, root token from text', throughputSync(() => verifyToken(keyring, token, none), MS), 'ops/s', {
      baseline: bare,
      target: '>= 300000',
      note: 'base64url + canonical decode + HMAC + checks',
    }),
  );
  const parsed = parseToken(token);
  rows.push(
    row('verifyToken, already parsed token', throughputSync(() => verifyToken(keyring, parsed, none), MS), 'ops/s', {
      baseline: bare,
      target: '>= 300000',
      note: 'HMAC + checks',
    }),
  );
  rows.push(
    row('verifyToken, 2 caveats from text', throughputSync(() => verifyToken(keyring, child, { ...none, runId: 'run-1' }), MS), 'ops/s', {
      baseline: bare,
      note: '3 HMACs',
    }),
  );
  rows.push(row('parseToken (no MAC)', throughputSync(() => parseToken(token), MS), 'ops/s'));

  // A run's grant set of five tokens; the call matches the fourth.
  const grantTexts = [
    issueToken(keyring, { kind: 'net', resource: 'https://api.example.com/v1/**', methods: ['GET', 'POST'], ttlMs: 3_600_000 }),
    issueToken(keyring, { kind: 'secrets', resource: 'OPENAI_*', methods: ['use'], ttlMs: 3_600_000 }),
    issueToken(keyring, { kind: 'fs', resource: '/tmp/**', methods: ['read', 'write'], ttlMs: 3_600_000 }),
    child,
    issueToken(keyring, { kind: 'fs', resource: '/data/in/*.csv', methods: ['read'], ttlMs: 3_600_000 }),
  ];
  const preparedUs = await sampleUs(() => prepareGrants(keyring, grantTexts), 2000);
  rows.push(row('prepareGrants, 5 tokens (once per run)', preparedUs[Math.floor(preparedUs.length / 2)] as number, 'us p50'));

  const grants = prepareGrants(keyring, grantTexts);
  const fsCall: CapabilityRequest = { kind: 'fs', resource: '/data/reports/2026/q1.csv', method: 'read' };
  const netCall: CapabilityRequest = { kind: 'net', resource: 'https://api.example.com/v1/items?page=2', method: 'GET' };
  const memory = RevocationList.memory();
  memory.revokeToken('f'.repeat(32));
  const memCtx = { runId: 'run-1', revocations: memory };
  if (!checkCapability(grants, fsCall, memCtx).allow || !checkCapability(grants, netCall, memCtx).allow) throw new Error('bench setup: calls should be allowed');

  // Let the JIT settle on the check before the first measured row.
  for (let i = 0; i < 50_000; i++) checkCapability(grants, i % 2 === 0 ? fsCall : netCall, memCtx);
  const memOps = throughputSync(() => checkCapability(grants, fsCall, memCtx), MS);
  const memUs = 1e6 / memOps;
  rows.push(row('checkCapability fs, 5 tokens, in-memory revocations', memUs, 'us/call', { note: 'glob match x2, times, run, revocation lookup' }));
  rows.push(row('checkCapability net, 5 tokens, in-memory revocations', 1e6 / throughputSync(() => checkCapability(grants, netCall, memCtx), MS), 'us/call', { note: 'includes WHATWG URL parse' }));

  const dir = mkdtempSync(join(tmpdir(), 'authority-bench-cap-'));
  try {
    const file = RevocationList.open(join(dir, 'revocations.jsonl'));
    for (let i = 0; i < 1000; i++) file.revokeToken(i.toString(16).padStart(32, '0'));
    const fileCtx = { runId: 'run-1', revocations: file };
    const fileUs = 1e6 / throughputSync(() => checkCapability(grants, fsCall, fileCtx), MS);
    rows.push(
      row('checkCapability fs, 5 tokens, file revocations (1000 entries)', fileUs, 'us/call', {
        baseline: { name: 'in-memory revocations', value: memUs },
        note: 'one stat per check: a revocation by another process reaches the next call',
      }),
    );
    const samples = await sampleUs(() => checkCapability(grants, fsCall, fileCtx), 20_000);
    rows.push(row('checkCapability fs, file revocations', samples[Math.floor(samples.length * 0.99)] as number, 'us p99'));
    const staleCtx = { runId: 'run-1', revocations: RevocationList.open(join(dir, 'revocations.jsonl'), { maxStalenessMs: 5 }) };
    rows.push(
      row('checkCapability fs, file revocations, 5 ms staleness', 1e6 / throughputSync(() => checkCapability(grants, fsCall, staleCtx), MS), 'us/call', {
        baseline: { name: 'in-memory revocations', value: memUs },
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
};
