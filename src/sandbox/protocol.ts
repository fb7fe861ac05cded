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
 *
 * The same memory carries what the pool needs to know between messages:
 * whether a worker holds a ready instance of a tool, when its current run
 * started (for the deadline) and whether it is still instantiating ahead.
 */
import type { HostCall, HostReply } from '../host-call.ts';

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
/**
 * The id of the latest run whose guest the worker started (its deadline
 * starts then; the time is at RUN_STARTED_AT). Written by the worker, read by
 * the pool when a deadline timer fires: no message per run.
 */
export const RUN_STARTED = 6;
/** 1 + the slot of the tool being instantiated ahead of time, 0 when none (since PREP_STARTED_AT). */
export const PREP_TOOL = 7;
/** How many ahead-of-time instantiations the worker has finished (or skipped), counting every one asked of it. */
export const PREP_COUNT = 8;
/**
 * READY_BASE + slot is 1 while the worker holds an unused instance of the
 * tool in that slot (slots are given out by the pool when it loads a tool into
 * the worker, READY_SLOTS at most; a tool without a slot simply goes unseen).
 */
export const READY_BASE = 16;
export const READY_SLOTS = 256;
export const BRIDGE_SLOTS = READY_BASE + READY_SLOTS;
/** Float64 slots (Date.now() values) after the Int32 ones. */
export const TIMES_OFFSET = BRIDGE_SLOTS * 4;
export const RUN_STARTED_AT = 0;
export const PREP_STARTED_AT = 1;
export const BRIDGE_BYTES = TIMES_OFFSET + 2 * 8;

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
      /** Where the worker shows that it holds a ready instance (READY_BASE + slot), or -1. */
      slot: number;
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
  | { type: 'done'; id: number; end: RunEnd; instantiateUs: number; runUs: number; fromReady: boolean; hostCalls?: HostCallTimes | undefined };

/** How long the run's host calls took, seen from the guest's side of the bridge (import entry to return). */
export interface HostCallTimes {
  count: number;
  p50Us: number;
  p99Us: number;
}

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
