/**
 * Messages between the pool (main thread) and its workers, and the layout of
 * the shared memory the synchronous bridge uses.
 *
 * The bridge: a guest's import call is synchronous, the gate is asynchronous
 * and lives on the main thread. The worker posts the call on a MessagePort,
 * bumps `REQ_SEQ` and notifies; the main thread, waiting on `REQ_SEQ` with
 * Atomics.waitAsync, reads the call with receiveMessageOnPort, asks the gate,
 * posts the reply, sets `REP_SEQ` to the same number and notifies. The worker
 * spins briefly, then sleeps in Atomics.wait until `REP_SEQ` matches, and
 * reads the reply with receiveMessageOnPort. Sequence numbers (not flags)
 * make every wake-up unambiguous.
 */
import type { HostCall, HostReply } from '../gate/types.ts';

/** Int32 slots of the bridge's SharedArrayBuffer. */
export const REQ_SEQ = 0;
export const REP_SEQ = 1;
/** Set by the main thread when the worker is being retired; wakes every waiter. */
export const CLOSED = 2;
/**
 * The longest a worker may spin waiting for a reply, in microseconds, set by
 * the main thread: 0 when more threads are busy than there are cores (a
 * spinning thread would only steal time from the one it waits for).
 */
export const SPIN_US = 3;
/** Bumped by the main thread for every command it posts on the command port. */
export const CMD_SEQ = 4;
/**
 * Nonzero while a worker will look at CMD_SEQ before it next sleeps (1: it
 * is watching it between runs; 2: it is finishing a run): then it needs no
 * wake-up message. It clears this before its last look.
 */
export const LINGERING = 5;
export const BRIDGE_SLOTS = 8;

export interface ToolDescription {
  name: string;
  description: string;
  inputSchema: string;
}

/** Main -> worker. */
export type ToWorker =
  | {
      type: 'load';
      digest: string;
      jsUrl: string;
      modules: Array<[string, WebAssembly.Module]>;
    }
  | {
      type: 'run';
      id: number;
      digest: string;
      entry: 'run' | 'describe';
      input: string;
      maxOutputBytes: number;
      /** Instantiate the next instance of this tool ahead of time once this run ends. */
      prepareNext: boolean;
    }
  | { type: 'prepare'; digest: string; timeoutMs: number }
  | { type: 'drop'; digest: string };

/** How a run ended inside the worker. */
export type RunEnd =
  | { kind: 'ok'; output: string }
  | { kind: 'described'; description: ToolDescription }
  | { kind: 'tool-error'; message: string }
  | { kind: 'output-too-large'; bytes: number }
  /** The guest trapped (unreachable, out-of-bounds, stack overflow, bad ABI data): the worker is retired. */
  | { kind: 'trap'; message: string }
  /** Loading or instantiating failed before the guest ran. */
  | { kind: 'load-error'; message: string };

/** Worker -> main. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'started'; id: number }
  | { type: 'done'; id: number; end: RunEnd; instantiateUs: number; runUs: number; fromReady: boolean }
  | { type: 'preparing'; digest: string }
  | { type: 'prepared'; digest: string; failed?: boolean };

/** Worker -> main on the bridge port: a host call, or the end of a run. */
export type BridgeRequest = { kind: 'call'; seq: number; call: HostCall } | { kind: 'done'; done: Extract<FromWorker, { type: 'done' }> };

/** Main -> worker on the parent port: look at the command port (sent only when the worker is not lingering). */
export interface WakeMessage {
  type: 'wake';
}

/** Main -> worker on the bridge port. */
export interface BridgeReply {
  seq: number;
  reply: HostReply;
}
