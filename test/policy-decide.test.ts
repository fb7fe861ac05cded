import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCode } from '../src/errors.ts';
import { FS_OPS, loadPolicy, toPolicyRequest, type PolicyDecision, type PolicyRequest } from '../src/policy/index.ts';
import { METADATA_FORMS } from './fixtures/policies/addresses.ts';

const policyOf = (doc: Record<string, unknown>) => loadPolicy({ version: '1.0', ...doc }).policy;

function allows(d: PolicyDecision, rule?: string): void {
  assert.equal(d.allow, true, `expected allow, got: ${d.reason}`);
  if (rule !== undefined) assert.equal(d.rule, rule);
}

function denies(d: PolicyDecision, code: string = ErrorCode.POLICY_DENY): void {
  assert.equal(d.allow, false, `expected deny, got: ${d.reason}`);
  assert.equal(d.allow === false && d.code, code, d.reason);
}

// ------------------------------------------------------------- default

test('an empty policy denies every operation', () => {
  const empty = policyOf({});
  const requests: PolicyRequest[] = [
    ...FS_OPS.map((op) => ({ op, path: '/data/a.txt' })),
    ...FS_OPS.map((op) => ({ op, path: '/' })),
    { op: 'http.fetch', url: 'https://api.example.com/' },
    { op: 'http.fetch', url: 'http://127.0.0.1:8080/' },
    { op: 'http.fetch', url: 'http://localhost/' },
    { op: 'secrets.get', name: 'WEATHER_KEY' },
    { op: 'secrets.use', name: 'WEATHER_KEY', url: 'https://api.weather.test/' },
    { op: 'tool.invoke', name: 'word-count' },
  ];
  for (const r of requests) denies(empty.decide(r));
  assert.equal(empty.decide({ op: 'fs.read', path: '/etc/passwd' }).reason, 'no fs.read rule matches /etc/passwd (the policy has no fs.read rules)');
  assert.equal(empty.decide({ op: 'tool.invoke', name: 'wc' }).reason, 'no tools.allow rule matches wc (the policy has no tools.allow rules)');
  assert.equal(empty.decide({ op: 'http.fetch', url: 'https://a.example/' }).reason, 'no net.connect rule matches https://a.example:443 (the policy has no net.connect rules)');
  assert.equal(empty.decide({ op: 'secrets.get', name: 'K' }).reason, 'no secrets entry is named K');
});

test('an empty policy denies any request at all, and never throws', () => {
  const empty = policyOf({});
  const req = fc.oneof(
    fc.record({ op: fc.constantFrom(...FS_OPS), path: fc.oneof(fc.string(), fc.string().map((s) => '/' + s)) }),
    fc.record({ op: fc.constant('http.fetch' as const), url: fc.oneof(fc.webUrl(), fc.string()), method: fc.constantFrom('GET', 'POST', 'x y') }),
    fc.record({ op: fc.constant('secrets.get' as const), name: fc.string() }),
    fc.record({ op: fc.constant('secrets.use' as const), name: fc.string(), url: fc.webUrl() }),
    fc.record({ op: fc.constant('tool.invoke' as const), name: fc.string() }),
  );
  fc.assert(
    fc.property(req, (r) => {
      const d = empty.decide(r as PolicyRequest);
      assert.equal(d.allow, false);
      assert.ok(d.reason.length > 0);
    }),
  );
});

test('an unknown operation is denied as invalid', () => {
  denies(policyOf({ fs: { read: ['/**'] } }).decide({ op: 'fs.chmod', path: '/a' } as unknown as PolicyRequest), ErrorCode.INVALID_ARGUMENT);
});

// ------------------------------------------------------------------ fs

const fsPolicy = policyOf({
  fs: {
    read: ['/data/**', '/etc/hosts', '/srv/{a,b}/**'],
    write: ['/data/out/**', '/data/tmp/*.txt'],
    deny: ['/data/**/.env', '/data/secret/**'],
  },
});

test('fs.read covers read, stat and list; fs.write covers write and remove', () => {
  for (const op of ['fs.read', 'fs.stat', 'fs.list'] as const) allows(fsPolicy.decide({ op, path: '/data/in/a.txt' }), 'fs.read[0]');
  for (const op of ['fs.write', 'fs.remove'] as const) {
    allows(fsPolicy.decide({ op, path: '/data/out/a.txt' }), 'fs.write[0]');
    const d = fsPolicy.decide({ op, path: '/data/in/a.txt' });
    denies(d);
    assert.equal(d.reason, op === 'fs.write' ? 'no fs.write rule matches /data/in/a.txt' : 'no fs.write rule matches /data/in/a.txt (fs.remove needs fs.write)');
  }
  // Reading is not implied by writing, nor writing by reading.
  const writeOnly = policyOf({ fs: { write: ['/w/**'] } });
  denies(writeOnly.decide({ op: 'fs.read', path: '/w/a' }));
  assert.equal(fsPolicy.decide({ op: 'fs.list', path: '/etc' }).reason, 'no fs.read rule matches /etc (fs.list needs fs.read)');
});

test('explains an allow by its rule, and gives the canonical target and the literal root', () => {
  const d = fsPolicy.decide({ op: 'fs.read', path: '/data//in/../in/a.txt/' });
  assert.deepEqual(d, { allow: true, reason: "fs.read[0] '/data/**' allows fs.read of /data/in/a.txt", rule: 'fs.read[0]', target: '/data/in/a.txt', root: '/data' });
  assert.equal(fsPolicy.decide({ op: 'fs.read', path: '/etc/hosts' }).root, '/etc');
  assert.equal(fsPolicy.decide({ op: 'fs.read', path: '/srv/b/x/y' }).root, '/srv/b');
  assert.equal(fsPolicy.decide({ op: 'fs.write', path: '/data/tmp/n.txt' }).root, '/data/tmp');
});

test('denies a read outside the allowed glob, naming the missing rule', () => {
  const d = fsPolicy.decide({ op: 'fs.read', path: '/etc/passwd' });
  denies(d);
  assert.equal(d.reason, 'no fs.read rule matches /etc/passwd');
});

test('decides on the canonical path: .. cannot climb out, // and trailing slashes change nothing', () => {
  const up = fsPolicy.decide({ op: 'fs.read', path: '/data/../etc/passwd' });
  denies(up);
  assert.equal(up.reason, 'no fs.read rule matches /etc/passwd');
  denies(fsPolicy.decide({ op: 'fs.read', path: '/data/in/../../etc/passwd' }));
  denies(fsPolicy.decide({ op: 'fs.read', path: '/data/./secret//key/' }));
  allows(fsPolicy.decide({ op: 'fs.read', path: '//data///in//a.txt' }));
  allows(fsPolicy.decide({ op: 'fs.read', path: '/data/in/a.txt/.' }));
  // Prefix tricks: /database is not /data.
  denies(fsPolicy.decide({ op: 'fs.read', path: '/database/x' }));
  denies(fsPolicy.decide({ op: 'fs.read', path: '/Data/x' }));
});

test('refuses NUL bytes and relative paths as invalid, never as allowed', () => {
  denies(fsPolicy.decide({ op: 'fs.read', path: '/data/a.txt\0/../../etc/passwd' }), ErrorCode.INVALID_ARGUMENT);
  denies(fsPolicy.decide({ op: 'fs.read', path: 'data/a.txt' }), ErrorCode.INVALID_ARGUMENT);
  denies(fsPolicy.decide({ op: 'fs.read', path: 42 as unknown as string }), ErrorCode.INVALID_ARGUMENT);
});

test('a deny rule wins over an allow rule and says which rule denied', () => {
  const d = fsPolicy.decide({ op: 'fs.read', path: '/data/a/b/.env' });
  denies(d);
  assert.equal(d.reason, "fs.deny[0] '/data/**/.env' matches /data/a/b/.env");
  assert.equal(d.rule, 'fs.deny[0]');
  assert.equal(fsPolicy.decide({ op: 'fs.write', path: '/data/out/.env' }).rule, 'fs.deny[0]');
  assert.equal(fsPolicy.decide({ op: 'fs.list', path: '/data/secret' }).rule, 'fs.deny[1]', 'the folder of a /** deny is denied too');
});

test('matches dotfiles like any file (a glob must not miss .ssh)', () => {
  allows(fsPolicy.decide({ op: 'fs.read', path: '/data/.hidden/x' }));
  const home = policyOf({ fs: { read: ['/home/**'], deny: ['/home/*/.ssh/**'] } });
  denies(home.decide({ op: 'fs.read', path: '/home/u/.ssh/id_ed25519' }));
});

test('a folder glob /x/** also matches the folder itself for reading, but not for writing', () => {
  allows(fsPolicy.decide({ op: 'fs.list', path: '/data' }), 'fs.read[0]');
  assert.equal(fsPolicy.decide({ op: 'fs.list', path: '/data' }).root, '/data');
  denies(fsPolicy.decide({ op: 'fs.remove', path: '/data/out' }));
  allows(fsPolicy.decide({ op: 'fs.remove', path: '/data/out/x' }));
  const root = policyOf({ fs: { read: ['/**'] } });
  allows(root.decide({ op: 'fs.list', path: '/' }));
  assert.equal(root.decide({ op: 'fs.read', path: '/etc/passwd' }).root, '/');
});

test('reports the first matching rule in the order written', () => {
  const p = policyOf({ fs: { read: ['/a/b/**', '/a/**', '/a/b/c'] } });
  assert.equal(p.decide({ op: 'fs.read', path: '/a/b/c' }).rule, 'fs.read[0]');
  assert.equal(p.decide({ op: 'fs.read', path: '/a/x' }).rule, 'fs.read[1]');
  const q = policyOf({ fs: { read: ['/a/b/c', '/a/**'] } });
  assert.equal(q.decide({ op: 'fs.read', path: '/a/b/c' }).rule, 'fs.read[0]');
});

test('matches brace, class and extglob patterns', () => {
  const p = policyOf({ fs: { read: ['/logs/{app,web}-[0-9][0-9].log', '/img/*.+(png|jpg)'] } });
  allows(p.decide({ op: 'fs.read', path: '/logs/app-07.log' }));
  allows(p.decide({ op: 'fs.read', path: '/logs/web-99.log' }));
  denies(p.decide({ op: 'fs.read', path: '/logs/db-01.log' }));
  denies(p.decide({ op: 'fs.read', path: '/logs/app-1.log' }));
  allows(p.decide({ op: 'fs.read', path: '/img/cat.jpg' }));
  denies(p.decide({ op: 'fs.read', path: '/img/cat.gif' }));
  denies(p.decide({ op: 'fs.read', path: '/img/sub/cat.jpg' }), ErrorCode.POLICY_DENY);
});

// ---------------------------------------------------------------- http

const netPolicy = policyOf({
  net: {
    connect: [
      'https://api.example.com:443',
      'http://127.0.0.1:*',
      'https://*.cdn.example',
      'http://intranet.example:8000-8099',
      'https://bücher.example',
      'http://[10.0.0.0/8]:9000',
      'http://[::1]:*',
      { url: 'https://upload.example', methods: ['POST', 'put'] },
      { url: 'http://db.internal.example:5984', resolves_to: ['10.1.0.0/16', 'fd00::/8'] },
      'http://localhost:3000',
    ],
  },
});

const fetch = (url: string, method?: string) => netPolicy.decide({ op: 'http.fetch', url, method });

test('matches the scheme exactly and the port as written, or the scheme default when omitted', () => {
  allows(fetch('https://api.example.com/v1'), 'net.connect[0]');
  allows(fetch('https://api.example.com:443/v1'), 'net.connect[0]');
  denies(fetch('http://api.example.com/v1'));
  denies(fetch('https://api.example.com:8443/v1'));
  allows(fetch('https://x.cdn.example/'));
  denies(fetch('https://x.cdn.example:444/'), ErrorCode.POLICY_DENY);
  allows(fetch('http://intranet.example:8000/'));
  allows(fetch('http://intranet.example:8099/'));
  denies(fetch('http://intranet.example:8100/'));
  denies(fetch('http://intranet.example/'));
  assert.equal(fetch('https://api.example.com:8443/').reason, 'no net.connect rule matches https://api.example.com:8443');
});

test('explains an http allow by its rule and gives the URL to use', () => {
  assert.deepEqual(fetch('https://API.example.com/v1?q=1'), {
    allow: true,
    reason: "net.connect[0] 'https://api.example.com:443' allows GET https://api.example.com:443",
    rule: 'net.connect[0]',
    target: 'https://api.example.com/v1?q=1',
  });
  // A trailing dot is what the live path refuses, so the decision refuses it too, saying so.
  const dot = fetch('https://api.example.com./v1');
  denies(dot, ErrorCode.INVALID_ARGUMENT);
  assert.match(dot.reason, /must not end with a dot/);
});

test('matches a wildcard on subdomains only, never on the bare domain or a lookalike', () => {
  allows(fetch('https://a.cdn.example/'));
  allows(fetch('https://a.b.cdn.example/'));
  denies(fetch('https://cdn.example/'));
  denies(fetch('https://evilcdn.example/'));
  denies(fetch('https://cdn.example.evil.test/'));
  denies(fetch('https://a.cdn.example.evil.test/'));
});

test('compares hosts after IDNA: a rule in Unicode matches the punycode URL; a raw Unicode URL is refused as the live path refuses it', () => {
  allows(fetch('https://xn--bcher-kva.example/'), 'net.connect[4]');
  allows(fetch('https://XN--BCHER-KVA.example/'), 'net.connect[4]');
  const raw = fetch('https://BÜCHER.example/');
  denies(raw, ErrorCode.INVALID_ARGUMENT);
  assert.match(raw.reason, /xn-- form/);
  const puny = policyOf({ net: { connect: ['https://xn--bcher-kva.example'] } });
  allows(puny.decide({ op: 'http.fetch', url: 'https://xn--bcher-kva.example/' }));
  denies(puny.decide({ op: 'http.fetch', url: 'https://bücher.example/' }), ErrorCode.INVALID_ARGUMENT);
  denies(puny.decide({ op: 'http.fetch', url: 'https://bucher.example/' }));
});

test('a rule naming an IP literal admits that address in its canonical forms; other spellings are refused as the live path refuses them', () => {
  for (const form of ['127.0.0.1', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]']) {
    allows(fetch(`http://${form}:8080/`), 'net.connect[1]');
  }
  for (const form of ['2130706433', '0177.0.0.1', '0x7f.1', '127.1', '0x7f000001']) {
    const d = fetch(`http://${form}:8080/`);
    denies(d, ErrorCode.INVALID_ARGUMENT);
    assert.match(d.reason, /four decimal numbers/, form);
  }
  // Other loopback addresses, and IPv6 forms that reach another machine, are not it.
  for (const form of ['127.0.0.2', '[64:ff9b::7f00:1]', '[2002:7f00:1::]', '[::127.0.0.1]']) denies(fetch(`http://${form}:8080/`));
  allows(fetch('http://[0:0:0:0:0:0:0:1]:5000/'), 'net.connect[6]');
});

test('a CIDR rule admits the addresses in its network only', () => {
  allows(fetch('http://10.1.2.3:9000/'), 'net.connect[5]');
  denies(fetch('http://012.0.0.1:9000/'), ErrorCode.INVALID_ARGUMENT);
  denies(fetch('http://10.1.2.3:9001/'));
  denies(fetch('http://11.0.0.1:9000/'));
});

test('checks methods when a rule lists them', () => {
  allows(fetch('https://upload.example/', 'POST'), 'net.connect[7]');
  allows(fetch('https://upload.example/', 'put'), 'net.connect[7]');
  const d = fetch('https://upload.example/', 'DELETE');
  denies(d);
  assert.equal(d.reason, "net.connect[7] 'https://upload.example' matches https://upload.example:443 but not method DELETE (it allows POST, PUT)");
  denies(fetch('https://upload.example/', 'GET / HTTP/1.1'), ErrorCode.INVALID_ARGUMENT);
});

test('a wildcard host never admits a non-public address or a loopback name', () => {
  const any = policyOf({ net: { connect: ['http://*:*', 'https://*:*'] } });
  const get = (url: string) => any.decide({ op: 'http.fetch', url });
  allows(get('https://example.com/'));
  allows(get('http://93.184.216.34/'));
  allows(get('http://[2606:4700:4700::1111]/'));
  for (const url of ['http://127.0.0.1/', 'http://10.0.0.1/', 'http://192.168.0.1/', 'http://[::1]/', 'http://[fe80::1]/', 'http://0.0.0.0/', 'http://100.64.0.1/', 'http://[fd00::1]/', 'http://localhost/', 'http://a.localhost/', 'http://224.0.0.1/']) {
    denies(get(url));
  }
  denies(get('http://0x7f.1:8080/'), ErrorCode.INVALID_ARGUMENT);
  const d = get('http://127.0.0.1:8080/');
  assert.equal(d.reason, 'http://127.0.0.1:8080: 127.0.0.1 is loopback (127.0.0.0/8), and no net.connect rule names it (a wildcard host never admits a non-public address; name it, e.g. http://127.0.0.1:8080)');
  assert.equal(get('http://localhost:3000/').reason, 'http://localhost:3000: localhost is a loopback name, and no net.connect rule names it (a wildcard host never admits it)');
});

test('denies 169.254.169.254 in every literal form under a wildcard policy', () => {
  const any = policyOf({ net: { connect: ['http://*:*'] } });
  // Every form is denied: the canonical ones as the metadata address, every other spelling as a
  // malformed URL (what the live path says of it), never allowed.
  const asMetadata: string[] = [];
  for (const form of METADATA_FORMS) {
    const d = any.decide({ op: 'http.fetch', url: `http://${form}/latest/meta-data/` });
    assert.equal(d.allow, false, form);
    if (d.allow) continue;
    if (d.code === ErrorCode.INVALID_ARGUMENT) continue;
    denies(d);
    assert.match(d.reason, /cloud metadata address/, form);
    asMetadata.push(form);
  }
  assert.ok(asMetadata.includes('169.254.169.254') && asMetadata.includes('[::ffff:a9fe:a9fe]'), asMetadata.join(' '));
});

test('a rule naming 169.254.169.254 admits it and its IPv4-mapped form, but not NAT64, 6to4 or compatible forms', () => {
  const p = policyOf({ net: { connect: ['http://169.254.169.254:80'] } });
  const allowed = METADATA_FORMS.filter((form) => p.decide({ op: 'http.fetch', url: `http://${form}/` }).allow);
  // Legacy IPv4 spellings are refused as malformed (by the decision as by the live path).
  assert.deepEqual(allowed, [
    '169.254.169.254',
    '[::ffff:169.254.169.254]',
    '[::ffff:a9fe:a9fe]',
    '[0:0:0:0:0:ffff:a9fe:a9fe]',
    '[0000:0000:0000:0000:0000:FFFF:A9FE:A9FE]',
  ]);
  for (const other of ['[::169.254.169.254]', '[::ffff:0:a9fe:a9fe]', '[64:ff9b::169.254.169.254]', '[2002:a9fe:a9fe::]']) {
    assert.match(p.decide({ op: 'http.fetch', url: `http://${other}/` }).reason, /cloud metadata address .*form of 169\.254\.169\.254/, other);
  }
});

test('treats localhost as loopback: only a rule naming it admits it', () => {
  allows(fetch('http://localhost:3000/'), 'net.connect[9]');
  allows(fetch('http://LOCALHOST:3000/'), 'net.connect[9]');
  denies(fetch('http://LOCALHOST.:3000/'), ErrorCode.INVALID_ARGUMENT);
  denies(fetch('http://localhost:3001/'));
  denies(fetch('http://api.localhost:3000/'));
});

test('refuses malformed URLs as invalid, and never throws', () => {
  for (const url of ['not a url', 'https://u:p@api.example.com/', 'ftp://api.example.com/', 'https://api.example.com/\n']) {
    denies(fetch(url), ErrorCode.INVALID_ARGUMENT);
  }
});

// ------------------------------------------------------------- address

test('admits any public address a matched name resolves to', () => {
  const d = netPolicy.decideAddress('https://api.example.com/v1', '93.184.216.34');
  allows(d, 'net.connect[0]');
  assert.equal(d.reason, "93.184.216.34 is public; net.connect[0] 'https://api.example.com:443' matches https://api.example.com:443");
  allows(netPolicy.decideAddress('https://api.example.com/', '2606:4700:4700::1111'));
});

test('denies a name that resolves to a non-public address unless a rule names that address', () => {
  const d = netPolicy.decideAddress('https://api.example.com/', '127.0.0.1');
  denies(d);
  assert.equal(d.reason, "api.example.com resolved to 127.0.0.1, which is loopback (127.0.0.0/8): net.connect[0] 'https://api.example.com:443' does not name it; add it to the rule's resolves_to to allow it");
  denies(netPolicy.decideAddress('https://x.cdn.example/', '10.0.0.1'));
  assert.match(netPolicy.decideAddress('https://x.cdn.example/', '10.0.0.1').reason, /a wildcard host never admits a non-public address/);
  denies(netPolicy.decideAddress('https://api.example.com/', '169.254.169.254'));
  denies(netPolicy.decideAddress('https://api.example.com/', '::ffff:169.254.169.254'));
  denies(netPolicy.decideAddress('https://api.example.com/', '64:ff9b::a9fe:a9fe'));
  denies(netPolicy.decideAddress('https://api.example.com/', 'fe80::1'));
});

test('resolves_to admits exactly the networks it lists', () => {
  const url = 'http://db.internal.example:5984/';
  allows(netPolicy.decideAddress(url, '10.1.200.3'), 'net.connect[8]');
  allows(netPolicy.decideAddress(url, '::ffff:10.1.0.9'), 'net.connect[8]');
  allows(netPolicy.decideAddress(url, 'fd12::5'), 'net.connect[8]');
  allows(netPolicy.decideAddress(url, '8.8.8.8'), 'net.connect[8]');
  denies(netPolicy.decideAddress(url, '10.2.0.1'));
  denies(netPolicy.decideAddress(url, '127.0.0.1'));
});

test('a localhost rule admits loopback addresses only', () => {
  const url = 'http://localhost:3000/';
  for (const ip of ['127.0.0.1', '127.0.1.1', '::1', '::ffff:127.0.0.1']) allows(netPolicy.decideAddress(url, ip), 'net.connect[9]');
  for (const ip of ['10.0.0.1', '169.254.169.254', '64:ff9b::7f00:1']) denies(netPolicy.decideAddress(url, ip));
});

test('for an IP literal URL, only its own address passes the address check', () => {
  allows(netPolicy.decideAddress('http://127.0.0.1:8080/', '127.0.0.1'));
  allows(netPolicy.decideAddress('http://[::ffff:127.0.0.1]:8080/', '127.0.0.1'));
  const d = netPolicy.decideAddress('http://127.0.0.1:8080/', '10.0.0.1');
  denies(d);
  assert.equal(d.reason, '10.0.0.1 is not the address 127.0.0.1 names');
});

test('the address check refuses bad input and URLs no rule matches', () => {
  denies(netPolicy.decideAddress('https://api.example.com/', 'localhost'), ErrorCode.INVALID_ARGUMENT);
  denies(netPolicy.decideAddress('gopher://x/', '1.2.3.4'), ErrorCode.INVALID_ARGUMENT);
  assert.equal(netPolicy.decideAddress('https://other.example/', '1.2.3.4').reason, 'no net.connect rule matches https://other.example:443');
});

// ------------------------------------------------------------- secrets

const secretPolicy = policyOf({
  net: { connect: ['https://*'] },
  secrets: {
    WEATHER_KEY: { hosts: ['api.weather.test'] },
    LOCAL_TOKEN: { hosts: ['http://127.0.0.1:8080'], reveal: true },
    CDN: { hosts: ['*.cdn.example', '*'] },
    READABLE: { reveal: true },
  },
});

test('secrets.get needs reveal: true', () => {
  const d = secretPolicy.decide({ op: 'secrets.get', name: 'WEATHER_KEY' });
  denies(d);
  assert.equal(d.reason, 'secrets.WEATHER_KEY.reveal is false: a tool may use it only as a {{secret:WEATHER_KEY}} placeholder');
  allows(secretPolicy.decide({ op: 'secrets.get', name: 'READABLE' }), 'secrets.READABLE.reveal');
  allows(secretPolicy.decide({ op: 'secrets.get', name: 'LOCAL_TOKEN' }));
  assert.equal(secretPolicy.decide({ op: 'secrets.get', name: 'NOPE' }).reason, 'no secrets entry is named NOPE');
  denies(secretPolicy.decide({ op: 'secrets.get', name: '../etc' }), ErrorCode.INVALID_ARGUMENT);
});

test('secrets.use allows a placeholder only for the secret hosts, https on any port for a bare host', () => {
  const use = (name: string, url: string) => secretPolicy.decide({ op: 'secrets.use', name, url });
  const d = use('WEATHER_KEY', 'https://api.weather.test/v1');
  allows(d, 'secrets.WEATHER_KEY.hosts[0]');
  assert.equal(d.reason, "secrets.WEATHER_KEY.hosts[0] 'api.weather.test' matches https://api.weather.test:443");
  allows(use('WEATHER_KEY', 'https://api.weather.test:8443/'));
  const plain = use('WEATHER_KEY', 'http://api.weather.test/');
  denies(plain);
  assert.equal(plain.reason, 'no secrets.WEATHER_KEY.hosts entry matches http://api.weather.test:80');
  denies(use('WEATHER_KEY', 'https://evil.test/'));
  denies(use('WEATHER_KEY', 'https://api.weather.test.evil.test/'));
  allows(use('LOCAL_TOKEN', 'http://127.0.0.1:8080/x'));
  denies(use('LOCAL_TOKEN', 'http://127.0.0.1:8081/x'));
  denies(use('READABLE', 'https://api.weather.test/'));
  assert.equal(use('READABLE', 'https://a.test/').reason, 'no secrets.READABLE.hosts entry matches https://a.test:443 (it has no hosts)');
});

test('a wildcard secret host never sends the secret to a non-public address', () => {
  const use = (url: string) => secretPolicy.decide({ op: 'secrets.use', name: 'CDN', url });
  allows(use('https://a.cdn.example/'), 'secrets.CDN.hosts[0]');
  allows(use('https://anything.test/'), 'secrets.CDN.hosts[1]');
  denies(use('https://169.254.169.254/'));
  denies(use('https://127.0.0.1/'));
  denies(use('https://localhost/'));
});

// --------------------------------------------------------------- tools

const toolPolicy = policyOf({ tools: { allow: ['*'], deny: ['shell-*', 'rm'] } });

test('a tool deny wins and names the rule; an allow names the rule too', () => {
  const d = toolPolicy.decide({ op: 'tool.invoke', name: 'shell-exec' });
  denies(d);
  assert.equal(d.reason, "tools.deny[0] 'shell-*' matches shell-exec");
  assert.equal(toolPolicy.decide({ op: 'tool.invoke', name: 'rm' }).rule, 'tools.deny[1]');
  const a = toolPolicy.decide({ op: 'tool.invoke', name: 'word-count' });
  allows(a, 'tools.allow[0]');
  assert.equal(a.reason, "tools.allow[0] '*' matches word-count");
  const listed = policyOf({ tools: { allow: ['wc', 'fetch-*'] } });
  allows(listed.decide({ op: 'tool.invoke', name: 'fetch-weather' }), 'tools.allow[1]');
  assert.equal(listed.decide({ op: 'tool.invoke', name: 'grep' }).reason, 'no tools.allow rule matches grep');
});

test('tool names are matched exactly, case and all, and bad names are invalid', () => {
  allows(toolPolicy.decide({ op: 'tool.invoke', name: 'Shell-exec' }), 'tools.allow[0]');
  for (const name of ['', 'a b', 'a/b', 'x'.repeat(65), 'shell-*']) denies(toolPolicy.decide({ op: 'tool.invoke', name }), ErrorCode.INVALID_ARGUMENT);
});

test('repeated tool decisions are the same frozen value', () => {
  const a = toolPolicy.decide({ op: 'tool.invoke', name: 'wc' });
  const b = toolPolicy.decide({ op: 'tool.invoke', name: 'wc' });
  assert.equal(a, b);
  assert.ok(Object.isFrozen(a));
});

test('maps a gate host call to the request the policy decides', () => {
  const p = policyOf({ fs: { write: ['/out/**'] }, net: { connect: [{ url: 'https://api.example.com', methods: ['POST'] }] }, secrets: { K: { reveal: true } } });
  allows(p.decide(toPolicyRequest({ op: 'fs.write', path: '/out/a', data: new Uint8Array(1) })));
  denies(p.decide(toPolicyRequest({ op: 'fs.read', path: '/out/a' })));
  allows(p.decide(toPolicyRequest({ op: 'http.fetch', method: 'POST', url: 'https://api.example.com/x', headers: [] })));
  denies(p.decide(toPolicyRequest({ op: 'http.fetch', method: 'GET', url: 'https://api.example.com/x', headers: [] })));
  allows(p.decide(toPolicyRequest({ op: 'secrets.get', name: 'K' })));
});
