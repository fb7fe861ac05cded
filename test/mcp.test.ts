/**
 * `authority mcp` as a client sees it: the SDK's own Client, speaking to a
 * real child process over stdio.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema, McpError, ToolListChangedNotificationSchema, type CallToolResult, type ElicitRequest, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode } from '../src/errors.ts';
import { exampleTools } from './helpers/fixtures.ts';
import { auditRecords, SHARED_CACHE, tempDir } from './helpers/runtime.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'authority.js');

let ws: ReturnType<typeof tempDir>;
let tools: Record<string, string>;

interface Served {
  client: Client;
  transport: StdioClientTransport;
  dataDir: string;
  stderr: () => string;
  errors: Error[];
  closed: Promise<void>;
}

async function serve(name: string, opts: { tools: string[]; policy: object; grants?: object; elicit?: (req: ElicitRequest) => ElicitResult }): Promise<Served> {
  const dir = join(ws.path, name);
  mkdirSync(join(dir, 'tools'), { recursive: true });
  for (const t of opts.tools) copyFileSync(tools[t] as string, join(dir, 'tools', `${t}.wasm`));
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(opts.policy));
  const args = [BIN, 'mcp', '--tools', join(dir, 'tools'), '--policy', join(dir, 'policy.json'), '--data-dir', join(dir, 'data'), '--cache-dir', SHARED_CACHE];
  if (opts.grants !== undefined) {
    writeFileSync(join(dir, 'grants.json'), JSON.stringify(opts.grants));
    args.push('--grants', join(dir, 'grants.json'));
  }
  const transport = new StdioClientTransport({ command: process.execPath, args, cwd: dir, stderr: 'pipe', env: { PATH: process.env['PATH'] ?? '' } });
  let stderr = '';
  transport.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const client = new Client({ name: 'authority-test', version: '1.0.0' }, { capabilities: opts.elicit === undefined ? {} : { elicitation: {} } });
  if (opts.elicit !== undefined) {
    const elicit = opts.elicit;
    client.setRequestHandler(ElicitRequestSchema, (req) => elicit(req));
  }
  const errors: Error[] = [];
  client.onerror = (e) => errors.push(e);
  const closed = new Promise<void>((res) => (client.onclose = res));
  await client.connect(transport);
  return { client, transport, dataDir: join(dir, 'data'), stderr: () => stderr, errors, closed };
}

function text(r: unknown): string {
  const content = (r as CallToolResult).content;
  assert.equal(content.length, 1);
  assert.equal(content[0]?.type, 'text');
  return (content[0] as { text: string }).text;
}

function meta(r: unknown): Record<string, unknown> {
  return (r as CallToolResult)._meta?.['authority-sandbox/result'] as Record<string, unknown>;
}

let main: Served;
let inFile: string;
const elicitations: ElicitRequest['params'][] = [];
let answer: ElicitResult = { action: 'accept', content: { approve: true } };

before(async () => {
  tools = await exampleTools(['echo', 'word-count', 'read-file']);
  ws = tempDir('authority-mcp-');
  ws.path = realpathSync(ws.path);
  mkdirSync(join(ws.path, 'files'));
  inFile = join(ws.path, 'files', 'in.txt');
  writeFileSync(inFile, 'hello over mcp\n');
  main = await serve('main', {
    tools: ['word-count', 'read-file'],
    policy: { version: '1.0', tools: { allow: ['*'] }, fs: { read: [`${ws.path}/files/**`] }, approvals: { tools: ['echo'], ops: ['fs.read'] } },
    grants: { grants: [{ kind: 'fs', resource: '/**', methods: ['read'], ttl: '1h' }] },
    elicit: (req) => {
      elicitations.push(req.params);
      return answer;
    },
  });
});

after(async () => {
  await main.client.close().catch(() => {});
  ws.cleanup();
});

test('lists every tool in the folder with its name, description and input schema', async () => {
  const { tools: listed } = await main.client.listTools();
  assert.deepEqual(
    listed.map((t) => t.name),
    ['read-file', 'word-count'],
  );
  const wc = listed.find((t) => t.name === 'word-count');
  assert.equal(wc?.description, 'Counts the words, lines and characters of a text.');
  assert.deepEqual(wc?.inputSchema, { type: 'object', properties: { text: { type: 'string', description: 'The text to count.' } }, required: ['text'], additionalProperties: false });
  assert.deepEqual(wc?.annotations, { readOnlyHint: true, openWorldHint: false });
});

test('calls an allowed tool: text content, structured content, and the audit ids', async () => {
  const r = await main.client.callTool({ name: 'word-count', arguments: { text: 'to be or not' } });
  assert.equal(r.isError, undefined);
  assert.equal(text(r), '{"words":4,"lines":1,"characters":12}');
  assert.deepEqual(r.structuredContent, { words: 4, lines: 1, characters: 12 });
  const m = meta(r);
  assert.equal(m['ok'], true);
  assert.match(String(m['runId']), /^mcp-/);
  const records = await auditRecords(main.dataDir, (x) => x.runId === m['runId'] && x.tool === 'word-count');
  assert.deepEqual(
    [records[0]?.seq, records.at(-1)?.seq],
    [(m['audit'] as { start: number }).start, (m['audit'] as { end: number }).end],
  );
});

test('reads a file with the session grants, once the user approves the read; the policy still bounds them', async () => {
  elicitations.length = 0;
  answer = { action: 'accept', content: { approve: true } };
  const r = await main.client.callTool({ name: 'read-file', arguments: { path: inFile } });
  assert.equal(JSON.parse(text(r)).content, 'hello over mcp\n');
  assert.equal(elicitations.length, 1);
  assert.match((elicitations[0] as { message: string }).message, new RegExp(`^Authority: approve fs\\.read ${inFile.replaceAll('.', '\\.')} by the tool read-file\\?\nRequired by the policy: approvals\\.ops\\[0\\] names fs\\.read\\.`));
  // Denied by the policy first: nobody is asked.
  const denied = await main.client.callTool({ name: 'read-file', arguments: { path: '/etc/passwd' } });
  assert.equal(elicitations.length, 1);
  assert.equal(denied.isError, true);
  const m = meta(denied);
  const audit = m['audit'] as { start: number; end: number };
  assert.equal(text(denied), `denied: E_POLICY_DENY: no fs.read rule matches /etc/passwd (audit #${audit.start}-#${audit.end})`);
  assert.equal(m['code'], ErrorCode.TOOL_FAILED);
  assert.deepEqual(m['denials'], [{ op: 'fs.read', code: ErrorCode.POLICY_DENY, reason: 'no fs.read rule matches /etc/passwd' }]);
  // The session's token is bound to its run: the records say so.
  const records = await auditRecords(main.dataDir, (x) => x.seq >= audit.start && x.seq <= audit.end);
  assert.deepEqual(
    records.map((x) => [x.kind, x.code]),
    [
      ['invoke.start', 'ok'],
      ['call.denied', ErrorCode.POLICY_DENY],
      ['invoke.end', ErrorCode.TOOL_FAILED],
    ],
  );
  assert.ok(records.every((x) => x.runId === m['runId']));
});

test('invalid arguments are a tool error the model can read, naming the field', async () => {
  const r = await main.client.callTool({ name: 'word-count', arguments: { text: 42 } });
  assert.equal(r.isError, true);
  assert.match(text(r), /^error: E_INVALID_ARGUMENT: input\.text: must be string \(audit #\d+\)$/);
  assert.equal(meta(r)['code'], ErrorCode.INVALID_ARGUMENT);
});

test('an unknown tool is a protocol error', async () => {
  await assert.rejects(main.client.callTool({ name: 'no-such-tool', arguments: {} }), (e: unknown) => e instanceof McpError && e.code === -32602 && /Unknown tool: no-such-tool/.test(e.message));
});

test('a component added to the folder is registered and the client told', async () => {
  const changed = new Promise<void>((res) => main.client.setNotificationHandler(ToolListChangedNotificationSchema, () => res()));
  const folder = join(ws.path, 'main', 'tools');
  copyFileSync(tools['echo'] as string, join(folder, 'echo.wasm.part'));
  renameSync(join(folder, 'echo.wasm.part'), join(folder, 'echo.wasm'));
  await changed;
  const { tools: listed } = await main.client.listTools();
  assert.deepEqual(
    listed.map((t) => t.name),
    ['echo', 'read-file', 'word-count'],
  );
});

test('asks the user through elicitation before a tool the policy marks, and runs it on yes', async () => {
  elicitations.length = 0;
  answer = { action: 'accept', content: { approve: true, reason: 'fine by me' } };
  const r = await main.client.callTool({ name: 'echo', arguments: { release: 'v2' } });
  assert.equal(r.isError, undefined, text(r));
  assert.equal(text(r), '{"release":"v2"}');
  assert.equal(elicitations.length, 1);
  const asked = elicitations[0] as { message: string; requestedSchema: { required: string[] } };
  assert.match(asked.message, /^Authority: approve running the tool echo with input \{"release":"v2"\}\?\n/);
  assert.match(asked.message, /approvals\.tools\[0\] 'echo' matches echo/);
  assert.deepEqual(asked.requestedSchema.required, ['approve']);
  const approval = await auditRecords(main.dataDir, (x) => x.kind === 'approval' && x.seq < (meta(r)['audit'] as { start: number }).start);
  assert.deepEqual([approval.at(-1)?.decision, approval.at(-1)?.detail?.['by']], ['allow', 'user via MCP client authority-test 1.0.0']);
});

test('a declined elicitation is an E_APPROVAL_DENIED tool error', async () => {
  for (const a of [{ action: 'decline' }, { action: 'accept', content: { approve: false } }, { action: 'cancel' }] as ElicitResult[]) {
    answer = a;
    const r = await main.client.callTool({ name: 'echo', arguments: {} });
    assert.equal(r.isError, true);
    assert.match(text(r), /^denied: E_APPROVAL_DENIED: invoking echo was refused by user via MCP client authority-test 1\.0\.0: (declined|not approved|dismissed without an answer) \(audit #\d+\)$/);
  }
});

test('the server keeps stdout for the protocol: the client saw nothing else', () => {
  assert.deepEqual(main.errors, []);
  assert.match(main.stderr(), /authority mcp: serving 2 tool\(s\)/);
});

test('the halt file stops the server, and the halt is in the audit log', async () => {
  writeFileSync(join(main.dataDir, 'HALT'), 'incident 42: stop all agents\n');
  await main.closed;
  const halts = await auditRecords(main.dataDir, (x) => x.kind === 'halt');
  assert.equal(halts.length, 1);
  assert.match(halts[0]?.reason ?? '', /^halt file .*HALT: incident 42: stop all agents$/);
});

test('SIGTERM halts and exits cleanly', async () => {
  const s = await serve('sigterm', { tools: ['echo'], policy: { version: '1.0', tools: { allow: ['*'] } } });
  try {
    assert.equal(text(await s.client.callTool({ name: 'echo', arguments: { a: 1 } })), '{"a":1}');
    process.kill(s.transport.pid as number, 'SIGTERM');
    await s.closed;
    const halts = await auditRecords(s.dataDir, (x) => x.kind === 'halt');
    assert.deepEqual(
      halts.map((h) => h.reason),
      ['SIGTERM received'],
    );
  } finally {
    await s.client.close().catch(() => {});
  }
});

test('refuses to start while the halt file exists, writing nothing to stdout', async () => {
  const dir = join(ws.path, 'halted');
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'data', 'HALT'), '');
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
    const child = execFile(process.execPath, [BIN, 'mcp', '--data-dir', join(dir, 'data'), '--json'], { cwd: dir }, (_err, stdout, stderr) => res({ code: child.exitCode, stdout, stderr }));
  });
  assert.deepEqual([result.code, result.stdout], [2, '']);
  assert.match(result.stderr, /E_USAGE: Unknown option '--json'/);
  const again = await new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
    const child = execFile(process.execPath, [BIN, 'mcp', '--data-dir', join(dir, 'data')], { cwd: dir }, (_err, stdout, stderr) => res({ code: child.exitCode, stdout, stderr }));
  });
  assert.deepEqual([again.code, again.stdout], [2, '']);
  assert.match(again.stderr, /E_CONFIG: the stop switch is on: .*HALT exists; remove it to start/);
});
