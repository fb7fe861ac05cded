/**
 * Authority tools in the Vercel AI SDK.
 *
 *   node --import tsx examples/ai-sdk.ts
 *
 * Builds a runtime on two of this repository's example tools, turns them into
 * AI SDK tools, and runs `generateText` with a scripted stand-in for a model
 * (no model, no network): it asks for one allowed call and one the policy
 * denies, and the real SDK runs both tools and hands the results back.
 * In your project, import from 'authority-sandbox' and
 * 'authority-sandbox/ai-sdk', and pass a real model (e.g. openai('gpt-4.1')).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateText, stepCountIs } from 'ai';
import { MockLanguageModelV3 } from 'ai/test';
import { createRuntime } from '../src/index.ts';
import { aiSdkTools, type ToolCallResult } from '../src/adapters/ai-sdk.ts';
import { ensureTools, TOOLS_OUT } from '../tools/build.ts';

const workspace = mkdtempSync(join(tmpdir(), 'authority-example-'));
writeFileSync(join(workspace, 'notes.txt'), 'sandboxed tools for agents\n');

const runtime = await createRuntime({
  dataDir: join(workspace, '.authority'),
  cacheDir: join(TOOLS_OUT, '..', 'cache'),
  policy: { version: '1.0', tools: { allow: ['*'] }, fs: { read: [`${workspace}/**`] } },
});
try {
  const built = await ensureTools(['word-count', 'read-file']);
  for (const path of Object.values(built)) await runtime.register(path);

  // What this agent may do: read files (the policy narrows it to the workspace).
  const grants = [runtime.issueToken({ kind: 'fs', resource: '/**', methods: ['read'], ttlMs: 15 * 60_000 })];
  const tools = aiSdkTools(runtime, { grants });
  console.log(`tools: ${Object.keys(tools).sort().join(', ')}`);

  // A scripted model: first it asks for two tool calls, then it answers.
  const usage = { inputTokens: { total: 10, noCache: 10, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 5, text: 5, reasoning: 0 } };
  const model = new MockLanguageModelV3({
    doGenerate: [
      {
        content: [
          { type: 'tool-call', toolCallId: 'call_1', toolName: 'read-file', input: JSON.stringify({ path: join(workspace, 'notes.txt') }) },
          { type: 'tool-call', toolCallId: 'call_2', toolName: 'read-file', input: JSON.stringify({ path: '/etc/passwd' }) },
        ],
        finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
        usage,
        warnings: [],
      },
      { content: [{ type: 'text', text: 'The notes say: sandboxed tools for agents. /etc/passwd is off limits.' }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] },
    ],
  });

  const result = await generateText({ model, prompt: 'Read my notes and /etc/passwd.', tools, stopWhen: stepCountIs(3) });
  for (const r of result.steps[0]?.toolResults ?? []) {
    const out = r.output as ToolCallResult;
    const status = out.ok ? 'ok' : `${out.code} [${out.denials.map((d) => `${d.op} ${d.code}`).join(', ')}]`;
    console.log(`${r.toolCallId} ${r.toolName}: ${status}, audit records #${out.audit?.start}-#${out.audit?.end} of run ${out.runId}`);
  }
  // What the model read back for each call (toModelOutput):
  const toolMessage = model.doGenerateCalls[1]?.prompt.find((m) => m.role === 'tool');
  for (const part of toolMessage?.content ?? []) {
    if (part.type === 'tool-result') console.log(`model saw for ${part.toolCallId}: ${JSON.stringify(part.output)}`);
  }
  console.log(`answer: ${result.text}`);
} finally {
  await runtime.close();
  rmSync(workspace, { recursive: true, force: true });
}
