/// <reference path="./authority-sandbox-types.d.ts" />
declare module 'authority:sandbox/fs@0.1.0' {
  /**
   * Read a whole file.
   */
  export function readFile(path: string): Uint8Array;
  /**
   * Replace a file atomically (a temp file renamed over the target), creating
   * it if needed. The parent directory must exist (see `make-dir`). Never leaves a partial file.
   */
  export function writeFile(path: string, data: Uint8Array): void;
  /**
   * The entries of a directory, sorted by name, without `.` and `..`.
   */
  export function listDir(path: string): Array<DirEntry>;
  /**
   * Facts about a file or directory (symlinks are not followed).
   */
  export function stat(path: string): FileStat;
  /**
   * Remove a file or an empty directory.
   */
  export function remove(path: string): void;
  /**
   * Create a directory. Its parent must exist (make nested folders one
   * level at a time); a directory already there is not an error, anything
   * else there is. Needs what a write to that path needs.
   */
  export function makeDir(path: string): void;
  export type Error = import('authority:sandbox/types@0.1.0').Error;
  /**
   * # Variants
   * 
   * ## `"file"`
   * 
   * ## `"directory"`
   * 
   * ## `"symlink"`
   * 
   * ## `"other"`
   */
  export type FileKind = 'file' | 'directory' | 'symlink' | 'other';
  export interface FileStat {
    kind: FileKind,
    /**
     * Size in bytes.
     */
    size: bigint,
    /**
     * Last modification, milliseconds since the Unix epoch.
     */
    modifiedMs: bigint,
  }
  export interface DirEntry {
    name: string,
    kind: FileKind,
  }
}
