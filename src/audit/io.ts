/**
 * The few file operations on the write path, behind an interface so that a
 * test can count what fdatasync has covered, or make it fail.
 * @module
 */
import fs from 'node:fs';

export interface AuditIo {
  open(path: string, flags: string, mode?: number): Promise<number>;
  /** Write `buffer` at `position`; resolves with the bytes written (may be fewer). */
  write(fd: number, buffer: Uint8Array, position: number): Promise<number>;
  /** The same, synchronously; when present the log writes its batches with it (fdatasync stays asynchronous). */
  writeSync?: (fd: number, buffer: Uint8Array, position: number) => number;
  fdatasync(fd: number): Promise<void>;
  close(fd: number): Promise<void>;
}

/** The real thing: Node's callback fs API (runs on the libuv pool, the main thread stays free). */
export const nodeAuditIo: AuditIo = {
  open: (path, flags, mode) =>
    new Promise((resolve, reject) => fs.open(path, flags, mode ?? 0o600, (err, fd) => (err ? reject(err) : resolve(fd)))),
  write: (fd, buffer, position) =>
    new Promise((resolve, reject) =>
      fs.write(fd, buffer, 0, buffer.length, position, (err, written) => (err ? reject(err) : resolve(written))),
    ),
  writeSync: (fd, buffer, position) => fs.writeSync(fd, buffer, 0, buffer.length, position),
  fdatasync: (fd) => new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve()))),
  close: (fd) => new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve()))),
};

/** Write all of `buffer` at `position`, looping over short writes. */
export async function writeFully(io: AuditIo, fd: number, buffer: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buffer.length) {
    const n = await io.write(fd, buffer.subarray(done), position + done);
    if (n <= 0) throw new Error(`write made no progress at offset ${position + done}`);
    done += n;
  }
}

/** `writeFully` with a synchronous write. */
export function writeFullySync(write: (fd: number, buffer: Uint8Array, position: number) => number, fd: number, buffer: Uint8Array, position: number): void {
  let done = 0;
  while (done < buffer.length) {
    const n = write(fd, buffer.subarray(done), position + done);
    if (n <= 0) throw new Error(`write made no progress at offset ${position + done}`);
    done += n;
  }
}

/** fsync a directory so that a create, rename or unlink inside it is durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
