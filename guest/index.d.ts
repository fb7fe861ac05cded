/**
 * authority-sandbox/guest: helpers for tools (the guest side).
 *
 * The `authority:sandbox/*` modules a tool imports are typed by
 * `authority-sandbox/guest/sandbox` (generated from wit/sandbox.wit); add
 * `/// <reference types="authority-sandbox/guest/sandbox" />` to a tool
 * written in TypeScript, or rely on this module's reference below.
 *
 * @example
 * ```ts
 * import { readFile } from 'authority:sandbox/fs@0.1.0';
 * import { host } from 'authority-sandbox/guest';
 * export function run(input: string): string {
 *   const bytes = host(() => readFile(JSON.parse(input).path));
 *   return new TextDecoder().decode(bytes);
 * }
 * ```
 * @module
 */
/// <reference path="./sandbox.d.ts" />
import type { Denial, Error as HostError } from 'authority:sandbox/types@0.1.0';

/** The WIT error behind a value a host function threw, or undefined if it is something else. */
export declare function hostErrorOf(e: unknown): HostError | undefined;
/** One line for the tool's caller: "E_CAP_SCOPE: ..." for a denial, "<case>: <text>" otherwise. */
export declare function hostError(e: unknown): string;
/** The gate's denial if `e` is one, else undefined. */
export declare function denial(e: unknown): Denial | undefined;
/** For a `rate-limited` error: how long to wait, in milliseconds; else undefined. */
export declare function retryAfterMs(e: unknown): number | undefined;
/** Run a host call; a host error is thrown as its one-line message (the tool's error result, not a trap). */
export declare function host<T>(call: () => T): T;
