/**
 * The console's HTTP server (node:http, no framework: a dozen read-only routes
 * and two writes do not need one). Bound to 127.0.0.1 unless asked otherwise;
 * every request needs the access token, as a notebook server does: in the
 * URL's `token` parameter (the first page load, which also sets a same-site
 * cookie), the cookie, or an `Authorization: Bearer` header. A write (POST)
 * needs the header as well, so another site cannot forge one with the cookie.
 * While bound to loopback the Host header must name loopback too, which keeps
 * a DNS-rebinding page from reaching the console through the browser.
 * @module
 */
import fs from 'node:fs';
import http from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { auditPaths, proveRecord, verifyAudit, type AuditLocation, type AuditVerifyReport } from '../audit/index.ts';
import { readLatestCheckpoint } from '../audit/checkpoint.ts';
import { checkpointFileFor } from '../audit/paths.ts';
import { publicKeyFrom } from '../audit/signing.ts';
import { AuthorityError, ErrorCode, toAuthorityError } from '../errors.ts';
import { LogIndex, type IndexFilter, type RunEntry } from './log-index.ts';

/** What the console can do about a run's changes (given by the runtime's undo; absent: no undo button). */
export interface ConsoleUndo {
  plan(runId: string): Promise<unknown>;
  apply(runId: string, options: { force: boolean }): Promise<unknown>;
}

export interface ConsoleOptions extends AuditLocation {
  /** Interface to bind; default 127.0.0.1. Anything not loopback must be asked for. */
  host?: string | undefined;
  /** Port; default 0 (a free one). */
  port?: number | undefined;
  /** The access token; default 32 random bytes, hex. */
  token?: string | undefined;
  /** How often the live tail looks for new records (ms, default 500). */
  pollMs?: number | undefined;
  undo?: ConsoleUndo | undefined;
}

export interface ConsoleServer {
  /** The URL to open, token included. */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  readonly index: LogIndex;
  close(): Promise<void>;
}

const STATIC: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/charts.js': 'charts.js',
  '/style.css': 'style.css',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
const COOKIE = 'authority_console';
const MAX_PAGE = 500;

/** The folder of the page's files: beside this module in the sources, or the sources' copy when running from a build. */
function webDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'web'), join(here, '..', '..', 'src', 'console', 'web')];
  for (const c of candidates) if (fs.existsSync(join(c, 'index.html'))) return c;
  throw new AuthorityError(ErrorCode.CONFIG, `the console's page files are missing (looked in ${candidates.join(', ')})`);
}

function isLoopbackHost(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function sameToken(given: string | undefined, token: Buffer): boolean {
  if (given === undefined) return false;
  const b = Buffer.from(given, 'utf8');
  return b.length === token.length && timingSafeEqual(b, token);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function intParam(q: URLSearchParams, name: string, fallback: number | undefined, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return fallback;
  if (!/^\d+$/.test(v) || Number(v) > max) throw new HttpError(400, ErrorCode.INVALID_ARGUMENT, `${name} must be an integer from 0 to ${max}`);
  return Number(v);
}

function timeParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(ms)) throw new HttpError(400, ErrorCode.INVALID_ARGUMENT, `${name} must be a time (ISO 8601 or epoch ms), not "${v.slice(0, 64)}"`);
  return ms;
}

function filterOf(q: URLSearchParams): IndexFilter {
  const s = (k: string): string | undefined => {
    const v = q.get(k);
    return v === null || v === '' ? undefined : v;
  };
  return { tool: s('tool'), code: s('code'), runId: s('run'), fromMs: timeParam(q, 'from'), toMs: timeParam(q, 'to') };
}

export function runJson(run: RunEntry): Record<string, unknown> {
  return {
    id: run.id,
    tool: run.tool,
    start: Number.isFinite(run.startMs) ? new Date(run.startMs).toISOString() : null,
    durationMs: run.endMs === null ? null : run.endMs - run.startMs,
    outcome: run.outcome,
    calls: run.calls,
    denials: run.denials,
    denialCodes: Object.fromEntries(run.denialCodes),
    records: run.seqs.length,
    reversible: run.reversible,
    undone: run.undone,
  };
}

/** One host call of a run: its intent (or denial) and its outcome, paired. */
export interface CallView {
  op: string | null;
  target: string | null;
  decision: string | null;
  code: string | null;
  start: string | null;
  durationMs: number | null;
  offsetMs: number;
  records: number[];
  bytes: number | null;
  preImage: string | null;
  reason: string | null;
}

function parseLine(line: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A run's host calls, paired from the index's columns; only the page's lines are read. */
export async function runTimeline(index: LogIndex, run: RunEntry, page: number, limit: number): Promise<{ calls: CallView[]; totalCalls: number; page: number; pages: number; records: number[] }> {
  // Pair from the columns alone; read only the page's lines.
  const groups: number[][] = [];
  let open: number[] | null = null;
  const other: number[] = [];
  for (const seq of run.seqs) {
    const b = index.brief(seq);
    if (b.kind === 'call.intent') {
      open = [seq];
      groups.push(open);
    } else if (b.kind === 'call.outcome' && open !== null) {
      open.push(seq);
      open = null;
    } else if (b.kind === 'call.denied' || b.kind === 'call.outcome') {
      groups.push([seq]);
      open = null;
    } else other.push(seq);
  }
  const pages = Math.max(1, Math.ceil(groups.length / limit));
  const slice = groups.slice(page * limit, page * limit + limit);
  const lines = new Map((await index.read(slice.flat())).map((l) => [l.seq, parseLine(l.line)]));
  const calls = slice.map((g): CallView => {
    const first = index.brief(g[0] as number);
    const last = index.brief(g.at(-1) as number);
    const a = lines.get(g[0] as number);
    const z = lines.get(g.at(-1) as number);
    const ad = (a?.['detail'] ?? {}) as Record<string, unknown>;
    const zd = (z?.['detail'] ?? {}) as Record<string, unknown>;
    const target = (typeof ad['path'] === 'string' ? ad['path'] : typeof ad['url'] === 'string' ? ad['url'] : typeof ad['name'] === 'string' ? ad['name'] : null) as string | null;
    const bytes = typeof zd['bytes'] === 'number' ? zd['bytes'] : typeof ad['bytes'] === 'number' ? ad['bytes'] : null;
    return {
      op: first.op,
      target,
      decision: first.decision,
      code: g.length > 1 ? last.code : first.code,
      start: Number.isFinite(first.time) ? new Date(first.time).toISOString() : null,
      durationMs: g.length > 1 ? last.time - first.time : null,
      offsetMs: first.time - run.startMs,
      records: g,
      bytes,
      preImage: typeof zd['preImage'] === 'string' ? zd['preImage'] : null,
      reason: typeof z?.['reason'] === 'string' ? z['reason'] : typeof a?.['reason'] === 'string' ? a['reason'] : null,
    };
  });
  return { calls, totalCalls: groups.length, page, pages, records: other };
}

/**
 * Serve the console for the log in `options` (a data folder, or audit and
 * checkpoint folders).
 *
 * @example
 * ```ts
 * const c = await startConsole({ dir: '.authority' });
 * console.error(`open ${c.url}`);
 * ```
 */
export async function startConsole(options: ConsoleOptions): Promise<ConsoleServer> {
  const host = options.host ?? '127.0.0.1';
  const loopback = isLoopbackHost(host);
  const tokenText = options.token ?? randomBytes(32).toString('hex');
  if (!/^[A-Za-z0-9_-]{16,256}$/.test(tokenText)) throw new AuthorityError(ErrorCode.INVALID_ARGUMENT, 'token must be 16 to 256 of A-Z a-z 0-9 _ -', { data: { field: 'token' } });
  const token = Buffer.from(tokenText, 'utf8');
  const paths = auditPaths(options);
  const index = new LogIndex(paths.logFile);
  await index.refresh();
  const web = webDir();
  const pollMs = options.pollMs ?? 500;
  let verified: { bytes: number; report: AuditVerifyReport } | null = null;
  let verifying: Promise<AuditVerifyReport> | null = null;
  const streams = new Set<http.ServerResponse>();
  let port = 0;

  const status = async (): Promise<Record<string, unknown>> => {
    let checkpoint: Record<string, unknown> | null = null;
    let checkpointProblem: string | null = null;
    try {
      const key = publicKeyFrom(fs.readFileSync(paths.publicKeyFile, 'utf8'));
      const origin = (await index.read([0]))[0];
      const o = origin === undefined ? null : parseLine(origin.line)?.['origin'];
      if (typeof o === 'string') {
        const { latest } = await readLatestCheckpoint(checkpointFileFor(paths.checkpointDir, o), key.publicKey, key.keyId);
        if (latest !== null) checkpoint = { size: latest.size, root: latest.root, time: latest.time, keyId: latest.keyId, sig: latest.sig };
      }
    } catch (e) {
      checkpointProblem = toAuthorityError(e).message;
    }
    return {
      records: index.size,
      bytes: index.bytes,
      runs: index.runs.length,
      checkpoint,
      checkpointProblem,
      uncovered: checkpoint === null ? index.size : index.size - (checkpoint['size'] as number),
      verified: verified === null ? null : { atBytes: verified.bytes, stale: verified.bytes !== index.bytes, ...summary(verified.report) },
      undo: options.undo !== undefined,
    };
  };
  const summary = (r: AuditVerifyReport): Record<string, unknown> => ({
    ok: r.ok,
    records: r.records,
    checkpoints: r.checkpoints,
    latestCheckpoint: r.latestCheckpoint,
    uncovered: r.uncovered,
    firstBad: r.firstBad,
  });

  const api = async (req: http.IncomingMessage, url: URL, res: http.ServerResponse): Promise<unknown> => {
    const q = url.searchParams;
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    await index.refresh();
    const route = `${req.method} /${parts.slice(1).join('/')}`;
    if (route === 'GET /status') return status();
    if (route === 'GET /facets') return index.facets();
    if (route === 'GET /tools') return { tools: index.toolSummaries() };
    if (route === 'GET /runs') {
      const page = index.runsPage(filterOf(q), intParam(q, 'before', undefined), intParam(q, 'limit', 50, MAX_PAGE) ?? 50);
      return { runs: page.runs.map(runJson), next: page.next, total: page.total };
    }
    if (route === 'GET /records') {
      const page = index.recordsPage(filterOf(q), intParam(q, 'before', undefined), intParam(q, 'limit', 100, MAX_PAGE) ?? 100);
      const lines = await index.read(page.seqs);
      return { records: lines.map((l) => ({ seq: l.seq, record: parseLine(l.line), raw: l.line.length > 2000 ? l.line.slice(0, 2000) : undefined })), next: page.next };
    }
    if (req.method === 'GET' && parts[1] === 'runs' && parts.length === 3) {
      const run = index.run(parts[2] as string);
      if (run === undefined) throw new HttpError(404, ErrorCode.NOT_FOUND, `no run "${parts[2]}" in the log`);
      const t = await runTimeline(index, run, intParam(q, 'page', 0) ?? 0, intParam(q, 'limit', 200, MAX_PAGE) ?? 200);
      const others = await index.read(t.records.slice(0, 50));
      return { run: runJson(run), ...t, records: others.map((l) => ({ seq: l.seq, record: parseLine(l.line) })) };
    }
    if (parts[1] === 'runs' && parts.length === 4 && parts[3] === 'undo') {
      if (options.undo === undefined) throw new HttpError(404, ErrorCode.NOT_FOUND, 'this console was started without undo');
      if (req.method === 'GET') return options.undo.plan(parts[2] as string);
      if (req.method === 'POST') return options.undo.apply(parts[2] as string, { force: q.get('force') === '1' });
    }
    if (req.method === 'GET' && parts[1] === 'proof' && parts.length === 3) {
      const seq = Number(parts[2]);
      if (!/^\d+$/.test(parts[2] as string)) throw new HttpError(400, ErrorCode.INVALID_ARGUMENT, 'a proof is asked for by record seq');
      const proof = await proveRecord(options, seq);
      res.setHeader('content-disposition', `attachment; filename="record-${seq}.proof.json"`);
      return proof;
    }
    if (route === 'POST /verify') {
      verifying ??= verifyAudit(options).finally(() => {
        verifying = null;
      });
      const bytes = index.bytes;
      const report = await verifying;
      verified = { bytes, report };
      return summary(report);
    }
    if (route === 'GET /events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(`retry: 1000\n\n`);
      let after = intParam(q, 'after', index.size) ?? index.size;
      const filter = filterOf(q);
      streams.add(res);
      const push = async (): Promise<void> => {
        await index.refresh();
        if (index.size <= after) return;
        const { seqs } = index.recordsPage(filter, index.size, MAX_PAGE);
        const fresh = seqs.filter((s) => s >= after).reverse();
        after = index.size;
        for (const l of await index.read(fresh)) res.write(`id: ${l.seq}\nevent: record\ndata: ${JSON.stringify({ seq: l.seq, record: parseLine(l.line) })}\n\n`);
      };
      const timer = setInterval(() => {
        push().catch(() => res.end());
      }, pollMs);
      res.on('close', () => {
        clearInterval(timer);
        streams.delete(res);
      });
      return undefined;
    }
    throw new HttpError(404, ErrorCode.NOT_FOUND, `no such route: ${req.method} ${url.pathname}`);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.setHeader('cache-control', 'no-store');
    if (loopback) {
      // DNS rebinding: a page on another name that resolves to 127.0.0.1 carries its own Host.
      const h = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
      if (!isLoopbackHost(h)) throw new HttpError(403, 'E_FORBIDDEN', 'the console answers only requests addressed to loopback');
    }
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith('Bearer ') === true ? auth.slice(7) : undefined;
    const fromQuery = url.searchParams.get('token') ?? undefined;
    const fromCookie = cookieValue(req.headers.cookie, COOKIE);
    const fromHeader = req.headers['x-authority-token'];
    const headerOk = sameToken(bearer, token) || sameToken(typeof fromHeader === 'string' ? fromHeader : undefined, token);
    const ok = headerOk || sameToken(fromQuery, token) || sameToken(fromCookie, token);
    if (!ok) throw new HttpError(401, 'E_UNAUTHORIZED', 'the console needs its access token: open the URL it printed');
    if (req.method !== 'GET' && req.method !== 'HEAD' && !headerOk) {
      throw new HttpError(403, 'E_FORBIDDEN', 'a change needs the token in a header, not only the cookie');
    }
    if (sameToken(fromQuery, token)) res.setHeader('set-cookie', `${COOKIE}=${tokenText}; HttpOnly; SameSite=Strict; Path=/`);
    if (url.pathname.startsWith('/api/')) {
      const body = await api(req, url, res);
      if (res.headersSent) return;
      const text = JSON.stringify(body);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(text);
      return;
    }
    const file = STATIC[url.pathname];
    if (file === undefined || req.method !== 'GET') throw new HttpError(404, ErrorCode.NOT_FOUND, `no such page: ${url.pathname}`);
    const bytes = await fs.promises.readFile(join(web, file));
    res.writeHead(200, {
      'content-type': TYPES[file.split('.').pop() as string] as string,
      'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    });
    res.end(bytes);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err =
        e instanceof HttpError
          ? { status: e.status, code: e.code, message: e.message }
          : ((a: AuthorityError) => ({ status: a.code === ErrorCode.NOT_FOUND ? 404 : a.code === ErrorCode.INVALID_ARGUMENT ? 400 : a.code.startsWith('E_POLICY') || a.code.startsWith('E_CAP') ? 403 : 500, code: a.code, message: a.message }))(toAuthorityError(e));
      if (res.headersSent) {
        res.end();
        return;
      }
      res.writeHead(err.status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: { code: err.code, message: err.message } }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as { port: number }).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/?token=${tokenText}`,
    port,
    token: tokenText,
    index,
    close: async () => {
      for (const s of streams) s.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
