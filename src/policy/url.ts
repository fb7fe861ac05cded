/**
 * URLs as the policy sees them: parsed by the host's one URL parser (what the
 * live http path dials), then reduced to what net rules match on: scheme,
 * host and port.
 * @module
 */
import { domainToASCII } from 'node:url';
import { AuthorityError, ErrorCode } from '../errors.ts';
import { parseGuestUrl, type GuestUrl } from '../host/http-url.ts';
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

// WHATWG silently drops tabs and newlines inside a URL and trims controls and
// spaces around it; a URL that needs that is refused rather than guessed.
function hasControlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

function invalid(message: string, url: string, cause?: unknown): AuthorityError {
  return new AuthorityError(ErrorCode.INVALID_ARGUMENT, message, { data: { url: url.length > 256 ? url.slice(0, 256) + '...' : url }, cause });
}

/**
 * Parse and check a URL with the host's own parser (`parseGuestUrl`, the one
 * the live http path dials with), then reduce it to what net rules match on.
 * There is one parser, so a decision (`authority policy test`, the gate)
 * and the live path cannot disagree: what the host would refuse as malformed
 * (userinfo, backslashes, whitespace, IPv4 in any spelling but a.b.c.d, a
 * raw non-ASCII or non-canonical host, a trailing dot) is refused here too.
 * Throws `AuthorityError(E_INVALID_ARGUMENT)` saying which part is wrong.
 *
 * @example
 * ```ts
 * canonicaliseUrl('HTTP://127.0.0.1:8080/x').origin;  // 'http://127.0.0.1:8080'
 * canonicaliseUrl('https://xn--bcher-kva.example/').host; // 'xn--bcher-kva.example'
 * canonicaliseUrl('http://2130706433/');                // throws E_INVALID_ARGUMENT
 * ```
 */
export function canonicaliseUrl(raw: string): CanonicalUrl {
  if (typeof raw !== 'string') throw invalid('URL must be a string', String(raw));
  let g: GuestUrl;
  try {
    g = parseGuestUrl(raw, MAX_URL_LENGTH);
  } catch (e) {
    if (e instanceof AuthorityError) throw invalid(e.message, raw, e);
    throw e;
  }
  const scheme = g.scheme;
  if (g.ipFamily !== 0) {
    const ip = parseIp(g.hostname);
    if (ip === null) throw invalid(`URL host ${JSON.stringify(g.hostname)} is not a valid IP address`, raw);
    return finish(g.hrefWithFragment, scheme, formatIp(ip), g.ipFamily === 6 ? 'ipv6' : 'ipv4', g.port, ip);
  }
  return finish(g.hrefWithFragment, scheme, g.hostname, 'name', g.port, undefined);
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
