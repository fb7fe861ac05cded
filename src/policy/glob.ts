/**
 * Globs, compiled once at load with minimatch and bounded so that no
 * pattern, however hostile, can make a decision slow: length, brace nesting,
 * brace expansion, extglob nesting and `**` count are all capped, and braces
 * are expanded here (each alternative becomes its own matcher, which also
 * gives each one an exact literal root).
 * @module
 */
import { Minimatch, braceExpand, type MinimatchOptions } from 'minimatch';

/** Bounds on a glob, checked at load. Exceeding one is an error: the policy does not load. */
export const GLOB_LIMITS = Object.freeze({
  /** Characters in one glob. */
  maxLength: 1024,
  /** Nesting of `{...}`. */
  maxBraceDepth: 8,
  /** Patterns one glob may expand to. */
  maxExpansion: 256,
  /** Nesting of extglob groups `+(...)`, `@(...)`, ... */
  maxExtglobDepth: 8,
  /** `**` segments in one expanded pattern. */
  maxGlobstars: 16,
});

// Paths are POSIX on every platform; dotfiles are matched like any file (a
// deny rule must not miss `.ssh`); `#` and `!` are ordinary characters.
const OPTIONS: MinimatchOptions = Object.freeze({
  dot: true,
  nocomment: true,
  nonegate: true,
  nobrace: true,
  optimizationLevel: 0,
  platform: 'linux',
  maxGlobstarRecursion: 64,
});

/**
 * A canonical path and, computed on first use, its segments (`/a/b` ->
 * `['a', 'b']`, `/` -> `[]`). Splitting costs more than most tests, so only
 * the tests that need the segments pay for it.
 */
export class PathView {
  readonly path: string;
  #segments: string[] | undefined;
  constructor(path: string) {
    this.path = path;
  }
  get segments(): readonly string[] {
    return (this.#segments ??= this.path.length === 1 ? [] : this.path.slice(1).split('/'));
  }
}

/** A compiled test of a canonical path. */
export type PathTest = (view: PathView) => boolean;

/** One expanded alternative of a path glob. */
export interface PathAlternative {
  /** The alternative as matched. */
  readonly pattern: string;
  /**
   * The longest wildcard-free directory prefix: every path this alternative
   * matches lies under it. The host confines the open to it.
   */
  readonly root: string;
  /** Set when the alternative has no wildcard: the exact path it matches. */
  readonly literal?: string | undefined;
  readonly matcher?: Minimatch | undefined;
  /** Whether a canonical path matches: an exact fast path for common shapes, else the minimatch matcher. */
  readonly test?: PathTest | undefined;
  /** The folder itself, added for a glob ending in `/**` (`/data/**` also matches `/data`). */
  readonly self: boolean;
}

export interface CompiledPathGlob {
  readonly source: string;
  readonly alternatives: readonly PathAlternative[];
}

export interface GlobResult<T> {
  readonly value?: T | undefined;
  readonly errors: readonly string[];
  /** Problems that do not stop the policy loading, e.g. an alternative that can never match. */
  readonly warnings: readonly string[];
}

function depth(pattern: string, open: (s: string, i: number) => boolean, close: string): number {
  let d = 0;
  let max = 0;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '\\') {
      i++;
      continue;
    }
    if (open(pattern, i)) max = Math.max(max, ++d);
    else if (ch === close && d > 0) d--;
  }
  return max;
}

const braceOpen = (s: string, i: number): boolean => s[i] === '{';
const extOpen = (s: string, i: number): boolean => s[i] === '(' && i > 0 && '?*+@!'.includes(s[i - 1] as string);

/** Checks shared by path and name globs; returns the expanded alternatives or errors. */
function expand(pattern: string): { alternatives?: string[]; errors: string[] } {
  if (pattern.length === 0) return { errors: ['glob is empty'] };
  if (pattern.length > GLOB_LIMITS.maxLength) return { errors: [`glob is longer than ${GLOB_LIMITS.maxLength} characters`] };
  if (pattern.includes('\0')) return { errors: ['glob contains a NUL byte'] };
  if (depth(pattern, braceOpen, '}') > GLOB_LIMITS.maxBraceDepth) {
    return { errors: [`braces are nested more than ${GLOB_LIMITS.maxBraceDepth} deep`] };
  }
  if (depth(pattern, extOpen, ')') > GLOB_LIMITS.maxExtglobDepth) {
    return { errors: [`extglob groups are nested more than ${GLOB_LIMITS.maxExtglobDepth} deep`] };
  }
  // Ask for one more than allowed: brace-expansion truncates silently at the cap.
  const alternatives = braceExpand(pattern, { braceExpandMax: GLOB_LIMITS.maxExpansion + 1 });
  if (alternatives.length > GLOB_LIMITS.maxExpansion) {
    return { errors: [`braces expand to more than ${GLOB_LIMITS.maxExpansion} patterns`] };
  }
  return { alternatives: [...new Set(alternatives)], errors: [] };
}

/**
 * Compile an absolute path glob (normalised to NFC, like paths). Relative alternatives, `.`/`..` segments and
 * trailing slashes can never match a canonical path: they are dropped with a
 * warning. A glob ending in `/**` also matches the folder itself (marked
 * `self`; fs.write rules leave those out).
 *
 * @example
 * ```ts
 * compilePathGlob('/data/{in,out}/**').value?.alternatives.map((a) => a.root);
 * // ['/data/in', '/data/in', '/data/out', '/data/out'] (each folder and its contents)
 * ```
 */
export function compilePathGlob(source: string): GlobResult<CompiledPathGlob> {
  // Paths are compared in NFC; a glob written in NFD must meet them there.
  const { alternatives, errors } = expand(source.normalize('NFC'));
  if (alternatives === undefined) return { errors, warnings: [] };
  const warnings: string[] = [];
  const out: PathAlternative[] = [];
  const never = (alt: string, why: string): void => {
    const shown = alternatives.length > 1 ? `'${alt}' (from braces) ` : '';
    warnings.push(`${shown}can never match: ${why}`);
  };
  for (const alt of alternatives) {
    if (!alt.startsWith('/')) {
      never(alt, 'it is relative, and paths are always absolute');
      continue;
    }
    const segs = alt.split('/');
    if (segs.some((s) => s === '.' || s === '..')) {
      never(alt, "paths are canonical, without '.' or '..' segments; write the path it means");
      continue;
    }
    if (alt.length > 1 && alt.endsWith('/')) {
      never(alt, `paths never end in '/'; write ${alt.replace(/\/+$/, '') || '/'} for the folder or ${alt}** for its contents`);
      continue;
    }
    if (segs.filter((s) => s === '**').length > GLOB_LIMITS.maxGlobstars) {
      return { errors: [`more than ${GLOB_LIMITS.maxGlobstars} '**' segments`], warnings };
    }
    let mm: Minimatch;
    try {
      mm = new Minimatch(alt, OPTIONS);
    } catch (e) {
      return { errors: [`not a valid glob: ${(e as Error).message}`], warnings };
    }
    const row = mm.set[0];
    if (mm.set.length !== 1 || row === undefined) {
      never(alt, 'it matches nothing');
      continue;
    }
    if (!mm.hasMagic() && row.every((p) => typeof p === 'string')) {
      const literal = normaliseLiteral(row as string[]);
      out.push({ pattern: alt, root: parentOf(literal), literal, self: false });
    } else {
      let k = 0;
      while (k < row.length && typeof row[k] === 'string') k++;
      const root = normaliseLiteral(row.slice(0, k) as string[]);
      out.push({ pattern: alt, root, matcher: mm, test: compileTest(alt, mm), self: false });
    }
    if (alt.endsWith('/**')) {
      // `/data/**` means "the folder and everything in it": match the folder too.
      const folderGlob = alt.slice(0, -3) || '/';
      const folder = new Minimatch(folderGlob, OPTIONS);
      const frow = folder.set[0];
      if (frow !== undefined && !folder.hasMagic() && frow.every((p) => typeof p === 'string')) {
        const literal = normaliseLiteral(frow as string[]);
        out.push({ pattern: folderGlob, root: literal, literal, self: true });
      } else if (frow !== undefined) {
        let k = 0;
        while (k < frow.length && typeof frow[k] === 'string') k++;
        out.push({ pattern: folderGlob, root: normaliseLiteral(frow.slice(0, k) as string[]), matcher: folder, test: compileTest(folderGlob, folder), self: true });
      }
    }
  }
  return { value: { source, alternatives: out }, errors: [], warnings };
}

const MAGIC = /[*?[\]{}()!+@\\]/;

/** `PRE*SUF`: one star and nothing else magic. */
function oneStar(seg: string): { pre: string; suf: string } | undefined {
  const star = seg.indexOf('*');
  if (star < 0 || seg.indexOf('*', star + 1) >= 0) return undefined;
  const pre = seg.slice(0, star);
  const suf = seg.slice(star + 1);
  return MAGIC.test(pre) || MAGIC.test(suf) ? undefined : { pre, suf };
}

/**
 * An exact string test for the glob shapes policies use most, so a decision
 * does not pay for a general matcher on them: with R a literal folder,
 * `R/**`, `R/PRE*SUF`, and `R/**` followed by `/PRE*SUF`, `/NAME` or `/NAME/**`.
 * On canonical paths (no `.`/`..`/empty segments) each is equivalent to
 * minimatch with the options above; a property test holds them to it.
 * Returns undefined for any other shape.
 */
export function fastPathTest(alt: string): ((path: string) => boolean) | undefined {
  if (!alt.startsWith('/') || alt.includes('//')) return undefined;
  const segs = alt.split('/').slice(1);
  let k = 0;
  while (k < segs.length && !MAGIC.test(segs[k] as string)) k++;
  const rootSegs = segs.slice(0, k);
  const tail = segs.slice(k);
  if (tail.length === 0 || segs.some((s) => s === '' || s === '.' || s === '..')) return undefined;
  const prefix = rootSegs.length === 0 ? '/' : `/${rootSegs.join('/')}/`;
  const n = prefix.length;
  const [t0, t1, t2] = tail;
  if (tail.length === 1 && t0 === '**') return (p) => p.startsWith(prefix);
  if (tail.length === 1) {
    const s = oneStar(t0 as string);
    if (s === undefined) return undefined;
    const min = s.pre.length + s.suf.length;
    return (p) =>
      p.length > n && p.startsWith(prefix) && p.indexOf('/', n) < 0 && p.length - n >= min && p.startsWith(s.pre, n) && p.endsWith(s.suf);
  }
  if (tail.length === 2 && t0 === '**') {
    const last = t1 as string;
    if (!MAGIC.test(last)) {
      // The last segment is NAME and lies under the prefix.
      return (p) => {
        if (!p.startsWith(prefix) || !p.endsWith(last)) return false;
        const slash = p.length - last.length - 1;
        return slash >= n - 1 && p.charCodeAt(slash) === 47;
      };
    }
    const s = oneStar(last);
    if (s === undefined) return undefined;
    const min = s.pre.length + s.suf.length;
    return (p) => {
      if (!p.startsWith(prefix)) return false;
      const slash = p.lastIndexOf('/');
      return slash >= n - 1 && p.length - slash - 1 > 0 && p.length - slash - 1 >= min && p.startsWith(s.pre, slash + 1) && p.endsWith(s.suf);
    };
  }
  if (tail.length === 3 && t0 === '**' && t2 === '**' && !MAGIC.test(t1 as string)) {
    const middle = `/${t1}/`;
    return (p) => p.startsWith(prefix) && p.indexOf(middle, n - 1) >= 0;
  }
  return undefined;
}

type SegmentTest = string | { readonly pre: string; readonly suf: string; readonly min: number } | typeof GLOBSTAR_SEG;
const GLOBSTAR_SEG = Symbol('**');

function segTest(t: Exclude<SegmentTest, typeof GLOBSTAR_SEG>, seg: string): boolean {
  if (typeof t === 'string') return t === seg;
  return seg.length >= t.min && seg.startsWith(t.pre) && seg.endsWith(t.suf);
}

/**
 * An exact segment-by-segment matcher for globs whose segments are each a
 * literal, `PRE*SUF` (one star), or `**` (at most one of them). On canonical
 * paths it is equivalent to minimatch with the options above (a property
 * test holds it to that). Returns undefined for any other glob.
 */
export function segmentTest(alt: string): ((segments: readonly string[]) => boolean) | undefined {
  if (!alt.startsWith('/') || alt.includes('//')) return undefined;
  const segs = alt === '/' ? [] : alt.slice(1).split('/');
  const tests: SegmentTest[] = [];
  for (const seg of segs) {
    if (seg === '' || seg === '.' || seg === '..') return undefined;
    if (seg === '**') tests.push(GLOBSTAR_SEG);
    else if (!MAGIC.test(seg)) tests.push(seg);
    else {
      const s = oneStar(seg);
      if (s === undefined) return undefined;
      tests.push({ pre: s.pre, suf: s.suf, min: s.pre.length + s.suf.length });
    }
  }
  const g = tests.indexOf(GLOBSTAR_SEG);
  if (g !== tests.lastIndexOf(GLOBSTAR_SEG)) return undefined;
  if (g < 0) {
    const fixed = tests as Exclude<SegmentTest, typeof GLOBSTAR_SEG>[];
    return (path) => path.length === fixed.length && fixed.every((t, i) => segTest(t, path[i] as string));
  }
  const head = tests.slice(0, g) as Exclude<SegmentTest, typeof GLOBSTAR_SEG>[];
  const tail = tests.slice(g + 1) as Exclude<SegmentTest, typeof GLOBSTAR_SEG>[];
  // A trailing `**` needs at least one segment (`/a/**` is not `/a`), except
  // `/**` alone, which also matches `/`; elsewhere `**` may match none.
  const need = head.length + tail.length + (tail.length === 0 && head.length > 0 ? 1 : 0);
  return (path) => {
    const n = path.length;
    if (n < need) return false;
    for (let i = 0; i < head.length; i++) if (!segTest(head[i] as (typeof head)[number], path[i] as string)) return false;
    for (let i = 0; i < tail.length; i++) if (!segTest(tail[i] as (typeof tail)[number], path[n - tail.length + i] as string)) return false;
    return true;
  };
}

/** The fastest exact test for an alternative: a string test, a segment test, or minimatch. */
function compileTest(alt: string, mm: Minimatch): PathTest {
  const str = fastPathTest(alt);
  if (str !== undefined) return (v) => str(v.path);
  const seg = segmentTest(alt);
  if (seg !== undefined) return (v) => seg(v.segments);
  return (v) => mm.match(v.path);
}

function normaliseLiteral(parts: readonly string[]): string {
  const segs = parts.filter((p) => p !== '');
  return '/' + segs.join('/');
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** A compiled glob over names (tool names): exact names, or matchers. */
export interface CompiledNameGlob {
  readonly source: string;
  readonly literals: readonly string[];
  readonly matchers: readonly Minimatch[];
  /** Only literal characters, `*` and `?`: simple enough to reason about coverage. */
  readonly simple: boolean;
}

/**
 * Compile a glob over names without `/` (tool names). `isName` says what a
 * name may be and `nameChars` which characters it may contain; a glob that
 * needs anything else can never match (warning).
 */
export function compileNameGlob(source: string, isName: (s: string) => boolean, nameChars: RegExp, alphabetText: string): GlobResult<CompiledNameGlob> {
  const { alternatives, errors } = expand(source);
  if (alternatives === undefined) return { errors, warnings: [] };
  const warnings: string[] = [];
  const literals: string[] = [];
  const matchers: Minimatch[] = [];
  const dead = (alt: string): void => {
    warnings.push(`${alternatives.length > 1 ? `'${alt}' (from braces) ` : ''}can never match: names are ${alphabetText}`);
  };
  for (const alt of alternatives) {
    const mm = new Minimatch(alt, OPTIONS);
    const row = mm.set[0];
    if (alt.includes('/') || row === undefined || mm.set.length !== 1) {
      dead(alt);
      continue;
    }
    if (!mm.hasMagic() && row.every((p) => typeof p === 'string')) {
      const literal = (row as string[]).join('/');
      if (isName(literal)) literals.push(literal);
      else dead(alt);
      continue;
    }
    // Outside character classes, a literal character no name can hold makes the glob dead.
    const plain = alt.replace(/\[[^\]]*\]/g, '').replace(/\\(.)/g, '$1').replace(/[*?{}()|!+@,]/g, '');
    if (!nameChars.test(plain)) {
      dead(alt);
      continue;
    }
    matchers.push(mm);
  }
  const simple = alternatives.length === 1 && /^[^\\[\]{}()!+@|]*$/.test(source);
  return { value: { source, literals, matchers, simple }, errors: [], warnings };
}

/**
 * Whether every name matched by `inner` is also matched by `outer`, for the
 * case this can be shown exactly: `outer` uses only literals and `*`, and
 * `inner` only literals, `*` and `?`. Then `outer` covers `inner` exactly when
 * `outer` matches `inner`'s text (each wildcard of `inner` falls inside a `*`
 * of `outer`, which can stand for anything in its place). Undecided cases
 * answer false.
 */
export function nameGlobCovers(outer: CompiledNameGlob, inner: CompiledNameGlob): boolean {
  if (!outer.simple || !inner.simple || outer.source.includes('?')) return false;
  const m = outer.matchers[0];
  if (m === undefined) return outer.literals.includes(inner.source);
  return m.match(inner.source);
}

/** Whether a compiled name glob matches `name`. */
export function nameGlobMatches(glob: CompiledNameGlob, name: string): boolean {
  for (const l of glob.literals) if (l === name) return true;
  for (const m of glob.matchers) if (m.match(name)) return true;
  return false;
}
