/**
 * An MCP client session against `authority mcp`, started the way mcp.json
 * describes it (what an IDE or a desktop assistant does with that file).
 *
 *   node --import tsx examples/mcp/client.ts
 *
 * The sample policy and grants name /srv/agent-workspace; this script runs
 * them against a temporary workspace instead, and serves three of the
 * example tools so it starts quickly. The client supports elicitation, so the
 * server asks it to approve writes (the policy's `approvals`); this one says
 * yes and prints the question. No model and no network.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ensureTools, TOOLS_OUT } from '../../tools/build.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const config = JSON.parse(readFileSync(join(here, 'mcp.json'), 'utf8')) as { mcpServers: Record<string, { command: string; args: string[] }> };
const server = config.mcpServers['authority'];
if (server === undefined) throw new Error('mcp.json has no "authority" server');

// A temporary stand-in for /srv/agent-workspace, and copies of the sample files pointing at it.
const tmp = mkdtempSync(join(tmpdir(), 'authority-mcp-example-'));
const workspace = join(tmp, 'workspace');
mkdirSync(join(workspace, 'out'), { recursive: true });
writeFileSync(join(workspace, 'todo.txt'), 'ship the sandbox\n');
const relocate = (file: string): string => {
  const out = join(tmp, file.split('/').at(-1) as string);
  writeFileSync(out, readFileSync(join(root, file), 'utf8').replaceAll('/srv/agent-workspace', workspace));
  return out;
};
const toolsDir = join(tmp, 'tools');
mkdirSync(toolsDir);
for (const [name, path] of Object.entries(await ensureTools(['word-count', 'read-file', 'write-file']))) copyFileSync(path, join(toolsDir, `${name}.wasm`));

const [, ...rest] = server.args; // "authority" is the bin; run it from this checkout
const args = rest.map((a, i) => (rest[i - 1] === '--tools' ? toolsDir : rest[i - 1] === '--policy' || rest[i - 1] === '--grants' ? relocate(a) : a));
args.push('--data-dir', join(tmp, '.authority'), '--cache-dir', join(TOOLS_OUT, '..', 'cache'));

const transport = new StdioClientTransport({ command: process.execPath, args: [join(root, 'bin', 'authority.js'), ...args], cwd: root, stderr: 'inherit' });
const client = new Client({ name: 'example-client', version: '1.0.0' }, { capabilities: { elicitation: {} } });
client.setRequestHandler(ElicitRequestSchema, (request) => {
  console.log(`server asks: ${request.params.message.split('\n')[0]}`);
  return { action: 'accept', content: { approve: true } };
});

const show = (label: string, r: unknown): void => {
  const result = r as CallToolResult;
  const text = result.content.map((c) => (c.type === 'text' ? c.text : `[${c.type}]`)).join('');
  console.log(`${label}: ${result.isError === true ? 'isError ' : ''}${text}`);
};

try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  console.log(`tools: ${tools.map((t) => t.name).join(', ')}`);
  show('read todo.txt', await client.callTool({ name: 'read-file', arguments: { path: join(workspace, 'todo.txt') } }));
  show('read /etc/passwd', await client.callTool({ name: 'read-file', arguments: { path: '/etc/passwd' } }));
  show('write out/done.txt', await client.callTool({ name: 'write-file', arguments: { path: join(workspace, 'out', 'done.txt'), content: 'shipped' } }));
  show('write todo.txt', await client.callTool({ name: 'write-file', arguments: { path: join(workspace, 'todo.txt'), content: 'nothing to do' } }));
  console.log(`out/done.txt: ${readFileSync(join(workspace, 'out', 'done.txt'), 'utf8')}`);
} finally {
  await client.close();
  rmSync(tmp, { recursive: true, force: true });
}
