/**
 * Canonical-ABI abuse: programs for the WAT guest (test/fixtures/fuzz/
 * abi-guest.wat) that call the raw core imports with out-of-bounds pointers,
 * lengths past memory, misaligned and out-of-range return areas, invalid
 * option flags and result discriminants, invalid UTF-8, allocators that
 * answer nonsense, and imports called from inside the allocator while the
 * host lowers a result. No well-typed guest produces any of it.
 *
 * The runtime must survive every program: the invocation settles (a trap at
 * worst), the worker is retired and replaced, the next invocation works,
 * every host call that reached the gate has its records, and nothing the
 * policy denies happens.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import fc from 'fast-check';
import { verifyAudit, type AuditEntry, type AuditReceipt } from '../audit/index.ts';
import { AuthorityError } from '../errors.ts';
import { runtimeInternals, type Runtime } from '../runtime.ts';
import { broadToken } from './generators.ts';
import { FuzzCaseError, HANG_MARGIN_MS, type LogCapture } from './gate-harness.ts';
import { ABI_SOURCE, guestRuntime, type GuestRuntimeOptions } from './guests.ts';
import { auditShape, groupCalls, HangError, secretNeedles, secretsIn, settleWithin } from './invariants.ts';
import type { ObservedRecord } from './simulate.ts';
import { ForeignKeys, mint } from './tokens.ts';
import type { Vocab, World } from './world.ts';

/** One instruction of an abuse program (see the WAT's header). */
export type AbiOp =
  | { readonly op: 'write'; readonly addr: number; readonly bytes: readonly number[] }
  | { readonly op: 'call'; readonly k: number; readonly args: readonly number[]; readonly times?: number | undefined }
  | { readonly op: 'realloc'; readonly mode: number; readonly value: number }
  | { readonly op: 'return'; readonly disc: number; readonly ptr: number; readonly len: number }
  | { readonly op: 'grow'; readonly pages: number };

export interface AbiProgram {
  readonly ops: readonly AbiOp[];
}

const ARGC = [3, 5, 3, 3, 3, 3, 10] as const;
/** Where programs put their data, and the return areas they hand the host. */
const DATA = 4096;
const RET = 8192;

function u32(n: number): number[] {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return [...b];
}

/** The program as the guest's input (`{"p": "<hex>"}`). */
export function encodeProgram(p: AbiProgram): string {
  const out: number[] = [];
  for (const o of p.ops) {
    switch (o.op) {
      case 'write': {
        const bytes = o.bytes.slice(0, 0xffff);
        out.push(1, ...u32(o.addr), bytes.length & 0xff, bytes.length >> 8, ...bytes);
        break;
      }
      case 'call': {
        const k = o.k % 7;
        const args = Array.from({ length: ARGC[k] as number }, (_, i) => o.args[i] ?? 0);
        if (o.times !== undefined) out.push(6, k, o.times & 0xff, (o.times >> 8) & 0xff, ...args.flatMap(u32));
        else out.push(2, k, ...args.flatMap(u32));
        break;
      }
      case 'realloc':
        out.push(3, o.mode & 0xff, ...u32(o.value));
        break;
      case 'return':
        out.push(4, ...u32(o.disc), ...u32(o.ptr), ...u32(o.len));
        break;
      case 'grow':
        out.push(5, ...u32(o.pages));
        break;
    }
  }
  return Buffer.from(out).toString('hex');
}

const weighted = <T>(...pairs: [number, fc.Arbitrary<T>][]): fc.Arbitrary<T> => fc.oneof(...pairs.map(([weight, arbitrary]) => ({ weight, arbitrary })));

/** Bytes that are not UTF-8, or only just. */
const badUtf8 = fc.constantFrom([0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0xf0, 0x9f, 0x98], [0x80], [0xef, 0xbb, 0xbf]);

/** A program: data laid out, then calls whose arguments point at it, or anywhere. */
export function programArb(v: Vocab): fc.Arbitrary<AbiProgram> {
  const text = weighted<string>(
    [4, fc.constantFrom(...v.paths)],
    [2, fc.constantFrom(`http://127.0.0.1:${v.port}/ok`, `http://127.0.0.1:${v.port}/echo`, `http://canary.fuzz.test:${v.port}/size/5000`, 'http://169.254.169.254/', ...v.secretNames)],
    [1, fc.constantFrom('GET', 'POST', 'HEAD')],
  );
  const strBytes = weighted<number[]>(
    [5, text.map((s) => [...Buffer.from(s, 'utf8')])],
    [2, fc.tuple(text, badUtf8, fc.double({ min: 0, max: 1, noNaN: true })).map(([s, bad, at]) => {
      const b = [...Buffer.from(s, 'utf8')];
      const i = Math.floor(at * b.length);
      return [...b.slice(0, i), ...bad, ...b.slice(i)];
    })],
    [1, fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 })],
  );
  // A laid-out string: its bytes at a slot in the data area.
  const slot = fc.integer({ min: 0, max: 31 }).map((i) => DATA + i * 128);
  const ptr = weighted<number>([6, slot], [1, fc.constantFrom(0, 65535, 65536, 131072, 0x7fffffff, 0xffffffff, 0xfffffff0, DATA + 1)]);
  const len = weighted<number>([6, fc.integer({ min: 0, max: 120 })], [1, fc.constantFrom(0x7fffffff, 0xffffffff, 65536, 0x10000000, 61440)]);
  const ret = weighted<number>([6, fc.constant(RET)], [1, fc.constantFrom(RET + 1, RET + 2, 0xfffffffc, 65532, 65535, 0, 0x7ffffff8)]);
  const flag = weighted<number>([6, fc.constantFrom(0, 1)], [1, fc.constantFrom(2, 255, 0x100, 0xffffffff)]);
  const write = fc.tuple(slot, strBytes).map(([addr, bytes]): AbiOp => ({ op: 'write', addr, bytes: bytes.slice(0, 120) }));
  // A headers list: records of (name ptr, name len, value ptr, value len) in the last slots.
  const headers = fc.array(fc.tuple(slot, fc.integer({ min: 0, max: 20 }), slot, fc.integer({ min: 0, max: 40 })), { maxLength: 3 }).map((hs): AbiOp => ({
    op: 'write',
    addr: DATA + 32 * 128,
    bytes: hs.flatMap(([a, b, c, d]) => [...u32(a), ...u32(b), ...u32(c), ...u32(d)]),
  }));
  const call = fc.integer({ min: 0, max: 6 }).chain((k) => {
    const args: fc.Arbitrary<number[]> =
      k === 1
        ? fc.tuple(ptr, len, ptr, len, ret).map((a) => a)
        : k === 6
          ? fc.tuple(ptr, len, ptr, len, weighted<number>([4, fc.constant(DATA + 32 * 128)], [1, ptr]), weighted<number>([4, fc.integer({ min: 0, max: 3 })], [1, len]), flag, ptr, len, ret).map((a) => a)
          : fc.tuple(ptr, len, ret).map((a) => a);
    return fc.tuple(args, weighted<number | undefined>([8, fc.constant(undefined)], [1, fc.integer({ min: 1, max: 300 })])).map(([a, times]): AbiOp => ({ op: 'call', k, args: a, times }));
  });
  const realloc = fc.tuple(fc.integer({ min: 0, max: 5 }), fc.constantFrom(0, 1, 0xfffffff0, 65535, 0x7fffffff, DATA)).map(([mode, value]): AbiOp => ({ op: 'realloc', mode, value }));
  const retOp = fc.tuple(fc.constantFrom(0, 1, 2, 255, 0x101), weighted<number>([3, slot], [1, ptr]), len).map(([disc, p, l]): AbiOp => ({ op: 'return', disc, ptr: p, len: l }));
  const grow = fc.constantFrom(0, 1, 16, 70000, 0xffffffff).map((pages): AbiOp => ({ op: 'grow', pages }));
  const op = weighted<AbiOp>([6, write], [1, headers], [6, call], [2, realloc], [1, retOp], [1, grow]);
  return fc.array(op, { minLength: 1, maxLength: 24 }).map((ops) => ({ ops }));
}

const PROBE = '';

export class AbiHarness {
  readonly world: World;
  readonly dataDir: string;
  /** Programs run, and how their invocations ended. */
  readonly ends: Record<string, number> = {};
  calls = 0;
  readonly #rt: Runtime;
  readonly #logs: LogCapture;
  readonly #needles: ReturnType<typeof secretNeedles>;
  readonly #foreign = new ForeignKeys();
  #tap: AuditEntry[] = [];
  #runId = '';
  #cases = 0;

  private constructor(world: World, rt: Runtime, logs: LogCapture, dataDir: string) {
    this.world = world;
    this.#rt = rt;
    this.#logs = logs;
    this.dataDir = dataDir;
    this.#needles = secretNeedles(world.secrets);
    const audit = runtimeInternals(rt).audit;
    const append = audit.append.bind(audit);
    (audit as { append: (e: AuditEntry) => Promise<AuditReceipt> }).append = (entry) => {
      if (entry.runId === this.#runId) this.#tap.push(entry);
      return append(entry);
    };
  }

  static async create(world: World, options: GuestRuntimeOptions = {}): Promise<AbiHarness> {
    const { rt, logs, dataDir } = await guestRuntime(world, ABI_SOURCE, 'abi', options, { limits: { timeoutMs: 20_000, maxMemoryBytes: 4 * 1024 * 1024 } });
    return new AbiHarness(world, rt, logs, dataDir);
  }

  /** Run one program, then check the runtime still works. */
  async run(p: AbiProgram): Promise<void> {
    this.#cases++;
    this.world.restore(this.#cases % 16 === 0);
    this.#runId = `fza-${this.#cases}-${randomBytes(4).toString('hex')}`;
    this.#tap = [];
    const sentFrom = this.world.canary.requests.length;
    const now = Date.now();
    const grants = (['fs', 'net', 'secrets'] as const).map((k) => mint(broadToken(k), runtimeInternals(this.#rt).keyring, this.#foreign, now, this.#runId, undefined)?.text).filter((t): t is string => t !== undefined);
    const input = { p: encodeProgram(p) };
    const problems: string[] = [];
    let end = 'ok';
    try {
      await settleWithin(this.#rt.invoke('fuzz-abi', input, { grants, runId: this.#runId, timeoutMs: 20_000 }), 20_000 + HANG_MARGIN_MS, 'an abuse program');
    } catch (e) {
      if (e instanceof HangError) throw new FuzzCaseError({ step: 0, problems: [e.message] });
      if (!(e instanceof AuthorityError)) throw new FuzzCaseError({ step: 0, problems: [`the runtime threw something that is not an AuthorityError: ${String(e)}`] });
      end = `${e.code} ${e.message.replace(/[0-9]+/g, 'N').slice(0, 70)}`;
      // A guest may trap, fail, run out of time or write too much; the sandbox itself must not die.
      if (e.code === 'E_TOOL_TRAPPED' && e.message.startsWith('the sandbox worker stopped')) problems.push(`the sandbox worker died: ${e.message}`);
      else if (!['E_TOOL_TRAPPED', 'E_TOOL_FAILED', 'E_TIMEOUT', 'E_TOOL_OUTPUT'].includes(e.code)) problems.push(`the invocation ended with ${e.code}: ${e.message}`);
    }
    this.ends[end] = (this.ends[end] ?? 0) + 1;
    const entries = [...this.#tap];
    const calls = groupCalls(entries.filter((e) => e.kind.startsWith('call.')).map((e): ObservedRecord => ({ kind: e.kind, code: e.code, op: e.op, detail: e.detail as Record<string, unknown> | undefined })));
    this.calls += calls.length;
    for (const c of calls) {
      const shape = auditShape(c, (c[0] as ObservedRecord).op ?? '');
      if (shape !== undefined) problems.push(`audit: ${shape}`);
    }
    const kinds = entries.map((e) => e.kind);
    if (kinds[0] !== 'invoke.start' || kinds[kinds.length - 1] !== 'invoke.end') problems.push(`the invocation's records do not start and end it: ${kinds.join(', ')}`);
    const intents = entries.filter((e) => e.kind === 'call.intent').length;
    const sent = this.world.canary.since(sentFrom);
    if (sent.length > intents) problems.push(`the canary received ${sent.length} request(s) for ${intents} allowed hop(s)`);
    problems.push(...this.world.checkCanaries());
    const inAudit = secretsIn(JSON.stringify(entries), this.#needles);
    if (inAudit.length > 0) problems.push(`secret value of ${inAudit.join(', ')} in the audit log`);
    // The runtime keeps serving: a fresh instance runs an empty program.
    try {
      const probe = await settleWithin(this.#rt.invoke('fuzz-abi', { p: PROBE }, { runId: `${this.#runId}-probe`, timeoutMs: 20_000 }), 20_000 + HANG_MARGIN_MS, 'the probe after an abuse program');
      if (probe.output !== 'done') problems.push(`the probe after the program returned ${JSON.stringify(probe.output)}`);
    } catch (e) {
      problems.push(`the runtime did not serve the next invocation: ${e instanceof Error ? e.message : String(e)}`);
    }
    const inLogs = secretsIn(this.#logs.take(), this.#needles);
    if (inLogs.length > 0) problems.push(`secret value of ${inLogs.join(', ')} in the operational logs`);
    this.world.canary.clear();
    if (problems.length > 0) throw new FuzzCaseError({ step: 0, problems });
  }

  async verify(): Promise<string | undefined> {
    const report = await verifyAudit({ dir: this.dataDir });
    return report.ok ? undefined : `the audit log does not verify: ${report.firstBad?.code}: ${report.firstBad?.message}`;
  }

  async close(): Promise<void> {
    await this.#rt.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
