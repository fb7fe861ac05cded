// How a tool turns a host error (the WIT `error` variant, thrown by the
// bindings as an object with a `payload`) into a message for its caller.
export function hostError(e) {
  const err = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
  if (err && err.tag === 'denied') return `${err.val.code}: ${err.val.message}`;
  if (err && err.tag === 'rate-limited') return `rate-limited: retry after ${String(err.val)} ms`;
  if (err && typeof err.tag === 'string') return `${err.tag}: ${String(err.val)}`;
  return String(err);
}
