/**
 * A loopback HTTP/1.1 server that records every byte it receives. Tests use
 * it both as a destination a policy allows and as a canary that nothing may
 * ever reach: raw bytes are kept (across resets), so a secret or a hostile
 * request shows up however it was framed. It answers whatever its handler
 * says, header bytes as given (a redirect can carry a Location that
 * `node:http` would refuse to send), one request per connection.
 * Listens on 127.0.0.1 only.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  /** The request target as sent (`/path?query`). */
  target: string;
  /** Header names in lower case, values as received (latin-1). */
  headers: [string, string][];
  body: Buffer;
}

export interface Reply {
  status: number;
  headers?: [string, string][];
  body?: string | Buffer;
}

export type Handler = (req: SeenRequest, server: CanaryServer) => Reply;

const MAX_BUFFER = 8 * 1024 * 1024;

export class CanaryServer {
  readonly name: string;
  port = 0;
  /** Connections accepted since the last reset. */
  connections = 0;
  /** Requests parsed since the last reset. */
  requests: SeenRequest[] = [];
  handler: Handler;
  readonly #chunks: Buffer[] = [];
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  private constructor(name: string, handler: Handler) {
    this.name = name;
    this.handler = handler;
    this.#server = net.createServer((socket) => this.#accept(socket));
  }

  /** Start a server on 127.0.0.1 (a free port unless one is given). */
  static async start(name: string, handler: Handler = () => ({ status: 200, body: `{"server":"${name}"}` }), port = 0): Promise<CanaryServer> {
    const s = new CanaryServer(name, handler);
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', reject);
      s.#server.listen(port, '127.0.0.1', () => resolve());
    });
    s.port = (s.#server.address() as AddressInfo).port;
    return s;
  }

  /** Every byte received since the server started (resets do not clear it). */
  get received(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  /** Forget the connections and requests counted so far (not the raw bytes). */
  reset(): void {
    this.connections = 0;
    this.requests = [];
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: net.Socket): void {
    this.connections++;
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > MAX_BUFFER) return void socket.destroy();
      const parsed = parseRequest(buf);
      if (parsed === undefined) return;
      this.requests.push(parsed);
      let reply: Reply;
      try {
        reply = this.handler(parsed, this);
      } catch {
        reply = { status: 500, body: 'handler failed' };
      }
      socket.end(serialise(reply));
    });
  }
}

function serialise(reply: Reply): Buffer {
  const body = reply.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(reply.body) ? reply.body : Buffer.from(reply.body, 'utf8');
  const lines = [`HTTP/1.1 ${reply.status} X`];
  for (const [k, v] of reply.headers ?? []) lines.push(`${k}: ${v}`);
  lines.push(`content-length: ${body.length}`, 'connection: close', '', '');
  // UTF-8: a non-ASCII header value goes out as its bytes, as a hostile server would send it.
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'utf8'), body]);
}

/** One complete request at the start of `buf`, or undefined while more bytes are needed. */
function parseRequest(buf: Buffer): SeenRequest | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const [method = '', target = ''] = (lines[0] ?? '').split(' ');
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.push([line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()]);
  }
  const get = (name: string): string | undefined => headers.find(([k]) => k === name)?.[1];
  let rest = buf.subarray(end + 4);
  let body: Buffer;
  if (get('transfer-encoding')?.toLowerCase().includes('chunked')) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = rest.indexOf('\r\n');
      if (eol < 0) return undefined;
      const size = parseInt(rest.subarray(0, eol).toString('latin1'), 16);
      if (Number.isNaN(size)) return { method, target, headers, body: Buffer.concat(parts) };
      if (rest.length < eol + 2 + size + 2) return undefined;
      if (size === 0) break;
      parts.push(rest.subarray(eol + 2, eol + 2 + size));
      rest = rest.subarray(eol + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else {
    const length = Number(get('content-length') ?? 0);
    if (rest.length < length) return undefined;
    body = rest.subarray(0, length);
  }
  return { method, target, headers, body };
}
