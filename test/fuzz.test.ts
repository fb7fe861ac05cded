import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { caseFromJson, caseToJson } from '../src/fuzz/cases.ts';
import { FuzzCaseError, GateHarness } from '../src/fuzz/gate-harness.ts';
import { ALL_OPS, scenarioArb, type Scenario } from '../src/fuzz/generators.ts';
import { auditShape, groupCalls, HangError, replyMatchesAudit, settleWithin } from '../src/fuzz/invariants.ts';
import { checkCap, decideAddress, decideFs, decideHttp, modelUrl, parseModelIp, parseModelPolicy, type ModelGrant } from '../src/fuzz/model.ts';
import { replayCommand, runFuzz } from '../src/fuzz/run.ts';
import { World } from '../src/fuzz/world.ts';
import { main } from '../src/cli/main.ts';
import { loadPolicy } from '../src/policy/index.ts';
import { SHARED_CACHE } from './helpers/runtime.ts';
import pino from 'pino';

const SEED = 20_260_101;

describe('fuzzing the host-function boundary', () => {
  it('finds no violation in a short fixed-seed pass over every host function, through the gate, the guest and the ABI', async () => {
    const report = await runFuzz({ runs: 1000, seed: SEED, jobs: 1, abiPrograms: 25, cacheDir: SHARED_CACHE });
    assert.equal(report.ok, true, JSON.stringify(report.failure, null, 2));
    for (const op of ALL_OPS) {
      const gate = report.results.find((r) => r.layer === 'gate' && r.op === op);
      const guest = report.results.find((r) => r.layer === 'guest' && r.op === op);
      assert.ok(gate !== undefined && gate.runs >= 900, `${op}: ${gate?.runs} runs straight into the gate`);
      assert.ok(guest !== undefined && guest.runs >= 100, `${op}: ${guest?.runs} runs through the echo guest`);
    }
    assert.equal(report.results.find((r) => r.layer === 'abi')?.runs, 25);
    assert.ok(report.differential.compared >= 7000, `${report.differential.compared} calls compared with the model`);
    assert.equal(report.auditVerified, true);
    // The pass reaches the effects and every kind of refusal, not only the first denial.
    const seen = Object.keys(report.outcomes);
    for (const key of ['fs.read allow ok', 'fs.write allow ok', 'fs.list allow ok', 'fs.stat allow ok', 'fs.remove allow ok', 'http.fetch allow ok', 'secrets.get allow ok', 'http.fetch allow E_SECRET_LEAK', 'deny E_POLICY_DENY', 'deny E_RATE_LIMITED', 'deny E_BUDGET_EXCEEDED', 'deny E_CAP_EXPIRED', 'deny E_CAP_NOT_YET_VALID', 'deny E_CAP_REVOKED', 'deny E_CAP_INVALID', 'deny E_CAP_SCOPE']) {
      assert.ok(seen.some((k) => k.includes(key)), `no ${key} in ${JSON.stringify(report.outcomes)}`);
    }
  });

  it('catches a gate that allows what the policy document denies, shrinks it and replays it from seed and path', async () => {
    const world = await World.create();
    // The gate enforces a policy whose read rule is a string prefix (`/data*`) while the model reads the document (`/data/**`).
    const wider = (doc: Record<string, unknown>): Record<string, unknown> => {
      const fs = doc['fs'] as { read: string[] };
      return { ...doc, fs: { ...fs, read: fs.read.map((g) => g.replace(/\/data\/\*\*$/, '/data*/**')) } };
    };
    const h = await GateHarness.create(world, { enforce: (v) => loadPolicy(wider(v.doc)).policy });
    try {
      const prop = fc.asyncProperty(scenarioArb(world.vocab, world.secrets, world.variants.length, 'fs.read', 24), (s) => h.run(s));
      const res = await fc.check(prop, { seed: SEED, numRuns: 3000, reporter: () => {} } as fc.Parameters<[Scenario]>);
      assert.equal(res.failed, true, 'the differential did not notice the wider rule');
      const err = res.errorInstance;
      assert.ok(err instanceof FuzzCaseError);
      assert.match(JSON.stringify(err.failure.problems), /expected audit record call\.denied\(E_POLICY_DENY\)|canary/);
      const shrunk = res.counterexample?.[0] as Scenario;
      assert.ok(shrunk.steps.length <= 3, `shrunk to ${shrunk.steps.length} steps`);
      assert.match(JSON.stringify(caseToJson(shrunk, world)), /\$SCRATCH\/data(x|-evil)/);
      // The same seed and path give the same counterexample back.
      const again = await fc.check(prop, { seed: SEED, path: res.counterexamplePath ?? '', endOnFailure: true, reporter: () => {} } as fc.Parameters<[Scenario]>);
      assert.equal(again.failed, true);
      assert.deepEqual(caseToJson(again.counterexample?.[0], world), caseToJson(shrunk, world));
      assert.equal(replayCommand({ seed: SEED, path: res.counterexamplePath ?? '', layer: 'gate', op: 'fs.read' }), `authority fuzz --seed ${SEED} --path ${res.counterexamplePath} --layer gate --op fs.read`);
    } finally {
      await h.close();
      await world.close();
    }
  });

  it('keeps fuzz traffic on loopback: every name resolves to 127.0.0.1 and only the canary can be dialled', async () => {
    const world = await World.create();
    try {
      assert.deepEqual(await world.lookup('api.example.com', { all: true, verbatim: true }), [{ address: '127.0.0.1', family: 4 }]);
      assert.throws(() => world.onConnect('10.0.0.7', world.port), /refusing/);
      assert.throws(() => world.onConnect('127.0.0.1', world.port + 1), /refusing/);
      assert.doesNotThrow(() => world.onConnect('127.0.0.1', world.port));
    } finally {
      await world.close();
    }
  });

  it('moves a user policy under a scratch folder and refuses a glob it cannot move', async () => {
    const world = await World.create({ policy: { version: '1.0', fs: { read: ['/data/**'], write: ['/data/out/**'] }, net: { connect: ['https://api.example.com'] } } });
    try {
      const fs = (world.variants[0]?.doc['fs'] ?? {}) as { read: string[] };
      assert.deepEqual(fs.read, [`${world.scratch}/data/**`]);
      assert.equal(world.variants[0]?.policy.decide({ op: 'fs.read', path: '/data/a.txt' }).allow, false);
    } finally {
      await world.close();
    }
    await assert.rejects(World.create({ policy: { version: '1.0', fs: { read: ['{/etc,/data}/**'] } } }), /can only move globs that start with \//);
  });

  it('writes counterexamples that replay in another world', async () => {
    const a = { scratch: '/tmp/authority-fuzz-AAAAAA', outside: '/tmp/authority-fuzz-outside-BBBBBB', port: 40_123, secrets: { API_KEY: 'fz-apikey-0123456789abcdef' } };
    const b = { scratch: '/tmp/authority-fuzz-CCCCCC', outside: '/tmp/o', port: 5000, secrets: { API_KEY: 'fz-apikey-fedcba9876543210' } };
    const s: Scenario = {
      variant: 1,
      grants: [],
      steps: [
        { call: { op: 'fs.write', path: `${a.scratch}/data/out/x`, data: new Uint8Array([0, 255, 7]) }, dt: 0 },
        { call: { op: 'http.fetch', method: 'GET', url: `http://127.0.0.1:${a.port}/size/40123?k=${a.secrets.API_KEY}`, headers: [] }, dt: 1 },
      ],
    };
    const json = caseToJson(s, a);
    assert.equal(JSON.stringify(json).includes(a.scratch), false);
    const back = caseFromJson<Scenario>(JSON.parse(JSON.stringify(json)), b);
    assert.deepEqual(back.steps[0], { call: { op: 'fs.write', path: `${b.scratch}/data/out/x`, data: new Uint8Array([0, 255, 7]) }, dt: 0 });
    // The port is replaced where it stands alone, not inside other numbers that happen to contain it.
    assert.equal((back.steps[1] as { call: { url: string } }).call.url, `http://127.0.0.1:5000/size/5000?k=${b.secrets.API_KEY}`);
  });

  it('reports a call that never settles as a hang', async () => {
    await assert.rejects(settleWithin(new Promise(() => {}), 20, 'a host call'), (e: unknown) => e instanceof HangError && /did not settle within 20 ms/.test(e.message));
  });
});

describe('the reference model, read against the documents', () => {
  const doc = { version: '1.0', fs: { read: ['/data/**'], write: ['/data/out/**'], deny: ['/data/**/.env'] }, net: { connect: ['https://*.example.com', 'http://127.0.0.1:8080', { url: 'https://api.test', resolves_to: ['10.0.0.0/8'] }] } };
  const p = parseModelPolicy(doc);

  it('matches path rules by segment: /data/** covers /data (for reading) but not /database', () => {
    assert.equal(decideFs(p, 'fs.list', '/data', '/data').allow, true);
    assert.equal(decideFs(p, 'fs.write', '/data/out', '/data/out').allow, false);
    assert.equal(decideFs(p, 'fs.read', '/database/x', '/database/x').allow, false);
    assert.equal(decideFs(p, 'fs.read', '/data/a/.env', '/data/a/.env').allow, false);
    // A deny rule applies to the path as written when a link leads elsewhere.
    assert.equal(decideFs(p, 'fs.read', '/data/.env', '/data/real.txt').allow, false);
  });

  it('never lets a wildcard host reach a loopback name or a private address', () => {
    const local = modelUrl('https://localhost.example.com/');
    assert.ok(typeof local !== 'string');
    assert.equal(decideHttp(p, local, 'GET').allow, true);
    const metadata = modelUrl('https://169.254.169.254/');
    assert.ok(typeof metadata !== 'string');
    assert.equal(decideHttp(p, metadata, 'GET').allow, false);
    const api = modelUrl('https://api.test/');
    assert.ok(typeof api !== 'string');
    assert.equal(decideAddress(p, api, parseModelIp('10.1.2.3') as NonNullable<ReturnType<typeof parseModelIp>>), true);
    assert.equal(decideAddress(p, api, parseModelIp('127.0.0.1') as NonNullable<ReturnType<typeof parseModelIp>>), false);
    const mapped = modelUrl('http://[::ffff:7f00:1]:8080/');
    assert.ok(typeof mapped !== 'string');
    assert.equal(decideHttp(p, mapped, 'GET').allow, true);
  });

  it('intersects a token with its caveats and orders failures as documented', () => {
    const now = 1_000_000;
    const ctx = { now, runId: 'r1', revokedTokens: new Set<string>(), revokedRuns: new Set<string>() };
    const token = (links: ModelGrant['links'], mac: ModelGrant['mac'] = 'ok'): ModelGrant => ({ kind: 'fs', mac, issuedAt: now, links });
    const root = { id: 'a', resource: '/data/**', methods: ['read'], notBefore: 0, expiresAt: now + 1 };
    assert.equal(checkCap([token([root])], 'fs', '/data/x', 'read', ctx).allow, true);
    // A caveat that names a wider resource and more methods widens nothing.
    assert.equal(checkCap([token([root, { id: 'b', resource: '/**', methods: ['read', 'write'] }])], 'fs', '/etc/passwd', 'read', ctx).allow, false);
    assert.equal(checkCap([token([root, { id: 'b', resource: '/**', methods: ['read', 'write'] }])], 'fs', '/data/x', 'write', ctx).allow, false);
    assert.deepEqual(checkCap([token([{ ...root, expiresAt: now }])], 'fs', '/data/x', 'read', ctx), { allow: false, codes: ['E_CAP_EXPIRED'], rule: undefined });
    assert.deepEqual(checkCap([token([{ ...root, notBefore: now + 1 }])], 'fs', '/data/x', 'read', ctx), { allow: false, codes: ['E_CAP_NOT_YET_VALID'], rule: undefined });
    // The furthest failure wins: a revoked token over an expired one.
    const revoked = { ...ctx, revokedTokens: new Set(['c']) };
    assert.deepEqual(checkCap([token([{ ...root, expiresAt: now }]), token([{ ...root, id: 'c' }])], 'fs', '/data/x', 'read', revoked).allow, false);
    assert.deepEqual((checkCap([token([{ ...root, expiresAt: now }]), token([{ ...root, id: 'c' }])], 'fs', '/data/x', 'read', revoked) as { codes: readonly string[] }).codes, ['E_CAP_REVOKED']);
    // A token whose bytes changed never allows.
    assert.equal(checkCap([token([root], 'mutated')], 'fs', '/data/x', 'read', ctx).allow, false);
  });
});

describe('the invariants', () => {
  const intent = { kind: 'call.intent', op: 'http.fetch' };
  const outcome = (code: string, hop?: number) => ({ kind: 'call.outcome', op: 'http.fetch', code, detail: hop === undefined ? {} : { hop } });

  it('accept intents paired with outcomes, one pair per hop, and at most one denial at the end', () => {
    assert.equal(auditShape([intent, outcome('ok'), { ...intent, detail: { hop: 1 } }, outcome('ok', 1), { kind: 'call.denied', op: 'http.fetch', code: 'E_POLICY_DENY', detail: { hop: 2 } }], 'http.fetch'), undefined);
  });

  it('reject an intent without its outcome, a call without records and a denial followed by more', () => {
    assert.match(auditShape([intent], 'http.fetch') ?? '', /no outcome/);
    assert.match(auditShape([], 'http.fetch') ?? '', /no audit record/);
    assert.match(auditShape([{ kind: 'call.denied', op: 'http.fetch' }, intent, outcome('ok')], 'http.fetch') ?? '', /followed by more/);
  });

  it('group a run\'s records into calls, keeping redirect hops with their call', () => {
    const records = [intent, outcome('ok'), { ...intent, detail: { hop: 1 } }, outcome('ok', 1), { kind: 'call.denied', op: 'fs.read' }, intent, outcome('io')];
    assert.deepEqual(groupCalls(records).map((g) => g.length), [4, 1, 2]);
  });

  it('notice a reply that disagrees with its audit record', () => {
    assert.match(replyMatchesAudit([{ kind: 'call.denied', code: 'E_POLICY_DENY' }], { tag: 'ok', val: new Uint8Array() }) ?? '', /denies with E_POLICY_DENY/);
    assert.equal(replyMatchesAudit([{ kind: 'call.denied', code: 'E_RATE_LIMITED' }], { tag: 'err', val: { tag: 'rate-limited', val: 5n } }), undefined);
  });

  it('see a changed canary file', async () => {
    const world = await World.create();
    try {
      assert.deepEqual(world.checkCanaries(), []);
      writeFileSync(join(world.scratch, 'datax', 'file.txt'), 'changed');
      assert.match(world.checkCanaries().join(), /datax\/file\.txt was changed/);
      world.restore();
      assert.deepEqual(world.checkCanaries(), []);
    } finally {
      await world.close();
    }
  });
});

describe('authority fuzz', () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), log: pino({ level: 'silent' }), env: {}, cwd: process.cwd() } };
  };

  it('prints one JSON document and exits 0 when it finds no violation', async () => {
    const c = io();
    const code = await main(['fuzz', '--runs', '100', '--seed', '7', '--target', 'secrets', '--layer', 'gate', '--json'], c.io);
    assert.equal(code, 0, c.out.join(''));
    const doc = JSON.parse(c.out.join('')) as { ok: boolean; seed: number; results: { op: string; runs: number }[] };
    assert.equal(doc.ok, true);
    assert.equal(doc.seed, 7);
    assert.deepEqual(doc.results.map((r) => r.op), ['secrets.get']);
    assert.ok((doc.results[0]?.runs ?? 0) >= 100);
  });

  it('refuses a replay path without its seed and layer', async () => {
    const c = io();
    assert.equal(await main(['fuzz', '--path', '3:1:2'], c.io), 2);
    assert.match(c.err.join(''), /--path replays one counterexample/);
  });
});
