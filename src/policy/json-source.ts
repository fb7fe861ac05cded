/**
 * A strict JSON reader for policy files. JSON.parse keeps the last of two
 * equal keys silently, so `{"fs": {...}, "fs": {...}}` would mean something
 * other than it seems; this reader refuses duplicates, and records where each
 * value starts so every problem can be shown with its line and column.
 * @module
 */

export type JsonPath = readonly (string | number)[];

export interface Position {
  readonly line: number;
  readonly column: number;
}

export interface JsonSource {
  readonly value: unknown;
  /** Where each value starts, by formatted path (`""` for the root). */
  readonly positions: ReadonlyMap<string, Position>;
  /** Where each object member's key starts, by the member's formatted path. */
  readonly keyPositions: ReadonlyMap<string, Position>;
}

export class JsonSyntaxError extends Error {
  readonly path: string;
  readonly position: Position;
  constructor(message: string, path: string, position: Position) {
    super(message);
    this.path = path;
    this.position = position;
  }
}

/** Nesting deeper than this is refused (a policy is at most a few levels deep). */
const MAX_DEPTH = 64;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `fs.read[0]`, `secrets["my-key"].hosts[1]`, `(root)` for the empty path. */
export function formatPath(path: JsonPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/**
 * Parse JSON text, refusing duplicate keys and nesting deeper than 64.
 * Throws JsonSyntaxError with the path and position of the problem.
 */
export function parseJsonSource(text: string): JsonSource {
  const positions = new Map<string, Position>();
  const keyPositions = new Map<string, Position>();
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const pos = (): Position => ({ line, column: i - lineStart + 1 });
  const fail = (message: string, path: JsonPath): never => {
    throw new JsonSyntaxError(i >= text.length ? 'unexpected end of input' : message, formatPath(path), pos());
  };
  const ws = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 10) {
        line++;
        lineStart = ++i;
      } else if (c === 32 || c === 9 || c === 13) i++;
      else return;
    }
  };
  const str = (path: JsonPath): string => {
    const start = i;
    i++;
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) fail('unterminated string', path);
      if (c === 34) break;
      if (c === 92) i += 2;
      else if (c < 32) fail('control character in a string', path);
      else i++;
    }
    i++;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      return fail('invalid escape in a string', path);
    }
  };
  const value = (path: JsonPath, depth: number): unknown => {
    ws();
    if (depth > MAX_DEPTH) fail(`nested more than ${MAX_DEPTH} levels deep`, path);
    positions.set(formatPath(path), pos());
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: Record<string, unknown> = {};
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a "key"', path);
        const keyPos = pos();
        const key = str(path);
        if (seen.has(key)) {
          throw new JsonSyntaxError(`duplicate key ${JSON.stringify(key)}: JSON keeps only one of them, so the file would not mean what it says`, formatPath([...path, key]), keyPos);
        }
        seen.add(key);
        keyPositions.set(formatPath([...path, key]), keyPos);
        ws();
        if (text[i] !== ':') fail("expected ':' after a key", [...path, key]);
        i++;
        Object.defineProperty(obj, key, { value: value([...path, key], depth + 1), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail("expected ',' or '}'", path);
      }
    }
    if (c === '[') {
      i++;
      const arr: unknown[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value([...path, arr.length], depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail("expected ',' or ']'", path);
      }
    }
    if (c === '"') return str(path);
    const lit = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (lit === null) return fail(c === undefined ? 'unexpected end of input' : `unexpected ${JSON.stringify(c)}`, path);
    i += lit[0].length;
    return JSON.parse(lit[0]) as unknown;
  };
  const v = value([], 0);
  ws();
  if (i < text.length) fail('unexpected text after the JSON value', []);
  return { value: v, positions, keyPositions };
}
