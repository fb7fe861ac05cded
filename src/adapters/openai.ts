/**
 * Tools for the OpenAI API (`openai` 5.12 to 7 for the types; at run time any client speaking the same
 * JSON): function-tool definitions for Chat Completions and for Responses,
 * and a dispatcher that runs the model's tool calls through the gate and
 * produces the tool-result messages (Chat Completions) or
 * `function_call_output` items (Responses) to send back.
 *
 * Strict mode: OpenAI's strict function calling needs every object schema to
 * say `additionalProperties: false` and to list every property in `required`.
 * Where a tool's schema can be made so, the definition is strict: optional
 * properties become required and nullable (`"type": ["string", "null"]`),
 * `default`/`title`/`examples` are dropped, and the dispatcher removes the
 * nulls the model sends for them before the tool sees its input (so the
 * tool's own defaults apply). Where it cannot (an open object such as a
 * headers map, `oneOf`, `allOf`, string lengths, ...), the tool is sent with
 * `strict: false` and its schema unchanged.
 *
 * @example
 * ```ts
 * import OpenAI from 'openai';
 * import { openaiTools } from 'authority-sandbox/openai';
 * const oa = openaiTools(runtime, { grants: [token] });
 * const messages = [{ role: 'user', content: 'Count the words in "to be or not to be"' }];
 * const res = await client.chat.completions.create({ model, messages, tools: oa.chatCompletionsTools() });
 * const msg = res.choices[0].message;
 * messages.push(msg, ...(await oa.handleChatToolCalls(msg.tool_calls)));
 * ```
 * @module
 */
import type { ChatCompletionFunctionTool, ChatCompletionMessageToolCall, ChatCompletionToolMessageParam } from 'openai/resources/chat/completions';
import type { FunctionTool, ResponseFunctionToolCall, ResponseInputItem } from 'openai/resources/responses/responses';
import { ErrorCode } from '../errors.ts';
import type { Runtime } from '../runtime.ts';
import { sessionOf, type JsonSchema, type ToolCallFailure, type ToolCallResult, type ToolDescriptor, type ToolSessionOptions, type ToolSession } from './descriptor.ts';

export { ToolSession, toolSession, failureText, HOST_FAULT_CODES, type ToolCallResult, type ToolCallSuccess, type ToolCallFailure, type ToolDescriptor, type ToolSessionOptions } from './descriptor.ts';

/** A schema as OpenAI will get it, and how to undo the changes on the model's arguments. */
export interface StrictSchema {
  /** Whether `schema` satisfies strict mode. */
  strict: boolean;
  /** The strict form, or the original schema when it cannot be made strict. */
  schema: JsonSchema;
  /** Why it could not be made strict (only when `strict` is false). */
  reason?: string | undefined;
  /** Remove the nulls the model sent for properties that were optional (returns a new value). */
  restore(args: unknown): unknown;
}

/** Keywords strict mode accepts (besides the structural ones handled below). */
const KEPT = new Set([
  'type',
  'description',
  'enum',
  'const',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
]);
/** Annotations that do not change what validates: dropped in the strict form. */
const DROPPED = new Set(['$schema', 'title', 'default', 'examples', '$comment', 'readOnly', 'writeOnly', 'deprecated']);
const STRUCTURAL = new Set(['properties', 'required', 'additionalProperties', 'items', 'anyOf']);

class NotStrict extends Error {}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function acceptsNull(s: Record<string, unknown>): boolean {
  const t = s['type'];
  if (t === 'null' || (Array.isArray(t) && t.includes('null'))) return true;
  if (Array.isArray(s['enum']) && s['enum'].includes(null)) return true;
  if (Array.isArray(s['anyOf']) && s['anyOf'].some((x) => isObject(x) && acceptsNull(x))) return true;
  return false;
}

function nullable(s: Record<string, unknown>): Record<string, unknown> {
  if (acceptsNull(s)) return s;
  if (Array.isArray(s['anyOf'])) return { ...s, anyOf: [...s['anyOf'], { type: 'null' }] };
  if (typeof s['type'] === 'string' && s['$ref'] === undefined && s['const'] === undefined) {
    const out: Record<string, unknown> = { ...s, type: [s['type'], 'null'] };
    if (Array.isArray(s['enum'])) out['enum'] = [...s['enum'], null];
    return out;
  }
  if (Array.isArray(s['type']) && s['$ref'] === undefined && s['const'] === undefined) {
    const out: Record<string, unknown> = { ...s, type: [...s['type'], 'null'] };
    if (Array.isArray(s['enum'])) out['enum'] = [...s['enum'], null];
    return out;
  }
  const { description, ...rest } = s;
  return { ...(description === undefined ? {} : { description }), anyOf: [rest, { type: 'null' }] };
}

/** `inAnyOf`: the dispatcher cannot tell which branch an argument took, so no optional property may be made nullable there. */
function strictNode(s: unknown, at: string, inAnyOf = false): Record<string, unknown> {
  if (!isObject(s)) throw new NotStrict(`${at}: a schema must be an object`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (DROPPED.has(k)) continue;
    if (KEPT.has(k)) out[k] = v;
    else if (!STRUCTURAL.has(k)) throw new NotStrict(`${at}: "${k}" is not supported in strict mode${k === '$ref' ? ' here (references are not followed)' : ''}`);
  }
  const isObj = s['type'] === 'object' || (Array.isArray(s['type']) && s['type'].includes('object'));
  if (isObj || s['properties'] !== undefined) {
    const props = s['properties'];
    if (!isObject(props) || Object.keys(props).length === 0) throw new NotStrict(`${at}: an object without declared properties cannot be strict`);
    if (s['additionalProperties'] !== undefined && s['additionalProperties'] !== false) throw new NotStrict(`${at}: an object with additional properties cannot be strict`);
    const required = new Set(Array.isArray(s['required']) ? (s['required'] as unknown[]).filter((r): r is string => typeof r === 'string') : []);
    const properties: Record<string, unknown> = {};
    for (const [name, sub] of Object.entries(props)) {
      if (inAnyOf && !required.has(name)) throw new NotStrict(`${at}.properties.${name}: an optional property inside anyOf cannot be made strict`);
      const converted = strictNode(sub, `${at}.properties.${name}`, inAnyOf);
      properties[name] = required.has(name) ? converted : nullable(converted);
    }
    out['properties'] = properties;
    out['required'] = Object.keys(props);
    out['additionalProperties'] = false;
  }
  if (s['items'] !== undefined) out['items'] = strictNode(s['items'], `${at}.items`, inAnyOf);
  if (s['anyOf'] !== undefined) {
    if (!Array.isArray(s['anyOf'])) throw new NotStrict(`${at}.anyOf: must be a list`);
    out['anyOf'] = s['anyOf'].map((x, i) => strictNode(x, `${at}.anyOf[${i}]`, true));
  }
  return out;
}

/** Remove nulls for properties that were optional and do not accept null, following the original schema. */
function restoreNode(schema: unknown, value: unknown): unknown {
  if (!isObject(schema)) return value;
  if (Array.isArray(value) && schema['items'] !== undefined) return value.map((v) => restoreNode(schema['items'], v));
  const props = schema['properties'];
  if (!isObject(props) || !isObject(value)) return value;
  const required = new Set(Array.isArray(schema['required']) ? schema['required'] : []);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const sub = props[k];
    if (v === null && !required.has(k) && isObject(sub) && !acceptsNull(sub)) continue;
    out[k] = sub === undefined ? v : restoreNode(sub, v);
  }
  return out;
}

/**
 * A tool's input schema in OpenAI's strict form, or the reason it cannot be.
 *
 * @example
 * ```ts
 * toStrictSchema({ type: 'object', properties: { city: { type: 'string' }, units: { type: 'string', default: 'metric' } }, required: ['city'] });
 * // schema: { type: 'object', properties: { city: { type: 'string' }, units: { type: ['string', 'null'] } },
 * //           required: ['city', 'units'], additionalProperties: false }, strict: true
 * ```
 */
export function toStrictSchema(schema: JsonSchema): StrictSchema {
  try {
    if (schema['type'] !== 'object') throw new NotStrict('(root): the root must be an object schema');
    const strict = strictNode(schema, '(root)');
    return { strict: true, schema: strict, restore: (args) => restoreNode(schema, args) };
  } catch (e) {
    if (!(e instanceof NotStrict)) throw e;
    return { strict: false, schema, reason: e.message, restore: (args) => args };
  }
}

export interface OpenAIToolOptions extends ToolSessionOptions {
  /** `'auto'` (default): strict where the schema allows it. `false`: never strict, schemas unchanged. */
  strict?: 'auto' | false | undefined;
}

/** A dispatched call: the item to send back, and the full result for your app. */
export interface Dispatched<T> {
  reply: T;
  result: ToolCallResult;
}

function badCall(tool: string, message: string, runId: string): ToolCallFailure {
  return { ok: false, tool, code: ErrorCode.INVALID_ARGUMENT, message, text: `error: ${ErrorCode.INVALID_ARGUMENT}: ${message}`, denials: [], runId, audit: undefined };
}

/**
 * A runtime's tools for the OpenAI API. Create with {@link openaiTools}.
 * Tool definitions are built from the tools registered at the time of the call.
 */
export class OpenAITools {
  readonly session: ToolSession;
  readonly #strict: 'auto' | false;

  constructor(target: Runtime | ToolSession, opts: OpenAIToolOptions = {}) {
    this.session = sessionOf(target, opts);
    this.#strict = opts.strict ?? 'auto';
  }

  #schema(d: ToolDescriptor): StrictSchema {
    if (this.#strict === false) return { strict: false, schema: d.inputSchema, restore: (a) => a };
    return toStrictSchema(d.inputSchema);
  }

  /** Definitions for Chat Completions: `tools` of `chat.completions.create`. */
  chatCompletionsTools(): ChatCompletionFunctionTool[] {
    return this.session.tools().map((d) => {
      const s = this.#schema(d);
      return { type: 'function', function: { name: d.name, description: d.description, parameters: s.schema, strict: s.strict } };
    });
  }

  /** Definitions for Responses: `tools` of `responses.create`. */
  responsesTools(): FunctionTool[] {
    return this.session.tools().map((d) => {
      const s = this.#schema(d);
      return { type: 'function', name: d.name, description: d.description, parameters: s.schema, strict: s.strict };
    });
  }

  /** Run one tool call given its name and its JSON arguments text, as the model wrote them. */
  async call(name: string, argumentsText: string): Promise<ToolCallResult> {
    let args: unknown;
    try {
      args = argumentsText.trim() === '' ? {} : JSON.parse(argumentsText);
    } catch (e) {
      return badCall(name, `the arguments are not valid JSON: ${(e as Error).message}`, this.session.runId);
    }
    const d = this.session.tool(name);
    if (d !== undefined) args = this.#schema(d).restore(args);
    return this.session.call(name, args);
  }

  /** One Chat Completions tool call: the `role: 'tool'` message to append, and the result. */
  async runChatToolCall(call: ChatCompletionMessageToolCall): Promise<Dispatched<ChatCompletionToolMessageParam>> {
    const result =
      call.type === 'function'
        ? await this.call(call.function.name, call.function.arguments)
        : badCall(call.custom.name, `${call.custom.name} is not a function tool`, this.session.runId);
    return { reply: { role: 'tool', tool_call_id: call.id, content: result.text }, result };
  }

  /**
   * Every tool call of an assistant message (`message.tool_calls`), run
   * concurrently; resolves with the tool messages, in the calls' order.
   * Throws only for host faults.
   */
  async handleChatToolCalls(calls: readonly ChatCompletionMessageToolCall[] | null | undefined): Promise<ChatCompletionToolMessageParam[]> {
    const done = await Promise.all((calls ?? []).map((c) => this.runChatToolCall(c)));
    return done.map((d) => d.reply);
  }

  /** One Responses `function_call` item: the `function_call_output` item to send, and the result. */
  async runResponsesFunctionCall(item: Pick<ResponseFunctionToolCall, 'call_id' | 'name' | 'arguments'>): Promise<Dispatched<ResponseInputItem.FunctionCallOutput>> {
    const result = await this.call(item.name, item.arguments);
    return { reply: { type: 'function_call_output', call_id: item.call_id, output: result.text }, result };
  }

  /**
   * Every `function_call` item of a response's `output` (other items are
   * skipped), run concurrently; resolves with the `function_call_output`
   * items to send as the next request's input.
   */
  async handleResponsesOutput(output: ReadonlyArray<{ type: string }> | null | undefined): Promise<ResponseInputItem.FunctionCallOutput[]> {
    const calls = (output ?? []).filter((i): i is ResponseFunctionToolCall => i.type === 'function_call');
    const done = await Promise.all(calls.map((c) => this.runResponsesFunctionCall(c)));
    return done.map((d) => d.reply);
  }
}

/**
 * A runtime's tools (or a session's) for the OpenAI API.
 *
 * @example
 * ```ts
 * const oa = openaiTools(runtime, { grants: [token] });
 * const response = await client.responses.create({ model, input, tools: oa.responsesTools() });
 * const outputs = await oa.handleResponsesOutput(response.output);
 * await client.responses.create({ model, previous_response_id: response.id, input: outputs, tools: oa.responsesTools() });
 * ```
 */
export function openaiTools(target: Runtime | ToolSession, opts: OpenAIToolOptions = {}): OpenAITools {
  return new OpenAITools(target, opts);
}
