/**
 * Reading newline-framed files in chunks: forward from an offset (scans,
 * verification, follow) and backward from the end (tail).
 * @module
 */
import fs from 'node:fs';

export interface RawLine {
  /** The line without its newline (cut at `cap` bytes when longer, see `overlong`). */
  bytes: Buffer;
  /** Byte offset of the line's first byte. */
  offset: number;
  /** Length in the file, newline excluded. */
  length: number;
  /** Whether the line ends with a newline. Only the last line of a file can lack one. */
  complete: boolean;
  /** Longer than `cap`: `bytes` holds only the first `cap + 1` bytes. */
  overlong: boolean;
}

const CHUNK = 1 << 20;
const NL = 0x0a;

/**
 * The lines of `path` from byte `start` up to `end` (default: the size when
 * reading starts). A line longer than `cap` is not buffered whole.
 */
export async function* readLines(path: string, start = 0, end?: number, cap = 1 << 20): AsyncGenerator<RawLine> {
  const handle = await fs.promises.open(path, 'r');
  try {
    const stop = end ?? (await handle.stat()).size;
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(CHUNK, stop - start)));
    let pos = start;
    let parts: Buffer[] = [];
    let partLen = 0;
    let lineStart = start;
    let lineLen = 0;
    const take = (): Buffer => (parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, partLen));
    while (pos < stop) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, stop - pos), pos);
      if (bytesRead === 0) break;
      let i = 0;
      while (i < bytesRead) {
        const nl = buf.indexOf(NL, i);
        const j = nl === -1 || nl >= bytesRead ? bytesRead : nl;
        const piece = buf.subarray(i, j);
        lineLen += piece.length;
        if (partLen <= cap) {
          const room = cap + 1 - partLen;
          const keep = piece.length > room ? piece.subarray(0, room) : piece;
          parts.push(Buffer.from(keep));
          partLen += keep.length;
        }
        if (j < bytesRead) {
          yield { bytes: take(), offset: lineStart, length: lineLen, complete: true, overlong: lineLen > cap };
          parts = [];
          partLen = 0;
          lineStart = pos + j + 1;
          lineLen = 0;
          i = j + 1;
        } else {
          i = bytesRead;
        }
      }
      pos += bytesRead;
    }
    if (lineLen > 0) yield { bytes: take(), offset: lineStart, length: lineLen, complete: false, overlong: lineLen > cap };
  } finally {
    await handle.close();
  }
}

/**
 * Complete lines of `path`, last first, ending at byte `end` (default: the
 * size). Bytes after the last newline (a line being written, or torn) are skipped.
 */
export async function* readLinesBackward(path: string, end?: number): AsyncGenerator<{ bytes: Buffer; offset: number }> {
  const handle = await fs.promises.open(path, 'r');
  try {
    const chunk = 64 * 1024;
    let pos = end ?? (await handle.stat()).size;
    // Find the end of the last complete line.
    let limit = -1;
    while (pos > 0 && limit === -1) {
      const n = Math.min(chunk, pos);
      pos -= n;
      const buf = Buffer.allocUnsafe(n);
      await handle.read(buf, 0, n, pos);
      const at = buf.lastIndexOf(NL);
      if (at !== -1) limit = pos + at + 1;
    }
    if (limit === -1) return;
    // Invariant: `carry` is file bytes [pos, pos + carry.length), it ends with a newline,
    // and every line after it has been emitted.
    pos = limit;
    let carry = Buffer.alloc(0);
    while (pos > 0) {
      const n = Math.min(chunk, pos);
      pos -= n;
      const buf = Buffer.allocUnsafe(n);
      await handle.read(buf, 0, n, pos);
      const data = carry.length > 0 ? Buffer.concat([buf, carry]) : buf;
      let e = data.length - 1; // index of the newline closing the line being looked at
      for (;;) {
        const s = e === 0 ? -1 : data.lastIndexOf(NL, e - 1);
        if (s === -1) break;
        yield { bytes: Buffer.from(data.subarray(s + 1, e)), offset: pos + s + 1 };
        e = s;
      }
      carry = Buffer.from(data.subarray(0, e + 1));
      if (carry.length > 16 * CHUNK) throw new Error(`${path}: a line longer than 16 MiB ends at byte ${pos + carry.length}`);
    }
    if (carry.length > 0) yield { bytes: Buffer.from(carry.subarray(0, carry.length - 1)), offset: 0 };
  } finally {
    await handle.close();
  }
}
