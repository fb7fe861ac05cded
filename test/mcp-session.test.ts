/**
 * The MCP session as a library: the SDK's Client over an in-memory transport,
 * for what a stdio child cannot show cheaply (clients without elicitation,
 * host faults, sessions shared with other adapters).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpError, ToolListChangedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createMcpServer, MCP_META_KEY, toolSession, type McpServerOptions, type McpSession } from '../src/adapters/mcp.ts';
import type { ToolSession } from '../src/adapters/descriptor.ts';
import { ErrorCode } from '../src/errors.ts';
import type { Runtime } from '../src/runtime.ts';
import { exampleTools, watFixture } from './helpers/fixtures.ts';
import { auditRecords, testRuntime } from './helpers/runtime.ts';

let rt: Awaited<ReturnType<typeof testRuntime>>;

async function connect(target: Runtime | ToolSession, opts: McpServerOptions = {}): Promise<{ client: Client; server: McpSession }> {
  const [a, b] = InMemoryTransport.createLinkedPair();
  const server = createMcpServer(target, opts);
  await server.connect(a);
  const client = new Client({ name: 'plain-client', version: '0.1' });
  await client.connect(b);
  return { client, server };
}

function text(r: unknown): string {
  return ((r as CallToolResult).content[0] as { text: string }).text;
}

before(async () => {
  rt = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] }, approvals: { tools: ['echo'] } }, audit: { durability: 'none' } });
  await rt.register((await exampleTools(['echo']))['echo'] as string);
});

after(async () => {
  await rt.cleanup();
});

test('without elicitation in the client, a marked tool is denied with E_APPROVAL_REQUIRED, saying why', async () => {
  const { client } = await connect(rt);
  try {
    const r = await client.callTool({ name: 'echo', arguments: { a: 1 } });
    assert.equal(r.isError, true);
    assert.match(
      text(r),
      /^denied: E_APPROVAL_REQUIRED: running the tool echo with input \{"a":1\} needs approval \(approvals\.tools\[0\] 'echo' matches echo\), but this MCP client does not support elicitation, so nobody can be asked; .* \(audit #\d+\)$/,
    );
    assert.equal((r._meta?.[MCP_META_KEY] as { code: string }).code, ErrorCode.APPROVAL_REQUIRED);
  } finally {
    await client.close();
  }
});

test("without elicitation in the client, the server's own approver decides", async () => {
  const asked: string[] = [];
  const { client } = await connect(rt, {
    approve: (req) => {
      asked.push(req.tool);
      return { approved: true, by: 'ops-bot' };
    },
  });
  try {
    const r = await client.callTool({ name: 'echo', arguments: { b: 2 } });
    assert.equal(text(r), '{"b":2}');
    assert.deepEqual(asked, ['echo']);
  } finally {
    await client.close();
  }
});

test('a session made for other adapters keeps its run id, and its approver decides when the client cannot', async () => {
  const session = toolSession(rt, { runId: 'shared-run', approve: () => ({ approved: true, by: 'session approver' }) });
  const { client, server } = await connect(session);
  try {
    assert.equal(server.runId, 'shared-run');
    const r = await client.callTool({ name: 'echo', arguments: {} });
    assert.equal(text(r), '{}');
    assert.equal((r._meta?.[MCP_META_KEY] as { runId: string }).runId, 'shared-run');
  } finally {
    await client.close();
  }
  const approvals = await auditRecords(rt.dataDir, (x) => x.runId === 'shared-run' && x.kind === 'approval');
  assert.deepEqual(
    approvals.map((a) => [a.decision, a.detail?.['by']]),
    [['allow', 'session approver']],
  );
});

test("the runtime's approver decides when neither the client nor the session can", async () => {
  const local = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] }, approvals: { tools: ['echo'] } }, approve: () => ({ approved: false, by: 'runtime approver' }), audit: { durability: 'none' } });
  const { client } = await connect(local);
  try {
    await local.register((await exampleTools(['echo']))['echo'] as string);
    assert.match(text(await client.callTool({ name: 'echo', arguments: {} })), /^denied: E_APPROVAL_DENIED: invoking echo was refused by runtime approver/);
  } finally {
    await client.close();
    await local.cleanup();
  }
});

test('tools registered or removed while connected are announced, once per burst', async () => {
  const { client } = await connect(rt);
  let notified = 0;
  let next: () => void = () => {};
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    notified++;
    next();
  });
  const announced = (): Promise<void> => new Promise((res) => (next = res));
  try {
    let change = announced();
    await rt.register(await watFixture('trap'));
    await change;
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['echo', 'trap'],
    );
    change = announced();
    await rt.register(await watFixture('counter'));
    await change;
    notified = 0;
    change = announced();
    // Two changes in one burst: one notification.
    rt.unregister('trap');
    rt.unregister('counter');
    await change;
    assert.deepEqual(
      (await client.listTools()).tools.map((t) => t.name),
      ['echo'],
    );
    assert.equal(notified, 1);
  } finally {
    await client.close();
  }
});

test('a closed session stops listening to the runtime', async () => {
  const { client, server } = await connect(rt);
  const before = rt.listenerCount('tools-changed');
  await client.close();
  await server.closed;
  assert.equal(rt.listenerCount('tools-changed'), before - 1);
});

test('a host fault is a protocol error, not a tool result', async () => {
  const local = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } }, audit: { durability: 'none' } });
  const { client } = await connect(local);
  try {
    await local.register((await exampleTools(['echo']))['echo'] as string);
    assert.equal(text(await client.callTool({ name: 'echo', arguments: {} })), '{}');
    await local.halt('stop everything');
    await assert.rejects(client.callTool({ name: 'echo', arguments: {} }), (e: unknown) => e instanceof McpError && e.code === -32603 && /E_HALTED: the runtime is halted: stop everything/.test(e.message));
  } finally {
    await client.close();
    await local.cleanup();
  }
});
