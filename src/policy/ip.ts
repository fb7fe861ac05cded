/**
 * IP addresses: parse every literal form a URL or a resolver may produce,
 * print one canonical form, and classify the address (loopback, private,
 * cloud metadata, ...), so that a non-public destination is never reached
 * by accident.
 *
 * IPv4 follows the WHATWG URL host parser, which is what `new URL()`,
 * browsers and most HTTP clients do: `2130706433`, `0177.0.0.1`, `0x7f.1`
 * and `127.1` all mean 127.0.0.1. IPv6 follows the same parser (no zone
 * ids) and prints like `URL` does (RFC 5952 compression, lower case, no
 * dotted tail).
 * @module
 */

/** An IP address as bytes: 4 for IPv4, 16 for IPv6. */
export interface IpAddress {
  readonly version: 4 | 6;
  readonly bytes: Uint8Array;
}

/** A network: an address and how many leading bits are fixed. */
export interface Cidr {
  readonly address: IpAddress;
  readonly prefix: number;
}

/**
 * Address classes. Everything but `public` is a special destination that a
 * policy must name explicitly.
 */
export const ADDRESS_CLASSES = [
  'public',
  'unspecified',
  'loopback',
  'private',
  'link-local',
  'unique-local',
  'cgnat',
  'multicast',
  'broadcast',
  'metadata',
  'documentation',
  'reserved',
] as const;
export type AddressClass = (typeof ADDRESS_CLASSES)[number];

/** How an IPv6 address carries an IPv4 one. */
export type Embedding = 'ipv4-mapped' | 'ipv4-compatible' | 'ipv4-translated' | 'nat64' | '6to4';

export interface AddressInfo {
  /** Canonical text of the address. */
  readonly address: string;
  readonly version: 4 | 6;
  readonly class: AddressClass;
  /** The range that decided the class, e.g. `127.0.0.0/8`. */
  readonly range: string;
  /** For an IPv6 address classified by the IPv4 address it embeds. */
  readonly embedded?: string | undefined;
  readonly embedding?: Embedding | undefined;
}

// ---------------------------------------------------------------- parsing

function parseIpv4Number(part: string): number | null {
  if (part.length === 0) return null;
  let radix = 10;
  let digits = part;
  if (part.length >= 2 && part[0] === '0' && (part[1] === 'x' || part[1] === 'X')) {
    radix = 16;
    digits = part.slice(2);
  } else if (part.length >= 2 && part[0] === '0') {
    radix = 8;
    digits = part.slice(1);
  }
  if (digits.length === 0) return 0;
  const valid = radix === 16 ? /^[0-9a-fA-F]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!valid.test(digits)) return null;
  digits = digits.replace(/^0+(?=.)/, '');
  // Long digit strings overflow doubles; anything this long is out of range anyway.
  if (digits.length > 12) return Number.POSITIVE_INFINITY;
  return parseInt(digits, radix);
}

const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const NUMERIC_LABEL = /^(?:0[xX][0-9a-fA-F]*|\d+)$/;

/** WHATWG IPv4 parser. Returns null when the text is not an IPv4 literal. */
function parseIpv4(text: string): Uint8Array | null {
  // Most hosts are names: their last character is no digit (`.com`), and that settles it.
  const lastChar = text.charCodeAt(text.length - (text.endsWith('.') ? 2 : 1));
  if (!(lastChar >= 48 && lastChar <= 57) && hexValue(lastChar) < 0 && lastChar !== 120 && lastChar !== 88) return null;
  // The common case, a plain dotted quad, without the general machinery.
  const q = DOTTED_QUAD.exec(text);
  if (q !== null) return new Uint8Array([Number(q[1]), Number(q[2]), Number(q[3]), Number(q[4])]);
  // WHATWG: a host is an IPv4 address only when its last label is a number;
  // a name (`api.example.com`) stops here.
  const end = text.endsWith('.') ? text.length - 1 : text.length;
  if (!NUMERIC_LABEL.test(text.slice(text.lastIndexOf('.', end - 1) + 1, end))) return null;
  const parts = text.split('.');
  if (parts[parts.length - 1] === '' && parts.length > 1) parts.pop();
  if (parts.length > 4 || parts.length === 0) return null;
  const numbers: number[] = [];
  for (const p of parts) {
    const n = parseIpv4Number(p);
    if (n === null) return null;
    numbers.push(n);
  }
  const last = numbers.pop() as number;
  if (numbers.some((n) => n > 255)) return null;
  if (last >= 256 ** (4 - numbers.length)) return null;
  let value = last;
  numbers.forEach((n, i) => {
    value += n * 256 ** (3 - i);
  });
  return new Uint8Array([(value >>> 24) & 255, (value >>> 16) & 255, (value >>> 8) & 255, value & 255]);
}

const COLON = 58;
const DOT = 46;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/** WHATWG IPv6 parser (without brackets). Returns null when not an IPv6 literal. */
function parseIpv6(input: string): Uint8Array | null {
  const address = [0, 0, 0, 0, 0, 0, 0, 0];
  const len = input.length;
  // NaN past the end compares false with everything, like the spec's EOF.
  const c = (i: number): number => input.charCodeAt(i);
  let pieceIndex = 0;
  let compress: number | null = null;
  let p = 0;
  if (c(p) === COLON) {
    if (c(p + 1) !== COLON) return null;
    p += 2;
    pieceIndex++;
    compress = pieceIndex;
  }
  while (p < len) {
    if (pieceIndex === 8) return null;
    if (c(p) === COLON) {
      if (compress !== null) return null;
      p++;
      pieceIndex++;
      compress = pieceIndex;
      continue;
    }
    let value = 0;
    let length = 0;
    while (length < 4 && p < len && hexValue(c(p)) >= 0) {
      value = value * 16 + hexValue(c(p));
      p++;
      length++;
    }
    if (c(p) === DOT) {
      if (length === 0) return null;
      p -= length;
      if (pieceIndex > 6) return null;
      let numbersSeen = 0;
      while (p < len) {
        let piece = -1;
        if (numbersSeen > 0) {
          if (c(p) === DOT && numbersSeen < 4) p++;
          else return null;
        }
        if (p >= len || !isDigit(c(p))) return null;
        while (p < len && isDigit(c(p))) {
          const n = c(p) - 48;
          if (piece === -1) piece = n;
          else if (piece === 0) return null;
          else piece = piece * 10 + n;
          if (piece > 255) return null;
          p++;
        }
        address[pieceIndex] = (address[pieceIndex] as number) * 0x100 + piece;
        numbersSeen++;
        if (numbersSeen === 2 || numbersSeen === 4) pieceIndex++;
      }
      if (numbersSeen !== 4) return null;
      break;
    } else if (c(p) === COLON) {
      p++;
      if (p >= len) return null;
    } else if (p < len) {
      return null;
    }
    address[pieceIndex] = value;
    pieceIndex++;
  }
  if (compress !== null) {
    let swaps = pieceIndex - compress;
    pieceIndex = 7;
    while (pieceIndex !== 0 && swaps > 0) {
      const a = compress + swaps - 1;
      const t = address[pieceIndex] as number;
      address[pieceIndex] = address[a] as number;
      address[a] = t;
      pieceIndex--;
      swaps--;
    }
  } else if (pieceIndex !== 8) {
    return null;
  }
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const piece = address[i] as number;
    bytes[2 * i] = piece >> 8;
    bytes[2 * i + 1] = piece & 255;
  }
  return bytes;
}

/**
 * Parse an IP literal in any form a URL accepts: IPv4 with decimal, octal or
 * hex parts and short forms; IPv6 with or without brackets, compressed or
 * not, with a dotted IPv4 tail. Zone ids (`%eth0`) are not addresses here.
 * Returns null for anything else (a host name, garbage).
 *
 * @example
 * ```ts
 * formatIp(parseIp('0x7f.1')!);            // '127.0.0.1'
 * formatIp(parseIp('[::ffff:127.0.0.1]')!); // '::ffff:7f00:1'
 * ```
 */
export function parseIp(text: string): IpAddress | null {
  if (text.length === 0 || text.length > 64) return null;
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) return null;
    const bytes = parseIpv6(text.slice(1, -1));
    return bytes === null ? null : { version: 6, bytes };
  }
  if (text.includes(':')) {
    const bytes = parseIpv6(text);
    return bytes === null ? null : { version: 6, bytes };
  }
  // WHATWG: a host is IPv4 when its last label is a number; otherwise it is a name.
  const bytes = parseIpv4(text);
  return bytes === null ? null : { version: 4, bytes };
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 as WHATWG URL prints it (no brackets). */
export function formatIp(ip: IpAddress): string {
  const b = ip.bytes;
  if (ip.version === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const pieces: number[] = [];
  for (let i = 0; i < 8; i++) pieces.push(((b[2 * i] as number) << 8) | (b[2 * i + 1] as number));
  // The first longest run of two or more zero pieces is compressed.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (pieces[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && pieces[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    out += (pieces[i] as number).toString(16);
    if (i !== 7) out += ':';
  }
  return out;
}

/** Two addresses are the same (same version and bytes). */
export function sameIp(a: IpAddress, b: IpAddress): boolean {
  if (a.version !== b.version) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}

/** `::ffff:a.b.c.d` is the IPv4 address a.b.c.d on a dual-stack socket: unwrap it, leave others. */
export function unmapIp(ip: IpAddress): IpAddress {
  if (ip.version === 6 && hasPrefix(ip.bytes, V4_MAPPED, 96)) return { version: 4, bytes: ip.bytes.slice(12, 16) };
  return ip;
}

/** A network inside ::ffff:0:0/96 as the IPv4 network it maps; others unchanged. */
export function unmapCidr(c: Cidr): Cidr {
  if (c.address.version === 6 && c.prefix >= 96 && hasPrefix(c.address.bytes, V4_MAPPED, 96)) {
    return { address: { version: 4, bytes: c.address.bytes.slice(12, 16) }, prefix: c.prefix - 96 };
  }
  return c;
}

/**
 * Parse `a.b.c.d/n` or `v6/n` (brackets optional). Host bits must be zero,
 * so a CIDR always means what it says. Returns the network or a message.
 *
 * @example
 * ```ts
 * parseCidr('10.0.0.0/8');  // { address: 10.0.0.0, prefix: 8 }
 * parseCidr('10.0.0.1/8');  // 'host bits are set: did you mean 10.0.0.0/8?'
 * ```
 */
export function parseCidr(text: string): Cidr | string {
  const inner = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const slash = inner.lastIndexOf('/');
  const addrText = slash < 0 ? inner : inner.slice(0, slash);
  const ip = parseIp(addrText);
  if (ip === null) return `${JSON.stringify(addrText)} is not an IP address`;
  if (ip.version === 4 && !/^\d{1,3}(\.\d{1,3}){3}$/.test(addrText)) {
    return `write IPv4 networks as a dotted quad (${formatIp(ip)}), not ${JSON.stringify(addrText)}`;
  }
  const max = ip.version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = inner.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return `prefix length must be 0-${max}, got ${JSON.stringify(p)}`;
    prefix = Number(p);
  }
  const masked = maskBytes(ip.bytes, prefix);
  if (!sameIp(ip, { version: ip.version, bytes: masked })) {
    return `host bits are set: did you mean ${formatIp({ version: ip.version, bytes: masked })}/${prefix}?`;
  }
  return { address: ip, prefix };
}

/** Canonical text of a network, `10.0.0.0/8` or `fd00::/8`. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.address)}/${cidr.prefix}`;
}

/** Whether `ip` lies in `cidr` (same version only). */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  return cidr.address.version === ip.version && hasPrefix(ip.bytes, cidr.address.bytes, cidr.prefix);
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = (bytes[i] as number) & ((0xff00 >> bits) & 0xff);
  }
  return out;
}

function hasPrefix(bytes: Uint8Array, net: Uint8Array, prefix: number): boolean {
  const full = prefix >> 3;
  for (let i = 0; i < full; i++) if (bytes[i] !== net[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff00 >> rest) & 0xff;
  return ((bytes[full] as number) & mask) === ((net[full] as number) & mask);
}

// ---------------------------------------------------------- classification

interface Range {
  readonly net: Uint8Array;
  readonly prefix: number;
  readonly cls: AddressClass;
  readonly text: string;
}

function range(text: string, cls: AddressClass): Range {
  const c = parseCidr(text);
  if (typeof c === 'string') throw new Error(`bad built-in range ${text}: ${c}`);
  return { net: c.address.bytes, prefix: c.prefix, cls, text };
}

// Order matters: the first range that contains the address decides.
const V4_RANGES: readonly Range[] = [
  // Cloud metadata and platform endpoints: AWS/GCP/Azure/OpenStack IMDS, AWS ECS
  // task metadata and EKS pod identity, Alibaba, Oracle, Azure wire server.
  range('169.254.169.254/32', 'metadata'),
  range('169.254.170.2/32', 'metadata'),
  range('169.254.170.23/32', 'metadata'),
  range('100.100.100.200/32', 'metadata'),
  range('192.0.0.192/32', 'metadata'),
  range('168.63.129.16/32', 'metadata'),
  range('0.0.0.0/8', 'unspecified'),
  range('127.0.0.0/8', 'loopback'),
  range('10.0.0.0/8', 'private'),
  range('172.16.0.0/12', 'private'),
  range('192.168.0.0/16', 'private'),
  range('100.64.0.0/10', 'cgnat'),
  range('169.254.0.0/16', 'link-local'),
  range('192.0.2.0/24', 'documentation'),
  range('198.51.100.0/24', 'documentation'),
  range('203.0.113.0/24', 'documentation'),
  range('192.0.0.0/24', 'reserved'),
  range('192.88.99.0/24', 'reserved'),
  range('198.18.0.0/15', 'reserved'),
  range('224.0.0.0/4', 'multicast'),
  range('255.255.255.255/32', 'broadcast'),
  range('240.0.0.0/4', 'reserved'),
];

const V6_RANGES: readonly Range[] = [
  range('fd00:ec2::254/128', 'metadata'),
  range('fd00:ec2::23/128', 'metadata'),
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('64:ff9b:1::/48', 'private'),
  range('100::/64', 'reserved'),
  range('2001:db8::/32', 'documentation'),
  range('3fff::/20', 'documentation'),
  // IETF protocol assignments, including Teredo (2001::/32), whose embedded
  // address is obfuscated and relayed: never treated as public.
  range('2001::/23', 'reserved'),
  range('fe80::/10', 'link-local'),
  range('fec0::/10', 'reserved'),
  range('fc00::/7', 'unique-local'),
  range('ff00::/8', 'multicast'),
  range('2000::/3', 'public'),
  range('::/0', 'reserved'),
];

const V4_MAPPED = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
const V4_TRANSLATED = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0]);
const V4_COMPATIBLE = new Uint8Array(16);
const NAT64 = new Uint8Array([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const SIX_TO_FOUR = new Uint8Array([0x20, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

function embeddedV4(b: Uint8Array): { v4: Uint8Array; how: Embedding } | undefined {
  if (hasPrefix(b, V4_MAPPED, 96)) return { v4: b.slice(12, 16), how: 'ipv4-mapped' };
  if (hasPrefix(b, V4_TRANSLATED, 96)) return { v4: b.slice(12, 16), how: 'ipv4-translated' };
  if (hasPrefix(b, NAT64, 96)) return { v4: b.slice(12, 16), how: 'nat64' };
  if (hasPrefix(b, SIX_TO_FOUR, 16)) return { v4: b.slice(2, 6), how: '6to4' };
  // ::a.b.c.d (deprecated), but not :: and ::1, which have their own meaning.
  if (hasPrefix(b, V4_COMPATIBLE, 96) && !hasPrefix(b, V4_COMPATIBLE, 127)) return { v4: b.slice(12, 16), how: 'ipv4-compatible' };
  return undefined;
}

function classifyV4(bytes: Uint8Array): Range | undefined {
  for (const r of V4_RANGES) if (hasPrefix(bytes, r.net, r.prefix)) return r;
  return undefined;
}

/**
 * Classify an address. IPv6 forms that embed an IPv4 address (mapped,
 * compatible, translated, NAT64 64:ff9b::/96, 6to4 2002::/16) take the class
 * of the IPv4 address they carry. Accepts text in any form `parseIp` takes;
 * throws a TypeError for text that is not an IP address.
 *
 * @example
 * ```ts
 * classifyIp('0xa9.0xfe.0xa9.0xfe').class;     // 'metadata'
 * classifyIp('::ffff:10.0.0.1').embedded;      // '10.0.0.1'
 * ```
 */
export function classifyIp(input: string | IpAddress): AddressInfo {
  const ip = typeof input === 'string' ? parseIp(input) : input;
  if (ip === null) throw new TypeError(`not an IP address: ${JSON.stringify(input)}`);
  const address = formatIp(ip);
  if (ip.version === 4) {
    const r = classifyV4(ip.bytes);
    return r === undefined ? { address, version: 4, class: 'public', range: '0.0.0.0/0' } : { address, version: 4, class: r.cls, range: r.text };
  }
  for (let i = 0; i < 4; i++) {
    const r = V6_RANGES[i] as Range;
    if (hasPrefix(ip.bytes, r.net, r.prefix)) return { address, version: 6, class: r.cls, range: r.text };
  }
  const emb = embeddedV4(ip.bytes);
  if (emb !== undefined) {
    const r = classifyV4(emb.v4);
    const embedded = formatIp({ version: 4, bytes: emb.v4 });
    return { address, version: 6, class: r?.cls ?? 'public', range: r?.text ?? '0.0.0.0/0', embedded, embedding: emb.how };
  }
  for (let i = 4; i < V6_RANGES.length; i++) {
    const r = V6_RANGES[i] as Range;
    if (hasPrefix(ip.bytes, r.net, r.prefix)) return { address, version: 6, class: r.cls, range: r.text };
  }
  return { address, version: 6, class: 'reserved', range: '::/0' };
}
