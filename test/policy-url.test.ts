import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { canonicaliseUrl } from '../src/policy/index.ts';

function refused(url: string, message: RegExp): void {
  assert.throws(
    () => canonicaliseUrl(url),
    (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.INVALID_ARGUMENT && message.test(e.message),
    url,
  );
}

test('reduces a URL to scheme, host and port, with the default port filled in', () => {
  const u = canonicaliseUrl('HTTPS://API.Example.COM/v1?q=1#f');
  assert.equal(u.scheme, 'https');
  assert.equal(u.host, 'api.example.com');
  assert.equal(u.port, 443);
  assert.equal(u.hostKind, 'name');
  assert.equal(u.origin, 'https://api.example.com:443');
  assert.equal(u.href, 'https://api.example.com/v1?q=1#f');
  assert.equal(canonicaliseUrl('http://a.test:8080').port, 8080);
  assert.equal(canonicaliseUrl('http://a.test:80').port, 80);
  assert.equal(canonicaliseUrl('https://a.test:443/').origin, 'https://a.test:443');
});

test('takes punycode names and refuses raw international ones, as the live path does, saying to use the xn-- form', () => {
  assert.equal(canonicaliseUrl('https://xn--bcher-kva.example/').host, 'xn--bcher-kva.example');
  assert.equal(canonicaliseUrl('https://XN--BCHER-KVA.example/').host, 'xn--bcher-kva.example');
  refused('https://bücher.example/', /xn-- form/);
  refused('https://BÜCHER.example/', /xn-- form/);
  // Full-width letters would be IDNA-mapped to ASCII by a URL parser: refused, never mapped.
  refused('https://ｅｘａｍｐｌｅ.com/', /xn-- form/);
});

test('refuses a trailing dot and empty labels, saying which', () => {
  refused('https://api.example.com./x', /must not end with a dot/);
  refused('https://api..example.com/', /not a valid DNS name/);
  refused('https://api.example.com../', /not a valid DNS name|must not end with a dot/);
});

test('takes an IPv4 literal written a.b.c.d, and refuses every other spelling of it saying how to write it', () => {
  const u = canonicaliseUrl('http://127.0.0.1:8080/');
  assert.equal(u.host, '127.0.0.1');
  assert.equal(u.hostKind, 'ipv4');
  assert.equal(u.address?.class, 'loopback');
  for (const form of ['2130706433', '0177.0.0.1', '0x7f.1', '127.1']) refused(`http://${form}:8080/`, /four decimal numbers/);
  refused('http://127.0.0.1.:8080/', /four decimal numbers|must not end with a dot|IPv4/);
  const v6 = canonicaliseUrl('http://[0:0:0:0:0:ffff:7f00:0001]/');
  assert.equal(v6.host, '::ffff:7f00:1');
  assert.equal(v6.hostKind, 'ipv6');
  assert.equal(v6.origin, 'http://[::ffff:7f00:1]:80');
  assert.equal(v6.address?.embedded, '127.0.0.1');
});

test('marks localhost and names under .localhost as loopback names', () => {
  assert.equal(canonicaliseUrl('http://localhost:3000/').loopbackName, true);
  assert.equal(canonicaliseUrl('http://LOCALHOST/').loopbackName, true);
  assert.equal(canonicaliseUrl('http://api.localhost/').loopbackName, true);
  assert.equal(canonicaliseUrl('http://localhost.example.com/').loopbackName, false);
});

test('refuses userinfo, other schemes, controls, spaces and garbage', () => {
  refused('https://user:pw@api.example.com/', /userinfo/);
  refused('https://user@api.example.com/', /userinfo/);
  refused('https://api.example.com@evil.test/', /userinfo/);
  refused('ftp://example.com/', /only http: and https:/);
  refused('file:///etc/passwd', /only http: and https:/);
  refused('javascript:alert(1)', /only http: and https:/);
  refused('ws://example.com/', /only http: and https:/);
  refused('https://exa\nmple.com/', /control character/);
  refused('https://exa\tmple.com/', /control character/);
  refused(' https://example.com/', /control character/);
  refused('https://example.com/\0', /control character/);
  refused('/relative/path', /must be absolute/);
});

test('an absolute URL that is malformed is refused with what is wrong, not as "not absolute"', () => {
  const cases: Array<[string, RegExp]> = [
    ['http://256.0.0.1/', /host "256\.0\.0\.1" is not a valid IPv4 address/],
    ['http://[::1/', /malformed IPv6 address \(no closing "\]"\)/],
    ['http://[::1]x/', /after its IPv6 address that is not a port/],
    ['http://[::zz]/', /malformed IPv6 address/],
    ['https://example.com:99999/', /port must be 1-65535/],
    ['https://example.com:8o/', /port "8o" is not a number/],
    ['http://exa<mple.com/', /contains a character a host name may not have/],
    ['http://0x7f.1/', /four decimal numbers/],
    ['http://a.test:0/', /port must be 1-65535/],
  ];
  for (const [url, message] of cases) {
    refused(url, message);
    assert.throws(() => canonicaliseUrl(url), (e: unknown) => e instanceof AuthorityError && !/absolute/.test(e.message), url);
  }
  refused('https://' + 'a'.repeat(9000) + '.com/', /longer than/);
});
