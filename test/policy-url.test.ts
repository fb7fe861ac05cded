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

test('maps internationalised names to punycode', () => {
  assert.equal(canonicaliseUrl('https://bücher.example/').host, 'xn--bcher-kva.example');
  assert.equal(canonicaliseUrl('https://BÜCHER.example/').host, 'xn--bcher-kva.example');
  assert.equal(canonicaliseUrl('https://xn--bcher-kva.example/').host, 'xn--bcher-kva.example');
  // Full-width letters are IDNA-mapped to ASCII, so they cannot dodge a rule.
  assert.equal(canonicaliseUrl('https://ｅｘａｍｐｌｅ.com/').host, 'example.com');
});

test('drops one trailing dot on a host name for matching, and refuses empty labels', () => {
  const u = canonicaliseUrl('https://api.example.com./x');
  assert.equal(u.host, 'api.example.com');
  assert.equal(u.origin, 'https://api.example.com:443');
  refused('https://api..example.com/', /empty label/);
  refused('https://api.example.com../', /empty label/);
});

test('canonicalises IP literal hosts in every legacy form', () => {
  for (const form of ['127.0.0.1', '2130706433', '0177.0.0.1', '0x7f.1', '127.1', '127.0.0.1.']) {
    const u = canonicaliseUrl(`http://${form}:8080/`);
    assert.equal(u.host, '127.0.0.1', form);
    assert.equal(u.hostKind, 'ipv4');
    assert.equal(u.address?.class, 'loopback');
  }
  const v6 = canonicaliseUrl('http://[0:0:0:0:0:ffff:7f00:0001]/');
  assert.equal(v6.host, '::ffff:7f00:1');
  assert.equal(v6.hostKind, 'ipv6');
  assert.equal(v6.origin, 'http://[::ffff:7f00:1]:80');
  assert.equal(v6.address?.embedded, '127.0.0.1');
});

test('marks localhost and names under .localhost as loopback names', () => {
  assert.equal(canonicaliseUrl('http://localhost:3000/').loopbackName, true);
  assert.equal(canonicaliseUrl('http://LOCALHOST./').loopbackName, true);
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
  refused('/relative/path', /not an absolute URL/);
  refused('http://256.0.0.1/', /not an absolute URL/);
  refused('http://[::1/', /not an absolute URL/);
  refused('https://example.com:99999/', /not an absolute URL/);
  refused('https://' + 'a'.repeat(9000) + '.com/', /longer than/);
});
