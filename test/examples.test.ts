/**
 * Every example runs, as a user would run it, and does what it says.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadGrantsFile } from '../src/adapters/grants.ts';
import { mcpCommand } from '../src/cli/commands/mcp.ts';
import { loadPolicyFile } from '../src/policy/index.ts';
import { exampleTools } from './helpers/fixtures.ts';
import { tempDir } from './helpers/runtime.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLES = ['examples/ai-sdk.ts', 'examples/langchain.ts', 'examples/openai.ts', 'examples/mcp/client.ts'] as const;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let cwd: ReturnType<typeof tempDir>;
const runs = new Map<string, Run>();

function run(file: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', import.meta.resolve('tsx'), join(ROOT, file)], { cwd: cwd.path, timeout: 120_000 }, (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }));
  });
}

function output(file: string): string {
  const r = runs.get(file);
  assert.ok(r !== undefined);
  assert.equal(r.code, 0, `${file} failed:\n${r.stderr}`);
  return r.stdout;
}

before(async () => {
  await exampleTools(['echo', 'word-count', 'read-file', 'write-file']);
  cwd = tempDir('authority-examples-cwd-');
  // Two at a time: each one compiles nothing (the cache is warm) but starts workers.
  for (let i = 0; i < EXAMPLES.length; i += 2) {
    const pair = EXAMPLES.slice(i, i + 2);
    const done = await Promise.all(pair.map((f) => run(f)));
    pair.forEach((f, j) => runs.set(f, done[j] as Run));
  }
});

after(() => cwd.cleanup());

test('the AI SDK example runs both calls through generateText and the model reads the denial', () => {
  const out = output('examples/ai-sdk.ts');
  assert.match(out, /^tools: read-file, word-count$/m);
  assert.match(out, /^call_1 read-file: ok, audit records #\d+-#\d+ of run run-\S+$/m);
  assert.match(out, /^call_2 read-file: E_TOOL_FAILED \[fs\.read E_POLICY_DENY\], audit records #\d+-#\d+ of run run-\S+$/m);
  assert.match(out, /^model saw for call_1: \{"type":"text","value":"\{\\"path\\":.*sandboxed tools for agents\\\\n\\"\}"\}$/m);
  assert.match(out, /^model saw for call_2: \{"type":"error-text","value":"denied: E_POLICY_DENY: no fs\.read rule matches \/etc\/passwd \(audit #\d+-#\d+\)"\}$/m);
  assert.match(out, /^answer: The notes say/m);
});

test('the LangChain example turns tool calls into ToolMessages, an error status for the denial', () => {
  const out = output('examples/langchain.ts');
  assert.match(out, /^call_1 word-count \[success\]: \{"words":6,"lines":1,"characters":18\}$/m);
  assert.match(out, /^call_2 read-file \[success\]: \{"path":".*draft\.md","bytes":24,"content":"one two three four five\\n"\}$/m);
  assert.match(out, /^call_3 read-file \[error\]: denied: E_POLICY_DENY: no fs\.read rule matches \/etc\/shadow \(audit #\d+-#\d+\)$/m);
  assert.match(out, /^ {2}artifact: ok=false run=run-\S+ audit #\d+-#\d+$/m);
  assert.match(out, /^direct: \{"words":2,"lines":1,"characters":13\}$/m);
});

test('the OpenAI example sends strict definitions and answers both APIs with the right shapes', () => {
  const out = output('examples/openai.ts');
  assert.match(out, /^chat tool word-count: strict=true parameters=\{"type":"object","properties":\{"text":\{"type":"string","description":"The text to count\."\}\},"required":\["text"\],"additionalProperties":false\}$/m);
  assert.match(out, /^chat tool echo: strict=false parameters=\{"type":"object"\}$/m);
  assert.match(out, /^chat reply \{"role":"tool","tool_call_id":"call_1","content":"\{\\"words\\":4,\\"lines\\":1,\\"characters\\":19\}"\}$/m);
  assert.match(out, /^chat reply \{"role":"tool","tool_call_id":"call_2","content":"denied: E_CAP_SCOPE: no fs token covers write on \\"\/etc\/cron\.d\/evil\\".*\(audit #\d+-#\d+\)"\}$/m);
  assert.match(out, /^responses tools: echo, word-count \(strict\), write-file \(strict\)$/m);
  assert.match(out, /^responses input \{"type":"function_call_output","call_id":"call_a","output":"\{\\"path\\":\\".*summary\.txt\\",\\"bytes\\":19\}"\}$/m);
  assert.match(out, /^out\/summary\.txt: four words, one fox$/m);
});

test('the MCP example client starts the server mcp.json describes and goes through a session', () => {
  const out = output('examples/mcp/client.ts');
  assert.match(out, /^tools: read-file, word-count, write-file$/m);
  assert.match(out, /^read todo\.txt: \{"path":".*todo\.txt","bytes":17,"content":"ship the sandbox\\n"\}$/m);
  assert.match(out, /^read \/etc\/passwd: isError denied: E_CAP_SCOPE: no fs token covers read on "\/etc\/passwd"/m);
  assert.match(out, /^server asks: Authority: approve fs\.write .*\/out\/done\.txt \(7 bytes\) by the tool write-file\?$/m);
  assert.match(out, /^write out\/done\.txt: \{"path":".*done\.txt","bytes":7\}$/m);
  assert.match(out, /^write todo\.txt: isError denied: E_CAP_SCOPE: no fs token covers write/m);
  assert.match(out, /^out\/done\.txt: shipped$/m);
});

test('the examples leave nothing behind in the folder they run from', () => {
  assert.deepEqual(readdirSync(cwd.path), []);
});

test('the MCP config snippets use only flags authority mcp knows, and the sample files load', async () => {
  for (const file of ['claude_desktop_config.json', 'mcp.json']) {
    const config = JSON.parse(readFileSync(join(ROOT, 'examples', 'mcp', file), 'utf8')) as { mcpServers: Record<string, { command: string; args: string[] }> };
    const server = config.mcpServers['authority'];
    assert.ok(server !== undefined, file);
    const args = server.args.slice(server.args.indexOf('mcp') + 1);
    assert.ok(server.args.includes('mcp'), file);
    for (const flag of args.filter((a) => a.startsWith('--'))) assert.ok(mcpCommand.usage.includes(`${flag} `), `${file}: ${flag} is not an option of authority mcp`);
  }
  const { policy } = await loadPolicyFile(join(ROOT, 'examples', 'mcp', 'policy.json'));
  assert.equal(policy.name, 'mcp-desktop');
  assert.equal(policy.approvalFor({ op: 'fs.write' })?.rule, 'approvals.ops[0]');
  const claims = await loadGrantsFile(join(ROOT, 'examples', 'mcp', 'grants.json'));
  assert.deepEqual(
    claims.map((c) => c.kind),
    ['fs', 'fs', 'net', 'secrets'],
  );
});
