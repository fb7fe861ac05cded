/**
 * The package as a user gets it: `npm pack`, then `npm install` of the
 * tarball into an empty project (no devDependencies of ours, no tsx), and
 * there the CLI, the MCP server driven by the real MCP SDK client, the
 * fuzzer, the library from a plain .mjs, and each adapter sub-path with and
 * without its framework. The tarball is built once for the whole file.
 * Installing reaches the npm registry (through the npm cache).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string>; devDependencies: Record<string, string>; peerDependencies: Record<string, string> };

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tmp = '';
let app = '';
let bin = '';
let env: NodeJS.ProcessEnv = {};
let installWarnings = '';

/** Run a command with the test project's environment (no NODE_OPTIONS, no tsx). */
function sh(cmd: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { cwd: opts.cwd ?? app, env: opts.env ?? env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (_err, stdout, stderr) =>
      resolve({ code: child.exitCode, stdout, stderr }),
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** `authority ...` as installed (the bin npm linked). */
function authority(...args: string[]): Promise<Ran> {
  return sh(bin, args);
}

/** npm, preferring what its cache holds (the checkout's own install filled it), so a loaded machine or a slow registry does not decide the test. */
function npm(args: readonly string[], cwd: string, timeoutMs = 600_000): Promise<Ran> {
  return sh('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=warn'], { cwd, timeoutMs, env: { ...env, npm_config_update_notifier: 'false' } });
}

function installedDeps(): string[] {
  const dir = join(app, 'node_modules');
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) for (const sub of readdirSync(join(dir, name))) out.push(`${name}/${sub}`);
    else out.push(name);
  }
  return out;
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'authority-pack-'));
  app = join(tmp, 'app');
  mkdirSync(app);
  // A user's environment: our test runner's loader and development settings do not leak in.
  env = { ...process.env, XDG_CACHE_HOME: join(tmp, 'user-cache'), AUTHORITY_DATA_DIR: undefined, AUTHORITY_CACHE_DIR: undefined, NODE_OPTIONS: undefined, AUTHORITY_LOG_LEVEL: undefined };
  const packed = await sh('npm', ['pack', '--pack-destination', tmp, '--loglevel=warn'], { cwd: ROOT, timeoutMs: 600_000, env: process.env });
  assert.equal(packed.code, 0, `npm pack failed:\n${packed.stderr}`);
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack wrote no tarball');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'authority-user', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const installed = await npm(['install', join(tmp, tarball)], app);
  assert.equal(installed.code, 0, `npm install of the tarball failed:\n${installed.stderr}`);
  installWarnings = installed.stderr;
  bin = join(app, 'node_modules', '.bin', 'authority');
});

after(() => {
  if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
});

test('the install holds what ships and none of our development tools', () => {
  assert.doesNotMatch(installWarnings, /ERESOLVE/, 'installing the package warns about conflicting dependencies');
  const deps = installedDeps();
  for (const dev of ['tsx', 'typescript', 'eslint', '@bytecodealliance/jco', '@bytecodealliance/componentize-js', '@bytecodealliance/jco-transpile', 'binaryen', 'fast-check'].filter((d) => !(d in PKG.dependencies))) {
    assert.ok(!deps.includes(dev), `${dev} was installed with the package`);
  }
  for (const dep of Object.keys(PKG.dependencies)) assert.ok(deps.includes(dep), `dependency ${dep} was not installed`);
  const pkgDir = join(app, 'node_modules', PKG.name);
  const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(manifest['license'], 'Apache-2.0');
  assert.match(readFileSync(join(pkgDir, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
  assert.ok(typeof (manifest['repository'] as { url?: unknown } | undefined)?.url === 'string', 'no repository field');
  assert.ok(typeof manifest['homepage'] === 'string', 'no homepage field');
  const scripts = (manifest['scripts'] ?? {}) as Record<string, string>;
  for (const hook of ['prepare', 'preinstall', 'install', 'postinstall']) assert.equal(scripts[hook], undefined, `the package runs a ${hook} script in its users' projects`);
  // Every relative link of the README resolves inside the package (the registry page resolves them against the repository).
  const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
  const links = [...readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1] as string).filter((l) => !/^[a-z]+:/.test(l));
  assert.ok(links.length > 0);
  for (const link of links) assert.ok(existsSync(join(pkgDir, link)), `README links to ${link}, which the package does not contain`);
  // Every bare import of the shipped code is a dependency, a peer, or Node's.
  const bare = new Set<string>();
  const scan = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'vendor') scan(p);
      } else if (e.name.endsWith('.js')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*'([^'.][^']*)'|import\('([^'.][^']*)'\)/g)) {
          const spec = (m[1] ?? m[2]) as string;
          if (spec.startsWith('node:')) continue;
          bare.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
        }
      }
    }
  };
  scan(join(pkgDir, 'dist'));
  const allowed = new Set([...Object.keys(PKG.dependencies), ...Object.keys(PKG.peerDependencies), '@bytecodealliance/jco-transpile']);
  for (const spec of bare) assert.ok(allowed.has(spec), `shipped code imports ${spec}, which is neither a dependency nor a peer`);
  for (const dep of Object.keys(PKG.dependencies)) {
    const used = bare.has(dep) || readdirSync(join(pkgDir, 'dist', 'vendor', 'jco-transpile'), { recursive: true }).some((f) => String(f).endsWith('.js') && readFileSync(join(pkgDir, 'dist', 'vendor', 'jco-transpile', String(f)), 'utf8').includes(`'${dep}`));
    assert.ok(used, `dependency ${dep} is imported by no shipped code`);
  }
});

test('npx authority --help and --version work without tsx', async () => {
  const help = await sh('npx', ['--no-install', 'authority', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /usage: authority <command>/);
  for (const c of ['init', 'run', 'mcp', 'fuzz', 'cache']) assert.match(help.stdout, new RegExp(`\\n  ${c}\\s`));
  const version = await sh('npx', ['--no-install', 'authority', '--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), `${PKG.name} ${PKG.version}`);
  const typo = await authority('fzz');
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /E_USAGE: .*did you mean fuzz\?/);
});

test('init, then run a tool: allowed, and denied with the gate code', async () => {
  const init = await authority('init');
  assert.equal(init.code, 0, init.stderr);
  for (const f of ['.authority/policy.json', '.authority/keys.json', '.authority/tools/read-text.wasm', '.authority/tools/echo.wasm', 'grants.json', 'workspace/hello.txt']) assert.ok(existsSync(join(app, f)), `init did not write ${f}`);
  const token = await authority('cap', 'issue', '--kind', 'fs', '--resource', `${join(app, 'workspace')}/**`, '--methods', 'read', '--ttl', '1h');
  assert.equal(token.code, 0, token.stderr);
  const grant = token.stdout.trim();
  const ok = await authority('run', 'read-text', '--input', JSON.stringify({ path: join(app, 'workspace', 'hello.txt') }), '--grant', grant);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, readFileSync(join(app, 'workspace', 'hello.txt'), 'utf8'));
  const denied = await authority('run', 'read-text', '--input', JSON.stringify({ path: '/etc/passwd' }), '--grant', grant, '--json');
  assert.equal(denied.code, 1);
  const doc = JSON.parse(denied.stdout) as { ok: boolean; error: { code: string; message: string; data: { denials: Array<{ code: string }> } } };
  assert.equal(doc.ok, false);
  assert.equal(doc.error.data.denials[0]?.code, 'E_CAP_SCOPE');
  assert.match(doc.error.message, /E_CAP_SCOPE/);
  // Building a JavaScript tool needs the optional builder: a configuration error that names it.
  writeFileSync(join(app, 'hello.js'), 'export function describe() { return { name: "hello", description: "hi", inputSchema: "{}" }; }\nexport function run() { return "hi"; }\n');
  const build = await authority('build', 'hello.js', '-o', 'hello.wasm');
  assert.equal(build.code, 2);
  assert.match(build.stderr, /E_CONFIG: .*npm install @bytecodealliance\/componentize-js/);
});

test('authority mcp serves the tools to the real MCP SDK client: one allowed call, one denied', async () => {
  if (!existsSync(join(app, '.authority', 'tools', 'read-text.wasm'))) assert.equal((await authority('init')).code, 0);
  const transport = new StdioClientTransport({ command: bin, args: ['mcp', '--grants', 'grants.json'], cwd: app, env: env as Record<string, string>, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const client = new Client({ name: 'pack-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'read-text']);
    const allowed = await client.callTool({ name: 'read-text', arguments: { path: join(app, 'workspace', 'hello.txt') } });
    assert.notEqual(allowed.isError, true, JSON.stringify(allowed));
    assert.equal((allowed.content as Array<{ text: string }>)[0]?.text, readFileSync(join(app, 'workspace', 'hello.txt'), 'utf8'));
    const denied = await client.callTool({ name: 'read-text', arguments: { path: '/etc/passwd' } });
    assert.equal(denied.isError, true);
    assert.match((denied.content as Array<{ text: string }>)[0]?.text ?? '', /^denied: E_CAP_SCOPE: /);
  } finally {
    await client.close();
  }
  assert.match(stderr, /authority mcp: serving 2 tool\(s\)/);
});

test('a short authority fuzz with two jobs runs from a fresh cache outside node_modules', async () => {
  const cache = join(tmp, 'user-cache', 'authority-sandbox');
  assert.ok(!existsSync(join(cache, 'fuzz')), 'the cache is not fresh');
  const r = await sh(bin, ['fuzz', '--runs', '60', '--jobs', '2', '--seed', '7', '--target', 'fs', '--json'], { timeoutMs: 300_000 });
  assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(0, 2000)}`);
  const report = JSON.parse(r.stdout) as { ok: boolean; results: Array<{ layer: string; runs: number }> };
  assert.equal(report.ok, true);
  assert.ok(report.results.some((x) => x.layer === 'gate' && x.runs > 0));
  assert.ok(report.results.some((x) => x.layer === 'abi' && x.runs > 0), 'the abi layer did not run');
  // Without the JavaScript tool builder the guest layer is skipped, and the run says so.
  assert.match(r.stderr, /skipping the guest layer: .*componentize-js/);
  assert.ok(readdirSync(join(cache, 'fuzz')).some((f) => f.startsWith('abi-guest-')), 'the abi guest was not cached in the user cache');
  assert.ok(!existsSync(join(app, 'node_modules', PKG.name, 'build')), 'the fuzzer wrote into node_modules');
});

test('a plain .mjs imports createRuntime, registers a tool and invokes it, and the fuzzer loads from its sub-path', async () => {
  if (!existsSync(join(app, '.authority', 'tools', 'read-text.wasm'))) assert.equal((await authority('init')).code, 0);
  writeFileSync(
    join(app, 'embed.mjs'),
    `import { createRuntime } from 'authority-sandbox';
const dir = process.argv[2];
const rt = await createRuntime({ dataDir: dir + '/embed-data', policy: { version: '1.0', fs: { read: [dir + '/workspace/**'] }, tools: { allow: ['*'] } } });
try {
  const tool = await rt.register(dir + '/.authority/tools/read-text.wasm');
  const grant = rt.issueToken({ kind: 'fs', resource: dir + '/workspace/**', methods: ['read'], ttlMs: 60_000 });
  const r = await rt.invoke(tool.name, { path: dir + '/workspace/hello.txt' }, { grants: [grant] });
  const fuzz = await import('authority-sandbox/fuzz');
  console.log(JSON.stringify({ tool: tool.name, output: r.output, audit: r.audit, fuzz: typeof fuzz.runFuzz }));
} finally {
  await rt.close();
}
`,
  );
  const r = await sh(process.execPath, ['embed.mjs', app]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { tool: string; output: string; audit: { start: number; end: number }; fuzz: string };
  assert.equal(doc.tool, 'read-text');
  assert.equal(doc.fuzz, 'function', 'authority-sandbox/fuzz does not export runFuzz');
  assert.equal(doc.output, readFileSync(join(app, 'workspace', 'hello.txt'), 'utf8'));
  assert.ok(doc.audit.end > doc.audit.start);
});

/** Import an adapter sub-path in the test project, make its tools from a runtime, and call read-text through them. */
const ADAPTER_SCRIPT = `const [sub, dir] = process.argv.slice(2);
const { createRuntime } = await import('authority-sandbox');
let mod;
try {
  mod = await import('authority-sandbox/' + sub);
} catch (e) {
  console.log(JSON.stringify({ loaded: false, code: e.code, message: e.message }));
  process.exit(0);
}
const rt = await createRuntime({ dataDir: dir + '/adapter-data', policy: { version: '1.0', fs: { read: [dir + '/workspace/**'] }, tools: { allow: ['*'] } } });
await rt.register(dir + '/.authority/tools/read-text.wasm');
const grants = [rt.issueToken({ kind: 'fs', resource: dir + '/workspace/**', methods: ['read'], ttlMs: 60_000 })];
const input = { path: dir + '/workspace/hello.txt' };
let text;
if (sub === 'ai-sdk') text = (await mod.aiSdkTools(rt, { grants })['read-text'].execute(input, { toolCallId: 'c1', messages: [] })).text;
if (sub === 'langchain') text = String((await mod.langchainTools(rt, { grants })[0].invoke({ id: 'c1', name: 'read-text', args: input, type: 'tool_call' })).content);
if (sub === 'openai') text = (await mod.openaiTools(rt, { grants }).call('read-text', JSON.stringify(input))).text;
if (sub === 'mcp') text = typeof mod.createMcpServer;
await rt.close();
console.log(JSON.stringify({ loaded: true, text }));
`;

async function adapter(sub: string): Promise<{ loaded: boolean; code?: string; message?: string; text?: string }> {
  const r = await sh(process.execPath, ['adapter.mjs', sub, app]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as { loaded: boolean; code?: string; message?: string; text?: string };
}

test('each adapter sub-path: a clear error without its framework, working tools with it', async () => {
  if (!existsSync(join(app, '.authority', 'tools', 'read-text.wasm'))) assert.equal((await authority('init')).code, 0);
  writeFileSync(join(app, 'adapter.mjs'), ADAPTER_SCRIPT);
  const hello = readFileSync(join(app, 'workspace', 'hello.txt'), 'utf8');
  const ai = await adapter('ai-sdk');
  assert.equal(ai.loaded, false);
  assert.equal(ai.code, 'E_CONFIG');
  assert.match(ai.message ?? '', /install `ai`/);
  const lc = await adapter('langchain');
  assert.equal(lc.loaded, false);
  assert.match(lc.message ?? '', /install `@langchain\/core`/);
  assert.equal((await adapter('mcp')).text, 'function');

  // Exactly the versions the checkout's own tests run against.
  const peers = ['ai', '@langchain/core', 'openai'].map((p) => `${p}@${(JSON.parse(readFileSync(join(ROOT, 'node_modules', p, 'package.json'), 'utf8')) as { version: string }).version}`);
  const added = await npm(['install', ...peers], app);
  assert.equal(added.code, 0, added.stderr);
  for (const sub of ['ai-sdk', 'langchain', 'openai']) {
    const r = await adapter(sub);
    assert.equal(r.loaded, true, `${sub}: ${r.message}`);
    assert.match(r.text ?? '', new RegExp(hello.trim().slice(0, 20)), `${sub} did not return the file's content`);
  }
});
