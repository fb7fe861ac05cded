/**
 * One-pass search for every secret value at once (Aho-Corasick over bytes,
 * compiled to a dense automaton with byte classes), used to refuse outgoing
 * requests that carry a value and to redact values from responses and tool
 * output. Cost: one table lookup per input byte, whatever the number of
 * secrets; memory grows with the number of secrets times 64.
 * @module
 */
import { inspect } from 'node:util';

/** Shorter values cannot be told apart from ordinary text; the store refuses them. */
export const MIN_SECRET_BYTES = 8;
/** Only the first bytes of a value are compiled; a match is then extended over the rest of the value. */
const PATTERN_BYTES = 64;

/** One kind of finding: which secret, where (`body`, `header:<name>`, `url`, `output`...), how often. */
export interface Redaction {
  readonly name: string;
  readonly where: string;
  readonly count: number;
}

interface Span {
  start: number;
  end: number;
  id: number;
}

/**
 * A compiled search over a fixed set of secret values. Values live only in
 * private fields; the object prints and serialises as a count.
 */
export class SecretScanner {
  readonly #names: string[];
  readonly #values: Buffer[];
  readonly #count: number;
  readonly #patLen: Int32Array;
  readonly #classOf = new Uint8Array(256);
  readonly #k: number;
  readonly #delta: Int32Array;
  /** Per state: the pattern ids that end exactly here (undefined for most states). */
  readonly #ends: (number[] | undefined)[];
  /** Per state: the nearest proper suffix state where a pattern ends, or -1. */
  readonly #dict: Int32Array;
  /** Per state: 1 when some pattern ends here or along the dictionary chain. */
  readonly #hit: Uint8Array;

  constructor(entries: Iterable<readonly [name: string, value: string]>) {
    this.#names = [];
    this.#values = [];
    const patterns: Buffer[] = [];
    let count = 0;
    for (const [name, value] of entries) {
      if (value.length === 0) continue;
      count++;
      // Inside JSON text (a tool's output, an API's answer) a value is written escaped: `"` as `\"`,
      // a tab as `\t`. Search for that spelling too, or JSON output would carry the value unredacted.
      const escaped = JSON.stringify(value).slice(1, -1);
      for (const spelling of escaped === value ? [value] : [value, escaped]) {
        const bytes = Buffer.from(spelling, 'utf8');
        let n = Math.min(bytes.length, PATTERN_BYTES);
        // End the compiled prefix on a character boundary, so redacted text stays valid UTF-8.
        while (n > 1 && n < bytes.length && ((bytes[n] as number) & 0xc0) === 0x80) n--;
        this.#names.push(name);
        this.#values.push(bytes);
        patterns.push(bytes.subarray(0, n));
      }
    }
    this.#count = count;
    this.#patLen = Int32Array.from(patterns, (p) => p.length);

    // Byte classes: every byte that occurs in some pattern gets its own class, all others share class 0.
    let k = 1;
    for (const p of patterns) for (const b of p) if (this.#classOf[b] === 0) this.#classOf[b] = k++;
    this.#k = k;

    // Trie.
    const children: Map<number, number>[] = [new Map()];
    const ends: (number[] | undefined)[] = [undefined];
    patterns.forEach((p, id) => {
      let s = 0;
      for (const b of p) {
        const c = this.#classOf[b] as number;
        let t = (children[s] as Map<number, number>).get(c);
        if (t === undefined) {
          t = children.length;
          children.push(new Map());
          ends.push(undefined);
          (children[s] as Map<number, number>).set(c, t);
        }
        s = t;
      }
      (ends[s] ??= []).push(id);
    });
    const n = children.length;
    this.#ends = ends;

    // Dense automaton: failure transitions folded into the table (breadth first).
    const delta = new Int32Array(n * k);
    const fail = new Int32Array(n);
    const dict = new Int32Array(n).fill(-1);
    const hit = new Uint8Array(n);
    const queue: number[] = [];
    for (let c = 0; c < k; c++) {
      const t = (children[0] as Map<number, number>).get(c);
      delta[c] = t ?? 0;
      if (t !== undefined) queue.push(t);
    }
    for (let qi = 0; qi < queue.length; qi++) {
      const s = queue[qi] as number;
      const f = fail[s] as number;
      dict[s] = ends[f] !== undefined ? f : (dict[f] as number);
      hit[s] = ends[s] !== undefined || dict[s] !== -1 ? 1 : 0;
      const kids = children[s] as Map<number, number>;
      for (let c = 0; c < k; c++) {
        const t = kids.get(c);
        if (t === undefined) {
          delta[s * k + c] = delta[f * k + c] as number;
        } else {
          delta[s * k + c] = t;
          fail[t] = delta[f * k + c] as number;
          queue.push(t);
        }
      }
    }
    this.#delta = delta;
    this.#dict = dict;
    this.#hit = hit;
  }

  /** How many values are searched for. */
  get size(): number {
    return this.#count;
  }

  /** Every match, as spans over the whole value where the input holds all of it, else over the compiled prefix. */
  #spans(bytes: Uint8Array, firstOnly: boolean): Span[] {
    const spans: Span[] = [];
    if (this.#names.length === 0) return spans;
    const delta = this.#delta;
    const cls = this.#classOf;
    const k = this.#k;
    const hit = this.#hit;
    let s = 0;
    for (let i = 0; i < bytes.length; i++) {
      s = delta[s * k + (cls[bytes[i] as number] as number)] as number;
      if (hit[s] === 0) continue;
      for (let e = this.#ends[s] !== undefined ? s : (this.#dict[s] as number); e !== -1; e = this.#dict[e] as number) {
        for (const id of this.#ends[e] ?? []) {
          const start = i + 1 - (this.#patLen[id] as number);
          const value = this.#values[id] as Buffer;
          const whole = start + value.length <= bytes.length && value.equals(bytes.subarray(start, start + value.length));
          spans.push({ start, end: whole ? start + value.length : i + 1, id });
          if (firstOnly) return spans;
        }
      }
    }
    return spans;
  }

  /** Names of the secrets whose values occur in `bytes` (each name once). */
  findBytes(bytes: Uint8Array): string[] {
    const names = new Set<string>();
    for (const sp of this.#spans(bytes, false)) names.add(this.#names[sp.id] as string);
    return [...names];
  }

  /** Names of the secrets whose values occur in `text`. */
  findText(text: string): string[] {
    return this.#names.length === 0 || text.length === 0 ? [] : this.findBytes(Buffer.from(text, 'utf8'));
  }

  /** Whether any value occurs in `bytes` (stops at the first). */
  containsAny(bytes: Uint8Array): boolean {
    return this.#spans(bytes, true).length > 0;
  }

  /**
   * Replace every occurrence of a value with `[REDACTED:NAME]`. Overlapping
   * occurrences are merged into one replacement, so no byte of any value
   * survives. Returns the input itself when nothing was found.
   */
  redactBytes(bytes: Uint8Array, where = 'bytes'): { bytes: Uint8Array; redactions: Redaction[] } {
    const spans = this.#spans(bytes, false);
    if (spans.length === 0) return { bytes, redactions: [] };
    spans.sort((a, b) => a.start - b.start || b.end - a.end);
    const counts = new Map<string, number>();
    const parts: Uint8Array[] = [];
    let pos = 0;
    for (let i = 0; i < spans.length; ) {
      const first = spans[i] as Span;
      let end = first.end;
      for (; i < spans.length && (spans[i] as Span).start < end; i++) {
        const sp = spans[i] as Span;
        end = Math.max(end, sp.end);
        const name = this.#names[sp.id] as string;
        counts.set(name, (counts.get(name) ?? 0) + 1);
      }
      parts.push(bytes.subarray(pos, first.start), Buffer.from(`[REDACTED:${this.#names[first.id]}]`, 'utf8'));
      pos = end;
    }
    parts.push(bytes.subarray(pos));
    return { bytes: Buffer.concat(parts), redactions: [...counts].map(([name, count]) => ({ name, where, count })) };
  }

  /** `redactBytes` for text. */
  redactText(text: string, where = 'text'): { text: string; redactions: Redaction[] } {
    if (this.#names.length === 0 || text.length === 0) return { text, redactions: [] };
    const r = this.redactBytes(Buffer.from(text, 'utf8'), where);
    return r.redactions.length === 0 ? { text, redactions: [] } : { text: Buffer.from(r.bytes).toString('utf8'), redactions: r.redactions };
  }

  toJSON(): { secrets: number } {
    return { secrets: this.#count };
  }

  toString(): string {
    return `[SecretScanner: ${this.#count} values]`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Decode `%XX` escapes and leave everything else as it is, so a value sent
 * percent-encoded in a URL or form body is still recognised.
 */
export function percentDecodeLenient(bytes: Uint8Array): Uint8Array {
  if (!bytes.includes(0x25)) return bytes;
  const out = Buffer.allocUnsafe(bytes.length);
  let o = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (b === 0x25 && i + 2 < bytes.length) {
      const h = hexVal(bytes[i + 1] as number);
      const l = hexVal(bytes[i + 2] as number);
      if (h >= 0 && l >= 0) {
        out[o++] = (h << 4) | l;
        i += 2;
        continue;
      }
    }
    out[o++] = b;
  }
  return out.subarray(0, o);
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}
