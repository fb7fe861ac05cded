/**
 * Resource patterns: what each kind's pattern may look like, how it is
 * compiled (once), and how a request's resource is matched against it.
 *
 * - fs: a minimatch glob on the canonical absolute path.
 * - net: `scheme://host[:port][/path-glob]` against a canonical WHATWG URL.
 * - secrets: a secret name or a glob of names.
 * - tool: a tool name or a glob of names.
 *
 * Patterns come from tokens, and a token's caveats come from its holder, so a
 * pattern is untrusted input here: its length, its brace expansion and its
 * shape are bounded before minimatch sees it, and minimatch's matcher does not
 * backtrack recursively. docs/capabilities.md states the rules precisely.
 * @module
 */
import { Minimatch, braceExpand, type MinimatchOptions } from 'minimatch';
import { TOOL_NAME } from '../host-call.ts';
import type { CapabilityKind } from './claims.ts';

/** Longest pattern, in UTF-8 bytes. */
export const MAX_PATTERN_BYTES = 1024;
/** Most alternatives a `{a,b}` brace expression may expand to. */
export const MAX_BRACE_ALTERNATIVES = 64;
/** Longest fs path or URL a request may name; anything longer is refused before matching. */
export const MAX_RESOURCE_LENGTH = 8192;

/**
 * The only minimatch options Authority uses. Braces are expanded (bounded
 * above), extglobs are off, nothing in the pattern is rewritten (level 0: a
 * `..` in a pattern is never "resolved" into a wider pattern), `*` matches
 * dot-files, `#` and `!` are plain characters, matching is case-sensitive and
 * the same on every platform.
 */
export const MINIMATCH_OPTIONS: Readonly<MinimatchOptions> = Object.freeze({
  dot: true,
  nocomment: true,
  nonegate: true,
  noext: true,
  nocase: false,
  matchBase: false,
  platform: 'linux',
  optimizationLevel: 0,
  preserveMultipleSlashes: true,
  windowsPathsNoEscape: false,
  braceExpandMax: MAX_BRACE_ALTERNATIVES + 1,
});

// eslint-disable-next-line no-control-regex -- control characters are exactly what this rejects
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;
const NET_PATTERN = /^(https?):\/\/(\*|\*\.[^/:[\]]+|[^*/:[\]]+|\[[0-9a-f:.]+\])(?::(\*|[1-9][0-9]{0,4}))?(\/[^#]*)?$/;
const IPV4 = /^(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}$/;
const SECRET_NAME_MAX = 256;
export const TOOL_NAME_RE = TOOL_NAME;
const TOOL_PATTERN_RE = /^[A-Za-z0-9_\-*?[\]{},!^]{1,256}$/;

const DEFAULT_PORT: Readonly<Record<string, number>> = { http: 80, https: 443 };

function braceAlternatives(pattern: string): string[] | string {
  if (!pattern.includes('{')) return [pattern];
  const alternatives = braceExpand(pattern, MINIMATCH_OPTIONS);
  if (alternatives.length > MAX_BRACE_ALTERNATIVES) return `expands to more than ${MAX_BRACE_ALTERNATIVES} alternatives`;
  return alternatives;
}

/** A slash-separated glob (fs path or URL path): absolute, no `.`/`..` segments, optionally no empty ones. */
function pathGlobProblem(pattern: string, allowEmptySegments: boolean): string | undefined {
  const alternatives = braceAlternatives(pattern);
  if (typeof alternatives === 'string') return alternatives;
  for (const alt of alternatives) {
    if (!alt.startsWith('/')) return 'must be absolute (start with "/")';
    if (alt === '/') continue;
    const segments = alt.slice(1).split('/');
    for (const s of segments) {
      if (s === '.' || s === '..') return 'must not contain "." or ".." segments';
      if (s === '' && !allowEmptySegments) return 'must not contain empty segments ("//" or a trailing "/")';
    }
  }
  return undefined;
}

function hostIsCanonical(scheme: string, host: string): boolean {
  try {
    return new URL(`${scheme}://${host}/`).hostname === host;
  } catch {
    return false;
  }
}

interface NetPattern {
  scheme: string;
  host: { any: true } | { any: false; suffix: boolean; name: string };
  port: number | '*';
  path: string | undefined;
}

function parseNetPattern(pattern: string): NetPattern | string {
  if (!PRINTABLE_ASCII.test(pattern)) return 'must be printable ASCII (hosts in IDNA ASCII form, paths percent-encoded)';
  const m = NET_PATTERN.exec(pattern);
  if (m === null) return 'must look like scheme://host[:port][/path-glob] with scheme http or https';
  const [, scheme = '', hostPart = '', portPart, path] = m;
  let host: NetPattern['host'];
  if (hostPart === '*') host = { any: true };
  else if (hostPart.startsWith('*.')) {
    const suffix = hostPart.slice(2);
    if (IPV4.test(suffix) || !hostIsCanonical(scheme, suffix) || suffix.includes('*')) {
      return 'a "*." host must be followed by a canonical domain name (lowercase, IDNA ASCII)';
    }
    host = { any: false, suffix: true, name: suffix };
  } else {
    if (!hostIsCanonical(scheme, hostPart)) return 'host must be canonical as a WHATWG URL writes it (lowercase, IDNA ASCII, canonical IP)';
    host = { any: false, suffix: false, name: hostPart };
  }
  let port: number | '*' = DEFAULT_PORT[scheme] ?? 0;
  if (portPart === '*') port = '*';
  else if (portPart !== undefined) {
    port = Number(portPart);
    if (port > 65535) return 'port must be 1-65535 or *';
  }
  if (path !== undefined) {
    const problem = pathGlobProblem(path, true);
    if (problem !== undefined) return `path glob ${problem}`;
  }
  return { scheme, host, port, path };
}

function computeProblem(kind: CapabilityKind, pattern: string): string | undefined {
  if (pattern.length === 0) return 'must not be empty';
  if (Buffer.byteLength(pattern, 'utf8') > MAX_PATTERN_BYTES) return `must be at most ${MAX_PATTERN_BYTES} bytes`;
  if (CONTROL.test(pattern)) return 'must not contain control characters';
  if (pattern.normalize('NFC') !== pattern) return 'must be in Unicode NFC';
  switch (kind) {
    case 'fs':
      return pathGlobProblem(pattern, false);
    case 'net': {
      const parsed = parseNetPattern(pattern);
      return typeof parsed === 'string' ? parsed : undefined;
    }
    case 'secrets': {
      if (pattern.includes('/') || /\s/.test(pattern)) return 'a secret name pattern must not contain "/" or whitespace';
      if (pattern.length > SECRET_NAME_MAX) return `must be at most ${SECRET_NAME_MAX} characters`;
      const alternatives = braceAlternatives(pattern);
      return typeof alternatives === 'string' ? alternatives : undefined;
    }
    case 'tool': {
      if (!TOOL_PATTERN_RE.test(pattern)) return 'a tool name pattern uses only A-Z a-z 0-9 _ - and glob characters';
      const alternatives = braceAlternatives(pattern);
      return typeof alternatives === 'string' ? alternatives : undefined;
    }
  }
}

// Pure functions of (kind, pattern): caching them keeps repeated parsing of the
// same token cheap. Bounded (patterns come from token holders); cleared
// wholesale when full. Compiled matchers are larger, so fewer are kept.
const CACHE_MAX = 4096;
const MATCHER_CACHE_MAX = 1024;
const problemCache = new Map<string, string | null>();
const matcherCache = new Map<string, ResourceMatcher>();

/** Why `pattern` is not a valid `kind` pattern, or undefined when it is. */
export function patternProblem(kind: CapabilityKind, pattern: string): string | undefined {
  const key = `${kind}\u0000${pattern}`;
  const cached = problemCache.get(key);
  if (cached !== undefined) return cached ?? undefined;
  const problem = computeProblem(kind, pattern);
  if (problemCache.size >= CACHE_MAX) problemCache.clear();
  problemCache.set(key, problem ?? null);
  return problem;
}

/**
 * A pattern as an issuer may type it, in the form a token stores: fs paths in
 * NFC, net hosts lowercased and IDNA-encoded. Validity is checked separately.
 */
export function normalizePattern(kind: CapabilityKind, pattern: string): string {
  if (kind === 'fs' || kind === 'secrets' || kind === 'tool') return pattern.normalize('NFC');
  const m = /^([A-Za-z]+):\/\/(\*\.)?([^/:[\]]+|\[[^\]]*\])(:[^/]*)?(\/.*)?$/.exec(pattern);
  if (m === null) return pattern;
  const [, scheme = '', star = '', host = '', port = '', path = ''] = m;
  const lowerScheme = scheme.toLowerCase();
  let canonicalHost = host;
  if (host !== '*') {
    try {
      canonicalHost = new URL(`${lowerScheme}://${host}/`).hostname;
    } catch {
      canonicalHost = host;
    }
  }
  return `${lowerScheme}://${star}${canonicalHost}${port}${path}`;
}

/** A request's resource, checked and split once per host call. */
export type PreparedResource =
  | { kind: 'fs' | 'secrets' | 'tool'; value: string }
  | { kind: 'net'; value: string; scheme: string; host: string; port: number; path: string };

/** Check a request resource is canonical for its kind; returns the problem as a string when it is not. */
export function prepareResource(kind: CapabilityKind, resource: string): PreparedResource | string {
  if (typeof resource !== 'string' || resource.length === 0) return 'resource is empty';
  if (resource.length > MAX_RESOURCE_LENGTH) return `resource is longer than ${MAX_RESOURCE_LENGTH} characters`;
  if (CONTROL.test(resource)) return 'resource contains control characters';
  switch (kind) {
    case 'fs': {
      if (!resource.startsWith('/')) return 'path is not absolute';
      if (resource !== '/' && (resource.endsWith('/') || resource.includes('//'))) return 'path is not canonical (empty segment)';
      if (/\/\.\.?(?:\/|$)/.test(resource)) return 'path is not canonical ("." or ".." segment)';
      if (!PRINTABLE_ASCII.test(resource) && resource.normalize('NFC') !== resource) return 'path is not in Unicode NFC';
      return { kind, value: resource };
    }
    case 'net': {
      let url: URL;
      try {
        url = new URL(resource);
      } catch {
        return 'URL does not parse';
      }
      if (url.href !== resource) return 'URL is not canonical (expected the WHATWG serialisation)';
      const scheme = url.protocol.slice(0, -1);
      const defaultPort = DEFAULT_PORT[scheme];
      if (defaultPort === undefined) return `scheme ${scheme} is not http or https`;
      if (url.username !== '' || url.password !== '') return 'URL has userinfo';
      return { kind, value: resource, scheme, host: url.hostname, port: url.port === '' ? defaultPort : Number(url.port), path: url.pathname };
    }
    case 'secrets':
      if (resource.length > SECRET_NAME_MAX || resource.includes('/') || /\s/.test(resource)) return 'not a valid secret name';
      return { kind, value: resource };
    case 'tool':
      if (!TOOL_NAME_RE.test(resource)) return 'not a valid tool name';
      return { kind, value: resource };
  }
}

/** A compiled pattern. */
export type ResourceMatcher = (resource: PreparedResource) => boolean;

function compileGlob(pattern: string): (value: string) => boolean {
  const mm = new Minimatch(pattern, MINIMATCH_OPTIONS);
  return (value) => mm.match(value);
}

function compileUncached(kind: CapabilityKind, pattern: string): ResourceMatcher {
  if (kind !== 'net') {
    const glob = compileGlob(pattern);
    return (r) => r.kind === kind && glob(r.value);
  }
  const p = parseNetPattern(pattern);
  if (typeof p === 'string') return () => false;
  const pathGlob = p.path === undefined ? undefined : compileGlob(p.path);
  const { host, port, scheme } = p;
  return (r) => {
    if (r.kind !== 'net' || r.scheme !== scheme) return false;
    if (port !== '*' && r.port !== port) return false;
    if (!host.any) {
      if (host.suffix) {
        if (!(r.host.length > host.name.length + 1 && r.host.endsWith(`.${host.name}`))) return false;
      } else if (r.host !== host.name) return false;
    }
    return pathGlob === undefined || pathGlob(r.path);
  };
}

/**
 * Compile `pattern` (already validated by {@link patternProblem}). A pattern
 * that is not valid compiles to a matcher that matches nothing.
 */
export function compilePattern(kind: CapabilityKind, pattern: string): ResourceMatcher {
  const key = `${kind}\u0000${pattern}`;
  const cached = matcherCache.get(key);
  if (cached !== undefined) return cached;
  let matcher: ResourceMatcher = () => false;
  if (patternProblem(kind, pattern) === undefined) {
    try {
      matcher = compileUncached(kind, pattern);
    } catch {
      // minimatch refused it: a pattern that cannot compile matches nothing (fail closed).
    }
  }
  if (matcherCache.size >= MATCHER_CACHE_MAX) matcherCache.clear();
  matcherCache.set(key, matcher);
  return matcher;
}
