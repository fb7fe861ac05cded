/**
 * What the host layer adds per effect: a confined 4 KiB read beside plain
 * node:fs reads of the same file, one http hop (checks, pinned dial, capped
 * read, secret scan) beside a plain undici request to the same loopback server,
 * and the one-pass secret scan beside one indexOf per secret.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { percentile, row, sampleUs, type Bench, type BenchRow } from './harness.ts';
import { HostFs, HttpClient, SecretStore } from '../src/host/index.ts';

const p50 = (xs: number[]): number => percentile(xs, 50);
const p99 = (xs: number[]): number => percentile(xs, 99);

/**
 * Sample several functions in alternating blocks, so drift on a shared machine
 * (other processes, frequency changes, JIT warm-up) lands on all of them alike.
 */
async function interleaved(fns: Array<() => unknown>, n: number, blocks = 10): Promise<number[][]> {
  const out = fns.map(() => [] as number[]);
  for (const fn of fns) for (let i = 0; i < Math.min(200, n); i++) await fn();
  const per = Math.ceil(n / blocks);
  for (let b = 0; b < blocks; b++) {
    for (let f = 0; f < fns.length; f++) (out[f] as number[]).push(...(await sampleUs(fns[f] as () => unknown, per, 0)));
  }
  return out.map((xs) => xs.sort((a, b) => a - b));
}

async function fsRows(): Promise<BenchRow[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'authority-bench-fs-'));
  try {
    fs.mkdirSync(path.join(dir, 'a', 'b'), { recursive: true });
    const file = path.join(dir, 'a', 'b', 'file.bin');
    fs.writeFileSync(file, Buffer.alloc(4096, 0x61));
    const hostFs = new HostFs();
    const scope = { roots: [{ guest: '/data', host: dir }] };
    const n = 3000;
    const [sync, promises, host, stat, plainStat] = (await interleaved(
      [
        () => fs.readFileSync(file),
        () => fsp.readFile(file),
        () => hostFs.readFile('/data/a/b/file.bin', scope),
        () => hostFs.stat('/data/a/b/file.bin', scope),
        () => fsp.lstat(file),
      ],
      n,
    )) as [number[], number[], number[], number[], number[]];
    const [plainWrite, hostWrite] = (await interleaved(
      [() => fsp.writeFile(path.join(dir, 'w.bin'), Buffer.alloc(4096)), () => hostFs.writeFile('/data/a/b/w.bin', Buffer.alloc(4096), scope)],
      200,
      5,
    )) as [number[], number[]];
    return [
      row('fs read 4 KiB: fs.readFileSync', p50(sync), 'us p50'),
      row('fs read 4 KiB: fs.promises.readFile', p50(promises), 'us p50'),
      row('fs read 4 KiB: HostFs.readFile (depth 3)', p50(host), 'us p50', { baseline: { name: 'fs.promises.readFile', value: p50(promises) } }),
      row('fs read 4 KiB: HostFs.readFile p99', p99(host), 'us p99', { baseline: { name: 'fs.promises.readFile p99', value: p99(promises) } }),
      row('fs read 4 KiB: added by the host', p50(host) - p50(promises), 'us p50', { note: 'confined walk + fd checks + reopen' }),
      row('fs stat: HostFs.stat', p50(stat), 'us p50', { baseline: { name: 'fs.promises.lstat', value: p50(plainStat) } }),
      row('fs write 4 KiB: HostFs.writeFile', p50(hostWrite), 'us p50', {
        baseline: { name: 'fs.promises.writeFile (no fsync)', value: p50(plainWrite) },
        note: 'atomic: temp + fsync + rename + dir fsync',
      }),
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function httpRows(): Promise<BenchRow[]> {
  const body = Buffer.alloc(1024, 0x62);
  const server = http.createServer((_req, res) => res.end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const agent = new Agent();
  const client = new HttpClient({ lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
  const secrets = new SecretStore(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`KEY_${i}`, `sk-bench-${i}-0123456789abcdef`])));
  const ctx = {
    checkAddress: () => ({ allow: true as const, reason: 'bench' }),
    mayUse: () => ({ allow: true as const, reason: 'bench' }),
    secrets,
  };
  try {
    const [plain, host] = (await interleaved(
      [
        async () => {
          const res = await agent.request({ origin: `http://127.0.0.1:${port}`, path: '/x', method: 'GET' });
          await res.body.arrayBuffer();
        },
        () => client.fetch({ method: 'GET', url: `http://bench.test:${port}/x`, headers: [['authorization', 'Bearer {{secret:KEY_3}}']] }, ctx),
      ],
      2000,
    )) as [number[], number[]];
    return [
      row('http GET 1 KiB: plain undici request', p50(plain), 'us p50'),
      row('http GET 1 KiB: HttpClient.fetch', p50(host), 'us p50', {
        baseline: { name: 'undici request', value: p50(plain) },
        note: 'URL/header checks, lookup + checkAddress, placeholder, capped read, redaction scan (20 secrets)',
      }),
      row('http GET 1 KiB: HttpClient.fetch p99', p99(host), 'us p99', { baseline: { name: 'undici request p99', value: p99(plain) } }),
      row('http GET 1 KiB: added by the host', p50(host) - p50(plain), 'us p50'),
    ];
  } finally {
    await client.close();
    await agent.close();
    server.closeAllConnections();
    server.close();
  }
}

async function scanRows(): Promise<BenchRow[]> {
  const values = Array.from({ length: 100 }, (_, i) => `sk-${i.toString(36)}-${'x'.repeat(8)}${i * 7919}`);
  const store = new SecretStore(Object.fromEntries(values.map((v, i) => [`S${i}`, v])));
  const text = Buffer.from('The quick brown fox jumps over the lazy dog; sk-no-secret-here 0123456789. '.repeat(14_000)).subarray(0, 1024 * 1024);
  const [ac, naive] = (await interleaved([() => store.scanner.findBytes(text), () => values.filter((v) => text.indexOf(v) !== -1)], 30, 3)) as [number[], number[]];
  const mbps = (us: number): number => text.length / 1024 / 1024 / (us / 1e6);
  return [
    row('secret scan 1 MiB, 100 secrets: one pass', mbps(p50(ac)), 'MiB/s', { baseline: { name: '100x Buffer.indexOf', value: mbps(p50(naive)) } }),
  ];
}

export const bench: Bench = async () => [...(await fsRows()), ...(await httpRows()), ...(await scanRows())];
