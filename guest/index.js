// authority-sandbox/guest: helpers for tools (the guest side), in plain
// JavaScript so that the JavaScript engine inside a tool can load it as it is.
//
// A host function of `authority:sandbox` that fails throws the WIT `error`
// variant, `{ payload: { tag, val } }`, not an Error. A tool that lets it
// escape traps, and the caller then learns only that the tool trapped (the
// runtime still reports the denial first). Wrapping host calls in `host()`
// turns a failure into the tool's own error result instead, carrying the
// denial's code and message:
//
//   import { readFile } from 'authority:sandbox/fs@0.1.0';
//   import { host } from 'authority-sandbox/guest';
//   export function run(input) {
//     const bytes = host(() => readFile(JSON.parse(input).path));
//     ...
//   }
//
// `authority build` resolves the 'authority-sandbox/guest' import to this file.

/** The WIT error behind a value a host function threw, or undefined if it is something else. */
export function hostErrorOf(e) {
  const err = e !== null && typeof e === 'object' && 'payload' in e ? e.payload : e;
  return err !== null && typeof err === 'object' && typeof err.tag === 'string' ? err : undefined;
}

/** One line for the tool's caller: "E_CAP_SCOPE: ..." for a denial, "<case>: <text>" otherwise. */
export function hostError(e) {
  const err = hostErrorOf(e);
  if (err === undefined) return String(e);
  if (err.tag === 'denied') return `${err.val.code}: ${err.val.message}`;
  if (err.tag === 'rate-limited') return `rate-limited: retry after ${String(err.val)} ms`;
  return `${err.tag}: ${String(err.val)}`;
}

/** The gate's denial ({ code, message }) if `e` is one, else undefined. */
export function denial(e) {
  const err = hostErrorOf(e);
  return err !== undefined && err.tag === 'denied' ? err.val : undefined;
}

/** For a `rate-limited` error: how long to wait, in milliseconds; else undefined. */
export function retryAfterMs(e) {
  const err = hostErrorOf(e);
  return err !== undefined && err.tag === 'rate-limited' ? Number(err.val) : undefined;
}

/**
 * Run a host call; if the host refuses or fails it, throw its one-line
 * message (a string), which ends the run with the tool's error result
 * rather than a trap.
 */
export function host(call) {
  try {
    return call();
  } catch (e) {
    if (hostErrorOf(e) !== undefined) throw hostError(e);
    throw e;
  }
}
