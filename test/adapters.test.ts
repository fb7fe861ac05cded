import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateText, stepCountIs, type ToolSet } from 'ai';
import { MockLanguageModelV3 } from 'ai/test';
import { ToolMessage } from '@langchain/core/messages';
import type { ChatCompletionMessageToolCall } from 'openai/resources/chat/completions';
import type { ResponseOutputItem } from 'openai/resources/responses/responses';
import { aiSdkTool, aiSdkTools } from '../src/adapters/ai-sdk.ts';
import { failureText, toolSession, type ToolCallFailure, type ToolCallResult, type ToolCallSuccess } from '../src/adapters/descriptor.ts';
import { loadGrantsFile, mintGrants, parseGrants } from '../src/adapters/grants.ts';
import { langchainTool, langchainTools } from '../src/adapters/langchain.ts';
import { openaiTools, toStrictSchema } from '../src/adapters/openai.ts';
import { watchToolFolders } from '../src/adapters/tool-folders.ts';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { exampleTools, watFixture } from './helpers/fixtures.ts';
import { auditRecords, tempDir, testRuntime } from './helpers/runtime.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

let rt: Awaited<ReturnType<typeof testRuntime>>;
let ws: ReturnType<typeof tempDir>;
let grant: string;
let inFile: string;

function ok(r: ToolCallResult): ToolCallSuccess {
  assert.equal(r.ok, true, r.ok ? '' : r.text);
  return r as ToolCallSuccess;
}

function notOk(r: ToolCallResult): ToolCallFailure {
  assert.equal(r.ok, false, r.ok ? `expected a failure, got ${r.text}` : '');
  return r as ToolCallFailure;
}

before(async () => {
  const tools = await exampleTools(['echo', 'word-count', 'read-file', 'weather']);
  ws = tempDir('authority-adapters-');
  ws.path = realpathSync(ws.path);
  inFile = join(ws.path, 'in.txt');
  writeFileSync(inFile, 'hello adapters\n');
  rt = await testRuntime({
    policy: { version: '1.0', fs: { read: [`${ws.path}/**`] }, tools: { allow: ['*'] } },
    audit: { durability: 'none' },
  });
  for (const path of Object.values(tools)) await rt.register(path);
  grant = rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read'], ttlMs: 600_000 });
});

after(async () => {
  await rt.cleanup();
  ws.cleanup();
});

// ------------------------------------------------------------ descriptor

test('describes every tool with a name valid everywhere, its description and input schema', () => {
  const tools = toolSession(rt).tools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'read-file', 'weather', 'word-count']);
  for (const t of tools) assert.match(t.name, /^[A-Za-z0-9_-]{1,64}$/);
  const wc = tools.find((t) => t.name === 'word-count');
  assert.equal(wc?.description, 'Counts the words, lines and characters of a text.');
  assert.deepEqual(wc?.inputSchema.required, ['text']);
  assert.deepEqual(wc?.imports, []);
});

test('a call answers with the output, the run id and the audit ids of its records', async () => {
  const session = toolSession(rt, { runId: 'session-ok' });
  const r = ok(await session.call('word-count', { text: 'one two' }));
  assert.deepEqual(JSON.parse(r.text), { words: 2, lines: 1, characters: 7 });
  assert.equal(r.runId, 'session-ok');
  const records = await auditRecords(rt.dataDir, (x) => x.runId === 'session-ok');
  assert.deepEqual([records[0]?.seq, records.at(-1)?.seq], [r.audit.start, r.audit.end]);
  assert.deepEqual([records[0]?.kind, records.at(-1)?.kind], ['invoke.start', 'invoke.end']);
});

test('a denied host call reads as the denial, with its code and audit ids', async () => {
  const session = toolSession(rt, { grants: [grant], runId: 'session-denied' });
  const r = notOk(await session.call('read-file', { path: '/etc/passwd' }));
  assert.equal(r.code, ErrorCode.TOOL_FAILED);
  assert.deepEqual(
    r.denials.map((d) => [d.op, d.code]),
    [['fs.read', ErrorCode.POLICY_DENY]],
  );
  assert.equal(r.text, `denied: E_POLICY_DENY: no fs.read rule matches /etc/passwd (audit #${r.audit?.start}-#${r.audit?.end})`);
  const denied = await auditRecords(rt.dataDir, (x) => x.runId === 'session-denied' && x.kind === 'call.denied');
  assert.ok(denied[0] !== undefined && denied[0].seq > (r.audit?.start ?? 0) && denied[0].seq < (r.audit?.end ?? 0));
});

test('a call without grants can touch nothing, and says so', async () => {
  const r = notOk(await toolSession(rt).call('read-file', { path: inFile }));
  assert.match(r.text, /^denied: E_CAP_MISSING: /);
});

test('invalid arguments are a readable error naming the field, not an exception', async () => {
  const r = notOk(await toolSession(rt).call('word-count', { text: 42 }));
  assert.equal(r.code, ErrorCode.INVALID_ARGUMENT);
  assert.equal(r.text, `error: E_INVALID_ARGUMENT: input.text: must be string (audit #${r.audit?.start})`);
});

test('an unknown tool, or one the session hides, is E_TOOL_NOT_FOUND', async () => {
  const session = toolSession(rt, { tools: ['word-count'] });
  assert.deepEqual(
    session.tools().map((t) => t.name),
    ['word-count'],
  );
  for (const name of ['nope', 'echo']) {
    const r = notOk(await session.call(name, {}));
    assert.equal(r.code, ErrorCode.TOOL_NOT_FOUND);
    assert.equal(r.audit, undefined);
  }
});

test('every call of a session is in its run, so a token bound to another run is refused', async () => {
  const other = rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read'], ttlMs: 60_000, runId: 'another-run' });
  const r = notOk(await toolSession(rt, { grants: [other], runId: 'this-run' }).call('read-file', { path: inFile }));
  assert.equal(r.denials[0]?.code, ErrorCode.CAP_RUN_MISMATCH);
  const good = rt.issueToken({ kind: 'fs', resource: '/**', methods: ['read'], ttlMs: 60_000, runId: 'this-run' });
  ok(await toolSession(rt, { grants: () => [good], runId: 'this-run' }).call('read-file', { path: inFile }));
});

test('formats failures the model can act on', () => {
  assert.equal(failureText({ code: ErrorCode.RATE_LIMITED, message: 'too many calls', denials: [], audit: { start: 7, end: 7 }, retryAfterMs: 250.2 }), 'denied: E_RATE_LIMITED: too many calls (retry after 251 ms) (audit #7)');
  assert.equal(failureText({ code: ErrorCode.TIMEOUT, message: 'the tool ran past its deadline', denials: [], audit: { start: 1, end: 9 } }), 'error: E_TIMEOUT: the tool ran past its deadline (audit #1-#9)');
  assert.equal(
    failureText({
      code: ErrorCode.TOOL_FAILED,
      message: 'gave up',
      denials: [
        { op: 'fs.read', code: ErrorCode.CAP_SCOPE, reason: 'no token covers /a' },
        { op: 'fs.read', code: ErrorCode.CAP_SCOPE, reason: 'no token covers /b' },
      ],
      audit: undefined,
    }),
    'denied: E_CAP_SCOPE: no token covers /a (and 1 more denied call); the tool then failed: gave up',
  );
});

test('host faults throw instead of reaching the model', async () => {
  const local = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } }, audit: { durability: 'none' } });
  try {
    await local.register((await exampleTools(['echo']))['echo'] as string);
    const session = toolSession(local);
    ok(await session.call('echo', {}));
    await local.halt('operator stop');
    await assert.rejects(session.call('echo', {}), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.HALTED);
  } finally {
    await local.cleanup();
  }
});

// ---------------------------------------------------------------- grants

test('a grants file is checked, every problem named at its path', () => {
  assert.throws(
    () =>
      parseGrants({
        grants: [
          { kind: 'fs', resource: '/data/**', methods: ['read', 'wirte'], ttl: '8 hours' },
          { kind: 'disk', resource: '/x', methods: ['read'] },
          { kind: 'net', resource: 'https://a.example/**', methods: ['GET'], rate: 'fast', extra: 1 },
        ],
      }),
    (e: unknown) => {
      assert.ok(e instanceof AuthorityError && e.code === ErrorCode.CONFIG);
      const problems = e.data?.['problems'] as string[];
      assert.ok(problems.some((p) => p.startsWith('grants[1].kind: ')));
      assert.ok(problems.some((p) => p === 'grants[2]: Unrecognized key: "extra"'), problems.join('\n'));
      return true;
    },
  );
  assert.throws(
    () => parseGrants({ grants: [{ kind: 'fs', resource: '/data/**', methods: ['read', 'wirte'], ttl: '8 hours' }, { kind: 'net', resource: 'https://a/**', methods: ['*'], rate: 'fast' }] }),
    (e: unknown) => {
      const problems = (e as AuthorityError).data?.['problems'] as string[];
      assert.deepEqual(problems, [
        'grants[0].methods[1]: "wirte" is not a fs method (one of read, list, write, remove)',
        'grants[0].ttl: "8 hours" is not a duration like 90s, 15m, 1h30m, 7d',
        'grants[1].rate: "fast" is not a rate like 10/s, 100/min or 5/10s',
      ]);
      return true;
    },
  );
});

test('grants become tokens bound to the session run, with their lifetime and rate', async () => {
  const claims = parseGrants({ grants: [{ kind: 'fs', resource: '/data/**', methods: ['read', 'list'], ttl: '2h', rate: '10/s' }, { kind: 'secrets', resource: 'WEATHER_KEY', methods: ['use'] }] });
  const before = Date.now();
  const [fsToken, secretToken] = mintGrants(rt, claims, { runId: 'mcp-session-1' });
  const info = rt.inspectToken(fsToken as string);
  assert.deepEqual(info.effective.runIds, ['mcp-session-1']);
  assert.deepEqual(info.effective.methods, ['read', 'list']);
  assert.deepEqual(info.effective.rates.map((r) => [r.count, r.periodMs]), [[10, 1000]]);
  assert.ok(info.effective.expiresAt >= before + 2 * 3_600_000 && info.effective.expiresAt <= Date.now() + 2 * 3_600_000);
  assert.ok(rt.inspectToken(secretToken as string).effective.expiresAt >= before + 24 * 3_600_000);
  assert.throws(() => mintGrants(rt, [{ kind: 'fs', resource: 'relative/path', methods: ['read'], ttlMs: 1000 }], { runId: 'r' }), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && e.message.startsWith('grants[0]: '));
});

test('a missing or malformed grants file is a configuration error', async () => {
  await assert.rejects(loadGrantsFile(join(ws.path, 'none.json')), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && /ENOENT/.test(e.message));
  writeFileSync(join(ws.path, 'bad.json'), '{ "grants": [ }');
  await assert.rejects(loadGrantsFile(join(ws.path, 'bad.json')), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && /not JSON/.test(e.message));
});

// ---------------------------------------------------------- tool folders

test('tool folders: registers components, picks up added, replaced and removed ones, reports refusals', async () => {
  const dir = join(ws.path, 'folder');
  mkdirSync(dir);
  const echo = (await exampleTools(['echo']))['echo'] as string;
  const trap = await watFixture('trap');
  const local = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } }, audit: { durability: 'none' } });
  const changes: unknown[] = [];
  local.on('tools-changed', (c) => changes.push(c));
  copyFileSync(echo, join(dir, 'echo.wasm'));
  writeFileSync(join(dir, 'notes.txt'), 'not a component');
  const folders = await watchToolFolders(local, [dir], { debounceMs: 10_000 });
  try {
    assert.deepEqual(local.tools().map((t) => t.name), ['echo']);
    // Added, and a broken one beside it.
    copyFileSync(trap, join(dir, 'trap.wasm.tmp'));
    renameSync(join(dir, 'trap.wasm.tmp'), join(dir, 'trap.wasm'));
    writeFileSync(join(dir, 'broken.wasm'), 'not wasm');
    let c = await folders.rescan();
    assert.deepEqual(c.registered, ['trap']);
    assert.deepEqual(c.refused.map((r) => [r.file, r.code]), [[join(dir, 'broken.wasm'), ErrorCode.COMPONENT_INVALID]]);
    assert.deepEqual(local.tools().map((t) => t.name).sort(), ['echo', 'trap']);
    // Replaced: the file now holds another tool, so the old one goes.
    copyFileSync(trap, join(dir, 'echo.wasm'));
    c = await folders.rescan();
    assert.deepEqual([c.registered, c.removed], [['trap'], ['echo']]);
    // Removed: trap stays while another file still provides it, and goes with the last one.
    rmSync(join(dir, 'trap.wasm'));
    c = await folders.rescan();
    assert.deepEqual(c.removed, []);
    rmSync(join(dir, 'echo.wasm'));
    c = await folders.rescan();
    assert.deepEqual(c.removed, ['trap']);
    assert.deepEqual(local.tools(), []);
    assert.deepEqual(changes, [{ added: 'echo' }, { added: 'trap' }, { removed: 'echo' }, { removed: 'trap' }]);
  } finally {
    folders.close();
    await local.cleanup();
  }
});

test('tool folders: a change is seen without asking, through the watch', async () => {
  const dir = join(ws.path, 'watched');
  mkdirSync(dir);
  const local = await testRuntime({ policy: { version: '1.0', tools: { allow: ['*'] } }, audit: { durability: 'none' } });
  const folders = await watchToolFolders(local, [dir], { debounceMs: 20 });
  try {
    const added = new Promise((res) => local.once('tools-changed', res));
    copyFileSync((await exampleTools(['echo']))['echo'] as string, join(dir, 'echo.wasm'));
    assert.deepEqual(await added, { added: 'echo' });
  } finally {
    folders.close();
    await local.cleanup();
  }
});

// ---------------------------------------------------------------- AI SDK

test('AI SDK: each tool is a dynamic tool with the JSON schema as inputSchema', async () => {
  const tools: ToolSet = aiSdkTools(rt, { grants: [grant] });
  assert.deepEqual(Object.keys(tools).sort(), ['echo', 'read-file', 'weather', 'word-count']);
  const t = tools['word-count'];
  assert.equal(t?.type, 'dynamic');
  assert.equal(t?.description, 'Counts the words, lines and characters of a text.');
  const schema = await (t?.inputSchema as { jsonSchema: unknown }).jsonSchema;
  assert.deepEqual((schema as { required: string[] }).required, ['text']);
});

test('AI SDK: execute runs the tool with the options the SDK passes; the model sees only text', async () => {
  const t = aiSdkTool(toolSession(rt, { grants: [grant] }).tool('read-file')!);
  const options = { toolCallId: 'call_1', messages: [], abortSignal: new AbortController().signal, context: {} };
  const good = (await t.execute?.({ path: inFile }, options)) as ToolCallResult;
  assert.equal(JSON.parse(ok(good).text).content, 'hello adapters\n');
  assert.deepEqual(await t.toModelOutput?.({ toolCallId: 'call_1', input: { path: inFile }, output: good }), { type: 'text', value: good.text });
  const bad = (await t.execute?.({ path: '/etc/passwd' }, options)) as ToolCallResult;
  assert.deepEqual(await t.toModelOutput?.({ toolCallId: 'call_1', input: {}, output: bad }), { type: 'error-text', value: notOk(bad).text });
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(Promise.resolve(t.execute?.({ path: inFile }, { ...options, abortSignal: aborted.signal })));
});

test('AI SDK: generateText runs a model-requested call and hands the denial back to the model', async () => {
  const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };
  const prompts: unknown[] = [];
  let step = 0;
  const model = new MockLanguageModelV3({
    doGenerate: async (options) => {
      prompts.push(options.prompt);
      step++;
      if (step === 1) {
        return {
          content: [
            { type: 'tool-call', toolCallId: 'call_a', toolName: 'word-count', input: JSON.stringify({ text: 'a b c' }) },
            { type: 'tool-call', toolCallId: 'call_b', toolName: 'read-file', input: JSON.stringify({ path: '/etc/passwd' }) },
          ],
          finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
          usage,
          warnings: [],
        };
      }
      return { content: [{ type: 'text', text: 'done' }], finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] };
    },
  });
  const result = await generateText({ model, prompt: 'go', tools: aiSdkTools(rt, { grants: [grant], runId: 'ai-sdk-run' }), stopWhen: stepCountIs(3) });
  assert.equal(result.text, 'done');
  const outputs = result.steps[0]?.toolResults.map((r) => [r.toolName, (r.output as ToolCallResult).ok]);
  assert.deepEqual(outputs, [
    ['word-count', true],
    ['read-file', false],
  ]);
  const toolMessage = (prompts[1] as Array<{ role: string; content: Array<{ toolCallId: string; output: unknown }> }>).find((m) => m.role === 'tool');
  const byId = Object.fromEntries((toolMessage?.content ?? []).map((p) => [p.toolCallId, p.output]));
  assert.deepEqual(byId['call_a'], { type: 'text', value: '{"words":3,"lines":1,"characters":5}' });
  assert.equal((byId['call_b'] as { type: string }).type, 'error-text');
  assert.match((byId['call_b'] as { value: string }).value, /^denied: E_POLICY_DENY: no fs\.read rule matches \/etc\/passwd \(audit #\d+-#\d+\)$/);
});

// ------------------------------------------------------------- LangChain

test('LangChain: each tool is a structured tool with the JSON schema', () => {
  const tools = langchainTools(rt);
  const wc = tools.find((t) => t.name === 'word-count');
  assert.equal(wc?.description, 'Counts the words, lines and characters of a text.');
  assert.deepEqual((wc?.schema as { required: string[] }).required, ['text']);
  assert.equal(wc?.responseFormat, 'content_and_artifact');
});

test('LangChain: invoke with arguments returns the text the model reads', async () => {
  const session = toolSession(rt, { grants: [grant] });
  const t = langchainTool(session.tool('read-file')!);
  const out = (await t.invoke({ path: inFile })) as unknown;
  assert.equal(JSON.parse(out as string).content, 'hello adapters\n');
  const denied = (await t.invoke({ path: '/etc/passwd' })) as unknown;
  assert.match(denied as string, /^denied: E_POLICY_DENY: no fs\.read rule matches \/etc\/passwd/);
});

test('LangChain: invoke with a ToolCall returns a ToolMessage, an error status for a denial, the result as artifact', async () => {
  const t = langchainTool(toolSession(rt, { grants: [grant] }).tool('read-file')!);
  const good = (await t.invoke({ id: 'call_1', name: 'read-file', args: { path: inFile }, type: 'tool_call' })) as unknown;
  assert.ok(good instanceof ToolMessage);
  assert.deepEqual([good.tool_call_id, good.status, (good.artifact as ToolCallResult).ok], ['call_1', 'success', true]);
  const bad = (await t.invoke({ id: 'call_2', name: 'read-file', args: { path: '/etc/passwd' }, type: 'tool_call' })) as unknown;
  assert.ok(bad instanceof ToolMessage);
  assert.equal(bad.status, 'error');
  assert.equal(bad.tool_call_id, 'call_2');
  assert.match(String(bad.content), /^denied: E_POLICY_DENY: /);
  assert.deepEqual((bad.artifact as ToolCallFailure).denials.map((d) => d.code), [ErrorCode.POLICY_DENY]);
});

test('LangChain: input that breaks the schema is refused by the framework before the gate', async () => {
  const t = langchainTool(toolSession(rt).tool('word-count')!);
  await assert.rejects(t.invoke({ text: 5 } as never), /did not match expected schema/);
});

// ---------------------------------------------------------------- OpenAI

const FETCH_URL_SCHEMA = {
  type: 'object',
  properties: {
    url: { type: 'string', description: 'An absolute http: or https: URL.' },
    method: { type: 'string', enum: ['GET', 'POST'], default: 'GET' },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
  },
  required: ['url'],
  additionalProperties: false,
};

test('OpenAI: strict schemas make optional properties nullable and required, and drop defaults', () => {
  const weather = toolSession(rt).tool('weather')!;
  const s = toStrictSchema(weather.inputSchema);
  assert.equal(s.strict, true);
  assert.deepEqual(s.schema, {
    type: 'object',
    properties: {
      city: { type: 'string', description: 'City name, e.g. "Lisbon".' },
      endpoint: { type: ['string', 'null'], description: 'Base URL of the weather API.' },
    },
    required: ['city', 'endpoint'],
    additionalProperties: false,
  });
  assert.deepEqual(s.restore({ city: 'Lisbon', endpoint: null }), { city: 'Lisbon' });
  assert.deepEqual(s.restore({ city: 'Lisbon', endpoint: 'http://x' }), { city: 'Lisbon', endpoint: 'http://x' });
  const enumSchema = toStrictSchema({ type: 'object', properties: { m: { type: 'string', enum: ['a', 'b'] }, n: { type: 'object', properties: { k: { type: 'integer' } } } } });
  assert.deepEqual(enumSchema.schema['properties'], {
    m: { type: ['string', 'null'], enum: ['a', 'b', null] },
    n: { type: ['object', 'null'], properties: { k: { type: ['integer', 'null'] } }, required: ['k'], additionalProperties: false },
  });
  assert.deepEqual(enumSchema.restore({ m: null, n: { k: null } }), { n: {} });
});

test('OpenAI: a schema that cannot be strict is sent unchanged with strict false, and says why', () => {
  const open = toStrictSchema(FETCH_URL_SCHEMA);
  assert.deepEqual([open.strict, open.schema, open.reason], [false, FETCH_URL_SCHEMA, '(root).properties.headers: an object without declared properties cannot be strict']);
  assert.match(toStrictSchema({ type: 'object', properties: { a: { type: 'string', minLength: 2 } } }).reason ?? '', /"minLength" is not supported in strict mode/);
  assert.equal(toStrictSchema({ type: 'object' }).strict, false);
});

test('OpenAI: Chat Completions and Responses definitions, strict where possible', () => {
  const oa = openaiTools(rt);
  const chat = oa.chatCompletionsTools();
  const wc = chat.find((t) => t.function.name === 'word-count');
  assert.deepEqual(wc, {
    type: 'function',
    function: {
      name: 'word-count',
      description: 'Counts the words, lines and characters of a text.',
      parameters: { type: 'object', properties: { text: { type: 'string', description: 'The text to count.' } }, required: ['text'], additionalProperties: false },
      strict: true,
    },
  });
  assert.equal(chat.find((t) => t.function.name === 'echo')?.function.strict, false);
  const responses = oa.responsesTools();
  assert.deepEqual(responses.find((t) => t.name === 'word-count'), { type: 'function', name: 'word-count', description: wc?.function.description, parameters: wc?.function.parameters, strict: true });
  assert.ok(openaiTools(rt, { strict: false }).responsesTools().every((t) => t.strict === false));
});

test('OpenAI: dispatches Chat Completions tool calls to tool messages, in order', async () => {
  const oa = openaiTools(rt, { grants: [grant] });
  const calls: ChatCompletionMessageToolCall[] = [
    { id: 'call_1', type: 'function', function: { name: 'word-count', arguments: '{"text":"to be or not to be"}' } },
    { id: 'call_2', type: 'function', function: { name: 'read-file', arguments: JSON.stringify({ path: '/etc/passwd' }) } },
    { id: 'call_3', type: 'function', function: { name: 'weather', arguments: '{"city":' } },
    { id: 'call_4', type: 'function', function: { name: 'no-such-tool', arguments: '{}' } },
    { id: 'call_5', type: 'custom', custom: { name: 'word-count', input: 'x' } },
  ];
  const messages = await oa.handleChatToolCalls(calls);
  assert.deepEqual(messages.map((m) => [m.role, m.tool_call_id]), calls.map((c) => ['tool', c.id]));
  assert.equal(messages[0]?.content, '{"words":6,"lines":1,"characters":18}');
  assert.match(String(messages[1]?.content), /^denied: E_POLICY_DENY: no fs\.read rule matches \/etc\/passwd \(audit #\d+-#\d+\)$/);
  assert.match(String(messages[2]?.content), /^error: E_INVALID_ARGUMENT: the arguments are not valid JSON: /);
  assert.match(String(messages[3]?.content), /^error: E_TOOL_NOT_FOUND: /);
  assert.match(String(messages[4]?.content), /^error: E_INVALID_ARGUMENT: word-count is not a function tool$/);
  assert.deepEqual(await oa.handleChatToolCalls(undefined), []);
});

test('OpenAI: strict-mode nulls are removed before the tool sees its input', async () => {
  const oa = openaiTools(rt);
  const { result } = await oa.runChatToolCall({ id: 'c', type: 'function', function: { name: 'weather', arguments: '{"city":"Lisbon","endpoint":null}' } });
  // Without a net grant the weather tool is denied at its fetch: the input itself passed the schema.
  assert.equal(notOk(result).code, ErrorCode.TOOL_FAILED);
  assert.equal(result.ok ? '' : result.denials[0]?.code, ErrorCode.CAP_MISSING);
  const strictOff = openaiTools(rt, { strict: false });
  const raw = await strictOff.runChatToolCall({ id: 'c', type: 'function', function: { name: 'weather', arguments: '{"city":"Lisbon","endpoint":null}' } });
  assert.equal(notOk(raw.result).code, ErrorCode.INVALID_ARGUMENT);
});

test('OpenAI: dispatches Responses function_call items to function_call_output items', async () => {
  const oa = openaiTools(rt, { grants: [grant] });
  const output: ResponseOutputItem[] = [
    { type: 'message', id: 'msg_1', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Let me check.', annotations: [] }] },
    { type: 'function_call', call_id: 'call_a', name: 'read-file', arguments: JSON.stringify({ path: inFile }), id: 'fc_1', status: 'completed' },
    { type: 'function_call', call_id: 'call_b', name: 'read-file', arguments: JSON.stringify({ path: '/etc/shadow' }), id: 'fc_2', status: 'completed' },
  ];
  const items = await oa.handleResponsesOutput(output);
  assert.deepEqual(items.map((i) => [i.type, i.call_id]), [
    ['function_call_output', 'call_a'],
    ['function_call_output', 'call_b'],
  ]);
  assert.equal(JSON.parse(String(items[0]?.output)).content, 'hello adapters\n');
  assert.match(String(items[1]?.output), /^denied: E_POLICY_DENY: no fs\.read rule matches \/etc\/shadow/);
});

// ------------------------------------------------------------- packaging

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Every module a file imports, statically or with a literal `import('...')` (an adapter loads its framework lazily). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/^(?:import|export)\b[^;]*?from '([^']+)'/gms), ...text.matchAll(/\bimport\('([^']+)'\)/g)].map((m) => m[1] as string);
  return [...new Set(found)];
}

test('the core never imports an adapter or the CLI, and no adapter imports the CLI', () => {
  const offenders: string[] = [];
  for (const file of sources(join(ROOT, 'src'))) {
    const rel = relative(join(ROOT, 'src'), file);
    const inAdapters = rel.startsWith('adapters/');
    const inCli = rel.startsWith('cli/');
    // serve/ is a front end like cli/: it puts the MCP adapter behind HTTP.
    const inServe = rel.startsWith('serve/');
    for (const spec of importsOf(file)) {
      if (!spec.startsWith('.')) continue;
      const target = relative(join(ROOT, 'src'), join(dirname(file), spec));
      if (target.startsWith('cli/') && !inCli) offenders.push(`${rel} -> ${spec}`);
      if (target.startsWith('adapters/') && !inAdapters && !inCli && !inServe) offenders.push(`${rel} -> ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('each adapter loads only its own framework, and the package exports it as a sub-path', () => {
  const frameworks: Record<string, string[]> = { 'ai-sdk': ['ai'], langchain: ['@langchain/core/messages', '@langchain/core/tools'], openai: ['openai/resources/chat/completions', 'openai/resources/responses/responses'], mcp: [] };
  const shared = ['descriptor', 'grants', 'tool-folders', 'index', 'peer'];
  for (const file of sources(join(ROOT, 'src', 'adapters'))) {
    const name = relative(join(ROOT, 'src', 'adapters'), file).replace(/\.ts$/, '');
    const external = importsOf(file).filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !['zod', 'pino'].includes(s) && !s.startsWith('@modelcontextprotocol/sdk/'));
    assert.deepEqual(external.sort(), shared.includes(name) ? [] : [...(frameworks[name] ?? ['?'])].sort(), name);
  }
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    exports: Record<string, { source: string; types: string; default: string }>;
    peerDependencies: Record<string, string>;
    peerDependenciesMeta: Record<string, { optional: boolean }>;
  };
  for (const name of Object.keys(frameworks)) {
    assert.deepEqual(pkg.exports[`./${name}`], { source: `./src/adapters/${name}.ts`, types: `./dist/adapters/${name}.d.ts`, default: `./dist/adapters/${name}.js` });
  }
  for (const peer of ['ai', '@langchain/core', 'openai']) {
    assert.ok(pkg.peerDependencies[peer] !== undefined, peer);
    assert.deepEqual(pkg.peerDependenciesMeta[peer], { optional: true });
  }
});
