/**
 * The worker pool: warm workers, a fresh instance per run (made ahead of time
 * when possible), a deadline per run enforced by terminating the worker, and
 * a bounded queue. A worker whose guest trapped or overran is never reused.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { HostCall, HostReply } from '../host-call.ts';
import { optionalInt, optionsObject } from '../config-check.ts';
import type { CompiledTool } from '../registry/compile.ts';
import {
  BRIDGE_BYTES,
  CLOSED,
  CMD_SEQ,
  LINGERING,
  PREP_COUNT,
  PREP_STARTED_AT,
  PREP_TOOL,
  READY_BASE,
  READY_SLOTS,
  REP_SEQ,
  REQ_SEQ,
  RUN_STARTED,
  RUN_STARTED_AT,
  SPIN_US,
  TIMES_OFFSET,
  type BridgeRequest,
  type FromWorker,
  type HostCallTimes,
  type RunEnd,
  type ToWorker,
} from './protocol.ts';

export interface PoolOptions {
  /** Number of workers kept warm. Default: the number of CPUs. */
  size?: number;
  /** Runs waiting for a worker beyond this are refused with E_OVERLOADED. Default 256. */
  maxQueue?: number;
  /** JS heap cap of each worker, in MiB (wasm memory is capped separately, per tool). Default 256. */
  heapLimitMb?: number;
  /**
   * The most a worker spins (microseconds) waiting for a host reply before it
   * sleeps; it spins about four times the recent reply time (at least 50), up to this. Default
   * 300; 0 disables. No thread spins while threads outnumber cores.
   */
  workerSpinUs?: number;
  /**
   * The most the main thread watches a running guest's bridge after a reply
   * (microseconds) before it sleeps; it watches about twice the recent gap
   * between a reply and the next request (at least 50), up to this. Default 200; 0 disables.
   */
  mainSpinUs?: number;
  /**
   * How long making an instance ahead of time may take (the tool's start
   * functions run then) before the worker is retired, in milliseconds, until
   * a run on that worker replaces it with the run's own deadline. Default 10000.
   */
  prepareTimeoutMs?: number;
}

/**
 * Check pool options where they enter: each is a whole number in range, or
 * an E_CONFIG error naming it (`at` prefixes the name, e.g. `pool.`).
 */
export function validatePoolOptions(opts: unknown, at = ''): void {
  const o = optionsObject(opts, at === '' ? 'pool options' : at.slice(0, -1));
  optionalInt(o, 'size', at, 1, 1024);
  optionalInt(o, 'maxQueue', at, 0);
  optionalInt(o, 'heapLimitMb', at, 16, 65_536);
  optionalInt(o, 'workerSpinUs', at, 0, 1_000_000);
  optionalInt(o, 'mainSpinUs', at, 0, 1_000_000);
  optionalInt(o, 'prepareTimeoutMs', at, 1);
}

export interface RunRequest {
  tool: CompiledTool;
  entry: 'run' | 'describe';
  input: string;
  timeoutMs: number;
  maxOutputBytes: number;
  /** Answers each host call the guest makes; never throws (a throw becomes an io error for the guest). */
  onHostCall: (call: HostCall) => Promise<HostReply>;
  /** Aborting stops the run at once: its worker is terminated (and replaced) and the run ends `aborted`. */
  signal?: AbortSignal;
}

export interface RunStats {
  /** Time the worker spent making the instance (0 when it was made ahead of time). */
  instantiateUs: number;
  runUs: number;
  fromReady: boolean;
  queuedMs: number;
  /** The run's host calls as the guest saw them (from the import's entry to its return), when it made any. */
  hostCalls?: HostCallTimes | undefined;
}

export type RunOutcome = { end: RunEnd; stats: RunStats } | { end: { kind: 'timeout' | 'crash' | 'halted' | 'aborted'; message: string }; stats: RunStats };

interface ActiveRun {
  id: number;
  req: RunRequest;
  resolve: (outcome: RunOutcome) => void;
  /** Date.now() when the run was sent to its worker. */
  sentAt: number;
  timer: NodeJS.Timeout;
  enqueuedAt: number;
  onAbort: (() => void) | undefined;
}

interface Queued {
  req: RunRequest;
  resolve: (outcome: RunOutcome) => void;
  reject: (err: unknown) => void;
  enqueuedAt: number;
}

/** The shortest spin worth starting, in microseconds. */
const MIN_SPIN_US = 50;
/** Loads of the request word between two yields to the microtask queue while the pump watches. */
const SPIN_SLICE = 1024;

/** Extra time a run may take before it starts, for loading its tool into a worker. */
const LOAD_GRACE_MS = 10_000;
/** While a run has not started, its deadline timer looks again this often. */
const START_POLL_MS = 20;

/**
 * The worker's entry. From compiled JS it is worker.js itself; in a
 * development checkout it is TypeScript, so a tiny bootstrap registers tsx in
 * the worker first (loader hooks are per thread).
 */
function workerEntry(): { entry: string | URL; evalMode: boolean } {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return { entry: new URL('./worker.js', here), evalMode: false };
  const api = import.meta.resolve('tsx/esm/api');
  const worker = new URL('./worker.ts', here).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(worker)}); });`;
  return { entry: boot, evalMode: true };
}

class PoolWorker {
  readonly worker: Worker;
  readonly signal: Int32Array;
  /** RUN_STARTED_AT, PREP_STARTED_AT. */
  readonly times: Float64Array;
  /** The main end of the bridge: host calls and run ends come in, replies go out. */
  readonly port: MessagePort;
  /** The main end of the command port. */
  readonly cmd: MessagePort;
  /** The last REQ_SEQ the pump handled, whether a wait on it is armed, whether the pump runs. */
  seen = 0;
  armed = false;
  pumping = false;
  /** When the pump last had something to do: it watches for the next event for a while after. */
  lastEventAt = 0;
  /** Recent gap between one event and the next (a reply and the next call), in microseconds. */
  gapEwmaUs = 20;
  /**
   * How often watching paid off lately (1: the event came while watching; 0: it
   * did not). Another process busy on the same cores makes watching a loss;
   * below a quarter the pump stops watching, and tries again now and then.
   */
  spinScore = 1;
  spinSkips = 0;
  /** Tools loaded into this worker, with the slot where it shows a ready instance (-1: none left). */
  readonly loaded = new Map<string, number>();
  /** Instantiations ahead of time asked of this worker (compared with PREP_COUNT). */
  prepareRequests = 0;
  readonly ready: Promise<void>;
  active: ActiveRun | undefined;
  retired = false;
  /** Watches instantiation ahead of time while some is asked and not done (a start function that never returns). */
  prepareWatch: NodeJS.Timeout | undefined;
  /** Deadline for ahead-of-time instantiation, from the last run on this worker. */
  prepareTimeoutMs: number;

  constructor(opts: Required<PoolOptions>, onMessage: (w: PoolWorker, msg: FromWorker) => void, onExit: (w: PoolWorker, why: string) => void) {
    this.prepareTimeoutMs = opts.prepareTimeoutMs;
    const bridge = new SharedArrayBuffer(BRIDGE_BYTES);
    this.signal = new Int32Array(bridge, 0, TIMES_OFFSET / 4);
    this.times = new Float64Array(bridge, TIMES_OFFSET, 2);
    Atomics.store(this.signal, SPIN_US, opts.workerSpinUs);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const commands = new MessageChannel();
    this.cmd = commands.port1;
    const { entry, evalMode } = workerEntry();
    this.worker = new Worker(entry, {
      eval: evalMode,
      workerData: { bridge, port: port2, cmdPort: commands.port2 },
      transferList: [port2, commands.port2],
      resourceLimits: { maxOldGenerationSizeMb: opts.heapLimitMb, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
      stdout: true,
      stderr: true,
      env: {},
    });
    // A guest has no stdio; anything the glue code prints is dropped.
    this.worker.stdout.resume();
    this.worker.stderr.resume();
    let markReady: () => void;
    let failReady: (e: unknown) => void;
    this.ready = new Promise<void>((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    this.ready.catch(() => {});
    this.worker.on('message', (msg: FromWorker) => {
      if (msg.type === 'ready') markReady();
      else onMessage(this, msg);
    });
    this.worker.on('error', (err) => {
      failReady(err);
      onExit(this, `${err.name}: ${err.message}`);
    });
    this.worker.on('exit', (code) => {
      failReady(new Error(`worker exited with code ${code}`));
      onExit(this, `worker exited with code ${code}`);
    });
  }

  /** Whether this worker holds an unused instance of the tool. */
  isWarm(digest: string): boolean {
    const slot = this.loaded.get(digest);
    return slot !== undefined && slot >= 0 && Atomics.load(this.signal, READY_BASE + slot) === 1;
  }

  /** Whether instantiation ahead of time is under way or still to come here. */
  get preparing(): boolean {
    return Atomics.load(this.signal, PREP_COUNT) < this.prepareRequests;
  }

  send(msg: ToWorker): void {
    this.cmd.postMessage(msg);
    Atomics.add(this.signal, CMD_SEQ, 1);
    // A lingering worker sees CMD_SEQ move; one back in its event loop needs a message.
    if (Atomics.load(this.signal, LINGERING) === 0) this.worker.postMessage({ type: 'wake' });
  }

  /** Stop for good: wakes any waiter on the bridge, terminates the thread. */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    if (this.prepareWatch !== undefined) clearTimeout(this.prepareWatch);
    Atomics.store(this.signal, CLOSED, 1);
    Atomics.notify(this.signal, REQ_SEQ);
    Atomics.notify(this.signal, REP_SEQ);
    this.port.close();
    this.cmd.close();
    void this.worker.terminate();
  }
}

/** A pool of sandbox workers. One pool serves every tool of a runtime. */
export class WorkerPool {
  readonly #opts: Required<PoolOptions>;
  readonly #workers = new Set<PoolWorker>();
  readonly #queue: Queued[] = [];
  #nextId = 1;
  #replaced = 0;
  #closed: string | undefined;
  readonly #cores = availableParallelism();

  constructor(opts: PoolOptions = {}) {
    validatePoolOptions(opts);
    this.#opts = {
      size: Math.max(1, opts.size ?? availableParallelism()),
      maxQueue: opts.maxQueue ?? 256,
      heapLimitMb: opts.heapLimitMb ?? 256,
      workerSpinUs: opts.workerSpinUs ?? 300,
      mainSpinUs: opts.mainSpinUs ?? 200,
      prepareTimeoutMs: opts.prepareTimeoutMs ?? 10_000,
    };
    for (let i = 0; i < this.#opts.size; i++) this.#spawn();
  }

  get size(): number {
    return this.#opts.size;
  }

  /** Runs in progress and waiting, workers, and how many workers were retired and replaced so far. */
  get load(): { running: number; queued: number; workers: number; replaced: number } {
    let running = 0;
    for (const w of this.#workers) if (w.active) running++;
    return { running, queued: this.#queue.length, workers: this.#workers.size, replaced: this.#replaced };
  }

  /** Resolves once every worker has started. */
  async warmUp(): Promise<void> {
    await Promise.all([...this.#workers].map((w) => w.ready));
  }

  /** Make a tool's next instance ahead of time in up to `count` workers. */
  prepare(tool: CompiledTool, count = this.#opts.size): void {
    let n = 0;
    for (const w of this.#workers) {
      if (n >= count) break;
      if (w.retired || w.isWarm(tool.digest)) continue;
      this.#ensureLoaded(w, tool);
      w.send({ type: 'prepare', digest: tool.digest, timeoutMs: LOAD_GRACE_MS });
      this.#expectPrepare(w);
      n++;
    }
  }

  run(req: RunRequest): Promise<RunOutcome> {
    if (this.#closed !== undefined) return Promise.reject(new AuthorityError(ErrorCode.HALTED, `the sandbox is stopped: ${this.#closed}`));
    return new Promise<RunOutcome>((resolve, reject) => {
      const queued: Queued = { req, resolve, reject, enqueuedAt: performance.now() };
      const w = this.#pick(req.tool.digest);
      if (w !== undefined) {
        this.#start(w, queued);
        return;
      }
      if (this.#queue.length >= this.#opts.maxQueue) {
        reject(
          new AuthorityError(ErrorCode.OVERLOADED, `the sandbox is busy: ${this.load.running} runs in progress and ${this.#queue.length} waiting (limit ${this.#opts.maxQueue})`, {
            data: { running: this.load.running, queued: this.#queue.length, maxQueue: this.#opts.maxQueue },
          }),
        );
        return;
      }
      this.#queue.push(queued);
    });
  }

  /** Stop every run and refuse new ones. Running and queued runs end with `halted`. */
  async close(reason = 'closed'): Promise<void> {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    for (const q of this.#queue.splice(0)) q.reject(new AuthorityError(ErrorCode.HALTED, `the sandbox is stopped: ${reason}`));
    const exits: Promise<unknown>[] = [];
    for (const w of [...this.#workers]) {
      const active = w.active;
      w.active = undefined;
      if (active) {
        clearTimeout(active.timer);
        active.resolve({ end: { kind: 'halted', message: reason }, stats: this.#stats(active, undefined) });
      }
      exits.push(new Promise((res) => w.worker.once('exit', res)));
      w.retire();
    }
    this.#workers.clear();
    await Promise.all(exits);
  }

  #spawn(): void {
    const w = new PoolWorker(
      this.#opts,
      (worker, msg) => this.#onMessage(worker, msg),
      (worker, why) => this.#onExit(worker, why),
    );
    this.#workers.add(w);
    this.#arm(w);
    w.ready.then(
      () => this.#drain(),
      () => {},
    );
  }

  /**
   * The worker for a run: one holding a ready instance of the tool; else an
   * idle one (not busy instantiating ahead), with the tool loaded if possible;
   * else the one whose instantiation ahead started first (it is the first
   * free). Readiness is read from shared memory, so a worker that finished
   * an instance a moment ago counts at once.
   */
  #pick(digest: string): PoolWorker | undefined {
    let idleLoaded: PoolWorker | undefined;
    let idle: PoolWorker | undefined;
    let soonest: PoolWorker | undefined;
    let soonestAt = Infinity;
    for (const w of this.#workers) {
      if (w.active || w.retired) continue;
      if (w.isWarm(digest)) return w;
      if (w.preparing) {
        const at = Atomics.load(w.signal, PREP_TOOL) !== 0 ? (w.times[PREP_STARTED_AT] as number) : Infinity;
        if (soonest === undefined || at < soonestAt) {
          soonest = w;
          soonestAt = at;
        }
        continue;
      }
      if (idleLoaded === undefined && w.loaded.has(digest)) idleLoaded = w;
      idle ??= w;
    }
    return idleLoaded ?? idle ?? soonest;
  }

  #ensureLoaded(w: PoolWorker, tool: CompiledTool): void {
    if (w.loaded.has(tool.digest)) return;
    const slot = w.loaded.size < READY_SLOTS ? w.loaded.size : -1;
    w.send({ type: 'load', digest: tool.digest, slot, jsUrl: tool.jsUrl, modules: [...tool.modules] });
    w.loaded.set(tool.digest, slot);
  }

  /** Count one more instantiation ahead of time asked of `w`, and make sure it is watched. */
  #expectPrepare(w: PoolWorker): void {
    w.prepareRequests++;
    if (w.prepareWatch === undefined) w.prepareWatch = setTimeout(() => this.#checkPrepare(w), w.prepareTimeoutMs);
  }

  /**
   * Instantiating ahead of time runs the tool's start functions: one that
   * overruns the tool's deadline retires the worker, as a run would.
   */
  #checkPrepare(w: PoolWorker): void {
    w.prepareWatch = undefined;
    if (w.retired || !w.preparing) return;
    let waitMs = w.prepareTimeoutMs;
    if (Atomics.load(w.signal, PREP_TOOL) !== 0) {
      const overMs = Date.now() - (w.times[PREP_STARTED_AT] as number);
      if (overMs >= w.prepareTimeoutMs) {
        this.#replace(w);
        return;
      }
      waitMs = w.prepareTimeoutMs - overMs;
    }
    w.prepareWatch = setTimeout(() => this.#checkPrepare(w), waitMs);
  }

  #start(w: PoolWorker, q: Queued): void {
    const id = this.#nextId++;
    const { req } = q;
    this.#ensureLoaded(w, req.tool);
    const active: ActiveRun = {
      id,
      req,
      resolve: q.resolve,
      enqueuedAt: q.enqueuedAt,
      sentAt: Date.now(),
      // The earliest the deadline can be; #onDeadline looks at when the guest really started.
      timer: setTimeout(() => this.#onDeadline(w, id), req.timeoutMs),
      onAbort: undefined,
    };
    if (req.signal !== undefined) {
      if (req.signal.aborted) {
        clearTimeout(active.timer);
        q.resolve({ end: { kind: 'aborted', message: String(req.signal.reason) }, stats: this.#stats(active, undefined) });
        this.#drain();
        return;
      }
      active.onAbort = () => this.#onAbort(w, id);
      req.signal.addEventListener('abort', active.onAbort, { once: true });
    }
    w.active = active;
    w.prepareTimeoutMs = req.timeoutMs;
    Atomics.store(w.signal, SPIN_US, this.#spinAllowed() ? this.#opts.workerSpinUs : 0);
    const prepareNext = req.entry === 'run';
    w.send({ type: 'run', id, digest: req.tool.digest, entry: req.entry, input: req.input, maxOutputBytes: req.maxOutputBytes, prepareNext });
    if (prepareNext) this.#expectPrepare(w);
    // Watch for the run's first call or its end straight away: a short run ends before a wake-up would arrive.
    w.lastEventAt = performance.now();
    void this.#pump(w);
  }

  #stats(active: ActiveRun, msg: Extract<FromWorker, { type: 'done' }> | undefined): RunStats {
    // Every way a run ends passes here once: drop its abort listener.
    if (active.onAbort !== undefined) active.req.signal?.removeEventListener('abort', active.onAbort);
    return {
      instantiateUs: msg?.instantiateUs ?? 0,
      runUs: msg?.runUs ?? 0,
      fromReady: msg?.fromReady ?? false,
      queuedMs: 0,
      hostCalls: msg?.hostCalls,
    };
  }

  #onMessage(w: PoolWorker, msg: FromWorker): void {
    if (msg.type !== 'done') return;
    const active = w.active;
    if (active === undefined || active.id !== msg.id) return;
    clearTimeout(active.timer);
    w.active = undefined;
    active.resolve({ end: msg.end, stats: this.#stats(active, msg) });
    if (msg.end.kind === 'trap' || msg.end.kind === 'load-error') this.#replace(w);
    else this.#drain();
  }

  #onAbort(w: PoolWorker, id: number): void {
    const active = w.active;
    if (active === undefined || active.id !== id) return;
    clearTimeout(active.timer);
    w.active = undefined;
    const reason = active.req.signal?.reason;
    active.resolve({ end: { kind: 'aborted', message: reason instanceof Error ? reason.message : String(reason) }, stats: this.#stats(active, undefined) });
    this.#replace(w);
  }

  /**
   * A run's deadline timer: the deadline counts from when the worker started
   * the guest (RUN_STARTED_AT); before that, the run may wait up to
   * LOAD_GRACE_MS more for its tool to load.
   */
  #onDeadline(w: PoolWorker, id: number): void {
    const active = w.active;
    if (active === undefined || active.id !== id) return;
    const now = Date.now();
    const started = Atomics.load(w.signal, RUN_STARTED) === id;
    const due = started ? (w.times[RUN_STARTED_AT] as number) + active.req.timeoutMs : active.sentAt + active.req.timeoutMs + LOAD_GRACE_MS;
    if (now < due) {
      active.timer = setTimeout(() => this.#onDeadline(w, id), started ? due - now : Math.min(due - now, START_POLL_MS));
      return;
    }
    w.active = undefined;
    active.resolve({ end: { kind: 'timeout', message: `the tool ran past its deadline of ${active.req.timeoutMs} ms and was stopped` }, stats: this.#stats(active, undefined) });
    this.#replace(w);
  }

  #onExit(w: PoolWorker, why: string): void {
    const active = w.active;
    w.active = undefined;
    if (active !== undefined) {
      clearTimeout(active.timer);
      active.resolve({ end: { kind: 'crash', message: `the sandbox worker stopped: ${why}` }, stats: this.#stats(active, undefined) });
    }
    if (this.#workers.has(w)) this.#replace(w);
  }

  /** Retire a worker and start a fresh one in its place, in the background. */
  #replace(w: PoolWorker): void {
    this.#workers.delete(w);
    this.#replaced++;
    const active = w.active;
    w.active = undefined;
    if (active !== undefined) {
      clearTimeout(active.timer);
      active.resolve({ end: { kind: 'crash', message: 'the sandbox worker was retired' }, stats: this.#stats(active, undefined) });
    }
    w.retire();
    if (this.#closed === undefined) this.#spawn();
  }

  #drain(): void {
    while (this.#queue.length > 0) {
      const next = this.#queue[0] as Queued;
      const w = this.#pick(next.req.tool.digest);
      if (w === undefined) return;
      this.#queue.shift();
      this.#start(w, next);
    }
  }

  /**
   * The main-thread end of a worker's bridge: wait for the worker to bump
   * REQ_SEQ, answer through the run's gate, publish REP_SEQ.
   */
  /** Whether spinning can pay: only while busy threads (the main one and running workers) fit on the cores. */
  #spinAllowed(): boolean {
    let running = 0;
    for (const w of this.#workers) if (w.active !== undefined) running++;
    return running + 1 <= this.#cores;
  }

  /** Wait (without spinning) for the worker's next event, then pump. One wait per worker at a time. */
  #arm(w: PoolWorker): void {
    if (w.armed || w.retired) return;
    const wait = Atomics.waitAsync(w.signal, REQ_SEQ, w.seen);
    if (!wait.async) {
      queueMicrotask(() => void this.#pump(w));
      return;
    }
    w.armed = true;
    void wait.value.then(() => {
      w.armed = false;
      if (!w.retired) void this.#pump(w);
    });
  }

  /**
   * The main-thread end of a worker's bridge: handle every event the worker
   * sent (host calls, answered through the run's gate; the end of a run),
   * then watch for the next one for a while before going back to waiting.
   */
  async #pump(w: PoolWorker): Promise<void> {
    if (w.pumping || w.retired) return;
    w.pumping = true;
    try {
      for (;;) {
        let seq = Atomics.load(w.signal, REQ_SEQ);
        // A guest that just got a reply usually calls again within microseconds,
        // and a short run ends as soon; waking from waitAsync costs hundreds of
        // them. So watch for a while (about four times the recent gap, at least
        // MIN_SPIN_US), yielding to microtasks (the gate's own promise chains)
        // but not to I/O, and only while threads fit on the cores.
        if (seq === w.seen && w.active !== undefined && this.#opts.mainSpinUs > 0 && this.#spinAllowed() && (w.spinScore >= 0.25 || ++w.spinSkips % 16 === 0)) {
          const until = w.lastEventAt + Math.min(this.#opts.mainSpinUs, Math.max(MIN_SPIN_US, 4 * w.gapEwmaUs)) / 1000;
          while (seq === w.seen && !w.retired && performance.now() < until) {
            // A slice of plain loads (a few microseconds), then one turn of the microtask queue.
            // An await per load allocated tens of kilobytes per host call: the garbage cost
            // millisecond collections every few dozen calls.
            for (let i = 0; i < SPIN_SLICE && seq === w.seen; i++) seq = Atomics.load(w.signal, REQ_SEQ);
            if (seq !== w.seen) break;
            await null;
            seq = Atomics.load(w.signal, REQ_SEQ);
          }
          w.spinScore += ((seq === w.seen ? 0 : 1) - w.spinScore) / 8;
        }
        if (w.retired || seq === w.seen) return;
        w.seen = seq;
        const now = performance.now();
        if (w.lastEventAt > 0) w.gapEwmaUs += (Math.min((now - w.lastEventAt) * 1000, 5000) - w.gapEwmaUs) / 8;
        for (let m = receiveMessageOnPort(w.port) as { message: BridgeRequest } | undefined; m !== undefined; m = receiveMessageOnPort(w.port) as { message: BridgeRequest } | undefined) {
          const event = m.message;
          if (event.kind === 'done') {
            this.#onMessage(w, event.done);
            continue;
          }
          const run = w.active;
          let reply: HostReply;
          if (run === undefined) {
            reply = { tag: 'err', val: { tag: 'io', val: 'no run is active for this host call' } };
          } else {
            try {
              reply = await run.req.onHostCall(event.call);
            } catch {
              reply = { tag: 'err', val: { tag: 'io', val: 'the host failed to answer' } };
            }
          }
          if (w.retired) return;
          w.port.postMessage({ seq: event.seq, reply });
          Atomics.store(w.signal, SPIN_US, this.#spinAllowed() ? this.#opts.workerSpinUs : 0);
          Atomics.store(w.signal, REP_SEQ, event.seq);
          Atomics.notify(w.signal, REP_SEQ);
        }
        w.lastEventAt = performance.now();
      }
    } finally {
      w.pumping = false;
      this.#arm(w);
    }
  }
}
