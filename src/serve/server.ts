/**
 * `authority serve`: a runtime behind MCP over Streamable HTTP (the MCP
 * SDK's own server transport), for agents in any language.
 *
 * - `POST|GET|DELETE /mcp`: MCP. A bearer token (from the access file)
 *   chooses the grants profile; every session has its own run id and grants
 *   minted for it. A session is bound to the token that opened it.
 * - `GET /healthz`: the process answers. `GET /readyz`: it can serve (not
 *   halted; in a fleet, the shared state is confirmed).
 * - `GET /metrics`: Prometheus text.
 *
 * Sessions live in this process: behind a load balancer, route by the
 * `Mcp-Session-Id` header (sticky sessions). Everything else a node decides
 * with (limits, budgets, revocations, halt) is shared through the fleet.
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { createMcpServer, mintGrants, type McpSession } from '../adapters/mcp.ts';
import { ToolSession, toFailure, type ToolCallResult } from '../adapters/descriptor.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { Approver, Runtime } from '../runtime.ts';
import { authenticate, hashBearer, type Access, type AccessEntry } from './access.ts';
import { createMetrics, type ServeMetrics } from './metrics.ts';

export interface ServeOptions {
  /** Who may connect and with which grants. */
  access: Access;
  /** Default 127.0.0.1: reaching further is a deliberate choice. */
  host?: string | undefined;
  /** Default 0 (any free port; see `ServeHandle.port`). */
  port?: number | undefined;
  /** Most open sessions (default 1000); more are refused with 503. */
  maxSessions?: number | undefined;
  /** A session unused this long is closed (default 30 min). */
  sessionIdleMs?: number | undefined;
  /** Deadline of every tool call (default: the tool's own). */
  toolTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
}

export interface ServeHandle {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  /** Open MCP sessions. */
  readonly sessions: number;
  /** Stop accepting, close every session. The runtime stays open (it is the caller's). */
  close(): Promise<void>;
}

interface Session {
  readonly mcp: McpSession;
  readonly transport: { handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void>; close(): Promise<void> };
  readonly tokenHash: string;
  readonly who: AccessEntry;
  lastUsed: number;
}

/** A ToolSession that reports each call's outcome and timings to the metrics. */
class MeteredSession extends ToolSession {
  readonly #metrics: ServeMetrics;
  readonly #grants: readonly string[];
  readonly #timeoutMs: number | undefined;

  constructor(runtime: Runtime, opts: { grants: readonly string[]; runId: string; timeoutMs?: number | undefined }, metrics: ServeMetrics) {
    super(runtime, opts);
    this.#metrics = metrics;
    this.#grants = opts.grants;
    this.#timeoutMs = opts.timeoutMs;
  }

  override async call(name: string, input: unknown, extra: { approve?: Approver | undefined } = {}): Promise<ToolCallResult> {
    if (this.runtime.tool(name) === undefined) return super.call(name, input, extra);
    const started = performance.now();
    try {
      const r = await this.runtime.invoke(name, input, { grants: this.#grants, runId: this.runId, timeoutMs: this.#timeoutMs, approve: extra.approve ?? this.approver });
      this.#metrics.invocation({ tool: name, code: 'ok', durationMs: r.stats.durationMs, hostCallUs: r.stats.hostCallUs, denials: r.denials });
      return { ok: true, tool: name, text: r.output, output: r.output, runId: r.runId, audit: r.audit, denials: r.denials };
    } catch (e) {
      const f = toFailure(name, e);
      this.#metrics.invocation({ tool: name, code: e instanceof AuthorityError ? e.code : ErrorCode.INTERNAL, durationMs: performance.now() - started, denials: f.denials });
      return f;
    }
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', ...headers });
  res.end(text);
}

/**
 * Serve `runtime` over HTTP until `close()`.
 *
 * @example
 * ```ts
 * const rt = await createRuntime({ policy: 'policy.json', redis: process.env.AUTHORITY_REDIS_URL });
 * const http = await startServe(rt, { access: loadAccessFile('access.json'), port: 8765 });
 * console.error(`MCP at ${http.url}/mcp`);
 * ```
 */
export async function startServe(runtime: Runtime, opts: ServeOptions): Promise<ServeHandle> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'port: an integer from 0 to 65535', { data: { field: 'port' } });
  const maxSessions = opts.maxSessions ?? 1000;
  const idleMs = opts.sessionIdleMs ?? 30 * 60_000;
  const log = (opts.logger ?? runtime.logger).child({ component: 'serve' });
  const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js');
  const sessions = new Map<string, Session>();
  const metrics = await createMetrics(runtime, () => sessions.size);

  const refuse = (res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void => {
    metrics.refused(status);
    send(res, status, { error: message }, headers);
  };

  async function openSession(req: IncomingMessage, res: ServerResponse, who: AccessEntry, tokenHash: string): Promise<void> {
    if (sessions.size >= maxSessions) return refuse(res, 503, `at most ${maxSessions} sessions are open`);
    const claims = opts.access.profiles.get(who.profile) ?? [];
    const runId = `serve-${who.name}-${randomBytes(9).toString('base64url')}`.slice(0, 128);
    const tool = new MeteredSession(runtime, { grants: mintGrants(runtime, claims, { runId }), runId, timeoutMs: opts.toolTimeoutMs }, metrics);
    const mcp = createMcpServer(tool, { logger: log });
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, { mcp, transport, tokenHash, who, lastUsed: Date.now() });
        void mcp.closed.then(() => sessions.delete(id));
        log.info({ session: id, runId, client: who.name, profile: who.profile }, 'session opened');
      },
    });
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
    // A request that did not initialize a session leaves nothing behind.
    if (transport.sessionId === undefined) await mcp.close();
  }

  async function mcpRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const who = authenticate(opts.access, req.headers.authorization);
    if (who === undefined) return refuse(res, 401, 'a valid bearer token is required', { 'www-authenticate': 'Bearer realm="authority"' });
    const tokenHash = hashBearer((req.headers.authorization as string).slice('Bearer '.length));
    const id = req.headers['mcp-session-id'];
    if (typeof id === 'string') {
      const s = sessions.get(id);
      if (s === undefined) return refuse(res, 404, 'no such session (it ended, or another server holds it): initialize a new one');
      if (s.tokenHash !== tokenHash) return refuse(res, 403, 'this session belongs to another token');
      s.lastUsed = Date.now();
      return s.transport.handleRequest(req, res);
    }
    if (req.method !== 'POST') return refuse(res, 400, 'start a session with an initialize request (POST)');
    if (runtime.halted !== undefined) return refuse(res, 503, `halted: ${runtime.halted}`);
    return openSession(req, res, who, tokenHash);
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const handle = async (): Promise<void> => {
      if (path === '/mcp') return mcpRequest(req, res);
      if (req.method !== 'GET') return refuse(res, 405, 'method not allowed');
      if (path === '/healthz') return send(res, 200, { ok: true });
      if (path === '/readyz') {
        if (runtime.halted !== undefined) return send(res, 503, { ready: false, reason: `halted: ${runtime.halted}` });
        if (runtime.fleet !== undefined && !runtime.fleet.known) return send(res, 503, { ready: false, reason: 'the fleet state cannot be confirmed (Redis)' });
        return send(res, 200, { ready: true, tools: runtime.tools().length, sessions: sessions.size });
      }
      if (path === '/metrics') {
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(await metrics.text());
        return;
      }
      return refuse(res, 404, 'not found');
    };
    handle().catch((e: unknown) => {
      log.error({ err: e, path }, 'request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const idle = setInterval(() => {
    const now = Date.now();
    for (const [id, s] of sessions) {
      if (now - s.lastUsed > idleMs) {
        sessions.delete(id);
        void s.mcp.close().catch(() => {});
      }
    }
  }, Math.min(60_000, idleMs));
  idle.unref();
  const addr = server.address() as { port: number };
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${addr.port}`,
    port: addr.port,
    server,
    get sessions() {
      return sessions.size;
    },
    async close() {
      clearInterval(idle);
      const closing = new Promise<void>((r) => server.close(() => r()));
      for (const s of sessions.values()) await s.mcp.close().catch(() => {});
      sessions.clear();
      server.closeAllConnections();
      await closing;
    },
  };
}
