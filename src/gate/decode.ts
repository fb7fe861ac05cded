/**
 * Stage 1: decode and validate a host call's arguments, and canonicalise what
 * the checks will look at. Nothing downstream ever sees a raw path or URL.
 * Each operation's decoding is its row in ops.ts.
 * @module
 */
export { decode, type CanonicalCall } from './ops.ts';
