/**
 * Authority tools in LangChain.js.
 *
 *   node --import tsx examples/langchain.ts
 *
 * Builds a runtime on two of this repository's example tools, turns them into
 * LangChain tools, and runs the tool calls of an AI message the way an agent
 * loop (or LangGraph's ToolNode) does: `tool.invoke(toolCall)` for each call,
 * collecting the ToolMessages to send back. No model, no network: the AI
 * message is written out here. In your project, import from
 * 'authority-sandbox' and 'authority-sandbox/langchain', and get the message
 * from `chatModel.bindTools(tools).invoke(...)`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AIMessage, type ToolMessage } from '@langchain/core/messages';
import { createRuntime } from '../src/index.ts';
import { langchainTools, type ToolCallResult } from '../src/adapters/langchain.ts';
import { ensureTools, TOOLS_OUT } from '../tools/build.ts';

const workspace = mkdtempSync(join(tmpdir(), 'authority-example-'));
writeFileSync(join(workspace, 'draft.md'), 'one two three four five\n');

const runtime = await createRuntime({
  dataDir: join(workspace, '.authority'),
  cacheDir: join(TOOLS_OUT, '..', 'cache'),
  policy: { version: '1.0', tools: { allow: ['*'] }, fs: { read: [`${workspace}/**`] } },
});
try {
  const built = await ensureTools(['word-count', 'read-file']);
  for (const path of Object.values(built)) await runtime.register(path);
  const grants = [runtime.issueToken({ kind: 'fs', resource: '/**', methods: ['read'], ttlMs: 15 * 60_000 })];
  const tools = langchainTools(runtime, { grants });
  console.log(`tools: ${tools.map((t) => t.name).join(', ')}`);

  // What a chat model bound to these tools might answer.
  const ai = new AIMessage({
    content: '',
    tool_calls: [
      { id: 'call_1', name: 'word-count', args: { text: 'to be or not to be' }, type: 'tool_call' },
      { id: 'call_2', name: 'read-file', args: { path: join(workspace, 'draft.md') }, type: 'tool_call' },
      { id: 'call_3', name: 'read-file', args: { path: '/etc/shadow' }, type: 'tool_call' },
    ],
  });

  const replies: ToolMessage[] = [];
  for (const call of ai.tool_calls ?? []) {
    const tool = tools.find((t) => t.name === call.name);
    if (tool === undefined) continue;
    replies.push((await tool.invoke(call)) as ToolMessage);
  }
  for (const m of replies) {
    const result = m.artifact as ToolCallResult;
    console.log(`${m.tool_call_id} ${m.name} [${m.status}]: ${String(m.content)}`);
    console.log(`  artifact: ok=${result.ok} run=${result.runId} audit #${result.audit?.start}-#${result.audit?.end}`);
  }

  // Called directly with arguments, a tool returns just the text.
  console.log(`direct: ${String(await tools.find((t) => t.name === 'word-count')?.invoke({ text: 'hello sandbox' }))}`);
} finally {
  await runtime.close();
  rmSync(workspace, { recursive: true, force: true });
}
