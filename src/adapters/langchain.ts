/**
 * Tools for LangChain.js (`@langchain/core` 1.x): each tool of a
 * runtime becomes a structured tool with its JSON Schema, run through the
 * gate. Bind them to a chat model (`model.bindTools(tools)`) or give them to
 * an agent or a LangGraph `ToolNode`.
 *
 * The tools use `responseFormat: 'content_and_artifact'`: the content is the
 * line the model reads (the output, or `denied: E_... (audit #...)`), the
 * artifact the whole ToolCallResult (code, denials, audit ids) for your app.
 * Invoked with a ToolCall they return a ToolMessage, with `status: 'error'`
 * when the call was denied or failed. They throw only for host faults, and
 * LangChain itself throws `ToolInputParsingException` for input that does
 * not match the schema.
 *
 * @example
 * ```ts
 * import { langchainTools } from 'authority-sandbox/langchain';
 * const tools = langchainTools(runtime, { grants: [token] });
 * const model = chatModel.bindTools(tools);
 * const ai = await model.invoke('Count the words in "hello world"');
 * for (const call of ai.tool_calls ?? []) messages.push(await tools.find((t) => t.name === call.name)!.invoke(call));
 * ```
 * @module
 */
import type { DynamicStructuredTool } from '@langchain/core/tools';
import { loadPeer } from './peer.ts';
import type { Runtime } from '../runtime.ts';
import { sessionOf, type ToolDescriptor, type ToolSessionOptions, type ToolSession } from './descriptor.ts';

export { ToolSession, toolSession, failureText, HOST_FAULT_CODES, type ToolCallResult, type ToolCallSuccess, type ToolCallFailure, type ToolDescriptor, type ToolSessionOptions } from './descriptor.ts';

const [{ ToolMessage }, { tool }] = await loadPeer('@langchain/core', 'langchain', () => Promise.all([import('@langchain/core/messages'), import('@langchain/core/tools')]));

/**
 * One tool as a LangChain structured tool.
 *
 * @example
 * ```ts
 * const t = langchainTool(toolSession(runtime).tool('word-count')!);
 * await t.invoke({ text: 'a b' });                                                  // '{"words":2,...}'
 * await t.invoke({ id: 'call_1', name: 'word-count', args: { text: 'a b' }, type: 'tool_call' }); // a ToolMessage
 * ```
 */
export function langchainTool(d: ToolDescriptor): DynamicStructuredTool {
  return tool(
    async (input: unknown, config) => {
      const r = await d.call(input);
      const id = config?.toolCall?.id;
      if (!r.ok && id !== undefined) {
        // LangChain marks every tool result a success; a denial should read as an error to agents that check.
        return [new ToolMessage({ status: 'error', content: r.text, artifact: r, tool_call_id: id, name: d.name }), r];
      }
      return [r.text, r];
    },
    {
      name: d.name,
      description: d.description,
      schema: d.inputSchema,
      responseFormat: 'content_and_artifact',
    },
  ) as unknown as DynamicStructuredTool;
}

/** Every tool of a runtime (or of a session) as LangChain tools. Calls carry the session's grants and run id. */
export function langchainTools(target: Runtime | ToolSession, opts: ToolSessionOptions = {}): DynamicStructuredTool[] {
  return sessionOf(target, opts)
    .tools()
    .map((d) => langchainTool(d));
}
