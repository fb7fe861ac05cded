/**
 * The world a fuzz run acts on: a scratch folder with files, folders and
 * hostile symlinks (out of the roots, loops, dangling, NFD names, hard
 * links), canary files outside every allowed path, a canary HTTP server on
 * 127.0.0.1, fake secret values, and the policies under test, each loaded
 * twice: by the real loader and by the reference model.
 *
 * A user's policy is re-rooted: every fs glob moves under the scratch
 * folder (`/data/**` becomes `<scratch>/data/**`), so the fuzzer never reads
 * or writes the user's files; net rules keep their hosts, but every name
 * resolves to loopback and only the canary's port can be dialled.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { LookupFn } from '../host/index.ts';
import { loadPolicy, type Policy } from '../policy/index.ts';
import { CanaryServer, canaryResponse } from './canary.ts';
import { decideFs, parseModelPolicy, type ModelPolicy } from './model.ts';
import type { HttpEnv } from './model-http.ts';

export interface PolicyVariant {
  readonly name: string;
  readonly doc: Record<string, unknown>;
  readonly policy: Policy;
  readonly model: ModelPolicy;
}

/** What the generators draw from: the world's own names, roots and hosts. */
export interface Vocab {
  readonly scratch: string;
  readonly outside: string;
  readonly port: number;
  /** Folders the policies talk about (absolute). */
  readonly roots: readonly string[];
  /** Existing and interesting entries (absolute). */
  readonly paths: readonly string[];
  /** Path segments to build new paths from. */
  readonly segments: readonly string[];
  readonly hosts: readonly string[];
  readonly secretNames: readonly string[];
  readonly fsPatterns: readonly string[];
  readonly netPatterns: readonly string[];
  readonly secretPatterns: readonly string[];
}

type Fixture = { rel: string; type: 'dir' } | { rel: string; type: 'file'; content: Buffer } | { rel: string; type: 'link'; target: string } | { rel: string; type: 'hardlink'; of: string };

export interface WorldOptions {
  /** A user's policy document (re-rooted under the scratch folder). Default: the built-in variants. */
  policy?: Record<string, unknown> | undefined;
}

/** The fake secret values the store holds (never real ones). */
function fakeSecrets(names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) out[n] = `fz-${n.toLowerCase().replace(/[^a-z0-9]/g, '')}-${randomBytes(8).toString('hex')}`;
  // One value with characters JSON and URLs escape: a redaction that looks only for the raw spelling misses it.
  if ('QUOTED' in out) out['QUOTED'] = `fz"q\\uo/te\t${randomBytes(6).toString('hex')}`;
  return out;
}

/** Hosts the fuzz resolver answers specially; every other name is 127.0.0.1. */
const SPECIAL_HOSTS: Readonly<Record<string, readonly string[] | 'fail'>> = {
  'meta.fuzz.test': ['169.254.169.254'],
  'priv.fuzz.test': ['10.0.0.7'],
  'mixed.fuzz.test': ['127.0.0.1', '10.0.0.7'],
  'v6.fuzz.test': ['::ffff:7f00:1'],
  'six.fuzz.test': ['::1'],
  'none.fuzz.test': [],
  'fail.fuzz.test': 'fail',
};

function withPort(text: string, port: number): string {
  return text.replaceAll('PORT', String(port));
}

/** The built-in policies: the same fs rules (the canaries depend on them), different net, secrets, limits and budgets. */
function builtinDocs(s: string, port: number): Array<[string, Record<string, unknown>]> {
  const fs = {
    read: [`${s}/data/**`, `${s}/pub/*.txt`, `${s}/pub/notes.md`, `${s}/multi/{a,b}/**`],
    write: [`${s}/data/out/**`, `${s}/tmp/*`],
    deny: [`${s}/data/**/.env`, `${s}/data/secret/**`],
    max_read_bytes: 4096,
    max_write_bytes: 4096,
    max_list_entries: 32,
  };
  const connect = [
    `http://127.0.0.1:${port}`,
    { url: `http://canary.fuzz.test:${port}`, methods: ['GET', 'POST', 'PUT', 'DELETE', 'HEAD'], resolves_to: ['127.0.0.1'] },
    'http://*.fuzz.test:*',
    'https://api.fuzz.test',
    `http://localhost:${port}`,
    { url: `http://meta.fuzz.test:${port}`, resolves_to: ['169.254.169.254'] },
    'http://[10.0.0.0/8]:*',
  ];
  const secrets = {
    API_KEY: { hosts: [`http://canary.fuzz.test:${port}`] },
    OPEN_KEY: { hosts: [`http://127.0.0.1:${port}`], reveal: true },
    LOCKED: { hosts: [] },
    WILD: { hosts: ['*.fuzz.test'] },
    QUOTED: { hosts: [`http://127.0.0.1:${port}`], reveal: true },
  };
  const base = { version: '1.0', fs, tools: { allow: ['fuzz-*'] } };
  return [
    ['open', { ...base, name: `fuzz-open-${port}`, net: { connect, max_request_bytes: 2048, max_response_bytes: 4096, timeout_ms: 5000 }, secrets }],
    [
      'limits',
      {
        ...base,
        name: `fuzz-limits-${port}`,
        net: { connect, max_request_bytes: 2048, max_response_bytes: 4096, timeout_ms: 5000 },
        secrets,
        limits: { fs: { rate: '20/s', burst: 5 }, http: '5/s', secrets: '3/s', per_token: { rate: '30/s', burst: 8 }, hosts: { 'canary.fuzz.test': '2/s' } },
        budgets: { host_calls: 25, fs_write_bytes: 6000, fs_read_bytes: 9000, http_bytes: 10000, shared: { host_calls: 60 } },
      },
    ],
    [
      'narrow',
      {
        ...base,
        name: `fuzz-narrow-${port}`,
        net: { connect: [`http://127.0.0.1:${port}`], max_response_bytes: 64 },
        secrets: { OPEN_KEY: { hosts: [], reveal: true } },
        budgets: { host_calls: 8 },
      },
    ],
  ];
}

const CAP = 4096;

function builtinFixtures(s: string, outside: string, canary: (name: string) => Buffer): Fixture[] {
  const f = (rel: string, content: string | Buffer): Fixture => ({ rel, type: 'file', content: typeof content === 'string' ? Buffer.from(content) : content });
  return [
    { rel: 'data', type: 'dir' },
    f('data/a.txt', 'alpha\n'),
    f('data/b.bin', Buffer.from(Array.from({ length: 256 }, (_, i) => i))),
    f('data/empty.txt', ''),
    f('data/cap.bin', Buffer.alloc(CAP, 0x61)),
    f('data/cap1.bin', Buffer.alloc(CAP + 1, 0x62)),
    f('data/caf\u00e9.txt', 'nfc\n'),
    f('data/nfd-cafe\u0301.txt', 'nfd\n'),
    { rel: 'data/sub', type: 'dir' },
    f('data/sub/c.txt', 'gamma\n'),
    { rel: 'data/sub/deep', type: 'dir' },
    f('data/sub/deep/d.txt', 'delta\n'),
    f('data/.env', canary('env')),
    { rel: 'data/secret', type: 'dir' },
    f('data/secret/key.txt', canary('secret-key')),
    { rel: 'data/out', type: 'dir' },
    f('data/out/existing.txt', 'existing\n'),
    { rel: 'data/out/folder', type: 'dir' },
    { rel: 'data/hl2.txt', type: 'hardlink', of: 'data/hl1.txt' },
    { rel: 'data/link-out', type: 'link', target: outside },
    { rel: 'data/link-passwd', type: 'link', target: join(outside, 'passwd') },
    { rel: 'data/link-in', type: 'link', target: join(s, 'data/sub') },
    { rel: 'data/link-rel', type: 'link', target: 'sub' },
    { rel: 'data/link-env', type: 'link', target: '.env' },
    { rel: 'data/link-up', type: 'link', target: '../datax' },
    { rel: 'data/out/link-back', type: 'link', target: '../a.txt' },
    { rel: 'data/out/link-escape', type: 'link', target: join(outside, 'victim.txt') },
    { rel: 'data/loop1', type: 'link', target: 'loop2' },
    { rel: 'data/loop2', type: 'link', target: 'loop1' },
    { rel: 'data/dangle', type: 'link', target: join(s, 'data/out/made-by-dangle.txt') },
    { rel: 'data/dangle-out', type: 'link', target: join(outside, 'made-outside.txt') },
    { rel: 'datax', type: 'dir' },
    f('datax/file.txt', canary('datax')),
    { rel: 'data-evil', type: 'dir' },
    f('data-evil/file.txt', canary('data-evil')),
    { rel: 'pub', type: 'dir' },
    f('pub/readme.txt', 'readme\n'),
    f('pub/notes.md', 'notes\n'),
    f('pub/other.md', canary('pub-other')),
    { rel: 'multi', type: 'dir' },
    { rel: 'multi/a', type: 'dir' },
    f('multi/a/x.txt', 'multi a\n'),
    { rel: 'multi/c', type: 'dir' },
    f('multi/c/x.txt', canary('multi-c')),
    { rel: 'tmp', type: 'dir' },
  ];
}

/** Literal folder prefix of a glob (`/a/b/*.txt` -> `/a/b`). */
function literalRoot(glob: string): string {
  const segs = glob.split('/').slice(1);
  const out: string[] = [];
  for (const s of segs) {
    if (/[*?[\]{}()!+@\\]/.test(s)) break;
    out.push(s);
  }
  if (out.length === segs.length) out.pop();
  return '/' + out.join('/');
}

function reRoot(doc: Record<string, unknown>, s: string): Record<string, unknown> {
  const fs = doc['fs'] as Record<string, unknown> | undefined;
  const out: Record<string, unknown> = { ...doc, tools: { allow: ['fuzz-*'] } };
  if (fs !== undefined) {
    const move = (list: unknown, key: string): unknown => {
      if (!Array.isArray(list)) return list;
      return list.map((g, i) => {
        if (typeof g !== 'string' || !g.startsWith('/')) {
          throw new AuthorityError(ErrorCode.USAGE, `fs.${key}[${i}]: the fuzzer moves every fs glob under a scratch folder and can only move globs that start with /`, { data: { at: `fs.${key}[${i}]` } });
        }
        return g === '/' ? s : s + g;
      });
    };
    out['fs'] = { ...fs, read: move(fs['read'], 'read'), write: move(fs['write'], 'write'), deny: move(fs['deny'], 'deny') };
  }
  return out;
}

/** A running world; `close()` removes every file it made and stops the canary. */
export class World {
  readonly scratch: string;
  readonly outside: string;
  readonly canary: CanaryServer;
  readonly secrets: Readonly<Record<string, string>>;
  readonly variants: readonly PolicyVariant[];
  readonly vocab: Vocab;
  readonly user: boolean;
  readonly #fixtures: Fixture[];
  readonly #canaries: { path: string; content: Buffer }[];
  readonly #writable: string[];

  private constructor(parts: {
    scratch: string;
    outside: string;
    canary: CanaryServer;
    secrets: Record<string, string>;
    variants: PolicyVariant[];
    vocab: Vocab;
    fixtures: Fixture[];
    canaries: { path: string; content: Buffer }[];
    writable: string[];
    user: boolean;
  }) {
    this.scratch = parts.scratch;
    this.outside = parts.outside;
    this.canary = parts.canary;
    this.secrets = Object.freeze(parts.secrets);
    this.variants = parts.variants;
    this.vocab = parts.vocab;
    this.#fixtures = parts.fixtures;
    this.#canaries = parts.canaries;
    this.#writable = parts.writable;
    this.user = parts.user;
  }

  static async create(options: WorldOptions = {}): Promise<World> {
    const scratch = mkdtempSync(join(tmpdir(), 'authority-fuzz-'));
    const outside = mkdtempSync(join(tmpdir(), 'authority-fuzz-outside-'));
    const marker = randomBytes(6).toString('hex');
    const canaryContent = (name: string): Buffer => Buffer.from(`FUZZ-CANARY-${name}-${marker}\n`);
    let canary: CanaryServer | undefined;
    try {
      let docs: Array<[string, Record<string, unknown>]>;
      let secretNames: string[];
      let fixtures: Fixture[];
      // The server needs the secret values before it starts; the port comes after. Names first.
      if (options.policy === undefined) secretNames = ['API_KEY', 'OPEN_KEY', 'LOCKED', 'WILD', 'QUOTED'];
      else secretNames = Object.keys((options.policy['secrets'] ?? {}) as Record<string, unknown>);
      const secrets = fakeSecrets(secretNames);
      canary = await CanaryServer.start(secrets);
      const port = canary.port;
      if (options.policy === undefined) {
        docs = builtinDocs(scratch, port);
        fixtures = builtinFixtures(scratch, outside, canaryContent);
      } else {
        const doc = reRoot(options.policy, scratch);
        docs = [['user', doc]];
        fixtures = userFixtures(doc, scratch, outside, canaryContent);
      }
      const variants = docs.map(([name, doc]): PolicyVariant => ({ name, doc, policy: loadPolicy(doc, { source: `fuzz policy ${name}` }).policy, model: parseModelPolicy(doc) }));
      const outsideFixtures: Fixture[] = [
        { rel: 'passwd', type: 'file', content: canaryContent('passwd') },
        { rel: 'secret.txt', type: 'file', content: canaryContent('outside-secret') },
        { rel: 'victim.txt', type: 'file', content: canaryContent('victim') },
      ];
      const abs = (root: string) => (f: Fixture): Fixture => (f.type === 'hardlink' ? { ...f, rel: join(root, f.rel), of: join(root, f.of) } : { ...f, rel: join(root, f.rel) });
      const all = [...fixtures.map(abs(scratch)), ...outsideFixtures.map(abs(outside))];
      for (const f of all) make(f);
      // A canary is a file every policy denies for every operation (the model says so).
      const canaries: { path: string; content: Buffer }[] = [];
      for (const f of all) {
        if (f.type !== 'file' || !f.content.toString().startsWith('FUZZ-CANARY-')) continue;
        const deniedEverywhere = variants.every((v) => ['fs.read', 'fs.write', 'fs.remove'].every((op) => !decideFs(v.model, op, f.rel, f.rel).allow));
        if (deniedEverywhere) canaries.push({ path: f.rel, content: f.content });
      }
      const vocab = buildVocab(scratch, outside, port, variants, all, secretNames);
      const writable = options.policy === undefined ? [join(scratch, 'data/out'), join(scratch, 'tmp')] : [];
      return new World({ scratch, outside, canary, secrets, variants, vocab, fixtures: all, canaries, writable, user: options.policy !== undefined });
    } catch (e) {
      await canary?.close();
      rmSync(scratch, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
      throw e;
    }
  }

  get port(): number {
    return this.canary.port;
  }

  /** The fuzz resolver: never the system's. */
  readonly lookup: LookupFn = async (hostname) => {
    const special = SPECIAL_HOSTS[hostname.toLowerCase()];
    if (special === 'fail') throw Object.assign(new Error(`fuzz resolver: ${hostname} fails`), { code: 'ENOTFOUND' });
    const list = special ?? ['127.0.0.1'];
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

  /** The dial guard: only the canary's own address and port. */
  readonly onConnect = (address: string, port: number): void => {
    if (address !== '127.0.0.1' || port !== this.canary.port) throw new Error(`fuzz dial guard: refusing ${address}:${port}`);
  };

  /** The model's view of the resolver, the guard and the canary. */
  httpEnv(): HttpEnv {
    return {
      secrets: this.secrets,
      resolve: (host) => {
        const s = SPECIAL_HOSTS[host.toLowerCase()];
        return s ?? ['127.0.0.1'];
      },
      dialable: (address, port) => address === '127.0.0.1' && port === this.canary.port,
      respond: (req) => canaryResponse(req, this.secrets),
    };
  }

  /** Put every fixture back as it was (writes and removes change them), and empty the writable folders now and then. */
  restore(wipe = false): void {
    if (wipe) for (const w of this.#writable) for (const name of readdirSync(w)) if (!this.#fixtures.some((f) => f.rel === join(w, name))) rmSync(join(w, name), { recursive: true, force: true });
    for (const f of this.#fixtures) if (!intact(f)) make(f, true);
  }

  /** Canary files that changed, vanished or were replaced: each is a denied effect that happened. */
  checkCanaries(): string[] {
    const problems: string[] = [];
    for (const c of this.#canaries) {
      try {
        const st = lstatSync(c.path);
        if (!st.isFile() || !readFileSync(c.path).equals(c.content)) problems.push(`canary ${c.path} was changed`);
      } catch {
        problems.push(`canary ${c.path} was removed`);
      }
    }
    for (const made of ['made-outside.txt']) if (existsSync(join(this.outside, made))) problems.push(`a file was created outside every root: ${join(this.outside, made)}`);
    return problems;
  }

  /** Canary markers: a read result holding one means a denied file was read. */
  canaryMarkers(): Buffer[] {
    return this.#canaries.map((c) => c.content.subarray(0, c.content.length - 1));
  }

  async close(): Promise<void> {
    await this.canary.close();
    rmSync(this.scratch, { recursive: true, force: true });
    rmSync(this.outside, { recursive: true, force: true });
  }
}

function intact(f: Fixture): boolean {
  try {
    const st = lstatSync(f.rel);
    switch (f.type) {
      case 'dir':
        return st.isDirectory();
      case 'file':
        return st.isFile() && st.nlink === 1 && readFileSync(f.rel).equals(f.content);
      case 'link':
        return st.isSymbolicLink() && readlinkSync(f.rel) === f.target;
      case 'hardlink': {
        const of = lstatSync(f.of);
        return st.isFile() && st.nlink === 2 && of.ino === st.ino;
      }
    }
  } catch {
    return false;
  }
}

function make(f: Fixture, replace = false): void {
  if (replace) {
    try {
      const st = lstatSync(f.rel);
      if (!(f.type === 'dir' && st.isDirectory())) rmSync(f.rel, { recursive: true, force: true });
    } catch {
      // missing: nothing to remove
    }
  }
  mkdirSync(dirname(f.rel), { recursive: true });
  switch (f.type) {
    case 'dir':
      mkdirSync(f.rel, { recursive: true });
      break;
    case 'file':
      writeFileSync(f.rel, f.content);
      break;
    case 'link':
      symlinkSync(f.target, f.rel);
      break;
    case 'hardlink':
      rmSync(f.rel, { recursive: true, force: true });
      rmSync(f.of, { recursive: true, force: true });
      writeFileSync(f.of, 'hard\n');
      linkSync(f.of, f.rel);
      break;
  }
}

function userFixtures(doc: Record<string, unknown>, s: string, outside: string, canary: (name: string) => Buffer): Fixture[] {
  const fs = (doc['fs'] ?? {}) as Record<string, unknown>;
  const all = [...((fs['read'] ?? []) as string[]), ...((fs['write'] ?? []) as string[]), ...((fs['deny'] ?? []) as string[])];
  const roots = [...new Set(all.map(literalRoot))].filter((r) => r.startsWith(s) && r.length > s.length);
  const out: Fixture[] = [];
  roots.forEach((abs, i) => {
    const rel = abs.slice(s.length + 1);
    out.push({ rel, type: 'dir' });
    out.push({ rel: `${rel}/fuzz-file.txt`, type: 'file', content: Buffer.from(`fuzz ${i}\n`) });
    out.push({ rel: `${rel}/.hidden`, type: 'file', content: Buffer.from(`hidden ${i}\n`) });
    out.push({ rel: `${rel}/fuzz-link-out`, type: 'link', target: outside });
    // A sibling that shares the root's prefix: a matcher comparing strings instead of segments reaches it.
    out.push({ rel: `${rel}x/fuzz-sibling.txt`, type: 'file', content: canary(`sibling-${i}`) });
  });
  return out;
}

function buildVocab(s: string, outside: string, port: number, variants: readonly PolicyVariant[], fixtures: readonly Fixture[], secretNames: readonly string[]): Vocab {
  const globsOf = (v: PolicyVariant): string[] => {
    const fs = (v.doc['fs'] ?? {}) as Record<string, string[] | undefined>;
    return [...(fs['read'] ?? []), ...(fs['write'] ?? []), ...(fs['deny'] ?? [])];
  };
  const roots = [...new Set([s, outside, '/', '/etc', ...variants.flatMap(globsOf).map(literalRoot)])];
  const paths = [...new Set([...fixtures.map((f) => f.rel), ...roots])];
  const netHosts = variants.flatMap((v) => {
    const connect = (((v.doc['net'] ?? {}) as Record<string, unknown>)['connect'] ?? []) as (string | { url: string })[];
    return connect.map((r) => (typeof r === 'string' ? r : r.url)).map((u) => /^[a-z]+:\/\/(\[[^\]]*\]|[^:/]*)/i.exec(u)?.[1] ?? '').filter((h) => h !== '' && !h.includes('*') && !h.includes('/'));
  });
  const hosts = [
    ...new Set([
      '127.0.0.1',
      'canary.fuzz.test',
      'api.fuzz.test',
      'x.fuzz.test',
      'meta.fuzz.test',
      'priv.fuzz.test',
      'mixed.fuzz.test',
      'v6.fuzz.test',
      'six.fuzz.test',
      'none.fuzz.test',
      'fail.fuzz.test',
      'localhost',
      'a.localhost',
      '[::1]',
      '[::ffff:127.0.0.1]',
      '[::ffff:7f00:1]',
      '[64:ff9b::7f00:1]',
      '0x7f.1',
      '2130706433',
      '0177.0.0.1',
      '127.1',
      '127.0.0.2',
      '169.254.169.254',
      '[::ffff:a9fe:a9fe]',
      '10.0.0.7',
      '0.0.0.0',
      '8.8.8.8',
      'evil.example',
      'canary.fuzz.test.',
      'CANARY.FUZZ.TEST',
      'xn--bcher-kva.fuzz.test',
      'b\u00fccher.fuzz.test',
      '\uff43anary.fuzz.test',
      'canary.fuzz.test..',
      'under_score.fuzz.test',
      ...netHosts,
    ]),
  ];
  const fsPatterns = [
    `${s}/data/**`,
    `${s}/data/*`,
    `${s}/data/sub/**`,
    `${s}/**`,
    '/**',
    `${s}/data/a.txt`,
    `${s}/data{,/**}`,
    `${s}/data/out/**`,
    `${s}/tmp/*`,
    `${s}/pub/*.txt`,
    `${outside}/**`,
    `${s}/dat?/**`,
    `${s}/data/[ab].*`,
    ...roots.filter((r) => r.startsWith(s)).map((r) => `${r}/**`),
  ];
  const netPatterns = [
    `http://127.0.0.1:${port}`,
    `http://127.0.0.1:${port}/**`,
    `http://canary.fuzz.test:${port}`,
    `http://canary.fuzz.test:${port}/redirect/**`,
    'http://*.fuzz.test:*',
    'http://*:*',
    'http://*:*/**',
    'https://api.fuzz.test/v1/**',
    `http://localhost:${port}`,
    `http://[::1]:${port}`,
    `http://127.0.0.1:*/size/*`,
    `http://meta.fuzz.test:${port}`,
    'https://*',
  ];
  const secretPatterns = ['*', '*_KEY', `{${[...secretNames, 'NOPE'].join(',')}}`, ...secretNames, 'NOPE'];
  const segments = ['a.txt', 'b.bin', 'empty.txt', 'cap.bin', 'cap1.bin', '.env', 'secret', 'key.txt', 'out', 'sub', 'deep', 'existing.txt', 'folder', 'link-out', 'link-passwd', 'link-in', 'link-rel', 'link-env', 'link-up', 'link-back', 'link-escape', 'loop1', 'dangle', 'dangle-out', 'hl1.txt', 'hl2.txt', 'caf\u00e9.txt', 'cafe\u0301.txt', 'nfd-cafe\u0301.txt', 'new.txt', 'x', '..', '.', '', 'data', 'datax', 'data-evil', 'pub', 'tmp', 'passwd', 'fuzz-file.txt', 'fuzz-link-out', '.hidden'];
  return { scratch: s, outside, port, roots, paths, segments, hosts, secretNames: [...secretNames, 'NOPE', 'A.B', '9KEY', 'api_key', 'a-b'], fsPatterns: [...new Set(fsPatterns)], netPatterns: netPatterns.map((p) => withPort(p, port)), secretPatterns: [...new Set(secretPatterns)] };
}
