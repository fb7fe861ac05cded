/**
 * What embedding costs on top of `runtime.invoke`: the same echo call through
 * the tool session (every adapter's base), the OpenAI dispatcher (JSON
 * arguments in, a tool message out) and an MCP round trip (the SDK's Client
 * and server over an in-memory transport). The subjects take turns in short
 * rounds so each sees the same load; the best median of the rounds counts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import pino from 'pino';
import { createMcpServer } from '../src/adapters/mcp.ts';
import { toolSession } from '../src/adapters/descriptor.ts';
import { openaiTools } from '../src/adapters/openai.ts';
import { createRuntime } from '../src/runtime.ts';
import { ensureTools, TOOLS_OUT } from '../tools/build.ts';
import { percentile, row, sampleUs, type Bench, type BenchRow } from './harness.ts';

const ROUNDS = 5;
const CALLS = 200;

export const bench: Bench = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'authority-bench-embed-'));
  const runtime = await createRuntime({
    dataDir: dir,
    cacheDir: join(TOOLS_OUT, '..', 'cache'),
    logger: pino({ level: 'silent' }),
    policy: { version: '1.0', tools: { allow: ['*'] } },
    audit: { durability: 'none' },
    pool: { size: 1 },
  });
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'bench', version: '1' });
  try {
    await runtime.register((await ensureTools(['echo']))['echo'] as string);
    await runtime.warmUp();
    const session = toolSession(runtime, { runId: 'bench-embed' });
    const oa = openaiTools(session);
    await createMcpServer(session).connect(a);
    await client.connect(b);
    const input = { message: 'hello' };
    const call = { id: 'call_1', type: 'function' as const, function: { name: 'echo', arguments: JSON.stringify(input) } };

    const subjects: Array<[string, () => Promise<unknown>]> = [
      ['runtime.invoke (echo)', () => runtime.invoke('echo', input, { runId: 'bench-embed' })],
      ['ToolSession.call (echo)', () => session.call('echo', input)],
      ['OpenAI handleChatToolCalls (1 echo call)', () => oa.handleChatToolCalls([call])],
      ['MCP tools/call in memory (echo)', () => client.callTool({ name: 'echo', arguments: input })],
    ];
    const best = subjects.map(() => Number.POSITIVE_INFINITY);
    const bestP99 = subjects.map(() => Number.POSITIVE_INFINITY);
    for (let r = 0; r < ROUNDS; r++) {
      for (const [k, [, fn]] of subjects.entries()) {
        const s = await sampleUs(fn, CALLS, 20);
        best[k] = Math.min(best[k] as number, percentile(s, 50));
        bestP99[k] = Math.min(bestP99[k] as number, percentile(s, 99));
      }
    }
    const baseline = { name: subjects[0]?.[0] as string, value: best[0] as number };
    const rows: BenchRow[] = [];
    for (const [k, [name]] of subjects.entries()) {
      rows.push(row(name, best[k] as number, 'us p50', k === 0 ? { note: 'audit durability none: the adapter cost, not the disk' } : { baseline }));
      rows.push(row(name, bestP99[k] as number, 'us p99'));
    }
    return rows;
  } finally {
    await client.close().catch(() => {});
    await runtime.close();
    rmSync(dir, { recursive: true, force: true });
  }
};
