/**
 * The reference model's globs: a small, slow, obviously-correct matcher
 * written from the documented semantics (docs/policy.md, docs/capabilities.md),
 * not from src/policy or src/capability. It matches canonical paths segment by
 * segment with backtracking, and it says so when a glob uses syntax it does not
 * model (extglobs, POSIX classes, odd braces): such a glob is `opaque`, and the
 * fuzzer does not compare decisions that depend on it.
 * @module
 */

/** One segment test: a literal, a per-segment regex, or `**`. */
type Seg = { kind: 'lit'; text: string } | { kind: 're'; re: RegExp } | { kind: 'star2' };

/** A compiled alternative (after brace expansion). */
export interface GlobAlt {
  readonly source: string;
  readonly segs: readonly Seg[] | null;
  /** The literal folder prefix: every match lies under it. */
  readonly root: string;
  /** Whether the alternative has no wildcard at all. */
  readonly literal: boolean;
}

export interface ModelGlob {
  readonly source: string;
  readonly alts: readonly GlobAlt[];
  /** Syntax the model does not reproduce; decisions touching it are not compared. */
  readonly opaque: string | undefined;
}

const EXTGLOB = /[?*+@!]\(/;

/**
 * Expand `{a,b}` (nested) and `{n..m}` (integers). Returns undefined for brace
 * forms the model does not reproduce (a lone `{x}`, letter ranges, padding).
 */
export function expandBraces(p: string, max = 4096): string[] | undefined {
  // Find the first top-level `{` with its matching `}`.
  let open = -1;
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') {
      open = i;
      break;
    }
  }
  if (open < 0) return [p];
  let depth = 0;
  let close = -1;
  const commas: number[] = [];
  for (let i = open; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) {
        close = i;
        break;
      }
    } else if (c === ',' && depth === 1) commas.push(i);
  }
  if (close < 0) return undefined;
  const pre = p.slice(0, open);
  const body = p.slice(open + 1, close);
  const post = p.slice(close + 1);
  let parts: string[];
  if (commas.length > 0) {
    parts = [];
    let start = open + 1;
    for (const c of [...commas, close]) {
      parts.push(p.slice(start, c));
      start = c + 1;
    }
  } else {
    const range = /^(-?\d+)\.\.(-?\d+)$/.exec(body);
    if (range === null) return undefined;
    const [a, b] = [range[1] as string, range[2] as string];
    if ((a.length > 1 && a.startsWith('0')) || (b.length > 1 && b.startsWith('0'))) return undefined;
    const lo = Number(a);
    const hi = Number(b);
    parts = [];
    const step = lo <= hi ? 1 : -1;
    for (let n = lo; step > 0 ? n <= hi : n >= hi; n += step) {
      parts.push(String(n));
      if (parts.length > max) return undefined;
    }
  }
  const out: string[] = [];
  for (const part of parts) {
    const inner = expandBraces(pre + part + post, max);
    if (inner === undefined) return undefined;
    out.push(...inner);
    if (out.length > max) return undefined;
  }
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** A segment of a glob as a regex, or an error naming syntax the model does not cover. */
function segment(seg: string): Seg | string {
  if (seg === '**') return { kind: 'star2' };
  let re = '';
  let magic = false;
  let lit = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i] as string;
    if (c === '\\') {
      const next = seg[i + 1];
      if (next === undefined) return 'a trailing backslash';
      re += escapeRe(next);
      lit += next;
      i++;
    } else if (c === '*') {
      magic = true;
      re += '[^/]*';
    } else if (c === '?') {
      magic = true;
      re += '[^/]';
    } else if (c === '[') {
      const end = seg.indexOf(']', i + 2);
      if (end < 0) return 'an unclosed ['; // minimatch reads it literally; the model does not guess
      let body = seg.slice(i + 1, end);
      if (body.includes('[:')) return 'a POSIX character class';
      let neg = false;
      if (body.startsWith('!') || body.startsWith('^')) {
        neg = true;
        body = body.slice(1);
      }
      if (body === '') return 'an empty character class';
      magic = true;
      re += `[${neg ? '^' : ''}${body.replace(/\\/g, '\\\\').replace(/\]/g, '\\]')}]`;
      i = end;
    } else {
      re += escapeRe(c);
      lit += c;
    }
  }
  if (!magic) return { kind: 'lit', text: lit };
  try {
    return { kind: 're', re: new RegExp(`^${re}$`, 'u') };
  } catch {
    return 'a character class the model cannot read';
  }
}

function compileAlt(alt: string): GlobAlt | string {
  if (!alt.startsWith('/')) return { source: alt, segs: null, root: '/', literal: false };
  const parts = alt === '/' ? [] : alt.slice(1).split('/');
  // Relative, `.`/`..`, empty segments and a trailing slash can never match a canonical path.
  if (parts.some((s) => s === '' || s === '.' || s === '..')) return { source: alt, segs: null, root: '/', literal: false };
  const segs: Seg[] = [];
  for (const p of parts) {
    const s = segment(p);
    if (typeof s === 'string') return s;
    segs.push(s);
  }
  let k = 0;
  while (k < segs.length && (segs[k] as Seg).kind === 'lit') k++;
  const literal = k === segs.length;
  const rootSegs = (literal ? segs.slice(0, -1) : segs.slice(0, k)) as { kind: 'lit'; text: string }[];
  return { source: alt, segs, root: '/' + rootSegs.map((s) => s.text).join('/'), literal };
}

function matchSegs(pat: readonly Seg[], pi: number, path: readonly string[], si: number): boolean {
  if (pi === pat.length) return si === path.length;
  const p = pat[pi] as Seg;
  if (p.kind === 'star2') {
    // A trailing `**` needs one segment at least (`/a/**` is not `/a`); elsewhere it may match none.
    const min = pi === pat.length - 1 && pi > 0 ? 1 : 0;
    for (let take = min; si + take <= path.length; take++) if (matchSegs(pat, pi + 1, path, si + take)) return true;
    return false;
  }
  if (si >= path.length) return false;
  const s = path[si] as string;
  // minimatch's rule, dot:true or not: a wildcard never matches `.` or `..` as a whole name.
  if (p.kind === 're' && (s === '.' || s === '..')) return false;
  if (p.kind === 'lit' ? p.text !== s : !p.re.test(s)) return false;
  return matchSegs(pat, pi + 1, path, si + 1);
}

/** Segments of a canonical path: `/a/b` -> ['a', 'b'], `/` -> []. */
export function segmentsOf(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

/** Whether a compiled alternative matches a canonical path. */
export function altMatches(alt: GlobAlt, path: string): boolean {
  if (alt.segs === null) return false;
  return matchSegs(alt.segs, 0, segmentsOf(path), 0);
}

/**
 * Compile a path glob. `extglob` says whether `+(a|b)` syntax is live (policy
 * globs) or literal (capability patterns); the model covers neither form of
 * it, so a glob that would need it is opaque.
 */
export function compileGlob(source: string, options: { nfc: boolean; braceMax?: number }): ModelGlob {
  const text = options.nfc ? source.normalize('NFC') : source;
  if (EXTGLOB.test(text)) return { source, alts: [], opaque: 'extglob syntax' };
  const expanded = expandBraces(text, options.braceMax ?? 4096);
  if (expanded === undefined) return { source, alts: [], opaque: 'a brace form the model does not expand' };
  const alts: GlobAlt[] = [];
  for (const a of new Set(expanded)) {
    const c = compileAlt(a);
    if (typeof c === 'string') return { source, alts: [], opaque: c };
    alts.push(c);
  }
  return { source, alts, opaque: undefined };
}

/** The first alternative of `glob` matching `path`, if any. */
export function globMatch(glob: ModelGlob, path: string): GlobAlt | undefined {
  return glob.alts.find((a) => altMatches(a, path));
}

/** Whether a name (no slashes) matches a name glob: one segment, same syntax. */
export function nameMatches(glob: ModelGlob, name: string): boolean {
  return glob.alts.some((a) => (a.segs === null ? false : matchSegs(a.segs, 0, [name], 0)));
}

/** Compile a glob over names (secret and tool names): no leading slash, one segment. */
export function compileNameGlob(source: string): ModelGlob {
  if (EXTGLOB.test(source)) return { source, alts: [], opaque: 'extglob syntax' };
  const expanded = expandBraces(source);
  if (expanded === undefined) return { source, alts: [], opaque: 'a brace form the model does not expand' };
  const alts: GlobAlt[] = [];
  for (const a of new Set(expanded)) {
    if (a.includes('/')) {
      alts.push({ source: a, segs: null, root: '/', literal: false });
      continue;
    }
    const s = segment(a);
    if (typeof s === 'string') return { source, alts: [], opaque: s };
    if (s.kind === 'star2') alts.push({ source: a, segs: [{ kind: 're', re: /^[^/]*$/u }], root: '/', literal: false });
    else alts.push({ source: a, segs: [s], root: '/', literal: s.kind === 'lit' });
  }
  return { source, alts, opaque: undefined };
}
