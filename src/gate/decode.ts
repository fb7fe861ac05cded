/**
 * Stage 1: decode and validate a host call's arguments, and canonicalise what
 * the checks will look at. Nothing downstream ever sees a raw path or URL.
 */
import { AuthorityError, ErrorCode } from '../errors.ts';
import { parseGuestUrl } from '../host/index.ts';
import { canonicalisePath, canonicaliseUrl, resolvePathSync, type CanonicalUrl } from '../policy/index.ts';
import { HOST_OPS, placeholdersIn, type Header, type HostCall } from '../host-call.ts';

/** A host call after stage 1. */
export type CanonicalCall =
  | {
      op: 'fs.read' | 'fs.list' | 'fs.stat' | 'fs.remove';
      /** Lexically canonical (absolute, normalised, NFC). */
      path: string;
      /** `path` with symlinks resolved: what capability and policy decide on. */
      real: string;
      raw: HostCall;
    }
  | { op: 'fs.write'; path: string; real: string; data: Uint8Array; raw: HostCall }
  | { op: 'http.fetch'; method: string; url: CanonicalUrl; headers: Header[]; body: Uint8Array | undefined; placeholders: string[]; raw: HostCall }
  | { op: 'secrets.get'; name: string; raw: HostCall };

const OPS: ReadonlySet<string> = new Set(HOST_OPS);
const MAX_NAME = 256;
const METHOD = /^[A-Za-z]{1,16}$/;

const invalid = (message: string, field: string): AuthorityError => new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: { field } });

function isString(v: unknown): v is string {
  return typeof v === 'string';
}


/** Validate the shape the worker sent (it should be right; the gate does not rely on it). */
function checkShape(call: HostCall): void {
  if (typeof call !== 'object' || call === null || !OPS.has((call as { op: string }).op)) throw invalid('unknown host operation', 'op');
  switch (call.op) {
    case 'http.fetch':
      if (!isString(call.method) || !METHOD.test(call.method)) throw invalid('method must be an HTTP method token', 'method');
      if (!isString(call.url)) throw invalid('url must be a string', 'url');
      if (!Array.isArray(call.headers) || !call.headers.every((h) => Array.isArray(h) && h.length === 2 && isString(h[0]) && isString(h[1]))) {
        throw invalid('headers must be a list of (name, value) strings', 'headers');
      }
      if (call.body !== undefined && !(call.body instanceof Uint8Array)) throw invalid('body must be bytes', 'body');
      return;
    case 'secrets.get':
      if (!isString(call.name) || call.name.length === 0 || call.name.length > MAX_NAME) throw invalid('secret name must be 1-256 characters', 'name');
      return;
    case 'fs.write':
      if (!(call.data instanceof Uint8Array)) throw invalid('data must be bytes', 'data');
      if (!isString(call.path)) throw invalid('path must be a string', 'path');
      return;
    default:
      if (!isString(call.path)) throw invalid('path must be a string', 'path');
  }
}

/**
 * Decode a call. fs paths are canonicalised and resolved through symlinks
 * (read and list follow a final link; stat, write and remove act on the link
 * itself); URLs are canonicalised (IDNA, IP literals, default ports). Throws
 * E_INVALID_ARGUMENT (or E_IO for a path that cannot be resolved).
 */
export function decode(call: HostCall): CanonicalCall {
  checkShape(call);
  switch (call.op) {
    case 'http.fetch':
      // The host refuses what a URL parser would repair (userinfo, backslashes, raw non-ASCII or
      // non-decimal IPv4 hosts, whitespace). Refuse it here, before the checks: otherwise the
      // canonical form below is what the host receives, and the repaired URL goes out.
      parseGuestUrl(call.url);
      return {
        op: 'http.fetch',
        method: call.method.toUpperCase(),
        url: canonicaliseUrl(call.url),
        headers: call.headers,
        body: call.body,
        placeholders: placeholdersIn(call.headers),
        raw: call,
      };
    case 'secrets.get':
      return { op: 'secrets.get', name: call.name, raw: call };
    case 'fs.write': {
      const path = canonicalisePath(call.path);
      return { op: 'fs.write', path, real: resolvePathSync(path, { followFinal: false }), data: call.data, raw: call };
    }
    default: {
      const path = canonicalisePath(call.path);
      const followFinal = call.op === 'fs.read' || call.op === 'fs.list';
      return { op: call.op, path, real: resolvePathSync(path, { followFinal }), raw: call };
    }
  }
}
