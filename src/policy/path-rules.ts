/**
 * A list of path globs, indexed so that a decision tests only the globs that
 * could match: exact paths in a Map, other alternatives in a trie keyed by
 * the segments of their literal root. A path `/a/b/c` then tests only
 * alternatives rooted at `/`, `/a`, `/a/b` or `/a/b/c`.
 * @module
 */
import type { CompiledPathGlob, PathAlternative, PathView } from './glob.ts';

/** A glob alternative with the rule it came from. */
export interface PathRuleHit {
  /** Index of the rule in its list. */
  readonly index: number;
  /** The glob as written. */
  readonly source: string;
  readonly alternative: PathAlternative;
}

interface TrieNode {
  readonly children: Map<string, TrieNode>;
  /** Sorted by rule index, so the first hit is the first rule. */
  readonly hits: PathRuleHit[];
}

const node = (): TrieNode => ({ children: new Map(), hits: [] });

export class PathRuleSet {
  readonly #literal = new Map<string, PathRuleHit>();
  readonly #root: TrieNode = node();
  readonly size: number;

  /** `includeSelf: false` leaves out the folder-itself alternatives of `/**` globs (fs.write). */
  constructor(globs: readonly CompiledPathGlob[], includeSelf: boolean) {
    globs.forEach((g, index) => {
      for (const alternative of g.alternatives) {
        if (alternative.self && !includeSelf) continue;
        const hit: PathRuleHit = { index, source: g.source, alternative };
        if (alternative.literal !== undefined) {
          // The first rule naming a path wins: keep the earliest.
          if (!this.#literal.has(alternative.literal)) this.#literal.set(alternative.literal, hit);
          continue;
        }
        let n = this.#root;
        for (const seg of alternative.root.split('/')) {
          if (seg === '') continue;
          let next = n.children.get(seg);
          if (next === undefined) {
            next = node();
            n.children.set(seg, next);
          }
          n = next;
        }
        n.hits.push(hit);
      }
    });
    this.size = globs.length;
    Object.freeze(this);
  }

  /** The first rule (lowest index) with an alternative matching the canonical path. */
  match(view: PathView): PathRuleHit | undefined {
    const path = view.path;
    let best = this.#literal.get(path);
    let n: TrieNode | undefined = this.#root;
    best = scan(n, view, best);
    // Walk down the roots along the path; most paths leave the trie after a level or two.
    let start = 1;
    while (start < path.length && n.children.size > 0) {
      let end = path.indexOf('/', start);
      if (end < 0) end = path.length;
      n = n.children.get(path.slice(start, end));
      if (n === undefined) break;
      best = scan(n, view, best);
      start = end + 1;
    }
    return best;
  }

  /** Every alternative, for checks at load. */
  *alternatives(): Iterable<PathRuleHit> {
    yield* this.#literal.values();
    const stack: TrieNode[] = [this.#root];
    while (stack.length > 0) {
      const n = stack.pop() as TrieNode;
      yield* n.hits;
      stack.push(...n.children.values());
    }
  }
}

function scan(n: TrieNode, view: PathView, best: PathRuleHit | undefined): PathRuleHit | undefined {
  for (const h of n.hits) {
    if (best !== undefined && h.index >= best.index) return best;
    if ((h.alternative.test as NonNullable<PathAlternative['test']>)(view)) return h;
  }
  return best;
}
