/**
 * A sandbox worker: holds compiled tools, makes a fresh instance per run, and
 * gives each guest import a synchronous proxy over the bridge.
 *
 * Nothing here decides anything: every import goes to the main thread's gate.
 * Every import returns a well-formed tagged result whatever happens, because a
 * host import that throws (or returns a value of the wrong shape) corrupts the
 * guest's instance.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { GUEST_ERROR_MESSAGE_CASES, type GuestError, type HostCall, type HostReply } from '../host-call.ts';
import { ABI_GUARD_KEY, createAbiGuard, OutputTooLarge } from './abi-guard.ts';
import {
  CLOSED,
  CMD_SEQ,
  LINGERING,
  PREP_COUNT,
  PREP_STARTED_AT,
  PREP_TOOL,
  READY_BASE,
  REP_SEQ,
  REQ_SEQ,
  RUN_STARTED,
  RUN_STARTED_AT,
  SPIN_US,
  TIMES_OFFSET,
  type BridgeReply,
  type FromWorker,
  type HostCallTimes,
  type RunEnd,
  type ToWorker,
  type ToolDescription,
} from './protocol.ts';

interface WorkerInit {
  bridge: SharedArrayBuffer;
  /** Host calls and run ends go out on it; replies come back on it. */
  port: MessagePort;
  /** Commands from the pool (load, run, prepare, drop), read with receiveMessageOnPort. */
  cmdPort: MessagePort;
}

type Instantiate = (
  getCoreModule: (name: string) => WebAssembly.Module,
  imports: Record<string, Record<string, (...args: never[]) => unknown>>,
) => ToolExports;

interface ToolExports {
  describe(): ToolDescription;
  run(input: string): string;
}

interface LoadedTool {
  instantiate: Instantiate;
  modules: Map<string, WebAssembly.Module>;
  /** Where this worker shows the pool it holds a ready instance (-1: nowhere). */
  slot: number;
}

// The generated bindings of every tool call this before they lift a guest's arguments or decode its output.
const abiGuard = createAbiGuard();
(globalThis as Record<symbol, unknown>)[ABI_GUARD_KEY] = abiGuard;

const init = workerData as WorkerInit;
const signal = new Int32Array(init.bridge);
const times = new Float64Array(init.bridge, TIMES_OFFSET, 2);
const port = init.port;
const cmdPort = init.cmdPort;
const tools = new Map<string, LoadedTool>();
/** Instances made ahead of time, never yet used, one per tool at most. */
const ready = new Map<string, ToolExports>();
/** Slots of tools still being imported (their `tools` entry comes later). */
const pendingSlots = new Map<string, number>();

function slotOf(digest: string): number {
  return tools.get(digest)?.slot ?? pendingSlots.get(digest) ?? -1;
}

/** Keep or give up the ready instance of a tool, and show the pool which it is. */
function setReady(digest: string, instance: ToolExports | undefined): void {
  if (instance === undefined) ready.delete(digest);
  else ready.set(digest, instance);
  const slot = slotOf(digest);
  if (slot >= 0) Atomics.store(signal, READY_BASE + slot, instance === undefined ? 0 : 1);
}
let reqSeq = 0;
/** Recent time from a request to its reply, in microseconds (an exponentially weighted average). */
let replyEwmaUs = 50;
/** How often spinning for a reply paid off lately (see callHost). */
let spinScore = 1;
let spinSkips = 0;
/** Whether a run is in progress: imports called outside a run (e.g. during instantiation) are refused. */
let inRun = false;

const post = (msg: FromWorker): void => parentPort!.postMessage(msg);

/** The end of a run goes on the bridge, where a main thread watching for it sees it at once. */
function postDone(done: Extract<FromWorker, { type: 'done' }>): void {
  const seq = ++reqSeq;
  port.postMessage({ kind: 'done', done });
  Atomics.store(signal, REQ_SEQ, seq);
  Atomics.notify(signal, REQ_SEQ);
}

function hostUnavailable(message: string): HostReply {
  return { tag: 'err', val: { tag: 'io', val: message } };
}

/** Send one call to the gate and wait for its reply. */
function callHost(call: HostCall): HostReply {
  if (!inRun) return { tag: 'err', val: { tag: 'denied', val: { code: 'E_POLICY_DENY', message: 'host calls are not allowed outside a run' } } };
  const seq = ++reqSeq;
  port.postMessage({ kind: 'call', seq, call });
  Atomics.store(signal, REQ_SEQ, seq);
  Atomics.notify(signal, REQ_SEQ);
  // Spin a while: the gate often answers within tens of microseconds, and a
  // futex sleep and wake costs as much again. How long: about four times the
  // recent reply time, within what the main thread allows (0 when threads
  // outnumber cores). Then sleep.
  const started = performance.now();
  // When spinning stopped paying (another process shares the cores), sleep at once, and try again now and then.
  const spin = spinScore >= 0.25 || ++spinSkips % 16 === 0;
  const budgetMs = spin ? Math.min(Atomics.load(signal, SPIN_US), Math.max(50, 4 * replyEwmaUs)) / 1000 : 0;
  let checked = 0;
  let slept = false;
  while (Atomics.load(signal, REP_SEQ) !== seq) {
    if (Atomics.load(signal, CLOSED) !== 0) return hostUnavailable('the sandbox is shutting down');
    // Reading the clock costs more than a load: look at it every 64 turns.
    if ((++checked & 63) !== 0 || performance.now() - started < budgetMs) continue;
    // Wait on the value seen: if the reply lands between the load and the
    // wait, the wait returns at once instead of missing the notify.
    const current = Atomics.load(signal, REP_SEQ);
    if (current === seq) break;
    slept = true;
    Atomics.wait(signal, REP_SEQ, current, 1000);
  }
  const tookUs = (performance.now() - started) * 1000;
  replyEwmaUs += (Math.min(tookUs, 1000) - replyEwmaUs) / 8;
  if (spin) spinScore += ((slept ? 0 : 1) - spinScore) / 8;
  const msg = receiveMessageOnPort(port) as { message: BridgeReply } | undefined;
  if (msg === undefined || msg.message.seq !== seq) return hostUnavailable('bridge out of step');
  return msg.message.reply;
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const isString = (v: unknown): v is string => typeof v === 'string';
const isHeaders = (v: unknown): boolean =>
  Array.isArray(v) && v.every((h) => Array.isArray(h) && h.length === 2 && isString(h[0]) && isString(h[1]));
const FILE_KINDS = new Set(['file', 'directory', 'symlink', 'other']);

function validError(e: unknown): e is GuestError {
  if (typeof e !== 'object' || e === null) return false;
  const { tag, val } = e as { tag: unknown; val: unknown };
  if (tag === 'denied') return typeof val === 'object' && val !== null && isString((val as { code: unknown }).code) && isString((val as { message: unknown }).message);
  if (tag === 'rate-limited') return typeof val === 'bigint' && val >= 0n;
  return typeof tag === 'string' && GUEST_ERROR_MESSAGE_CASES.has(tag) && isString(val);
}

/** The shape jco lowers for each import's ok value; anything else would corrupt the instance. */
const okShape: Record<HostCall['op'], (v: unknown) => boolean> = {
  'fs.read': isBytes,
  'fs.write': (v) => v === undefined,
  'fs.remove': (v) => v === undefined,
  'fs.mkdir': (v) => v === undefined,
  'fs.list': (v) =>
    Array.isArray(v) && v.every((e) => typeof e === 'object' && e !== null && isString(e.name) && FILE_KINDS.has(e.kind)),
  'fs.stat': (v) =>
    typeof v === 'object' &&
    v !== null &&
    FILE_KINDS.has((v as { kind: string }).kind) &&
    typeof (v as { size: unknown }).size === 'bigint' &&
    typeof (v as { modifiedMs: unknown }).modifiedMs === 'bigint',
  'http.fetch': (v) =>
    typeof v === 'object' &&
    v !== null &&
    Number.isInteger((v as { status: number }).status) &&
    (v as { status: number }).status >= 0 &&
    (v as { status: number }).status <= 0xffff &&
    isHeaders((v as { headers: unknown }).headers) &&
    isBytes((v as { body: unknown }).body),
  'secrets.get': isString,
};

/**
 * Host call times of the current run: a histogram with 8 buckets per doubling
 * (bucket i holds times of about 2^(i/8) - 1 microseconds, within 9%), so a
 * call costs one logarithm, and a run with many calls no memory.
 */
const CALL_BUCKETS = 8;
const callTimes = new Uint32Array(32 * CALL_BUCKETS);
let callCount = 0;

function recordCall(us: number): void {
  const i = Math.min(callTimes.length - 1, Math.max(0, Math.floor(Math.log2(us + 1) * CALL_BUCKETS)));
  callTimes[i] = (callTimes[i] as number) + 1;
  callCount++;
}

/** The run's host call times (and a fresh histogram for the next run). */
function takeCallTimes(): HostCallTimes | undefined {
  if (callCount === 0) return undefined;
  const at = (q: number): number => {
    const rank = Math.ceil(q * callCount);
    let seen = 0;
    for (let i = 0; i < callTimes.length; i++) {
      seen += callTimes[i] as number;
      if (seen >= rank) return Math.round((2 ** ((i + 0.5) / CALL_BUCKETS) - 1) * 10) / 10;
    }
    return Number.POSITIVE_INFINITY;
  };
  const times = { count: callCount, p50Us: at(0.5), p99Us: at(0.99) };
  callTimes.fill(0);
  callCount = 0;
  return times;
}

/** Wrap a call so that nothing but a well-formed tagged result ever reaches jco. */
function guarded(build: () => HostCall): HostReply {
  const t0 = performance.now();
  try {
    const call = build();
    const reply = callHost(call);
    if (reply.tag === 'ok' && okShape[call.op](reply.val)) return reply;
    if (reply.tag === 'err' && validError(reply.val)) return reply;
    return hostUnavailable('the host returned a malformed reply');
  } catch {
    return hostUnavailable('the host call failed');
  } finally {
    recordCall((performance.now() - t0) * 1000);
  }
}

interface GuestRequest {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body?: Uint8Array | undefined;
}

const imports = {
  'authority:sandbox/types': {},
  'authority:sandbox/fs': {
    readFile: (path: string) => guarded(() => ({ op: 'fs.read', path })),
    writeFile: (path: string, data: Uint8Array) => guarded(() => ({ op: 'fs.write', path, data })),
    listDir: (path: string) => guarded(() => ({ op: 'fs.list', path })),
    stat: (path: string) => guarded(() => ({ op: 'fs.stat', path })),
    remove: (path: string) => guarded(() => ({ op: 'fs.remove', path })),
    makeDir: (path: string) => guarded(() => ({ op: 'fs.mkdir', path })),
  },
  'authority:sandbox/http': {
    fetch: (req: GuestRequest) =>
      guarded(() => ({ op: 'http.fetch', method: req.method, url: req.url, headers: req.headers, body: req.body })),
  },
  'authority:sandbox/secrets': {
    get: (name: string) => guarded(() => ({ op: 'secrets.get', name })),
  },
};

function instantiate(digest: string): ToolExports {
  const tool = tools.get(digest);
  if (tool === undefined) throw new Error(`tool ${digest} is not loaded in this worker`);
  return tool.instantiate((name) => {
    const m = tool.modules.get(name);
    if (m === undefined) throw new Error(`missing core module ${name}`);
    return m;
  }, imports as never);
}

function isToolError(e: unknown): e is { payload: unknown } {
  return typeof e === 'object' && e !== null && Object.prototype.hasOwnProperty.call(e, 'payload') && e instanceof Error && !(e instanceof WebAssembly.RuntimeError);
}

function describeTrap(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

function runOnce(msg: Extract<ToWorker, { type: 'run' }>): void {
  let instance: ToolExports | undefined = ready.get(msg.digest);
  const fromReady = instance !== undefined;
  if (fromReady) setReady(msg.digest, undefined);
  // The deadline starts now: loading the tool was ours, instantiating it (start functions included) is the tool's.
  // The time first, then the id: the pool reads the id, then the time.
  times[RUN_STARTED_AT] = Date.now();
  Atomics.store(signal, RUN_STARTED, msg.id);
  const t0 = performance.now();
  let end: RunEnd;
  let t1 = t0;
  try {
    instance ??= instantiate(msg.digest);
  } catch (e) {
    postDone({ type: 'done', id: msg.id, end: { kind: 'load-error', message: describeTrap(e) }, instantiateUs: 0, runUs: 0, fromReady });
    if (msg.prepareNext) skipPrepare();
    return;
  }
  t1 = performance.now();
  takeCallTimes(); // refused calls made while instantiating are not this run's
  inRun = true;
  try {
    if (msg.entry === 'describe') {
      const d = instance.describe();
      end = { kind: 'described', description: { name: d.name, description: d.description, inputSchema: d.inputSchema } };
    } else {
      abiGuard.maxOutputBytes = msg.maxOutputBytes;
      const output = instance.run(msg.input);
      const bytes = Buffer.byteLength(output, 'utf8');
      end = bytes > msg.maxOutputBytes ? { kind: 'output-too-large', bytes } : { kind: 'ok', output };
    }
  } catch (e) {
    // An output over the cap is refused from its length, before the bindings decode it.
    if (e instanceof OutputTooLarge) end = { kind: 'output-too-large', bytes: e.bytes };
    else end = isToolError(e) ? { kind: 'tool-error', message: String(e.payload) } : { kind: 'trap', message: describeTrap(e) };
  } finally {
    inRun = false;
  }
  const t2 = performance.now();
  // Busy until the linger: the pool need not wake this thread for a command it posts meanwhile.
  Atomics.store(signal, LINGERING, 2);
  postDone({ type: 'done', id: msg.id, end, instantiateUs: (t1 - t0) * 1000, runUs: (t2 - t1) * 1000, fromReady, hostCalls: takeCallTimes() });
  // A trapped worker is about to be retired; anything else prepares the next
  // instance now, while the main thread is busy with this run's result.
  if (!msg.prepareNext) return;
  if (end.kind === 'trap') skipPrepare();
  else prepare(msg.digest);
}

/** A run asked to prepare the next instance but will not (the worker is about to be retired): count it all the same. */
function skipPrepare(): void {
  Atomics.add(signal, PREP_COUNT, 1);
}

function prepare(digest: string): void {
  try {
    if (ready.has(digest) || !tools.has(digest)) return;
    // Instantiation runs guest code (start functions): the pool times it like a run.
    times[PREP_STARTED_AT] = Date.now();
    Atomics.store(signal, PREP_TOOL, slotOf(digest) + 1 || -1);
    try {
      setReady(digest, instantiate(digest));
    } catch {
      // Instantiation failures surface on the next run, where they can be reported.
    }
  } finally {
    Atomics.store(signal, PREP_TOOL, 0);
    // Counted whatever happened: the pool compares this with how many it asked for.
    Atomics.add(signal, PREP_COUNT, 1);
  }
}

/** Tools whose generated module is still being imported; runs wait for them. */
const loading = new Map<string, Promise<void>>();

function handle(msg: ToWorker): void {
  switch (msg.type) {
    case 'load': {
      pendingSlots.set(msg.digest, msg.slot);
      const p = import(msg.jsUrl).then((mod: { instantiate: Instantiate }) => {
        tools.set(msg.digest, { instantiate: mod.instantiate, modules: new Map(msg.modules), slot: msg.slot });
      });
      loading.set(msg.digest, p);
      const loaded = (): void => {
        loading.delete(msg.digest);
        pendingSlots.delete(msg.digest);
      };
      p.then(loaded, loaded);
      break;
    }
    case 'run': {
      const pending = loading.get(msg.digest);
      if (pending === undefined) runOnce(msg);
      else
        pending.then(
          () => {
            runOnce(msg);
            serveCommands();
          },
          (e: unknown) => {
            postDone({ type: 'done', id: msg.id, end: { kind: 'load-error', message: describeTrap(e) }, instantiateUs: 0, runUs: 0, fromReady: false });
            if (msg.prepareNext) skipPrepare();
          },
        );
      break;
    }
    case 'prepare': {
      const pending = loading.get(msg.digest);
      if (pending === undefined) prepare(msg.digest);
      else {
        const later = (): void => {
          prepare(msg.digest);
          serveCommands();
        };
        pending.then(later, later);
      }
      break;
    }
    case 'drop':
      setReady(msg.digest, undefined);
      tools.delete(msg.digest);
      break;
  }
}

let cmdSeen = 0;

/**
 * Watch CMD_SEQ for a while after a run (as long as the main thread allows:
 * nothing when threads outnumber cores): the next run usually comes at once,
 * and a wake-up through the event loop costs hundreds of microseconds.
 * Returns whether a command arrived.
 */
function linger(): boolean {
  const budgetMs = Atomics.load(signal, SPIN_US) / 1000;
  if (budgetMs > 0) {
    Atomics.store(signal, LINGERING, 1);
    const started = performance.now();
    let turns = 0;
    while (Atomics.load(signal, CMD_SEQ) === cmdSeen && Atomics.load(signal, CLOSED) === 0) {
      if ((++turns & 63) === 0 && performance.now() - started > budgetMs) break;
    }
  }
  Atomics.store(signal, LINGERING, 0);
  // Checked after LINGERING is cleared: a command posted meanwhile is seen here, or its wake message comes.
  return Atomics.load(signal, CMD_SEQ) !== cmdSeen;
}

/** Run every queued command, then linger for the next; back to the event loop when none comes. */
function serveCommands(): void {
  for (;;) {
    cmdSeen = Atomics.load(signal, CMD_SEQ);
    for (let m = receiveMessageOnPort(cmdPort) as { message: ToWorker } | undefined; m !== undefined; m = receiveMessageOnPort(cmdPort) as { message: ToWorker } | undefined) {
      handle(m.message);
    }
    if (!linger()) return;
  }
}

// The parent port only says "look at the command port" (when the worker was not lingering).
parentPort!.on('message', () => serveCommands());

post({ type: 'ready' });
