/**
 * One writer per log: an exclusive lock file created with O_EXCL holding the
 * writer's pid, host and a random token. A lock whose pid is gone on this host
 * is stale and taken over; anything else is refused with E_CONFIG.
 * @module
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { AuthorityError, ErrorCode } from '../errors.ts';

interface LockInfo {
  pid: number;
  host: string;
  since: string;
  token: string;
}

export interface LogLock {
  readonly path: string;
  /** Remove the lock file if it is still ours. */
  release(): void;
}

function readLock(path: string): { text: string; info: LockInfo | null } | null {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.token === 'string') {
      return { text, info: { pid: v.pid, host: v.host, since: String(v.since), token: v.token } };
    }
  } catch {
    // An unreadable lock (e.g. a crash between create and write) tells us nothing: treat as stale below.
  }
  return { text, info: null };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the pid exists but belongs to someone else, so it is alive.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the lock at `path` is held by a live process on this host (readers use this to tell a write in progress from a torn tail). */
export function lockHeldByLiveWriter(path: string): boolean {
  let current: ReturnType<typeof readLock>;
  try {
    current = readLock(path);
  } catch {
    return false; // unreadable (another user's lock): assume no write in flight, the stricter reading
  }
  if (current === null || current.info === null) return false;
  return current.info.host !== hostname() || pidAlive(current.info.pid);
}

/**
 * Take the log's lock or fail with E_CONFIG naming the holder.
 * A lock left by a dead process on this host is taken over; a lock from
 * another host is never broken (its pid means nothing here).
 */
export function acquireLock(path: string): LogLock {
  const info: LockInfo = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token: randomBytes(16).toString('hex') };
  const body = JSON.stringify(info) + '\n';
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(path, 'wx', 0o600);
      try {
        fs.writeSync(fd, body);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return {
        path,
        release() {
          const now = readLock(path);
          if (now?.info?.token === info.token) fs.rmSync(path, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const held = readLock(path);
    if (held === null) continue; // released between our create and read: try again
    const h = held.info;
    if (h !== null && (h.host !== info.host || pidAlive(h.pid))) {
      const who = h.pid === process.pid && h.host === info.host ? 'this process' : `pid ${h.pid} on ${h.host}`;
      throw new AuthorityError(
        ErrorCode.CONFIG,
        `the audit log is already open by ${who} (since ${h.since}); one writer per log. If no Authority runtime is running, remove ${path}`,
        { data: { lockFile: path, pid: h.pid, host: h.host } },
      );
    }
    // Stale. Move it aside atomically, and make sure what we moved is what we judged stale:
    // another opener may have replaced it with a live lock in between.
    const aside = `${path}.stale-${info.token}`;
    try {
      fs.renameSync(path, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const moved = fs.readFileSync(aside, 'utf8');
    if (moved !== held.text) {
      try {
        fs.linkSync(aside, path); // put the live lock back, unless a third opener already holds the name
      } catch {
        // the name is taken again: that holder wins, we fail below on the next round
      }
      fs.rmSync(aside, { force: true });
      continue;
    }
    fs.rmSync(aside, { force: true });
  }
  throw new AuthorityError(ErrorCode.CONFIG, `could not take the audit log lock ${path}: it keeps changing hands`, { data: { lockFile: path } });
}
