/**
 * Net rules: `scheme://host[:port]`, where host is a name, `*`, `*.suffix`,
 * an IP literal or a bracketed CIDR, and port is a number, a range, or `*`.
 * Also the host entries of secrets, which use the same host syntax.
 * @module
 */
import { cidrContains, formatCidr, formatIp, parseCidr, parseIp, sameIp, unmapCidr, unmapIp, type Cidr, type IpAddress } from './ip.ts';
import { canonicaliseHostName, isLoopbackName, type CanonicalUrl } from './url.ts';

/** What a rule's host admits. */
export type HostPattern =
  | { readonly kind: 'any' }
  | { readonly kind: 'suffix'; readonly suffix: string }
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'ip'; readonly ip: IpAddress }
  | { readonly kind: 'cidr'; readonly cidr: Cidr };

export interface NetRule {
  /** As written in the policy, for reasons. */
  readonly text: string;
  readonly scheme: 'http' | 'https';
  readonly host: HostPattern;
  readonly portLow: number;
  readonly portHigh: number;
  /** Upper-case methods, or null for any method. */
  readonly methods: ReadonlySet<string> | null;
  /** Non-public networks the rule's host name may resolve to. */
  readonly resolvesTo: readonly Cidr[];
}

const DEFAULT_PORT = { http: 80, https: 443 } as const;
/** An HTTP method token (RFC 9110), compared in upper case. */
export const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;

/**
 * Parse a host as a rule writes it. `*`, `*.example.com`, a name (IDNA),
 * an IP literal in any form, or a CIDR in brackets (`[10.0.0.0/8]`,
 * `[fd00::/8]`). Returns the pattern or a message.
 */
export function parseHostPattern(text: string): HostPattern | string {
  if (text === '') return 'host is empty';
  if (text === '*') return { kind: 'any' };
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) return `unterminated '[' in host ${JSON.stringify(text)}`;
    if (text.includes('/')) {
      const c = parseCidr(text);
      return typeof c === 'string' ? c : { kind: 'cidr', cidr: unmapCidr(c) };
    }
    const ip = parseIp(text);
    if (ip === null) return `${JSON.stringify(text)} is not an IPv6 address`;
    return { kind: 'ip', ip: unmapIp(ip) };
  }
  if (text.includes('/')) return `write a CIDR in brackets, e.g. [${text}]`;
  if (text.includes(':')) return `write an IPv6 address in brackets, e.g. [${text}]`;
  if (text.startsWith('*.')) {
    const rest = text.slice(2);
    if (rest.includes('*')) return "a wildcard must be the whole host (*) or its first label (*.example.com)";
    if (parseIp(rest) !== null) return 'a wildcard cannot stand in front of an IP address';
    const name = canonicaliseHostName(rest);
    if (name === null) return `${JSON.stringify(rest)} is not a valid host name`;
    return { kind: 'suffix', suffix: '.' + name };
  }
  if (text.includes('*')) return "a wildcard must be the whole host (*) or its first label (*.example.com)";
  const ip = parseIp(text);
  if (ip !== null) return { kind: 'ip', ip: unmapIp(ip) };
  const name = canonicaliseHostName(text);
  if (name === null) return `${JSON.stringify(text)} is not a valid host name`;
  return { kind: 'name', name };
}

/** Canonical text of a host pattern. */
export function formatHostPattern(p: HostPattern): string {
  switch (p.kind) {
    case 'any':
      return '*';
    case 'suffix':
      return '*' + p.suffix;
    case 'name':
      return p.name;
    case 'ip':
      return p.ip.version === 6 ? `[${formatIp(p.ip)}]` : formatIp(p.ip);
    case 'cidr':
      return `[${formatCidr(p.cidr)}]`;
  }
}

function parsePort(text: string): { low: number; high: number } | string {
  if (text === '*') return { low: 1, high: 65535 };
  const range = /^(\d{1,5})-(\d{1,5})$/.exec(text);
  if (range !== null) {
    const low = Number(range[1]);
    const high = Number(range[2]);
    if (low < 1 || high > 65535 || low > high) return 'port range must be low-high within 1-65535';
    return { low, high };
  }
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) return 'port must be 1-65535 or *';
  return { low: Number(text), high: Number(text) };
}

interface Origin {
  scheme: 'http' | 'https';
  host: HostPattern;
  portLow: number;
  portHigh: number;
}

/**
 * Parse `scheme://host[:port]` (a trailing `/` is tolerated). No path,
 * query, fragment or userinfo: rules match scheme, host and port only.
 * Without a port, the scheme's default port.
 */
export function parseOrigin(text: string): Origin | string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(text);
  if (m === null) return 'a net rule looks like https://api.example.com:443';
  const scheme = (m[1] as string).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return `scheme must be http or https, not ${scheme}`;
  let rest = m[2] as string;
  if (rest.includes('@')) return 'userinfo (user@) is not allowed in a net rule';
  let hostText: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) return `unterminated '[' in ${JSON.stringify(text)}`;
    hostText = rest.slice(0, close + 1);
    rest = rest.slice(close + 1);
  } else {
    const end = rest.search(/[:/?#]/);
    hostText = end < 0 ? rest : rest.slice(0, end);
    rest = end < 0 ? '' : rest.slice(end);
    // `http://10.0.0.0/8` reads like a CIDR but would be a path: say so.
    if (/^\/\d{1,3}(?::|$)/.test(rest) && parseIp(hostText) !== null) return `write a CIDR in brackets, e.g. ${scheme}://[${hostText}${rest.split(':')[0]}]`;
  }
  let portText: string | undefined;
  const pm = /^:([^/?#]*)/.exec(rest);
  if (pm !== null) {
    portText = pm[1] as string;
    rest = rest.slice(pm[0].length);
  }
  if (rest !== '' && rest !== '/') return `net rules match scheme, host and port only; remove ${JSON.stringify(rest)}`;
  const host = parseHostPattern(hostText);
  if (typeof host === 'string') return host;
  let portLow: number = DEFAULT_PORT[scheme];
  let portHigh: number = portLow;
  if (portText !== undefined) {
    const p = parsePort(portText);
    if (typeof p === 'string') return p;
    portLow = p.low;
    portHigh = p.high;
  }
  return { scheme, host, portLow, portHigh };
}

/** Parse a net rule in either form: a string, or `{ url, methods?, resolves_to? }` already split up. */
export function parseNetRule(url: string, methods?: readonly string[], resolvesTo?: readonly string[]): NetRule | string {
  const origin = parseOrigin(url);
  if (typeof origin === 'string') return origin;
  let methodSet: Set<string> | null = null;
  if (methods !== undefined) {
    methodSet = new Set();
    for (const m of methods) {
      if (!METHOD.test(m)) return `${JSON.stringify(m)} is not an HTTP method`;
      methodSet.add(m.toUpperCase());
    }
    if (methodSet.size === 0) return 'methods is empty: leave it out to allow every method, or remove the rule';
  }
  const nets: Cidr[] = [];
  if (resolvesTo !== undefined) {
    if (origin.host.kind !== 'name') {
      return 'resolves_to needs an exact host name: a wildcard never admits a non-public address, and an IP rule names its address already';
    }
    for (const r of resolvesTo) {
      const c = parseCidr(r);
      if (typeof c === 'string') return `resolves_to ${JSON.stringify(r)}: ${c}`;
      nets.push(unmapCidr(c));
    }
  }
  return { text: url, ...origin, methods: methodSet, resolvesTo: nets };
}

/**
 * Whether a rule's host admits the URL's host. An IP literal is compared as an
 * address (an IPv4-mapped IPv6 address as its IPv4 address). A wildcard
 * admits any name except loopback names, and only public IP literals.
 */
export function hostMatches(p: HostPattern, u: CanonicalUrl): boolean {
  switch (p.kind) {
    case 'any':
      return u.hostKind === 'name' ? !u.loopbackName : u.address?.class === 'public';
    case 'suffix':
      return u.hostKind === 'name' && u.host.length > p.suffix.length && u.host.endsWith(p.suffix);
    case 'name':
      return u.hostKind === 'name' && u.host === p.name;
    case 'ip':
      return u.ip !== undefined && sameIp(unmapIp(u.ip), p.ip);
    case 'cidr':
      return u.ip !== undefined && cidrContains(p.cidr, unmapIp(u.ip));
  }
}

/** Scheme, port and host (methods aside). */
export function originMatches(r: Origin, u: CanonicalUrl): boolean {
  return r.scheme === u.scheme && u.port >= r.portLow && u.port <= r.portHigh && hostMatches(r.host, u);
}

/**
 * Whether a rule names `ip` explicitly: its host is that address or a network
 * holding it, its `resolves_to` holds it, or its host is a loopback name and
 * the address is 127.0.0.0/8 or ::1. An IPv4-mapped address counts as the
 * IPv4 address it maps; other embeddings (NAT64, 6to4, ...) reach another
 * machine and are never the same as the address they carry.
 */
export function namesAddress(r: NetRule, ip: IpAddress): boolean {
  const a = unmapIp(ip);
  switch (r.host.kind) {
    case 'ip':
      if (sameIp(r.host.ip, a)) return true;
      break;
    case 'cidr':
      if (cidrContains(r.host.cidr, a)) return true;
      break;
    case 'name':
      if (isLoopbackName(r.host.name) && isLoopbackAddress(a)) return true;
      break;
    case 'suffix':
      if (r.host.suffix === '.localhost' && isLoopbackAddress(a)) return true;
      break;
    case 'any':
      break;
  }
  return r.resolvesTo.some((c) => cidrContains(c, a));
}

function isLoopbackAddress(a: IpAddress): boolean {
  if (a.version === 4) return a.bytes[0] === 127;
  return a.bytes.every((b, i) => b === (i === 15 ? 1 : 0));
}

/** Canonical text of a rule's origin: `https://api.example.com:443`, `http://127.0.0.1:*`. */
export function formatOrigin(r: Origin): string {
  const port = r.portLow === 1 && r.portHigh === 65535 ? '*' : r.portLow === r.portHigh ? String(r.portLow) : `${r.portLow}-${r.portHigh}`;
  return `${r.scheme}://${formatHostPattern(r.host)}:${port}`;
}

/** A secret's destination: scheme, host pattern and ports. */
export type SecretHost = Origin & { readonly text: string };

/**
 * Parse a secret host entry: `api.example.com` or `*.example.com` (https,
 * any port), or a full `scheme://host[:port]` (that scheme; that port or the
 * scheme's default) for anything else, such as plain http on loopback.
 */
export function parseSecretHost(text: string): SecretHost | string {
  if (text.includes('://')) {
    const o = parseOrigin(text);
    return typeof o === 'string' ? o : { ...o, text };
  }
  if (/[/?#@]/.test(text) && !text.startsWith('[')) return 'a secret host is a host name (https, any port) or scheme://host[:port]';
  if (/^[^:[\]]+:\d+$/.test(text)) return `a bare host means https on any port; to name a port, write the scheme too, e.g. http://${text}`;
  const host = parseHostPattern(text);
  if (typeof host === 'string') return host;
  return { text, scheme: 'https', host, portLow: 1, portHigh: 65535 };
}
