/**
 * Tools for the Vercel AI SDK (`ai` 7): each tool of a runtime becomes a
 * dynamic tool with its JSON Schema as `inputSchema`, run through the gate by
 * `execute`. Pass them to `generateText` / `streamText` / an Agent as `tools`.
 *
 * `execute` resolves the call's result object (`{ ok, text, code, audit, ... }`,
 * see ToolCallResult): your app sees the code and the audit ids in the step's
 * tool results, and `toModelOutput` shows the model only `text`, as an
 * `error-text` output when the call was denied or failed, so the model can
 * adapt. It rejects only for host faults (the runtime halted, the audit log
 * failed), which the SDK reports as a tool error.
 *
 * @example
 * ```ts
 * import { generateText, stepCountIs } from 'ai';
 * import { aiSdkTools } from 'authority-sandbox/ai-sdk';
 * const { text } = await generateText({
 *   model, prompt: 'How many words are in /data/report.txt?',
 *   tools: aiSdkTools(runtime, { grants: [token] }),
 *   stopWhen: stepCountIs(5),
 * });
 * ```
 * @module
 */
import type { JSONSchema7, Tool, ToolSet } from 'ai';
import type { Runtime } from '../runtime.ts';
import { loadPeer } from './peer.ts';
import { sessionOf, type ToolCallResult, type ToolDescriptor, type ToolSessionOptions, type ToolSession } from './descriptor.ts';

export { ToolSession, toolSession, failureText, HOST_FAULT_CODES, type ToolCallResult, type ToolCallSuccess, type ToolCallFailure, type ToolDescriptor, type ToolSessionOptions } from './descriptor.ts';

const { dynamicTool, jsonSchema } = await loadPeer('ai', 'ai-sdk', () => import('ai'));

function isResult(v: unknown): v is ToolCallResult {
  return typeof v === 'object' && v !== null && typeof (v as ToolCallResult).ok === 'boolean' && typeof (v as ToolCallResult).text === 'string';
}

/**
 * One tool as an AI SDK dynamic tool.
 *
 * @example
 * ```ts
 * const t = aiSdkTool(toolSession(runtime).tool('word-count')!);
 * await t.execute?.({ text: 'a b' }, { toolCallId: 'call_1', messages: [], context: {} });
 * ```
 */
export function aiSdkTool(d: ToolDescriptor): Tool<unknown, ToolCallResult> {
  return dynamicTool({
    description: d.description,
    inputSchema: jsonSchema(d.inputSchema as JSONSchema7),
    execute: async (input, options) => {
      options.abortSignal?.throwIfAborted();
      return d.call(input);
    },
    toModelOutput: ({ output }) => {
      if (!isResult(output)) return { type: 'error-text', value: 'error: the tool returned no result' };
      return output.ok ? { type: 'text', value: output.text } : { type: 'error-text', value: output.text };
    },
  }) as Tool<unknown, ToolCallResult>;
}

/**
 * Every tool of a runtime (or of a session) as an AI SDK tool set, keyed by
 * name. Calls carry the session's grants and run id.
 */
export function aiSdkTools(target: Runtime | ToolSession, opts: ToolSessionOptions = {}): ToolSet {
  const session = sessionOf(target, opts);
  const tools: ToolSet = {};
  for (const d of session.tools()) tools[d.name] = aiSdkTool(d);
  return tools;
}
