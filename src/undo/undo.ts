/**
 * Undo a run's file changes. The audit log is the source of truth: each
 * allowed fs.write / fs.remove outcome names the pre-image (the bytes before,
 * or "absent") and the post-image (what the run left). Undo walks the run's
 * changes newest first and puts each pre-image back only while the file still
 * holds what the run left; anything else is a conflict, reported and left
 * alone unless forced.
 *
 * Trust: the policy must name the run's tool in `undo.tools`, and each
 * restore is decided and confined like any write (the same fs rules, roots
 * and no-symlink walk, through the host's atomic write), so an undo cannot
 * reach a path the policy would refuse today.
 *
 * Crash safety: every restore is one atomic replace (temp file, fsync,
 * rename) or one unlink, so a file is never half restored. Each restore is
 * recorded after it happened; an interrupted undo is resumed by running it
 * again: restores already recorded are skipped, and a file found already
 * holding its pre-image is recorded as restored without being touched.
 * @module
 */
import { readAuditRecords, type AuditEntry, type AuditLocation, type AuditRecord } from '../audit/index.ts';
import { AuthorityError, ErrorCode, toAuthorityError } from '../errors.ts';
import type { FsScope, HostFs } from '../host/index.ts';
import type { Policy } from '../policy/index.ts';
import { ABSENT, contentHash, type PreImageStore } from './store.ts';

/** One change of the run, and what undoing it would do now. */
export interface UndoStep {
  /** Seq of the call.outcome record of the change. */
  seq: number;
  op: 'fs.write' | 'fs.remove';
  path: string;
  /** "sha256:..." or "absent": what undo puts back. */
  preImage: string;
  /** What the run left. */
  postImage: string;
  /** ready: will be restored; done: restored already; conflict: changed since; blocked: cannot be restored (why says). */
  state: 'ready' | 'done' | 'conflict' | 'blocked';
  /** restore the bytes, or remove the file the run created. */
  action: 'restore' | 'remove';
  why?: string | undefined;
}

export interface UndoPlan {
  runId: string;
  tool: string | null;
  /** Whether the policy lets this run be undone, and why. */
  allowed: boolean;
  reason: string;
  steps: UndoStep[];
}

export interface UndoResult extends UndoPlan {
  restored: number;
  conflicts: number;
  skipped: number;
  blocked: number;
  forced: number;
  /** Seqs of the undo's own records: undo.start .. undo.end. */
  audit: { start: number; end: number };
}

export interface UndoDeps {
  location: AuditLocation;
  audit: { append(entry: AuditEntry): Promise<{ seq: number }> };
  policy: () => Policy;
  fs: HostFs;
  store: PreImageStore;
}

const MAX_PATH_IN_RECORD = 512;

/** The run's changes (oldest first), its tool, and the steps earlier undos recorded as restored. */
async function readRun(location: AuditLocation, runId: string): Promise<{ tool: string | null; changes: Omit<UndoStep, 'state' | 'action' | 'why'>[]; restored: Set<number>; seen: boolean }> {
  let tool: string | null = null;
  let seen = false;
  const changes: Omit<UndoStep, 'state' | 'action' | 'why'>[] = [];
  const restored = new Set<number>();
  let intent: AuditRecord | null = null;
  for await (const { record: r } of readAuditRecords(location, { filter: { runId } })) {
    if (r === null) continue;
    seen = true;
    if (r.kind === 'invoke.start' && r.tool !== undefined) tool = r.tool;
    if (r.kind === 'call.intent') intent = r;
    else if (r.kind === 'call.outcome') {
      const d = (r.detail ?? {}) as Record<string, unknown>;
      const path = (intent?.detail as Record<string, unknown> | undefined)?.['path'];
      if ((r.op === 'fs.write' || r.op === 'fs.remove') && r.code === 'ok' && intent?.op === r.op && typeof path === 'string') {
        changes.push({ seq: r.seq, op: r.op, path, preImage: typeof d['preImage'] === 'string' ? d['preImage'] : 'none', postImage: typeof d['postImage'] === 'string' ? d['postImage'] : 'none' });
      }
      intent = null;
    } else if (r.kind === 'undo.restore') {
      const step = (r.detail as Record<string, unknown> | undefined)?.['step'];
      if (typeof step === 'number') restored.add(step);
    }
  }
  return { tool, changes, restored, seen };
}

function scopeFor(policy: Policy, op: 'fs.write' | 'fs.remove', path: string, bytes: number): Promise<{ ok: true; target: string; scope: FsScope } | { ok: false; reason: string }> {
  return policy.resolveAndDecide({ op, path }).then((d) => {
    if (!d.allow || d.root === undefined) return { ok: false as const, reason: d.allow ? 'the policy named no root' : `${d.code}: ${d.reason}` };
    return { ok: true as const, target: d.target ?? path, scope: { roots: [d.root], limits: { readBytes: Math.max(bytes, 1), writeBytes: Math.max(bytes, 1) } } };
  });
}

/** What the file at `path` holds now: its hash, "absent", or null with why when it cannot be read. */
async function currentState(deps: UndoDeps, path: string): Promise<{ state: string } | { state: null; why: string }> {
  const s = await scopeFor(deps.policy(), 'fs.write', path, deps.store.maxBytes);
  if (!s.ok) return { state: null, why: `the policy refuses a write there now (${s.reason})` };
  try {
    return { state: contentHash(await deps.fs.readFile(s.target, s.scope)) };
  } catch (e) {
    const err = toAuthorityError(e);
    if (err.code === ErrorCode.NOT_FOUND) return { state: ABSENT };
    return { state: null, why: `cannot read it: ${err.message}` };
  }
}

/**
 * What undoing `runId` would do now, newest change first. Reads files, changes nothing.
 *
 * Steps touching the same path are planned in sequence: after a restore the
 * path is taken to hold that step's pre-image, which is what the older step
 * must then find.
 */
export async function planUndo(deps: UndoDeps, runId: string): Promise<UndoPlan> {
  const { tool, changes, restored, seen } = await readRun(deps.location, runId);
  if (!seen) throw new AuthorityError(ErrorCode.NOT_FOUND, `no run "${runId}" in the audit log`, { data: { runId } });
  const decision = tool === null ? { allow: false, reason: 'the run has no tool recorded' } : deps.policy().decideUndo(tool);
  const simulated = new Map<string, string>();
  const steps: UndoStep[] = [];
  for (const c of [...changes].reverse()) {
    const action = c.preImage === ABSENT ? 'remove' : 'restore';
    const blocked = (why: string): UndoStep => ({ ...c, state: 'blocked', action, why });
    if (restored.has(c.seq)) {
      steps.push({ ...c, state: 'done', action, why: 'restored by an earlier undo' });
      simulated.set(c.path, c.preImage);
      continue;
    }
    if (c.preImage === 'none' || c.postImage === 'none') {
      steps.push(blocked('no pre-image was kept for this change'));
      continue;
    }
    if (c.path.length >= MAX_PATH_IN_RECORD) {
      steps.push(blocked('the path is longer than the audit record holds'));
      continue;
    }
    if (c.preImage !== ABSENT && !deps.store.has(c.preImage)) {
      steps.push(blocked('its pre-image was pruned'));
      continue;
    }
    let now = simulated.get(c.path);
    if (now === undefined) {
      const cur = await currentState(deps, c.path);
      if (cur.state === null) {
        steps.push(blocked(cur.why));
        continue;
      }
      now = cur.state;
    }
    if (now === c.postImage) {
      steps.push({ ...c, state: 'ready', action });
      simulated.set(c.path, c.preImage);
    } else if (now === c.preImage) {
      steps.push({ ...c, state: 'done', action, why: 'the file already holds its pre-image' });
      simulated.set(c.path, c.preImage);
    } else {
      steps.push({ ...c, state: 'conflict', action, why: now === ABSENT ? 'removed since the run' : 'changed since the run' });
      simulated.set(c.path, now);
    }
  }
  return { runId, tool, allowed: decision.allow, reason: decision.reason, steps };
}

/**
 * Undo `runId` now: plan, then restore each ready step (and, with `force`,
 * each conflict), newest first, recording `undo.start`, one `undo.restore` or
 * `undo.conflict` per step, and `undo.end`.
 */
export interface UndoOptions {
  /** Restore conflicts too (files changed since the run): the later change is lost. */
  force?: boolean | undefined;
  /** Called before each restore acts (progress; also where a test stops the process mid-undo). */
  beforeRestore?: ((step: UndoStep) => Promise<void> | void) | undefined;
}

export async function undoRun(deps: UndoDeps, runId: string, options: UndoOptions = {}): Promise<UndoResult> {
  const plan = await planUndo(deps, runId);
  const force = options.force === true;
  const base = { runId, tool: plan.tool ?? undefined };
  if (!plan.allowed) {
    await deps.audit.append({ ...base, kind: 'undo.start', decision: 'deny', code: ErrorCode.POLICY_DENY, reason: plan.reason.slice(0, 1024) });
    throw new AuthorityError(ErrorCode.POLICY_DENY, `undo of run ${runId} refused: ${plan.reason}`, { data: { runId } });
  }
  const count = (s: UndoStep['state']): number => plan.steps.filter((x) => x.state === s).length;
  const start = await deps.audit.append({
    ...base,
    kind: 'undo.start',
    decision: 'allow',
    code: 'ok',
    reason: plan.reason.slice(0, 1024),
    detail: { ready: count('ready'), conflicts: count('conflict'), done: count('done'), blocked: count('blocked'), force },
  });
  let restored = 0;
  let conflicts = 0;
  let forced = 0;
  let blocked = count('blocked');
  let skipped = count('done');
  const simulated = new Map<string, string>();
  for (const step of plan.steps) {
    if (step.state === 'blocked') continue;
    if (step.state === 'done') {
      // Found restored but not recorded (an undo cut short after the rename): record it now.
      if (step.why !== 'restored by an earlier undo') {
        await deps.audit.append({ ...base, kind: 'undo.restore', op: step.op, decision: 'allow', code: 'ok', reason: 'the file already held its pre-image', detail: { step: step.seq, path: step.path, to: step.preImage, resumed: true } });
      }
      simulated.set(step.path, step.preImage);
      continue;
    }
    if (step.state === 'conflict' && !force) {
      conflicts++;
      await deps.audit.append({ ...base, kind: 'undo.conflict', op: step.op, decision: 'deny', code: 'conflict', reason: step.why, detail: { step: step.seq, path: step.path, expected: step.postImage } });
      continue;
    }
    // Check again right before acting: the plan may be seconds old.
    const now = simulated.get(step.path) ?? (await currentState(deps, step.path)).state;
    if (step.state === 'ready' && now !== step.postImage && !force) {
      conflicts++;
      await deps.audit.append({ ...base, kind: 'undo.conflict', op: step.op, decision: 'deny', code: 'conflict', reason: 'changed while the undo ran', detail: { step: step.seq, path: step.path, expected: step.postImage } });
      continue;
    }
    const bytes = step.preImage === ABSENT ? null : deps.store.get(step.preImage);
    if (step.preImage !== ABSENT && bytes === null) {
      blocked++;
      await deps.audit.append({ ...base, kind: 'undo.conflict', op: step.op, decision: 'deny', code: 'pruned', reason: 'its pre-image was pruned', detail: { step: step.seq, path: step.path } });
      continue;
    }
    const op = bytes === null ? 'fs.remove' : 'fs.write';
    const s = await scopeFor(deps.policy(), op, step.path, bytes?.length ?? 0);
    if (!s.ok) {
      blocked++;
      await deps.audit.append({ ...base, kind: 'undo.conflict', op, decision: 'deny', code: ErrorCode.POLICY_DENY, reason: s.reason.slice(0, 1024), detail: { step: step.seq, path: step.path } });
      continue;
    }
    await options.beforeRestore?.(step);
    try {
      if (bytes === null) {
        if (now !== ABSENT) await deps.fs.remove(s.target, s.scope);
      } else await deps.fs.writeFile(s.target, bytes, s.scope);
    } catch (e) {
      const err = toAuthorityError(e);
      blocked++;
      await deps.audit.append({ ...base, kind: 'undo.conflict', op, decision: 'deny', code: err.code, reason: err.message.slice(0, 1024), detail: { step: step.seq, path: step.path } });
      continue;
    }
    const wasConflict = step.state === 'conflict' || now !== step.postImage;
    if (wasConflict) forced++;
    restored++;
    simulated.set(step.path, step.preImage);
    await deps.audit.append({
      ...base,
      kind: 'undo.restore',
      op,
      decision: 'allow',
      code: 'ok',
      reason: wasConflict ? 'forced over a later change' : undefined,
      detail: { step: step.seq, path: step.path, from: now ?? 'unknown', to: step.preImage, ...(wasConflict ? { forced: true } : {}) },
    });
  }
  skipped = plan.steps.filter((x) => x.state === 'done').length;
  const end = await deps.audit.append({ ...base, kind: 'undo.end', decision: 'allow', code: conflicts + blocked === 0 ? 'ok' : 'partial', detail: { restored, conflicts, skipped, blocked, forced } });
  return { ...plan, restored, conflicts, skipped, blocked, forced, audit: { start: start.seq, end: end.seq } };
}
