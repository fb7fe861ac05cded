/**
 * The one URL parser of outgoing requests. The gate checks its policy on what
 * this returns and the host dials what this returns, so the two can never
 * disagree about where a request goes. Anything a URL parser would silently
 * rewrite (other IPv4 spellings, IDNA mapping, percent-escapes or userinfo in
 * the authority, backslashes, tabs and newlines) is refused instead of repaired.
 * @module
 */
import { isIP } from 'node:net';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { DEFAULT_HTTP_LIMITS } from './limits.ts';

/** A URL the host will send a request to. */
export interface GuestUrl {
  /** The parsed URL, fragment removed. */
  readonly url: URL;
  /** `url.href`: what the gate's policy and `mayUse` see. */
  readonly href: string;
  /** The WHATWG serialisation with the fragment kept (for records; never sent). */
  readonly hrefWithFragment: string;
  readonly scheme: 'http' | 'https';
  /** Host name (ASCII, lower case) or IP address, without brackets. */
  readonly hostname: string;
  /** 4 or 6 for an IP literal, 0 for a name. */
  readonly ipFamily: 0 | 4 | 6;
  readonly port: number;
  /** `scheme://host[:port]`, the origin for redirect rules. */
  readonly origin: string;
  /** The `Host` header value. */
  readonly hostHeader: string;
  /** Path and query as sent on the request line. */
  readonly pathAndQuery: string;
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

const invalid = (message: string): AuthorityError => new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: { at: 'url' } });

/**
 * Why the WHATWG parser refused an absolute http(s) URL, from its authority:
 * say which part is wrong rather than that the whole does not parse.
 */
function whyUnparsable(authority: string): string {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return 'url has a malformed IPv6 address (no closing "]")';
    const rest = authority.slice(close + 1);
    if (rest !== '' && !/^:\d*$/.test(rest)) return 'url has text after its IPv6 address that is not a port';
    if (rest.length > 1 && Number(rest.slice(1)) > 65535) return 'url port must be 1-65535';
    return 'url has a malformed IPv6 address';
  }
  if (authority.includes('[') || authority.includes(']')) return 'url host contains "[" or "]" outside an IPv6 address';
  const colon = authority.lastIndexOf(':');
  const host = colon < 0 ? authority : authority.slice(0, colon);
  if (colon >= 0) {
    const port = authority.slice(colon + 1);
    if (!/^\d*$/.test(port)) return `url port ${JSON.stringify(port.slice(0, 32))} is not a number`;
    if (port !== '' && Number(port) > 65535) return 'url port must be 1-65535';
  }
  if (host === '') return 'url has no host';
  // WHATWG reads a host whose last label is numeric as an IPv4 address, and refuses one out of range.
  if (/^[0-9a-fx.]+$/i.test(host) && /(^|\.)(0x[0-9a-f]*|\d+)\.?$/i.test(host)) return `url host ${JSON.stringify(host.slice(0, 64))} is not a valid IPv4 address`;
  return `url host ${JSON.stringify(host.slice(0, 64))} contains a character a host name may not have`;
}

/**
 * Parse and check an outgoing URL.
 *
 * @example
 * ```ts
 * parseGuestUrl('https://api.example.com/v1?q=1').hostname; // 'api.example.com'
 * parseGuestUrl('http://0x7f.1/');                          // throws E_INVALID_ARGUMENT
 * ```
 */
export function parseGuestUrl(raw: unknown, maxLength: number = DEFAULT_HTTP_LIMITS.urlLength): GuestUrl {
  if (typeof raw !== 'string' || raw.length === 0) throw invalid('url must be a non-empty string');
  if (raw.length > maxLength) throw invalid(`url is longer than ${maxLength} characters`);
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    // The WHATWG parser drops tabs and newlines and trims spaces, and treats "\" as "/": refuse, never repair.
    if (c <= 0x20 || c === 0x7f) throw invalid('url contains whitespace or a control character');
    if (c === 0x5c) throw invalid('url contains a backslash');
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw)?.[1]?.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') {
    throw invalid(scheme === undefined ? 'url must be absolute (http:// or https://)' : `only http: and https: URLs are allowed, not ${scheme.slice(0, 32)}:`);
  }
  const afterScheme = raw.slice(scheme.length + 1);
  if (!afterScheme.startsWith('//') || afterScheme.startsWith('///')) throw invalid('url must have the form scheme://host/...');
  const authority = afterScheme.slice(2).split(/[/?#]/, 1)[0] as string;
  if (authority === '') throw invalid('url has no host');
  if (authority.includes('@')) throw invalid('url must not carry userinfo (user:password@)');
  if (authority.includes('%')) throw invalid('url host must not contain percent-escapes');
  if (/[^\x21-\x7e]/.test(authority)) throw invalid('url host must be ASCII; write an international name in its xn-- form');

  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(whyUnparsable(authority));
  }
  if (url.username !== '' || url.password !== '') throw invalid('url must not carry userinfo (user:password@)');
  const hrefWithFragment = url.href;
  // The setter re-serialises the URL: pay for it only when there is a fragment to drop.
  if (url.hash !== '' || url.href.endsWith('#')) url.hash = '';

  let hostname = url.hostname;
  let ipFamily: 0 | 4 | 6 = 0;
  if (hostname.startsWith('[')) {
    hostname = hostname.slice(1, -1);
    if (isIP(hostname) !== 6) throw invalid('url has a malformed IPv6 address');
    ipFamily = 6;
  } else {
    const rawHost = (authority.includes(':') ? authority.slice(0, authority.lastIndexOf(':')) : authority).toLowerCase();
    if (isIP(hostname) === 4) {
      // The WHATWG parser reads 0x7f.1, 2130706433 and 0177.0.0.1 as 127.0.0.1; other parsers differ. One spelling only.
      if (rawHost !== hostname) throw invalid('an IPv4 address must be written as four decimal numbers (a.b.c.d)');
      ipFamily = 4;
    } else {
      if (rawHost !== hostname) throw invalid('url host is not in canonical form');
      if (hostname.endsWith('.')) throw invalid('url host must not end with a dot');
      if (hostname.length > 253 || !hostname.split('.').every((l) => LABEL.test(l))) {
        throw invalid('url host is not a valid DNS name (letters, digits, "-", "_"; labels of 1-63, at most 253 in all)');
      }
    }
  }
  let port = scheme === 'https' ? 443 : 80;
  if (url.port !== '') {
    port = Number(url.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid('url port must be 1-65535');
  }
  const portText = url.port === '' ? '' : `:${port}`;
  const hostText = ipFamily === 6 ? `[${hostname}]` : hostname;
  return {
    url,
    href: url.href,
    hrefWithFragment,
    scheme,
    hostname,
    ipFamily,
    port,
    origin: `${scheme}://${hostText}${portText}`,
    hostHeader: `${hostText}${portText}`,
    pathAndQuery: `${url.pathname}${url.search}`,
  };
}
