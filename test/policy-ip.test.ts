import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { METADATA_FORMS } from './fixtures/policies/addresses.ts';
import { cidrContains, classifyIp, formatCidr, formatIp, parseCidr, parseIp, unmapIp, type AddressClass } from '../src/policy/index.ts';

/** [address as written, expected class, embedded IPv4 if classified through one]. */
const TABLE: ReadonlyArray<readonly [string, AddressClass, string?]> = [
  // IPv4
  ['8.8.8.8', 'public'],
  ['1.1.1.1', 'public'],
  ['93.184.216.34', 'public'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.15.255.255', 'public'],
  ['172.32.0.0', 'public'],
  ['192.168.1.1', 'private'],
  ['192.169.0.1', 'public'],
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['100.63.255.255', 'public'],
  ['100.128.0.0', 'public'],
  ['169.254.0.1', 'link-local'],
  ['169.254.169.254', 'metadata'],
  ['169.254.170.2', 'metadata'],
  ['100.100.100.200', 'metadata'],
  ['168.63.129.16', 'metadata'],
  ['192.0.0.192', 'metadata'],
  ['192.0.2.1', 'documentation'],
  ['198.51.100.7', 'documentation'],
  ['203.0.113.9', 'documentation'],
  ['192.0.0.8', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['198.19.255.255', 'reserved'],
  ['192.88.99.1', 'reserved'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.254', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  // IPv4 in legacy literal forms
  ['2130706433', 'loopback'],
  ['0x7f.1', 'loopback'],
  ['017700000001', 'loopback'],
  ['127.1', 'loopback'],
  ['10.1', 'private'],
  ['3232235777', 'private'],
  // IPv6
  ['::1', 'loopback'],
  ['::', 'unspecified'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['2001:4860:4860::8888', 'public'],
  ['2606:4700:4700::1111', 'public'],
  ['fe80::1', 'link-local'],
  ['febf:ffff::1', 'link-local'],
  ['fc00::1', 'unique-local'],
  ['fd12:3456::1', 'unique-local'],
  ['fd00:ec2::254', 'metadata'],
  ['fd00:ec2::23', 'metadata'],
  ['ff02::1', 'multicast'],
  ['ff05::2', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['3fff::1', 'documentation'],
  ['fec0::1', 'reserved'],
  ['100::1', 'reserved'],
  ['2001::1', 'reserved'],
  ['2001:2::1', 'reserved'],
  ['4000::1', 'reserved'],
  // IPv6 forms that carry an IPv4 address take its class
  ['::ffff:127.0.0.1', 'loopback', '127.0.0.1'],
  ['::ffff:7f00:1', 'loopback', '127.0.0.1'],
  ['::ffff:10.1.2.3', 'private', '10.1.2.3'],
  ['::ffff:8.8.8.8', 'public', '8.8.8.8'],
  ['::ffff:169.254.169.254', 'metadata', '169.254.169.254'],
  ['::127.0.0.1', 'loopback', '127.0.0.1'],
  ['::2', 'unspecified', '0.0.0.2'],
  ['::ffff:0:a00:1', 'private', '10.0.0.1'],
  ['64:ff9b::a9fe:a9fe', 'metadata', '169.254.169.254'],
  ['64:ff9b::808:808', 'public', '8.8.8.8'],
  ['64:ff9b:1::1', 'private'],
  ['2002:7f00:1::', 'loopback', '127.0.0.1'],
  ['2002:c0a8:101::1', 'private', '192.168.1.1'],
  ['2002:808:808::1', 'public', '8.8.8.8'],
];

test('classifies a table of more than 60 addresses into their classes', () => {
  assert.ok(TABLE.length >= 60, `table has ${TABLE.length} rows`);
  for (const [text, cls, embedded] of TABLE) {
    const info = classifyIp(text);
    assert.equal(info.class, cls, `${text} should be ${cls}, got ${info.class} (${info.range})`);
    assert.equal(info.embedded, embedded, `${text} embeds ${embedded ?? 'nothing'}`);
  }
});

test('classifies 169.254.169.254 as cloud metadata in every literal form', () => {
  for (const form of METADATA_FORMS) {
    assert.equal(classifyIp(form).class, 'metadata', form);
    // The URL parser agrees that each form is an IP literal, not a name.
    const host = new URL(`http://${form}/`).hostname;
    assert.ok(parseIp(host) !== null, `${form} -> ${host}`);
    assert.equal(classifyIp(host).class, 'metadata', `${form} as the URL parser prints it (${host})`);
  }
});

test('canonicalises IPv4 literal forms exactly as the WHATWG URL parser does', () => {
  const forms = ['127.0.0.1', '2130706433', '0177.0.0.1', '0x7f.1', '127.1', '0x7f000001', '127.0.0.1.', '1.256', '0', '0x', '00', '4294967295'];
  for (const f of forms) assert.equal(formatIp(parseIp(f)!), new URL(`http://${f}/`).hostname, f);
  for (const bad of ['1.2.3.4.5', '256.1.1.1', '0x100000000', '4294967296', '09', '1..2', '']) {
    assert.equal(parseIp(bad), null, `${bad} is not an IPv4 literal`);
  }
});

test('parses and prints IPv6 as the URL parser does, and refuses malformed or zoned forms', () => {
  const cases: Array<[string, string]> = [
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
    ['1:0:0:0:1:0:0:1', '1::1:0:0:1'],
    ['::ffff:127.0.0.1', '::ffff:7f00:1'],
    ['2001:DB8::A', '2001:db8::a'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
  ];
  for (const [input, out] of cases) {
    assert.equal(formatIp(parseIp(input)!), out, input);
    assert.equal(new URL(`http://[${input}]/`).hostname, `[${out}]`, `URL agrees on ${input}`);
  }
  for (const bad of ['fe80::1%eth0', ':::1', '1:2:3:4:5:6:7:8:9', '::ffff:1.2.3.4.5', '::127.0.0.01', '::1.2.3', '[::1', '12345::']) {
    assert.equal(parseIp(bad), null, bad);
  }
});

test('every IPv4 number written in decimal, hex or octal parses to the address the URL parser sees', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom('dec', 'hex', 'oct', 'dotted', 'short'), (n, style) => {
      const b = [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
      const text =
        style === 'dec' ? String(n) : style === 'hex' ? '0x' + n.toString(16) : style === 'oct' ? '0' + n.toString(8) : style === 'dotted' ? b.join('.') : `${b[0]}.${(n & 0xffffff) >>> 0}`;
      assert.equal(formatIp(parseIp(text)!), new URL(`http://${text}/`).hostname);
      assert.equal(formatIp(parseIp(text)!), b.join('.'));
    }),
  );
});

test('every IPv6 address prints in the canonical form the URL parser prints, and reads back to the same bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (bytes, sparse) => {
      // Sparse addresses exercise `::` compression.
      const b = sparse ? bytes.map((x, i) => (i % 6 < 3 ? 0 : x)) : bytes;
      const text = formatIp({ version: 6, bytes: b });
      assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`);
      assert.deepEqual(parseIp(text)?.bytes, b);
    }),
  );
});

test('parses CIDRs, refuses set host bits and out-of-range prefixes, and tests membership', () => {
  const ten = parseCidr('10.0.0.0/8');
  assert.ok(typeof ten !== 'string');
  assert.equal(formatCidr(ten), '10.0.0.0/8');
  assert.ok(cidrContains(ten, parseIp('10.200.3.4')!));
  assert.ok(!cidrContains(ten, parseIp('11.0.0.0')!));
  assert.ok(!cidrContains(ten, parseIp('::ffff:10.0.0.1')!), 'an IPv6 address is not in an IPv4 network until unmapped');
  assert.ok(cidrContains(ten, unmapIp(parseIp('::ffff:10.0.0.1')!)));
  const v6 = parseCidr('[fd00::/8]');
  assert.ok(typeof v6 !== 'string' && cidrContains(v6, parseIp('fdff::1')!));
  assert.equal(parseCidr('10.0.0.1/8'), 'host bits are set: did you mean 10.0.0.0/8?');
  assert.equal(parseCidr('10.0.0.0/33'), 'prefix length must be 0-32, got "33"');
  assert.equal(parseCidr('fd00::/129'), 'prefix length must be 0-128, got "129"');
  assert.match(parseCidr('10.1/16') as string, /dotted quad/);
  assert.match(parseCidr('example.com/8') as string, /not an IP address/);
  const all = parseCidr('0.0.0.0/0');
  assert.ok(typeof all !== 'string' && cidrContains(all, parseIp('203.0.113.1')!));
});

test('classifyIp refuses text that is not an address', () => {
  assert.throws(() => classifyIp('example.com'), TypeError);
});
