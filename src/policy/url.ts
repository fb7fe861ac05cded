/**
 * URLs as the policy sees them: parsed by the WHATWG URL parser (what the
 * host's HTTP client uses), then checked and reduced to what net rules
 * match on: scheme, host and port.
 * @module
 */
import { domainToASCII } from 'node:url';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { classifyIp, formatIp, parseIp, type AddressInfo, type IpAddress } from './ip.ts';

/** Longest URL accepted. */
export const MAX_URL_LENGTH = 8192;

export type HostKind = 'name' | 'ipv4' | 'ipv6';

/** A URL that passed every check, with the parts net rules match on. */
export interface CanonicalUrl {
  /** The WHATWG serialisation; the host connects to this. */
  readonly href: string;
  readonly scheme: 'http' | 'https';
  /**
   * The host as rules compare it: lower case, punycode (IDNA), without a
   * trailing dot; an IP in canonical form (IPv6 without brackets).
   */
  readonly host: string;
  readonly hostKind: HostKind;
  /** The port, the scheme's default when the URL has none. */
  readonly port: number;
  /** For an IP literal: the address and its class. */
  readonly ip?: IpAddress | undefined;
  readonly address?: AddressInfo | undefined;
  /** `localhost` or a name under `.localhost`: loopback by definition (RFC 6761). */
  readonly loopbackName: boolean;
  /** `scheme://host:port`, for reasons. */
  readonly origin: string;
}

const DEFAULT_PORT = { http: 80, https: 443 } as const;
// WHATWG silently drops tabs and newlines inside a URL and trims controls and
// spaces around it; a URL that needs that is refused rather than guessed.
function hasControlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

function invalid(message: string, url: string): AuthorityError {
  return new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: { url: url.length > 256 ? url.slice(0, 256) + '...' : url } });
}

/**
 * Parse and check a URL: only `http:`/`https:`, no userinfo, no controls
 * or spaces, a non-empty host. Host names are IDNA-mapped to punycode and
 * lower-cased by the parser; IPv4 in any legacy form becomes a dotted quad;
 * one trailing dot on a name is dropped for matching (`example.com.` is
 * `example.com`). Throws `AuthorityError(E_INVALID_ARGUMENT)`.
 *
 * @example
 * ```ts
 * canonicaliseUrl('HTTP://0x7f.1:8080/x').origin;      // 'http://127.0.0.1:8080'
 * canonicaliseUrl('https://Bücher.example./').host;   // 'xn--bcher-kva.example'
 * ```
 */
export function canonicaliseUrl(raw: string): CanonicalUrl {
  if (typeof raw !== 'string') throw invalid('URL must be a string', String(raw));
  if (raw.length > MAX_URL_LENGTH) throw invalid(`URL is longer than ${MAX_URL_LENGTH} characters`, raw);
  if (hasControlOrSpace(raw)) throw invalid('URL contains a control character or a space', raw);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(`not an absolute URL: ${JSON.stringify(raw.slice(0, 200))}`, raw);
  }
  const scheme = url.protocol === 'http:' ? 'http' : url.protocol === 'https:' ? 'https' : undefined;
  if (scheme === undefined) throw invalid(`only http: and https: URLs are allowed, not ${url.protocol}`, raw);
  if (url.username !== '' || url.password !== '') throw invalid('URLs with userinfo (user:password@) are refused', raw);
  const port = url.port === '' ? DEFAULT_PORT[scheme] : Number(url.port);
  const hostname = url.hostname;
  if (hostname === '') throw invalid('URL has no host', raw);
  if (hostname.startsWith('[')) {
    const ip = parseIp(hostname);
    if (ip === null) throw invalid('URL host is not a valid IPv6 address', raw);
    return finish(url.href, scheme, formatIp(ip), 'ipv6', port, ip);
  }
  // The parser has already turned any IPv4 form into a dotted quad.
  const ip = parseIp(hostname);
  if (ip !== null) return finish(url.href, scheme, formatIp(ip), 'ipv4', port, ip);
  const host = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
  if (host === '' || host.startsWith('.') || host.endsWith('.') || host.includes('..')) throw invalid(`URL host has an empty label: ${JSON.stringify(hostname)}`, raw);
  return finish(url.href, scheme, host, 'name', port, undefined);
}

function finish(href: string, scheme: 'http' | 'https', host: string, hostKind: HostKind, port: number, ip: IpAddress | undefined): CanonicalUrl {
  const shown = hostKind === 'ipv6' ? `[${host}]` : host;
  return {
    href,
    scheme,
    host,
    hostKind,
    port,
    ip,
    address: ip === undefined ? undefined : classifyIp(ip),
    loopbackName: hostKind === 'name' && isLoopbackName(host),
    origin: `${scheme}://${shown}:${port}`,
  };
}

/** `localhost` and names under `.localhost` always mean this machine (RFC 6761). */
export function isLoopbackName(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost');
}

/**
 * Canonicalise a host name as rules write it: IDNA to punycode, lower case,
 * without a trailing dot. Returns null when it is not a valid name.
 */
export function canonicaliseHostName(name: string): string | null {
  if (name.length === 0 || name.length > 253 + 1 || hasControlOrSpace(name)) return null;
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed === '' || trimmed.split('.').some((l) => l === '')) return null;
  const ascii = domainToASCII(trimmed);
  if (ascii === '' || /[^a-z0-9._-]/.test(ascii)) return null;
  return ascii;
}
