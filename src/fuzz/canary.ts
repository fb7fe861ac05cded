/**
 * The canary HTTP server: the only destination fuzz traffic can reach. It
 * listens on 127.0.0.1, records every request it receives, and answers with
 * a pure function of the request (`canaryResponse`), so the reference model
 * can predict exactly what a fetch gets back: redirects anywhere, bodies and
 * header counts at the caps, cookies, compressed bodies, echoes of what was
 * sent, and responses that carry a secret's value.
 * @module
 */
// The fuzzer runs its own loopback server, like the demo: it is test
// scaffolding on 127.0.0.1, never a path a guest can use to reach the world.
// eslint-disable-next-line no-restricted-imports -- a loopback canary server, not an effect
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { gzipSync } from 'node:zlib';

export type Header = [string, string];

/** A request as the canary received it. */
export interface CanaryRequest {
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  /** Lower-case names, values as received (latin-1). */
  readonly headers: readonly Header[];
  readonly body: Buffer;
}

export interface CanaryResponse {
  readonly status: number;
  readonly headers: readonly Header[];
  readonly body: Buffer;
}

/** Headers the host or the HTTP stack sets; an echo leaves them out so it depends only on what the guest sent. */
const STACK_HEADERS = new Set(['host', 'accept-encoding', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

const MAX_SIZE = 1 << 20;

/**
 * What the canary answers. Paths:
 *  `/redirect/<status>?to=<url>` a redirect to `to`; `/size/<n>` n body bytes;
 *  `/headers/<n>` n extra headers; `/echo` the guest's headers and body as JSON;
 *  `/cookie` set-cookie and proxy-* headers; `/gzip/<n>` a gzip body of n bytes;
 *  `/status/<n>` that status; `/secret/<NAME>` a body holding that secret's value;
 *  anything else 200 "ok".
 */
export function canaryResponse(req: CanaryRequest, secrets: Readonly<Record<string, string>>): CanaryResponse {
  const r = answer(req, secrets);
  // A value HTTP cannot carry (a Location with a newline) is not sent: the canary answers 400 instead.
  if (r.headers.some(([, v]) => !/^[\t\x20-\x7e\x80-\xff]*$/.test(v))) return { status: 400, headers: [], body: Buffer.from('bad header') };
  return r;
}

function answer(req: CanaryRequest, secrets: Readonly<Record<string, string>>): CanaryResponse {
  let url: URL;
  try {
    url = new URL(req.path, 'http://canary.invalid');
  } catch {
    return { status: 400, headers: [], body: Buffer.from('bad path') };
  }
  const parts = url.pathname.split('/').filter((s) => s !== '');
  const n = Number(parts[1]);
  const text = (s: string): Buffer => Buffer.from(s, 'latin1');
  switch (parts[0]) {
    case 'redirect': {
      const status = Number.isInteger(n) && n >= 300 && n <= 399 ? n : 302;
      const to = url.searchParams.get('to') ?? '/';
      return { status, headers: [['location', to]], body: Buffer.alloc(0) };
    }
    case 'size':
      return { status: 200, headers: [['content-type', 'text/plain']], body: Buffer.alloc(Number.isInteger(n) && n >= 0 && n <= MAX_SIZE ? n : 0, 0x78) };
    case 'headers': {
      const count = Number.isInteger(n) && n >= 0 && n <= 512 ? n : 0;
      return { status: 200, headers: Array.from({ length: count }, (_, i): Header => [`x-h-${i}`, 'v']), body: text('headers') };
    }
    case 'echo': {
      const headers = req.headers.filter(([k]) => !STACK_HEADERS.has(k));
      return { status: 200, headers: [['content-type', 'application/json']], body: Buffer.from(JSON.stringify({ m: req.method, h: headers, b: req.body.toString('base64') }), 'utf8') };
    }
    case 'cookie':
      return { status: 200, headers: [['set-cookie', 'session=fuzz'], ['proxy-authenticate', 'Basic'], ['proxy-x', '1'], ['x-ok', '1']], body: text('cookie') };
    case 'gzip': {
      const size = Number.isInteger(n) && n >= 0 && n <= MAX_SIZE ? n : 0;
      return { status: 200, headers: [['content-encoding', 'gzip']], body: gzipSync(Buffer.alloc(size, 0x79), { level: 9 }) };
    }
    case 'status': {
      const status = Number.isInteger(n) && n >= 200 && n <= 599 ? n : 200;
      return { status, headers: [], body: Buffer.alloc(0) };
    }
    case 'secret': {
      const value = secrets[parts[1] ?? ''] ?? 'no such secret';
      return { status: 200, headers: [['x-leak', value]], body: Buffer.from(`value=${value};`, 'utf8') };
    }
    default:
      return { status: 200, headers: [['content-type', 'text/plain']], body: text('ok') };
  }
}

function flatHeaders(req: IncomingMessage): Header[] {
  const out: Header[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) out.push([(req.rawHeaders[i] as string).toLowerCase(), req.rawHeaders[i + 1] as string]);
  return out;
}

/** A running canary: its port, and every request it has seen. */
export class CanaryServer {
  readonly #server: Server;
  readonly #secrets: Readonly<Record<string, string>>;
  readonly requests: CanaryRequest[] = [];
  port = 0;

  private constructor(secrets: Readonly<Record<string, string>>) {
    this.#secrets = secrets;
    // Room for every request header the host may send (its own cap is 16 KiB of names and values).
    this.#server = createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const request: CanaryRequest = { method: req.method ?? '', path: req.url ?? '', headers: flatHeaders(req), body: Buffer.concat(chunks) };
        this.requests.push(request);
        const r = canaryResponse(request, this.#secrets);
        // No Date header: the answer must be a pure function of the request.
        res.sendDate = false;
        const flat: string[] = [];
        for (const [k, v] of r.headers) flat.push(k, v);
        flat.push('content-length', String(r.body.length));
        try {
          res.writeHead(r.status, flat);
          res.end(r.body);
        } catch {
          res.destroy();
        }
      });
      req.on('error', () => res.destroy());
    });
    this.#server.keepAliveTimeout = 2000;
  }

  /** Start a canary on 127.0.0.1 (an ephemeral port). */
  static async start(secrets: Readonly<Record<string, string>>): Promise<CanaryServer> {
    const c = new CanaryServer(secrets);
    await new Promise<void>((resolve, reject) => {
      c.#server.once('error', reject);
      c.#server.listen(0, '127.0.0.1', () => resolve());
    });
    c.port = (c.#server.address() as { port: number }).port;
    return c;
  }

  /** Requests received since `from` (an index into `requests`). */
  since(from: number): CanaryRequest[] {
    return this.requests.slice(from);
  }

  /** Forget old requests (the log grows with every fetch). */
  clear(): void {
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
