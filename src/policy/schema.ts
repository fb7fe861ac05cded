/**
 * The policy file's schema (zod 4). Every object is strict: an unknown key is
 * an error, never silently ignored. Leaves are parsed here (rules, rates,
 * sizes) so each problem is reported at its own JSON path.
 * @module
 */
import { z } from 'zod';
import { HOST_OPS, SECRET_NAME, TOOL_NAME, type HostOp } from '../host-call.ts';
import { parseRate, type RateSpec } from '../limits/rate.ts';
import { compileNameGlob, compilePathGlob, type CompiledNameGlob, type CompiledPathGlob } from './glob.ts';
import { parsePublicKey, type PublicKeyInfo } from '../signing/keys.ts';
import { parseHostPattern, parseNetRule, parseSecretHost, type NetRule, type SecretHost } from './net-rules.ts';

/** The only policy format version so far. */
export const POLICY_VERSION = '1.0';

/** Rules per list; more is a generated policy gone wrong. */
export const MAX_RULES = 1000;

// Tool and secret names are spelled once, in host-call.ts; the policy names what the store can hold.
export { TOOL_NAME, SECRET_NAME };
/** A policy name: the namespace of its limits and budgets. */
export const POLICY_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Hard ceilings on caps: beyond these a number is a mistake, not a setting. */
export const CAP_CEILINGS = Object.freeze({ bytes: 1024 ** 3, timeoutMs: 600_000, listEntries: 1_000_000 });

/** A leaf parsed from a glob, with warnings that the loader attaches to its path. */
export interface Parsed<T> {
  readonly value: T;
  readonly warnings: readonly string[];
}

function leaf<T>(parse: (v: unknown) => T | { problem: string }) {
  return z.unknown().transform((v, ctx) => {
    const r = parse(v);
    if (typeof r === 'object' && r !== null && 'problem' in r) {
      ctx.addIssue({ code: 'custom', message: r.problem, input: v });
      return z.NEVER;
    }
    return r as T;
  });
}

const problem = (message: string): { problem: string } => ({ problem: message });

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return typeof v === 'string' ? 'a string' : typeof v === 'number' ? 'a number' : typeof v === 'boolean' ? 'a boolean' : typeof v;
}

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$/;
const SIZE_UNITS: Readonly<Record<string, number>> = { B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 };

/** Bytes as a whole number or a string with a unit: `1048576`, `"1 MiB"`, `"500KB"`. */
export function parseBytes(v: unknown, max: number = Number.MAX_SAFE_INTEGER): number | { problem: string } {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const m = SIZE.exec(v);
    if (m === null) return problem(`expected bytes as a number or a size like "8 MiB", got ${JSON.stringify(v)}`);
    n = Number(m[1]) * (SIZE_UNITS[m[2] ?? 'B'] as number);
  } else return problem(`expected bytes as a number or a size like "8 MiB", got ${typeName(v)}`);
  if (!Number.isSafeInteger(n) || n < 0) return problem(`expected a whole number of bytes >= 0, got ${JSON.stringify(v)}`);
  if (n > max) return problem(`must be at most ${max} bytes`);
  return n;
}

function int(min: number, max: number, what = 'a whole number') {
  return leaf((v) => {
    if (typeof v !== 'number') return problem(`expected ${what}, got ${typeName(v)}`);
    if (!Number.isSafeInteger(v)) return problem(`expected ${what}, got ${v}`);
    if (v < min || v > max) return problem(`must be ${min}-${max}, got ${v}`);
    return v;
  });
}

const bytes = (max: number = Number.MAX_SAFE_INTEGER) => leaf((v) => parseBytes(v, max));

function string(what: string) {
  return leaf((v) => (typeof v === 'string' ? v : problem(`expected ${what}, got ${typeName(v)}`)));
}

function list<T extends z.ZodType>(item: T, what: string) {
  return z.array(item, { error: (iss) => (iss.code === 'invalid_type' ? `expected a list of ${what}, got ${typeName(iss.input)}` : undefined) }).max(MAX_RULES, {
    error: `at most ${MAX_RULES} entries`,
  });
}

const pathGlob = leaf((v): Parsed<CompiledPathGlob> | { problem: string } => {
  if (typeof v !== 'string') return problem(`expected a glob string, got ${typeName(v)}`);
  const r = compilePathGlob(v);
  if (r.value === undefined) return problem(r.errors.join('; '));
  return { value: r.value, warnings: r.warnings };
});

const isToolName = (s: string): boolean => TOOL_NAME.test(s);
const toolGlob = leaf((v): Parsed<CompiledNameGlob> | { problem: string } => {
  if (typeof v !== 'string') return problem(`expected a tool name or glob, got ${typeName(v)}`);
  const r = compileNameGlob(v, isToolName, /^[A-Za-z0-9_-]*$/, '[A-Za-z0-9_-]{1,64}');
  if (r.value === undefined) return problem(r.errors.join('; '));
  return { value: r.value, warnings: r.warnings };
});

const publicKey = leaf((v): PublicKeyInfo | { problem: string } => {
  if (typeof v !== 'string') return problem(`expected a PEM public key ("-----BEGIN PUBLIC KEY-----\\n..."), got ${typeName(v)}`);
  try {
    return parsePublicKey(v, 'key');
  } catch (e) {
    return problem((e as Error).message.replace(/^key: /, ''));
  }
});

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const componentDigest = leaf((v) => (typeof v === 'string' && DIGEST.test(v) ? v : problem(`expected a component digest "sha256:<64 lowercase hex>", got ${JSON.stringify(v) ?? typeName(v)}`)));

const trustRule = z.strictObject({
  tools: list(toolGlob, 'tool names or globs').min(1, { error: 'name at least one tool or glob' }),
  keys: list(publicKey, 'PEM public keys').min(1, { error: 'list at least one public key' }),
});

const netRuleString = leaf((v): NetRule | { problem: string } => {
  if (typeof v !== 'string') return problem(`expected a rule like "https://api.example.com:443" or { "url": ... }, got ${typeName(v)}`);
  const r = parseNetRule(v);
  return typeof r === 'string' ? problem(r) : r;
});

const netRuleObject = z
  .strictObject({
    url: string('a rule like "https://api.example.com:443"'),
    methods: list(string('an HTTP method'), 'HTTP methods').optional(),
    resolves_to: list(string('an IP address or CIDR'), 'IP addresses or CIDRs').optional(),
  })
  .transform((o, ctx): NetRule => {
    const r = parseNetRule(o.url, o.methods, o.resolves_to);
    if (typeof r === 'string') {
      ctx.addIssue({ code: 'custom', message: r, input: o });
      return z.NEVER;
    }
    return r;
  });

/**
 * A value that may be written as a string or as an object; each form gets its
 * own schema, so the errors speak of the form the author chose.
 */
function stringOrObject<T>(str: z.ZodType<T>, obj: z.ZodType<T>) {
  return z.unknown().transform((v, ctx): T => {
    const schema = typeof v === 'object' && v !== null && !Array.isArray(v) ? obj : str;
    const r = schema.safeParse(v, { reportInput: true });
    if (r.success) return r.data;
    for (const iss of r.error.issues) ctx.addIssue(iss as never);
    return z.NEVER;
  });
}

const netRule = stringOrObject(netRuleString, netRuleObject);

const rateString = leaf((v): RateSpec | { problem: string } => {
  if (typeof v !== 'string') return problem(`expected a rate like "10/s" or { "rate": "10/s", "burst": 20 }, got ${typeName(v)}`);
  const r = parseRate(v);
  return typeof r === 'string' ? problem(r) : r;
});

const rateObject = z
  .strictObject({ rate: string('a rate like "10/s"'), burst: int(1, 1_000_000_000).optional() })
  .transform((o, ctx): RateSpec => {
    const r = parseRate(o.rate, o.burst);
    if (typeof r === 'string') {
      ctx.addIssue({ code: 'custom', message: r, input: o });
      return z.NEVER;
    }
    return r;
  });

const rateField = stringOrObject(rateString, rateObject);

const secretHost = leaf((v): SecretHost | { problem: string } => {
  if (typeof v !== 'string') return problem(`expected a host like "api.example.com", got ${typeName(v)}`);
  const r = parseSecretHost(v);
  return typeof r === 'string' ? problem(r) : r;
});

/** A `limits.hosts` key: an exact host name or IP literal, canonicalised later. */
const exactHost = z.string().refine(
  (k) => {
    const p = parseHostPattern(k);
    return typeof p !== 'string' && (p.kind === 'name' || p.kind === 'ip');
  },
  { error: 'limits.hosts keys are exact host names or IP addresses (no wildcards)' },
);

const hostOp = leaf((v): HostOp | { problem: string } =>
  typeof v === 'string' && (HOST_OPS as readonly string[]).includes(v) ? (v as HostOp) : problem(`expected a host operation (one of ${HOST_OPS.join(', ')}), got ${JSON.stringify(v) ?? typeName(v)}`),
);

/** Longest an approval may be waited for: the same ceiling as any other timeout. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 120_000;

const budgetFields = {
  tool_calls: int(0, Number.MAX_SAFE_INTEGER).optional(),
  host_calls: int(0, Number.MAX_SAFE_INTEGER).optional(),
  http_bytes: bytes().optional(),
  fs_read_bytes: bytes().optional(),
  fs_write_bytes: bytes().optional(),
};

/** The policy document. */
export const PolicySchema = z.strictObject({
  version: leaf((v) => (v === POLICY_VERSION ? POLICY_VERSION : problem(`must be "${POLICY_VERSION}", got ${JSON.stringify(v) ?? 'nothing'}`))),
  name: leaf((v) => (typeof v === 'string' && POLICY_NAME.test(v) ? v : problem('expected a name of 1-64 characters [A-Za-z0-9._-]'))).optional(),
  description: leaf((v) => (typeof v === 'string' && v.length <= 4096 ? v : problem('expected a string of at most 4096 characters'))).optional(),
  fs: z
    .strictObject({
      read: list(pathGlob, 'globs').optional(),
      write: list(pathGlob, 'globs').optional(),
      deny: list(pathGlob, 'globs').optional(),
      max_read_bytes: bytes(CAP_CEILINGS.bytes).optional(),
      max_write_bytes: bytes(CAP_CEILINGS.bytes).optional(),
      max_list_entries: int(1, CAP_CEILINGS.listEntries).optional(),
    })
    .optional(),
  net: z
    .strictObject({
      connect: list(netRule, 'net rules').optional(),
      max_request_bytes: bytes(CAP_CEILINGS.bytes).optional(),
      max_response_bytes: bytes(CAP_CEILINGS.bytes).optional(),
      timeout_ms: int(1, CAP_CEILINGS.timeoutMs).optional(),
    })
    .optional(),
  secrets: z
    .record(
      z.string().regex(SECRET_NAME, { error: 'a secret name is [A-Za-z_][A-Za-z0-9_.-]{0,127}' }),
      z.strictObject({
        hosts: list(secretHost, 'hosts').optional(),
        reveal: leaf((v) => (typeof v === 'boolean' ? v : problem(`expected true or false, got ${typeName(v)}`))).optional(),
      }),
    )
    .optional(),
  tools: z
    .strictObject({
      allow: list(toolGlob, 'tool names or globs').optional(),
      deny: list(toolGlob, 'tool names or globs').optional(),
      trust: list(trustRule, 'trust rules').optional(),
      pin: z.record(z.string().regex(TOOL_NAME, { error: 'a tool name is [A-Za-z0-9_-]{1,64}' }), componentDigest).optional(),
    })
    .optional(),
  limits: z
    .strictObject({
      http: rateField.optional(),
      fs: rateField.optional(),
      secrets: rateField.optional(),
      invocations: rateField.optional(),
      per_token: rateField.optional(),
      hosts: z.record(exactHost, rateField).optional(),
    })
    .optional(),
  undo: z
    .strictObject({
      tools: list(toolGlob, 'tool names or globs').optional(),
    })
    .optional(),
  approvals: z
    .strictObject({
      tools: list(toolGlob, 'tool names or globs').optional(),
      ops: list(hostOp, 'host operations').optional(),
      timeout_ms: int(1, CAP_CEILINGS.timeoutMs).optional(),
    })
    .optional(),
  budgets: z
    .strictObject({
      ...budgetFields,
      wall_time_ms: int(1, Number.MAX_SAFE_INTEGER).optional(),
      shared: z.strictObject(budgetFields).optional(),
    })
    .optional(),
});

export type PolicyInput = z.input<typeof PolicySchema>;
export type ParsedPolicy = z.output<typeof PolicySchema>;

