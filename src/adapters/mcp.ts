/**
 * An MCP server over a runtime: every tool it exposes is an MCP tool (name,
 * description and input JSON Schema from the tool's own self-description),
 * called through the gate with the session's grants and run id.
 *
 * - A result is text content (plus `structuredContent` when the output is a
 *   JSON object).
 * - A denial, a bad argument or a tool's own failure is a tool result with
 *   `isError: true` and one line the model can act on
 *   (`denied: E_POLICY_DENY: ... (audit #41-#43)`); `_meta` carries the code,
 *   the gate's denials and the audit ids for the client.
 * - Host faults (the runtime halted, the audit log failed, an internal error)
 *   and unknown tools are JSON-RPC errors.
 * - Approvals (the policy's `approvals` section) are asked of the user with an
 *   elicitation when the client supports it; otherwise the call is denied
 *   with `E_APPROVAL_REQUIRED`, saying so.
 * - When the runtime's tools change, the client gets `tools/list_changed`.
 *
 * @example
 * ```ts
 * import { createRuntime } from 'authority-sandbox';
 * import { serveMcpStdio } from 'authority-sandbox/mcp';
 * const runtime = await createRuntime({ policy: 'policy.json' });
 * await runtime.register('build/tools/word-count.wasm');
 * await serveMcpStdio(runtime, { grants: [] });   // stdout is now the MCP channel
 * ```
 * @module
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolRequestSchema, ErrorCode as McpErrorCode, ListToolsRequestSchema, McpError, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { AuthorityError, ErrorCode, toAuthorityError } from '../errors.ts';
import type { ApprovalDecision, ApprovalRequest, Approver, Runtime } from '../runtime.ts';
import { parseOutput, sessionOf, type ToolCallResult, type ToolDescriptor, type ToolSessionOptions, type ToolSession } from './descriptor.ts';

export { ToolSession, toolSession, failureText, HOST_FAULT_CODES, type ToolCallResult, type ToolCallSuccess, type ToolCallFailure, type ToolDescriptor, type ToolSessionOptions } from './descriptor.ts';
export { parseGrants, loadGrantsFile, mintGrants, DEFAULT_GRANT_TTL, type GrantClaim } from './grants.ts';
export { watchToolFolders, ToolFolders, type ToolFolderOptions, type ToolFolderChanges } from './tool-folders.ts';

/** The `_meta` key under which results carry Authority's facts (code, denials, audit ids, run id). */
export const MCP_META_KEY = 'authority-sandbox/result';

export interface McpServerOptions extends ToolSessionOptions {
  /**
   * Asked when the client cannot elicit (no `elicitation` capability).
   * Default: the session's approver, else the runtime's, else a deny with
   * E_APPROVAL_REQUIRED that says the client cannot be asked.
   */
  approve?: Approver | undefined;
  /** Server name and version sent at initialization. */
  name?: string | undefined;
  version?: string | undefined;
  /** Instructions for the client's model. */
  instructions?: string | undefined;
  /** Where to log (stderr). Default: the runtime's logger. */
  logger?: Logger | undefined;
}

/** What an approval is for, in words: `running the tool echo with input {...}`, `fs.write /data/a.txt (12 bytes) by the tool write-file`. */
function subject(req: ApprovalRequest): string {
  if (req.op === 'tool.invoke') {
    let input = '';
    try {
      input = JSON.stringify(req.input) ?? '';
    } catch {
      input = '(not JSON)';
    }
    return `running the tool ${req.tool}${input ? ` with input ${input.length > 400 ? `${input.slice(0, 397)}...` : input}` : ''}`;
  }
  const size = req.bytes === undefined ? '' : ` (${req.bytes} bytes)`;
  const method = req.method === undefined ? '' : `${req.method} `;
  return `${req.op} ${method}${req.target}${size} by the tool ${req.tool}`;
}

/**
 * One MCP session over a runtime. Create with {@link createMcpServer}; it
 * serves one client at a time (one transport), with one run id.
 */
export class McpSession {
  /** The SDK server: connect it to a transport with `connect()`. */
  readonly server: Server;
  /** The grants, run id and tool selection every call uses. */
  readonly session: ToolSession;
  readonly #runtime: Runtime;
  readonly #opts: McpServerOptions;
  readonly #log: Logger;
  #connected = false;
  #notify: NodeJS.Timeout | undefined;
  readonly #onToolsChanged = (): void => this.#toolsChanged();
  #markClosed: () => void = () => {};
  /** Resolves when the transport closes (the client went away, or close() was called). */
  readonly closed: Promise<void> = new Promise((res) => (this.#markClosed = res));

  /** @internal use createMcpServer() */
  constructor(target: Runtime | ToolSession, opts: McpServerOptions = {}) {
    this.session = sessionOf(target, opts);
    this.#runtime = this.session.runtime;
    this.#opts = opts;
    this.#log = (opts.logger ?? this.#runtime.logger).child({ component: 'mcp' });
    this.server = new Server(
      { name: opts.name ?? 'authority', version: opts.version ?? '0.1.0' },
      { capabilities: { tools: { listChanged: true } }, ...(opts.instructions === undefined ? {} : { instructions: opts.instructions }) },
    );
    this.server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: this.session.tools().map(toMcpTool) }));
    this.server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const { name, arguments: args } = request.params;
      const tool = this.session.tool(name);
      if (tool === undefined) throw new McpError(McpErrorCode.InvalidParams, `Unknown tool: ${name}`);
      let result: ToolCallResult;
      try {
        result = await this.session.call(name, args ?? {}, {
          approve: (req) => this.#approve(req, extra.requestId),
        });
      } catch (e) {
        // Host faults: the client's model cannot fix these, so they are protocol errors.
        const err = toAuthorityError(e);
        this.#log.error({ code: err.code, tool: name }, 'tool call failed on the host side');
        throw new McpError(McpErrorCode.InternalError, `${err.code}: ${err.message}`, { code: err.code });
      }
      return toCallToolResult(result);
    });
    this.server.onclose = () => {
      this.#detach();
      this.#markClosed();
    };
  }

  /** The run id every call of this session belongs to. */
  get runId(): string {
    return this.session.runId;
  }

  /** Connect to a transport (stdio, streamable HTTP, in-memory...). */
  async connect(transport: Transport): Promise<void> {
    await this.server.connect(transport);
    this.#connected = true;
    this.#runtime.on('tools-changed', this.#onToolsChanged);
  }

  #detach(): void {
    this.#connected = false;
    clearTimeout(this.#notify);
    this.#runtime.off('tools-changed', this.#onToolsChanged);
  }

  /** Close the transport. The runtime stays open (it is the caller's). */
  async close(): Promise<void> {
    this.#detach();
    await this.server.close();
  }

  #toolsChanged(): void {
    if (!this.#connected) return;
    // A folder rescan may change several tools at once: one notification for the burst.
    clearTimeout(this.#notify);
    this.#notify = setTimeout(() => {
      this.server.sendToolListChanged().catch((e: unknown) => this.#log.warn({ err: e }, 'could not send tools/list_changed'));
    }, 20);
  }

  /** Ask the user through the client (elicitation), or fall back. */
  async #approve(req: ApprovalRequest, relatedRequestId: string | number): Promise<ApprovalDecision> {
    const caps = this.server.getClientCapabilities()?.elicitation as { form?: unknown; url?: unknown } | undefined;
    const canAsk = caps !== undefined && (caps.form !== undefined || caps.url === undefined);
    if (!canAsk) {
      const fallback = this.#opts.approve ?? this.session.approver ?? this.#runtime.approver;
      if (fallback !== undefined) return fallback(req);
      throw new AuthorityError(
        ErrorCode.APPROVAL_REQUIRED,
        `${subject(req)} needs approval (${req.reason}), but this MCP client does not support elicitation, so nobody can be asked; use a client that does, or change the policy's approvals`,
      );
    }
    const client = this.server.getClientVersion();
    const by = `user via MCP client ${client?.name ?? 'unknown'}${client?.version === undefined ? '' : ` ${client.version}`}`.slice(0, 128);
    const result = await this.server.elicitInput(
      {
        mode: 'form',
        message: `Authority: approve ${subject(req)}?\nRequired by the policy: ${req.reason}.\nRun ${req.runId}.`,
        requestedSchema: {
          type: 'object',
          properties: {
            approve: { type: 'boolean', title: 'Approve', description: `Allow this once: ${req.op} ${req.target}`.slice(0, 300), default: false },
            reason: { type: 'string', title: 'Reason (optional)', maxLength: 200 },
          },
          required: ['approve'],
        },
      },
      { signal: req.signal, timeout: Math.max(1, req.deadline - Date.now()), relatedRequestId },
    );
    const note = typeof result.content?.['reason'] === 'string' && result.content['reason'].length > 0 ? result.content['reason'] : undefined;
    if (result.action === 'accept' && result.content?.['approve'] === true) return { approved: true, by, reason: note };
    const why = result.action === 'accept' ? 'not approved' : result.action === 'decline' ? 'declined' : 'dismissed without an answer';
    return { approved: false, by, reason: note === undefined ? why : `${why}: ${note}` };
  }
}

/** A tool descriptor as an MCP tool. */
export function toMcpTool(d: ToolDescriptor): Tool {
  const pure = d.imports.length === 0;
  return {
    name: d.name,
    description: d.description,
    inputSchema: d.inputSchema as Tool['inputSchema'],
    annotations: { readOnlyHint: pure, openWorldHint: d.imports.includes('http') },
  };
}

/** A call's result as an MCP tool result. */
export function toCallToolResult(r: ToolCallResult): CallToolResult {
  if (r.ok) {
    const json = parseOutput(r.output);
    const structured = json !== null && typeof json === 'object' && !Array.isArray(json) ? { structuredContent: json as Record<string, unknown> } : {};
    return {
      content: [{ type: 'text', text: r.output }],
      ...structured,
      _meta: { [MCP_META_KEY]: { ok: true, runId: r.runId, audit: r.audit, ...(r.denials.length > 0 ? { denials: r.denials } : {}) } },
    };
  }
  return {
    isError: true,
    content: [{ type: 'text', text: r.text }],
    _meta: {
      [MCP_META_KEY]: {
        ok: false,
        code: r.code,
        message: r.message,
        denials: r.denials,
        runId: r.runId ?? null,
        audit: r.audit ?? null,
        ...(r.retryAfterMs === undefined ? {} : { retryAfterMs: r.retryAfterMs }),
      },
    },
  };
}

/**
 * An MCP session over a runtime's tools. Connect it to any transport.
 *
 * @example
 * ```ts
 * const mcp = createMcpServer(runtime, { grants: mintGrants(runtime, claims, { runId }), runId });
 * await mcp.connect(new StdioServerTransport());
 * ```
 */
export function createMcpServer(target: Runtime | ToolSession, opts: McpServerOptions = {}): McpSession {
  return new McpSession(target, opts);
}

/**
 * Serve a runtime's tools over stdio (stdout becomes the MCP channel: write
 * nothing else to it). Resolves once connected.
 */
export async function serveMcpStdio(runtime: Runtime | ToolSession, opts: McpServerOptions & { stdin?: Readable; stdout?: Writable } = {}): Promise<McpSession> {
  const session = createMcpServer(runtime, opts);
  await session.connect(new StdioServerTransport(opts.stdin, opts.stdout));
  return session;
}
