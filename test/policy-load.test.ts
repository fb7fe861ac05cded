import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthorityError, ErrorCode } from '../src/errors.ts';
import { DEFAULT_CAPS, loadPolicy, loadPolicyFile, parsePolicy, type PolicyIssue } from '../src/policy/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'authority-policy-load-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The issues of a policy that must not load. */
function issues(doc: unknown): PolicyIssue[] {
  try {
    loadPolicy(doc);
  } catch (e) {
    assert.ok(e instanceof AuthorityError, 'an AuthorityError');
    assert.equal(e.code, ErrorCode.POLICY_INVALID);
    const list = e.data?.['issues'] as PolicyIssue[];
    assert.ok(Array.isArray(list) && list.length > 0, 'data.issues lists the problems');
    for (const i of list) assert.ok(e.message.includes(`${i.path}: ${i.message}`), `the message names ${i.path}`);
    return list;
  }
  assert.fail(`expected ${JSON.stringify(doc)} to be refused`);
}

function rejects(fragment: Record<string, unknown>, path: string, message: string | RegExp): void {
  const list = issues({ version: '1.0', ...fragment });
  const hit = list.find((i) => i.path === path);
  assert.ok(hit !== undefined, `expected a problem at ${path}, got ${JSON.stringify(list)}`);
  if (typeof message === 'string') assert.equal(hit.message, message);
  else assert.match(hit.message, message);
}

function warnings(doc: Record<string, unknown>): PolicyIssue[] {
  return [...loadPolicy({ version: '1.0', ...doc }).warnings];
}

test('loads the policy shape users already know', () => {
  const { policy, warnings: w } = loadPolicy({
    version: '1.0',
    fs: { read: ['/data/**'], write: ['/data/out/**'] },
    net: { connect: ['https://api.example.com:443', 'http://127.0.0.1:*', 'https://api.weather.test'] },
    secrets: { WEATHER_KEY: { hosts: ['api.weather.test'] } },
    tools: { allow: ['*'], deny: ['shell-*'] },
    limits: { http: '10/s', fs: '100/s' },
    budgets: { tool_calls: 50, host_calls: 500, wall_time_ms: 300000, http_bytes: 10000000, fs_write_bytes: 1000000 },
  });
  assert.deepEqual(w, []);
  assert.equal(policy.limits.http?.count, 10);
  assert.equal(policy.limits.fs?.periodMs, 1000);
  assert.deepEqual({ ...policy.budgets.run }, { tool_calls: 50, host_calls: 500, wall_time_ms: 300000, http_bytes: 10000000, fs_write_bytes: 1000000 });
  assert.deepEqual({ ...policy.budgets.shared }, {});
});

test('an empty policy loads with the default caps and no rules', () => {
  const { policy, warnings: w } = loadPolicy({ version: '1.0' });
  assert.deepEqual(w, []);
  assert.deepEqual(policy.caps, DEFAULT_CAPS);
  assert.equal(DEFAULT_CAPS.fsReadBytes, 8 * 1024 * 1024);
  assert.equal(DEFAULT_CAPS.fsWriteBytes, 8 * 1024 * 1024);
  assert.equal(DEFAULT_CAPS.httpRequestBytes, 1024 * 1024);
  assert.equal(DEFAULT_CAPS.httpResponseBytes, 4 * 1024 * 1024);
  assert.equal(DEFAULT_CAPS.httpTimeoutMs, 30_000);
  assert.equal(DEFAULT_CAPS.fsListEntries, 10_000);
});

test('reads every cap, in bytes or with a unit', () => {
  const { policy } = loadPolicy({
    version: '1.0',
    fs: { max_read_bytes: '1 MiB', max_write_bytes: 2048, max_list_entries: 50 },
    net: { max_request_bytes: '10KB', max_response_bytes: '1.5 MiB', timeout_ms: 5000 },
  });
  assert.deepEqual(policy.caps, {
    fsReadBytes: 1024 * 1024,
    fsWriteBytes: 2048,
    fsListEntries: 50,
    httpRequestBytes: 10_000,
    httpResponseBytes: 1.5 * 1024 * 1024,
    httpTimeoutMs: 5000,
  });
});

test('reads rates with a burst, per-host rates, and shared budgets', () => {
  const { policy } = loadPolicy({
    version: '1.0',
    name: 'prod-agents',
    description: 'what the agents in prod may do',
    limits: {
      http: { rate: '100/m', burst: 5 },
      secrets: '1/s',
      invocations: '5/10s',
      per_token: '1000/h',
      hosts: { 'API.Example.com': '2/s', '[::1]': '1/s' },
    },
    budgets: { fs_read_bytes: '1 GiB', shared: { tool_calls: 10000, http_bytes: '1 GB' } },
  });
  assert.equal(policy.name, 'prod-agents');
  assert.equal(policy.namespace, 'prod-agents');
  assert.equal(policy.limits.http?.burst, 5);
  assert.equal(policy.limits.http?.emissionIntervalUs, 600_000);
  assert.equal(policy.limits.invocations?.periodMs, 10_000);
  assert.equal(policy.limits.per_token?.count, 1000);
  assert.equal(policy.limits.secrets?.text, '1/s');
  assert.equal(policy.limits.hosts?.get('api.example.com')?.count, 2);
  assert.equal(policy.limits.hosts?.get('::1')?.count, 1);
  assert.equal(policy.budgets.run.fs_read_bytes, 1024 ** 3);
  assert.deepEqual({ ...policy.budgets.shared }, { tool_calls: 10000, http_bytes: 1e9 });
});

test('names each problem with its JSON path and says what is wrong', () => {
  const cases: Array<[Record<string, unknown>, string, string | RegExp]> = [
    // top level
    [{ version: undefined }, 'version', 'must be "1.0", got nothing'],
    [{ version: '2.0' }, 'version', 'must be "1.0", got "2.0"'],
    [{ version: 1 }, 'version', 'must be "1.0", got 1'],
    [{ name: 'has space' }, 'name', 'expected a name of 1-64 characters [A-Za-z0-9._-]'],
    [{ description: 5 }, 'description', 'expected a string of at most 4096 characters'],
    [{ fss: {} }, 'fss', 'unknown field; did you mean fs?'],
    [{ approval: {} }, 'approval', 'unknown field; did you mean approvals?'],
    [{ fs: [] }, 'fs', 'expected an object, got an array'],
    // fs
    [{ fs: { reed: [] } }, 'fs.reed', 'unknown field; did you mean read?'],
    [{ fs: { read: '/data/**' } }, 'fs.read', 'expected a list, got a string'],
    [{ fs: { read: [5] } }, 'fs.read[0]', 'expected a glob string, got a number'],
    [{ fs: { write: [''] } }, 'fs.write[0]', 'glob is empty'],
    [{ fs: { deny: ['/a/\0'] } }, 'fs.deny[0]', 'glob contains a NUL byte'],
    [{ fs: { read: ['/' + 'a'.repeat(1024)] } }, 'fs.read[0]', 'glob is longer than 1024 characters'],
    [{ fs: { read: Array.from({ length: 1001 }, () => '/a') } }, 'fs.read', 'at most 1000 entries'],
    [{ fs: { max_read_bytes: -1 } }, 'fs.max_read_bytes', 'expected a whole number of bytes >= 0, got -1'],
    [{ fs: { max_read_bytes: 1.5 } }, 'fs.max_read_bytes', 'expected a whole number of bytes >= 0, got 1.5'],
    [{ fs: { max_write_bytes: '2 GiB' } }, 'fs.max_write_bytes', 'must be at most 1073741824 bytes'],
    [{ fs: { max_write_bytes: '8 MB!' } }, 'fs.max_write_bytes', 'expected bytes as a number or a size like "8 MiB", got "8 MB!"'],
    [{ fs: { max_write_bytes: true } }, 'fs.max_write_bytes', 'expected bytes as a number or a size like "8 MiB", got a boolean'],
    [{ fs: { max_list_entries: 0 } }, 'fs.max_list_entries', 'must be 1-1000000, got 0'],
    // net
    [{ net: { connect: ['https://a.example:99999'] } }, 'net.connect[0]', 'port must be 1-65535 or *'],
    [{ net: { connect: ['https://a.example:0'] } }, 'net.connect[0]', 'port must be 1-65535 or *'],
    [{ net: { connect: ['https://a.example:http'] } }, 'net.connect[0]', 'port must be 1-65535 or *'],
    [{ net: { connect: ['https://a.example:9000-8000'] } }, 'net.connect[0]', 'port range must be low-high within 1-65535'],
    [{ net: { connect: ['api.example.com'] } }, 'net.connect[0]', 'a net rule looks like https://api.example.com:443'],
    [{ net: { connect: ['ftp://a.example'] } }, 'net.connect[0]', 'scheme must be http or https, not ftp'],
    [{ net: { connect: ['https://u@a.example'] } }, 'net.connect[0]', 'userinfo (user@) is not allowed in a net rule'],
    [{ net: { connect: ['https://a.example/v1'] } }, 'net.connect[0]', 'net rules match scheme, host and port only; remove "/v1"'],
    [{ net: { connect: ['https://a.example?x=1'] } }, 'net.connect[0]', 'net rules match scheme, host and port only; remove "?x=1"'],
    [{ net: { connect: ['http://10.0.0.0/8'] } }, 'net.connect[0]', 'write a CIDR in brackets, e.g. http://[10.0.0.0/8]'],
    [{ net: { connect: ['http://[10.0.0.1/8]'] } }, 'net.connect[0]', 'host bits are set: did you mean 10.0.0.0/8?'],
    [{ net: { connect: ['http://[::1'] } }, 'net.connect[0]', /^unterminated '\['/],
    [{ net: { connect: ['https://api.*.com'] } }, 'net.connect[0]', 'a wildcard must be the whole host (*) or its first label (*.example.com)'],
    [{ net: { connect: ['https://*.*.com'] } }, 'net.connect[0]', 'a wildcard must be the whole host (*) or its first label (*.example.com)'],
    [{ net: { connect: ['https://*.10.0.0.1'] } }, 'net.connect[0]', 'a wildcard cannot stand in front of an IP address'],
    [{ net: { connect: ['https://exa_mple!.com'] } }, 'net.connect[0]', '"exa_mple!.com" is not a valid host name'],
    [{ net: { connect: [42] } }, 'net.connect[0]', 'expected a rule like "https://api.example.com:443" or { "url": ... }, got a number'],
    [{ net: { connect: [{ url: 'https://a.example', method: ['GET'] }] } }, 'net.connect[0].method', 'unknown field; did you mean methods?'],
    [{ net: { connect: [{ url: 'https://a.example', methods: ['G E T'] }] } }, 'net.connect[0]', '"G E T" is not an HTTP method'],
    [{ net: { connect: [{ url: 'https://a.example', methods: [] }] } }, 'net.connect[0]', 'methods is empty: leave it out to allow every method, or remove the rule'],
    [{ net: { connect: [{ url: 'https://*.a.example', resolves_to: ['10.0.0.0/8'] }] } }, 'net.connect[0]', /^resolves_to needs an exact host name/],
    [{ net: { connect: [{ url: 'https://a.example', resolves_to: ['10.0.0.0/33'] }] } }, 'net.connect[0]', 'resolves_to "10.0.0.0/33": prefix length must be 0-32, got "33"'],
    [{ net: { connect: [{ methods: ['GET'] }] } }, 'net.connect[0].url', 'expected a rule like "https://api.example.com:443", got undefined'],
    [{ net: { timeout_ms: 0 } }, 'net.timeout_ms', 'must be 1-600000, got 0'],
    [{ net: { timeout_ms: '30s' } }, 'net.timeout_ms', 'expected a whole number, got a string'],
    [{ net: { max_response_bytes: 'lots' } }, 'net.max_response_bytes', 'expected bytes as a number or a size like "8 MiB", got "lots"'],
    // secrets
    [{ secrets: { '1bad-name': {} } }, 'secrets["1bad-name"]', 'a secret name is [A-Za-z_][A-Za-z0-9_.-]{0,127}'],
    [{ secrets: { K: { host: [] } } }, 'secrets.K.host', 'unknown field; did you mean hosts?'],
    [{ secrets: { K: { hosts: ['a.example/path'] } } }, 'secrets.K.hosts[0]', 'a secret host is a host name (https, any port) or scheme://host[:port]'],
    [{ secrets: { K: { hosts: ['ftp://a.example'] } } }, 'secrets.K.hosts[0]', 'scheme must be http or https, not ftp'],
    [{ secrets: { K: { hosts: [''] } } }, 'secrets.K.hosts[0]', 'host is empty'],
    [{ secrets: { K: { hosts: ['::1'] } } }, 'secrets.K.hosts[0]', 'write an IPv6 address in brackets, e.g. [::1]'],
    [{ secrets: { K: { hosts: ['[zz::1]'] } } }, 'secrets.K.hosts[0]', '"[zz::1]" is not an IPv6 address'],
    [{ secrets: { K: { hosts: ['*.*.example'] } } }, 'secrets.K.hosts[0]', 'a wildcard must be the whole host (*) or its first label (*.example.com)'],
    [{ secrets: { K: { reveal: 'yes' } } }, 'secrets.K.reveal', 'expected true or false, got a string'],
    // tools
    [{ tools: { allow: [7] } }, 'tools.allow[0]', 'expected a tool name or glob, got a number'],
    [{ tools: { deny: ['{' + 'a,'.repeat(300) + 'b}'] } }, 'tools.deny[0]', 'braces expand to more than 256 patterns'],
    [{ tools: { permit: [] } }, 'tools.permit', /^unknown field/],
    // limits
    [{ limits: { http: '10/sec' } }, 'limits.http', 'rate must look like "10/s" or "100/5m" (units ms, s, m, h, d), got "10/sec"'],
    [{ limits: { http: '0/s' } }, 'limits.http', 'rate count must be at least 1 (to forbid an operation, leave it out of the policy)'],
    [{ limits: { fs: '2000000000/s' } }, 'limits.fs', 'rate count must be at most 1000000000'],
    [{ limits: { fs: 10 } }, 'limits.fs', 'expected a rate like "10/s" or { "rate": "10/s", "burst": 20 }, got a number'],
    [{ limits: { fs: { rate: '1/s', burst: 0 } } }, 'limits.fs.burst', 'must be 1-1000000000, got 0'],
    [{ limits: { fs: { rate: '1/s', bust: 2 } } }, 'limits.fs.bust', 'unknown field; did you mean burst?'],
    [{ limits: { hosts: { '*.example.com': '1/s' } } }, 'limits.hosts["*.example.com"]', 'limits.hosts keys are exact host names or IP addresses (no wildcards)'],
    [{ limits: { tool: '1/s' } }, 'limits.tool', 'unknown field (known: http, fs, secrets, invocations, per_token, hosts)'],
    // budgets
    [{ budgets: { tool_calls: -1 } }, 'budgets.tool_calls', /^must be 0-/],
    [{ budgets: { tool_calls: 'many' } }, 'budgets.tool_calls', 'expected a whole number, got a string'],
    [{ budgets: { wall_time_ms: 0 } }, 'budgets.wall_time_ms', /^must be 1-/],
    [{ budgets: { http_bytes: '10 XB' } }, 'budgets.http_bytes', 'expected bytes as a number or a size like "8 MiB", got "10 XB"'],
    [{ budgets: { shared: { wall_time_ms: 5 } } }, 'budgets.shared.wall_time_ms', /^unknown field \(known: tool_calls, host_calls/],
    [{ budgets: { toolcalls: 5 } }, 'budgets.toolcalls', 'unknown field; did you mean tool_calls?'],
  ];
  for (const [fragment, path, message] of cases) rejects(fragment, path, message);
});

test('reports every problem at once, not only the first', () => {
  const list = issues({ version: '9', fs: { read: 'x' }, net: { connect: ['https://a:0', 'ftp://b'] }, extra: 1 });
  assert.deepEqual(
    list.map((i) => i.path),
    ['version', 'fs.read', 'net.connect[0]', 'net.connect[1]', 'extra'],
  );
});

test('refuses a document that is not an object', () => {
  for (const doc of [null, [], 'policy', 42]) {
    const list = issues(doc);
    assert.equal(list[0]?.path, '(root)');
    assert.match(list[0]?.message ?? '', /^expected an object, got/);
  }
});

test('gives the line and column of each problem in JSON text', () => {
  const text = ['{', '  "version": "1.0",', '  "net": {', '    "connect": ["https://ok.example", "https://a.example:0"]', '  }', '}'].join('\n');
  try {
    parsePolicy(text, { source: 'policy.json' });
    assert.fail('should not load');
  } catch (e) {
    assert.ok(e instanceof AuthorityError);
    assert.equal(e.code, ErrorCode.POLICY_INVALID);
    assert.deepEqual(e.data?.['issues'], [{ path: 'net.connect[1]', message: 'port must be 1-65535 or *', line: 4, column: 39 }]);
    assert.equal(e.message, 'invalid policy policy.json (1 problem):\n  net.connect[1]: port must be 1-65535 or * (line 4, column 39)');
    assert.equal(e.data?.['source'], 'policy.json');
  }
});

test('refuses duplicate keys, which JSON.parse would silently collapse', () => {
  const text = '{ "version": "1.0",\n  "fs": { "read": ["/data/**"] },\n  "fs": { "read": ["/**"] } }';
  assert.throws(
    () => parsePolicy(text),
    (e: unknown) => {
      assert.ok(e instanceof AuthorityError && e.code === ErrorCode.POLICY_INVALID);
      const [issue] = e.data?.['issues'] as PolicyIssue[];
      assert.equal(issue?.path, 'fs');
      assert.equal(issue?.line, 3);
      assert.match(issue?.message ?? '', /^duplicate key "fs": JSON keeps only one of them/);
      return true;
    },
  );
  assert.throws(() => parsePolicy('{"version":"1.0","secrets":{"K":{"reveal":true,"reveal":false}}}'), /secrets\.K\.reveal: duplicate key "reveal"/);
});

test('reports JSON syntax errors with their position', () => {
  assert.throws(() => parsePolicy('{"version":"1.0",'), /\(root\): unexpected end of input \(line 1, column 18\)/);
  assert.throws(() => parsePolicy('{"version":"1.0"} x'), /unexpected text after the JSON value/);
  assert.throws(() => parsePolicy('{"version":\'1.0\'}'), /version: unexpected "'"/);
  assert.throws(() => parsePolicy('{"version":"1.0", /* no comments */ }'), /expected a "key"/);
  assert.throws(() => parsePolicy('['.repeat(100) + ']'.repeat(100)), /nested more than 64 levels deep/);
  assert.throws(() => parsePolicy('{"version" "1.0"}'), /version: expected ':' after a key \(line 1, column 12\)/);
  assert.throws(() => parsePolicy('{"version":"1.0" "fs":{}}'), /expected ',' or '}'/);
  assert.throws(() => parsePolicy('{"version":"1.0","tools":{"allow":["a" "b"]}}'), /tools\.allow: expected ',' or '\]'/);
  assert.throws(() => parsePolicy('{"version":"1.0\n"}'), /control character in a string/);
  assert.throws(() => parsePolicy('{"version":"\\q"}'), /invalid escape in a string/);
  // A byte-order mark is not a problem.
  assert.equal(parsePolicy('\ufeff{"version":"1.0"}').policy.version, '1.0');
});

test('does not let __proto__ in a policy reach any prototype', () => {
  assert.throws(() => parsePolicy('{"version":"1.0","__proto__":{"fs":{"read":["/**"]}}}'), /__proto__: unknown field/);
  assert.equal(({} as Record<string, unknown>)['fs'], undefined);
});

test('warns about globs that can never match, with their paths', () => {
  const w = warnings({ fs: { read: ['data/**', '/data/../etc/**', '/data/out/', '/ok/{a,b/../c}'] } });
  assert.deepEqual(
    w.map((x) => [x.path, x.message]),
    [
      ['fs.read[0]', '"data/**" can never match: it is relative, and paths are always absolute'],
      ['fs.read[1]', `"/data/../etc/**" can never match: paths are canonical, without '.' or '..' segments; write the path it means`],
      ['fs.read[2]', `"/data/out/" can never match: paths never end in '/'; write /data/out for the folder or /data/out/** for its contents`],
      ['fs.read[3]', `"/ok/{a,b/../c}" '/ok/b/../c' (from braces) can never match: paths are canonical, without '.' or '..' segments; write the path it means`],
    ],
  );
});

test('warns when a deny rule covers an allow rule entirely', () => {
  const w = warnings({ fs: { read: ['/data/**', '/data/secret/**', '/data/secret/key.pem'], write: ['/data/secret/out/*.txt'], deny: ['/data/secret/**'] } });
  assert.deepEqual(
    w.map((x) => [x.path, x.message]),
    [
      ['fs.read[1]', "'/data/secret/**' can never allow anything: fs.deny[0] '/data/secret/**' covers it"],
      ['fs.read[2]', "'/data/secret/key.pem' can never allow anything: fs.deny[0] '/data/secret/**' covers it"],
      ['fs.write[0]', "'/data/secret/out/*.txt' can never allow anything: fs.deny[0] '/data/secret/**' covers it"],
      ['fs.deny', 'fs.deny covers every fs.write rule: nothing can be written'],
    ],
  );
});

test('does not warn about the usual allow-most, deny-some overlap', () => {
  assert.deepEqual(warnings({ fs: { read: ['/data/**'], deny: ['/data/**/.env'] }, tools: { allow: ['*'], deny: ['shell-*'] } }), []);
});

test('warns when a tool deny shadows an allow, or every allow', () => {
  const w = warnings({ tools: { allow: ['shell-exec', 'shell-*', 'sh*-x?'], deny: ['sh*'] } });
  assert.deepEqual(
    w.map((x) => [x.path, x.message]),
    [
      ['tools.allow[0]', "'shell-exec' can never allow anything: tools.deny[0] 'sh*' covers it"],
      ['tools.allow[1]', "'shell-*' can never allow anything: tools.deny[0] 'sh*' covers it"],
      ['tools.allow[2]', "'sh*-x?' can never allow anything: tools.deny[0] 'sh*' covers it"],
      ['tools.deny', 'tools.deny covers every tools.allow rule: no tool can be invoked'],
    ],
  );
  // `shell-?` does not cover `shell-*` (which also matches shell-ab): no false warning.
  assert.deepEqual(warnings({ tools: { allow: ['shell-*'], deny: ['shell-?'] } }), []);
  assert.deepEqual(warnings({ tools: { allow: ['*'], deny: ['*'] } }).map((x) => x.path), ['tools.allow[0]', 'tools.deny']);
});

test('warns about tool globs no tool name can match', () => {
  const w = warnings({ tools: { allow: ['my tool', 'a/b', 'files.read*'] } });
  assert.deepEqual(
    w.map((x) => x.path),
    ['tools.allow[0]', 'tools.allow[1]', 'tools.allow[2]'],
  );
  assert.match(w[0]?.message ?? '', /can never match: names are \[A-Za-z0-9_-\]\{1,64\}/);
});

test('warns about duplicate net rules and secrets that can never be used', () => {
  const w = warnings({
    net: { connect: ['https://api.example.com', 'https://API.example.com:443/'] },
    secrets: {
      UNUSED: {},
      NOWHERE: { hosts: ['api.other.test'] },
      ANY: { hosts: ['*'] },
      OK: { hosts: ['api.example.com', 'https://api.example.com:443'] },
      PORT: { hosts: ['https://api.example.com:8443'] },
    },
  });
  assert.deepEqual(
    w.map((x) => [x.path, x.message]),
    [
      ['net.connect[1]', 'same destination and methods as net.connect[0]; one of them is enough'],
      ['secrets.UNUSED', 'can never be used: it has no hosts and reveal is false'],
      ['secrets.NOWHERE.hosts[0]', 'no net.connect rule allows https://api.other.test, so the secret can never be sent there'],
      ['secrets.ANY.hosts[0]', "'*' sends the secret to any https host"],
      ['secrets.PORT.hosts[0]', 'no net.connect rule allows https://api.example.com:8443, so the secret can never be sent there'],
    ],
  );
});

test('freezes the policy, its caps, budgets, warnings and document', () => {
  const { policy, warnings: w } = loadPolicy({ version: '1.0', fs: { read: ['rel'] }, budgets: { tool_calls: 5 } });
  assert.ok(Object.isFrozen(policy));
  assert.ok(Object.isFrozen(policy.caps));
  assert.ok(Object.isFrozen(policy.budgets));
  assert.ok(Object.isFrozen(policy.budgets.run));
  assert.ok(Object.isFrozen(w) && Object.isFrozen(w[0]));
  const doc = policy.toJSON() as { fs: { read: string[] } };
  assert.ok(Object.isFrozen(doc) && Object.isFrozen(doc.fs.read));
  assert.throws(() => {
    (policy as unknown as { name: string }).name = 'x';
  }, TypeError);
  assert.throws(() => {
    (policy.budgets.run as { tool_calls: number }).tool_calls = 1e9;
  }, TypeError);
  const limited = loadPolicy({ version: '1.0', limits: { http: '1/s', hosts: { 'a.example': '1/m' } } }).policy;
  assert.ok(Object.isFrozen(limited.limits) && Object.isFrozen(limited.limits.http));
  assert.throws(() => (limited.limits.hosts as Map<string, unknown>).set('b.example', {}), /cannot be changed/);
  assert.throws(() => (limited.limits.hosts as Map<string, unknown>).delete('a.example'), /cannot be changed/);
  assert.equal(limited.limits.hosts?.size, 1);
});

test('does not change when the caller later mutates the object it loaded', () => {
  const doc = { version: '1.0', fs: { read: ['/data/**'] } };
  const { policy } = loadPolicy(doc);
  doc.fs.read.push('/**');
  assert.equal(policy.decide({ op: 'fs.read', path: '/etc/passwd' }).allow, false);
});

test('identifies a policy by a digest that ignores key order, whitespace and undefined keys', () => {
  assert.equal(loadPolicy({ version: '1.0', fs: undefined }).policy.digest, loadPolicy({ version: '1.0' }).policy.digest);
  const a = parsePolicy('{"version":"1.0","fs":{"read":["/a/**"],"write":["/b/**"]}}').policy;
  const b = parsePolicy('{ "fs": { "write": ["/b/**"], "read": ["/a/**"] },\n "version": "1.0" }').policy;
  const c = parsePolicy('{"version":"1.0","fs":{"read":["/a/**"],"write":["/c/**"]}}').policy;
  assert.match(a.digest, /^[0-9a-f]{64}$/);
  assert.equal(a.digest, b.digest);
  assert.notEqual(a.digest, c.digest);
  assert.equal(a.namespace, a.digest.slice(0, 16));
});

test('loads a policy file, and reports a missing one as a configuration error', async () => {
  const file = join(dir, 'p.json');
  writeFileSync(file, '{"version":"1.0","tools":{"allow":["wc"]}}');
  const { policy } = await loadPolicyFile(file);
  assert.equal(policy.decide({ op: 'tool.invoke', name: 'wc' }).allow, true);
  await assert.rejects(loadPolicyFile(join(dir, 'missing.json')), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.CONFIG && /ENOENT/.test(e.message));
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"version":"1.0","fs":{"read":[1]}}');
  await assert.rejects(loadPolicyFile(bad), (e: unknown) => e instanceof AuthorityError && e.code === ErrorCode.POLICY_INVALID && e.message.startsWith(`invalid policy ${bad}`));
  const big = join(dir, 'big.json');
  writeFileSync(big, ' '.repeat(1024 * 1024 + 1));
  await assert.rejects(loadPolicyFile(big), /larger than 1048576 bytes/);
});
