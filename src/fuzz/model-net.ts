/**
 * The reference model's view of URLs, IP addresses and net rules, written
 * from docs/policy.md ("Canonical paths, URLs and addresses", "Special
 * destinations") on top of the platform's WHATWG URL parser. Addresses are
 * BigInts; classification is a table scan. Slow and plain on purpose.
 * @module
 */
import { domainToASCII } from 'node:url';

export interface ModelIp {
  readonly v: 4 | 6;
  /** The address as an unsigned integer (32 or 128 bits). */
  readonly n: bigint;
}

export interface ModelUrl {
  readonly href: string;
  readonly scheme: 'http' | 'https';
  /** Rule-comparison host: lower case punycode without a trailing dot; IPs canonical (IPv6 without brackets). */
  readonly host: string;
  /** The host as the URL serialises it (brackets for IPv6, trailing dot kept). */
  readonly hostname: string;
  readonly ip: ModelIp | undefined;
  readonly port: number;
  readonly path: string;
  readonly loopbackName: boolean;
}

const DEFAULT_PORT = { http: 80, https: 443 } as const;

// ------------------------------------------------------------------ IPs

function v4(text: string): ModelIp | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (m === null) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return { v: 4, n: parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n) };
}

/** Parse a canonical IPv4 dotted quad or an IPv6 address (brackets optional, no zone). */
export function parseModelIp(text: string): ModelIp | undefined {
  const a = v4(text);
  if (a !== undefined) return a;
  let t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!t.includes(':') || t.includes('%')) return undefined;
  t = t.toLowerCase();
  // A dotted tail is two hextets.
  const lastColon = t.lastIndexOf(':');
  const tail = t.slice(lastColon + 1);
  if (tail.includes('.')) {
    const q = v4(tail);
    if (q === undefined) return undefined;
    t = `${t.slice(0, lastColon + 1)}${(q.n >> 16n).toString(16)}:${(q.n & 0xffffn).toString(16)}`;
  }
  const halves = t.split('::');
  if (halves.length > 2) return undefined;
  const hex = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const h of s.split(':')) {
      if (!/^[0-9a-f]{1,4}$/.test(h)) return undefined;
      out.push(parseInt(h, 16));
    }
    return out;
  };
  const head = hex(halves[0] as string);
  const rest = halves.length === 2 ? hex(halves[1] as string) : [];
  if (head === undefined || rest === undefined) return undefined;
  let groups: number[];
  if (halves.length === 1) {
    if (head.length !== 8) return undefined;
    groups = head;
  } else {
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return undefined;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  }
  return { v: 6, n: groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) };
}

/** An IPv4-mapped IPv6 address counts as its IPv4 address. */
export function unmap(ip: ModelIp): ModelIp {
  if (ip.v === 6 && ip.n >> 32n === 0xffffn) return { v: 4, n: ip.n & 0xffffffffn };
  return ip;
}

export interface ModelCidr {
  readonly ip: ModelIp;
  readonly prefix: number;
}

export function parseModelCidr(text: string): ModelCidr | undefined {
  const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const slash = t.indexOf('/');
  const ipText = slash < 0 ? t : t.slice(0, slash);
  const ip = parseModelIp(ipText) ?? ipv4Any(ipText);
  if (ip === undefined) return undefined;
  const bits = ip.v === 4 ? 32 : 128;
  const prefix = slash < 0 ? bits : Number(t.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
  const mapped = unmap(ip);
  const adj = mapped.v === 4 && ip.v === 6 ? Math.max(0, prefix - 96) : prefix;
  return { ip: mapped, prefix: adj };
}

export function cidrHas(c: ModelCidr, ip: ModelIp): boolean {
  if (c.ip.v !== ip.v) return false;
  const bits = BigInt(ip.v === 4 ? 32 : 128);
  const shift = bits - BigInt(c.prefix);
  return c.ip.n >> shift === ip.n >> shift;
}

/** Any IPv4 spelling the WHATWG parser accepts (0x7f.1, 2130706433, ...), via the platform parser. */
function ipv4Any(text: string): ModelIp | undefined {
  try {
    return v4(new URL(`http://${text}/`).hostname);
  } catch {
    return undefined;
  }
}

const V4_TABLE: ReadonlyArray<[string, string]> = [
  ['169.254.169.254/32', 'metadata'],
  ['169.254.170.2/32', 'metadata'],
  ['169.254.170.23/32', 'metadata'],
  ['100.100.100.200/32', 'metadata'],
  ['192.0.0.192/32', 'metadata'],
  ['168.63.129.16/32', 'metadata'],
  ['0.0.0.0/8', 'unspecified'],
  ['127.0.0.0/8', 'loopback'],
  ['10.0.0.0/8', 'private'],
  ['172.16.0.0/12', 'private'],
  ['192.168.0.0/16', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['169.254.0.0/16', 'link-local'],
  ['192.0.2.0/24', 'documentation'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['192.0.0.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['198.18.0.0/15', 'reserved'],
  ['240.0.0.0/4', 'reserved'],
];
const V6_TABLE: ReadonlyArray<[string, string]> = [
  ['fd00:ec2::254/128', 'metadata'],
  ['fd00:ec2::23/128', 'metadata'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'private'],
  ['fe80::/10', 'link-local'],
  ['fc00::/7', 'unique-local'],
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation'],
  ['ff00::/8', 'multicast'],
  ['100::/64', 'reserved'],
  ['2001::/23', 'reserved'],
  ['fec0::/10', 'reserved'],
];
const parseTable = (t: ReadonlyArray<[string, string]>): Array<[ModelCidr, string]> =>
  t.map(([c, cls]) => {
    const [ip, prefix] = c.split('/') as [string, string];
    return [{ ip: parseModelIp(ip) as ModelIp, prefix: Number(prefix) }, cls];
  });
const V4 = parseTable(V4_TABLE);
const V6 = parseTable(V6_TABLE);

/** The IPv4 address an IPv6 one carries, in the forms that take its class. */
function embedded(n: bigint): bigint | undefined {
  const low32 = n & 0xffffffffn;
  if (n >> 32n === 0xffffn) return low32; // ::ffff:a.b.c.d
  if (n >> 32n === 0xffff0000n) return low32; // ::ffff:0:a.b.c.d
  if (n >> 32n === 0n && low32 > 1n) return low32; // ::a.b.c.d
  if (n >> 32n === 0x64ff9b0000000000000000n) return low32; // 64:ff9b::/96
  if (n >> 112n === 0x2002n) return (n >> 80n) & 0xffffffffn; // 6to4
  return undefined;
}

/** The class of an address, from the table in docs/policy.md. */
export function classify(ip: ModelIp): string {
  if (ip.v === 4) return V4.find(([c]) => cidrHas(c, ip))?.[1] ?? 'public';
  const special = V6.slice(0, 5).find(([c]) => cidrHas(c, ip));
  if (special !== undefined) return special[1];
  const e = embedded(ip.n);
  if (e !== undefined) return classify({ v: 4, n: e });
  const other = V6.slice(5).find(([c]) => cidrHas(c, ip));
  if (other !== undefined) return other[1];
  // Outside 2000::/3 is reserved.
  return ip.n >> 125n === 1n ? 'public' : 'reserved';
}

export const isLoopback = (ip: ModelIp): boolean => (ip.v === 4 ? ip.n >> 24n === 127n : ip.n === 1n);

// ----------------------------------------------------------------- URLs

/**
 * A URL as the gate's decode stage must see it, or the reason it is
 * invalid: only http(s), no userinfo, no control characters or spaces, at
 * most 8192 characters, no empty labels.
 */
export function modelUrl(raw: string): ModelUrl | string {
  if (raw.length > 8192) return 'too long';
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return 'control or space';
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'does not parse';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'scheme';
  if (u.username !== '' || u.password !== '') return 'userinfo';
  const scheme = u.protocol === 'http:' ? 'http' : 'https';
  const port = u.port === '' ? DEFAULT_PORT[scheme] : Number(u.port);
  const hostname = u.hostname;
  if (hostname === '') return 'no host';
  let host: string;
  let ip: ModelIp | undefined;
  if (hostname.startsWith('[')) {
    ip = parseModelIp(hostname);
    if (ip === undefined) return 'bad ipv6';
    host = hostname.slice(1, -1);
  } else {
    ip = v4(hostname);
    if (ip !== undefined) host = hostname;
    else {
      host = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname;
      if (host === '' || host.startsWith('.') || host.endsWith('.') || host.includes('..')) return 'empty label';
    }
  }
  const loopbackName = ip === undefined && (host === 'localhost' || host.endsWith('.localhost'));
  return { href: u.href, scheme, host, hostname, ip, port, path: u.pathname, loopbackName };
}

/**
 * Why a tool's own URL is refused before any check (the host's parser, which
 * the gate runs first: it refuses what a WHATWG parser would repair), or
 * undefined. Written from docs/host.md: whitespace and controls, backslashes,
 * other schemes, anything but `scheme://host...`, userinfo, percent-escapes or
 * raw non-ASCII in the host, IPv4 not written as a.b.c.d, a host not in
 * lower-case canonical form or ending with a dot, labels outside DNS syntax,
 * a port outside 1-65535.
 */
export function guestUrlRefusal(raw: string): string | undefined {
  if (raw.length === 0 || raw.length > 8192) return 'length';
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c === 0x5c) return 'control, space or backslash';
  }
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(raw);
  const scheme = m?.[1]?.toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return 'scheme';
  const rest = raw.slice(scheme.length + 1);
  if (!rest.startsWith('//') || rest.startsWith('///')) return 'not scheme://host';
  const authority = rest.slice(2).split(/[/?#]/, 1)[0] ?? '';
  if (authority === '' || authority.includes('@') || authority.includes('%') || /[^\x21-\x7e]/.test(authority)) return 'authority';
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'does not parse';
  }
  const hostname = u.hostname;
  const badPort = u.port !== '' && (Number(u.port) < 1 || Number(u.port) > 65535);
  if (hostname.startsWith('[')) return parseModelIp(hostname) === undefined ? 'bad ipv6' : badPort ? 'port' : undefined;
  const written = (authority.includes(':') ? authority.slice(0, authority.lastIndexOf(':')) : authority).toLowerCase();
  if (written !== hostname) return 'not canonical';
  if (hostname.endsWith('.')) return 'trailing dot';
  if (v4(hostname) === undefined && (hostname.length > 253 || !hostname.split('.').every((l) => /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l)))) return 'labels';
  if (badPort) return 'port';
  return undefined;
}

// ------------------------------------------------------------ net rules

export type ModelHost =
  | { kind: 'any' }
  | { kind: 'suffix'; suffix: string }
  | { kind: 'name'; name: string }
  | { kind: 'ip'; ip: ModelIp }
  | { kind: 'cidr'; cidr: ModelCidr };

export interface ModelOrigin {
  readonly scheme: 'http' | 'https';
  readonly host: ModelHost;
  readonly portLow: number;
  readonly portHigh: number;
}

function hostName(text: string): string | undefined {
  const t = text.endsWith('.') ? text.slice(0, -1) : text;
  if (t === '' || t.split('.').some((l) => l === '')) return undefined;
  const ascii = domainToASCII(t);
  return ascii === '' || /[^a-z0-9._-]/.test(ascii) ? undefined : ascii;
}

export function parseModelHost(text: string): ModelHost | undefined {
  if (text === '*') return { kind: 'any' };
  if (text.startsWith('[')) {
    if (text.includes('/')) {
      const c = parseModelCidr(text);
      return c === undefined ? undefined : { kind: 'cidr', cidr: c };
    }
    const ip = parseModelIp(text);
    return ip === undefined ? undefined : { kind: 'ip', ip: unmap(ip) };
  }
  if (text.startsWith('*.')) {
    const name = hostName(text.slice(2));
    return name === undefined ? undefined : { kind: 'suffix', suffix: '.' + name };
  }
  const ip = ipv4Any(text);
  if (ip !== undefined && /^[0-9a-fA-Fx.]+$/.test(text)) return { kind: 'ip', ip };
  const name = hostName(text);
  return name === undefined ? undefined : { kind: 'name', name };
}

/** `scheme://host[:port]` with an optional trailing slash; ports are a number, a range or `*`. */
export function parseModelOrigin(text: string): ModelOrigin | undefined {
  const m = /^(https?):\/\/(\[[^\]]*\]|[^:/]*)(?::(\*|\d{1,5}(?:-\d{1,5})?))?\/?$/i.exec(text);
  if (m === null) return undefined;
  const scheme = (m[1] as string).toLowerCase() as 'http' | 'https';
  const host = parseModelHost(m[2] as string);
  if (host === undefined) return undefined;
  let portLow: number = DEFAULT_PORT[scheme];
  let portHigh = portLow;
  const p = m[3];
  if (p === '*') [portLow, portHigh] = [1, 65535];
  else if (p !== undefined) {
    const [a, b = a] = p.split('-');
    [portLow, portHigh] = [Number(a), Number(b)];
  }
  return { scheme, host, portLow, portHigh };
}

/** Whether a rule's host admits a URL's host (docs/policy.md: wildcards never admit loopback names or non-public IPs). */
export function modelHostMatches(h: ModelHost, u: ModelUrl): boolean {
  switch (h.kind) {
    case 'any':
      return u.ip === undefined ? !u.loopbackName : classify(u.ip) === 'public';
    case 'suffix':
      return u.ip === undefined && u.host.length > h.suffix.length && u.host.endsWith(h.suffix);
    case 'name':
      return u.ip === undefined && u.host === h.name;
    case 'ip':
      return u.ip !== undefined && sameIp(unmap(u.ip), h.ip);
    case 'cidr':
      return u.ip !== undefined && cidrHas(h.cidr, unmap(u.ip));
  }
}

export const sameIp = (a: ModelIp, b: ModelIp): boolean => a.v === b.v && a.n === b.n;

export function originAdmits(o: ModelOrigin, u: ModelUrl): boolean {
  return o.scheme === u.scheme && u.port >= o.portLow && u.port <= o.portHigh && modelHostMatches(o.host, u);
}
