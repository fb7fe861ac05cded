/**
 * Addresses a request may go to. The gate's `checkAddress` decides; the host
 * adds what no policy can want (unspecified, multicast, broadcast, zone ids)
 * and also asks about every IPv4 address embedded in an IPv6 one (mapped,
 * compatible, SIIT, NAT64, 6to4, Teredo), so a policy written in IPv4 terms
 * still holds when the same host is written in IPv6.
 * @module
 */
import { isIP } from 'node:net';
import type { Decision } from '../host-call.ts';

/** Where the request is going, for `checkAddress` callbacks that care about more than the address. */
export interface AddressTarget {
  readonly hostname: string;
  readonly port: number;
  readonly scheme: 'http' | 'https';
}

/** The gate's decision on one resolved (or literal) address. Any deny refuses the whole request. */
export type CheckAddress = (address: string, family: 4 | 6, target: AddressTarget) => Decision | Promise<Decision>;

/** The 8 hextets of an IPv6 address, or undefined when `address` is not one. */
export function parseIPv6(address: string): number[] | undefined {
  if (isIP(address) !== 6 || address.includes('%')) return undefined;
  let text = address.toLowerCase();
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    // A dotted IPv4 tail (::ffff:1.2.3.4) is two hextets.
    const [a = 0, b = 0, c = 0, d = 0] = last.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((x) => parseInt(x, 16)));
  const halves = text.split('::');
  if (halves.length === 1) {
    const all = parse(text);
    return all.length === 8 ? all : undefined;
  }
  const head = parse(halves[0] as string);
  const tail = parse(halves[1] as string);
  const fill = 8 - head.length - tail.length;
  return fill >= 1 ? [...head, ...new Array<number>(fill).fill(0), ...tail] : undefined;
}

const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;

/** IPv4 addresses an IPv6 address carries by a standard translation, each also checked. */
export function embeddedIPv4(address: string): string[] {
  const h = parseIPv6(address);
  if (h === undefined) return [];
  const [h0, h1, h2, h3, h4, h5, h6, h7] = h as [number, number, number, number, number, number, number, number];
  const out: string[] = [];
  const zero = (from: number, to: number): boolean => h.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && h5 === 0xffff) out.push(v4(h6, h7)); // ::ffff:a.b.c.d (mapped)
  if (zero(0, 6) && !(h6 === 0 && (h7 === 0 || h7 === 1))) out.push(v4(h6, h7)); // ::a.b.c.d (compatible)
  if (zero(0, 4) && h4 === 0xffff && h5 === 0) out.push(v4(h6, h7)); // ::ffff:0:a.b.c.d (SIIT)
  if (h0 === 0x64 && h1 === 0xff9b && (zero(2, 6) || (h2 === 1 && zero(3, 6)))) out.push(v4(h6, h7)); // NAT64 /96
  if (h0 === 0x2002) out.push(v4(h1, h2)); // 6to4
  if (h0 === 0x2001 && h1 === 0) out.push(v4(h2, h3), v4(h6 ^ 0xffff, h7 ^ 0xffff)); // Teredo server, client
  return [...new Set(out)];
}

/** Why no request may ever go to `address`, whatever the policy; undefined when the policy decides. */
export function neverRoutable(address: string, family: number): string | undefined {
  if (address.includes('%')) return 'an address with a zone id';
  if (family === 4) {
    const [a = 0] = address.split('.').map(Number);
    if (a === 0) return 'an unspecified ("this network") address';
    if (a >= 224) return 'a multicast, reserved or broadcast address';
    return undefined;
  }
  const h = parseIPv6(address);
  if (h === undefined) return 'a malformed address';
  if (h.every((x) => x === 0)) return 'the unspecified address';
  if ((h[0] as number) >> 8 === 0xff) return 'a multicast address';
  return undefined;
}
