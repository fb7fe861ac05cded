/**
 * `authority policy validate FILE` and `authority policy test FILE --op OP
 * --target T`: check a policy before deploying it. Never does DNS and never
 * connects: an http test decides on the URL (and on its address when the
 * host is an IP literal) only.
 */
import { AuthorityError, ErrorCode } from '../../errors.ts';
import { POLICY_OPS, canonicaliseUrl, formatIssue, loadPolicyFile, type PolicyDecision, type PolicyOp, type PolicyRequest } from '../../policy/index.ts';
import { emit, fail, parse, usageError } from '../output.ts';
import { EXIT_FAIL, EXIT_OK, type CliIO, type Command } from '../types.ts';
import { summaryOf } from './summaries.ts';

const USAGE = `usage:
  authority policy validate FILE [--json]
  authority policy test FILE --op OP --target TARGET [--method METHOD] [--url URL] [--resolve] [--json]

validate  Load FILE and report every problem with its JSON path and line.
          Exit 0 when it loads (warnings are printed), 2 when it does not.

test      Decide one request against FILE and print the decision and its reason.
          Exit 0 when allowed, 1 when denied, 2 when FILE does not load.
          OP is one of: ${POLICY_OPS.join(', ')}
            fs.*         --target /absolute/path   (--resolve follows symlinks on this machine)
            http.fetch   --target URL [--method GET]
            secrets.get  --target NAME
            secrets.use  --target NAME --url URL  (may {{secret:NAME}} be sent to URL?)
            tool.invoke  --target NAME
            tool.register --target NAME (--digest sha256:HEX [--signer KEYID]... | --component FILE)
                         may a component be registered under NAME (tools.pin, tools.trust)?
                         --component hashes FILE and verifies FILE.sig against the policy's keys
          An http test never resolves names or connects; for an IP literal host it
          also runs the address check the host runs on every resolved address.
`;

async function validate(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse({ args: argv, options: { json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  const json = values.json === true;
  const file = single(positionals, 'validate');
  const { policy, warnings } = await loadPolicyFile(file);
  const doc = {
    ok: true,
    file,
    name: policy.name ?? null,
    digest: policy.digest,
    caps: policy.caps,
    warnings,
  };
  const lines = [`${file}: valid policy${policy.name === undefined ? '' : ` "${policy.name}"`} (sha256 ${policy.digest.slice(0, 16)})`];
  if (warnings.length > 0) {
    lines.push(`${warnings.length} warning${warnings.length === 1 ? '' : 's'}:`);
    for (const w of warnings) lines.push(`  warning: ${formatIssue(w)}`);
  }
  emit(io, json, doc, lines.join('\n'));
  return EXIT_OK;
}

function single(positionals: string[], sub: string): string {
  if (positionals.length !== 1) throw usageError(`policy ${sub} takes exactly one FILE\n\n${USAGE}`);
  return positionals[0] as string;
}

function request(op: PolicyOp, target: string, method: string | undefined, url: string | undefined): PolicyRequest {
  switch (op) {
    case 'http.fetch':
      return { op, url: target, method: method ?? 'GET' };
    case 'secrets.get':
    case 'tool.invoke':
      return { op, name: target };
    case 'secrets.use':
      if (url === undefined) throw usageError('--op secrets.use needs --url URL (the destination the placeholder would be sent to)');
      return { op, name: target, url };
    default:
      return { op, path: target };
  }
}

async function test(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse({
    args: argv,
    options: {
      json: { type: 'boolean' },
      op: { type: 'string' },
      target: { type: 'string' },
      method: { type: 'string' },
      url: { type: 'string' },
      resolve: { type: 'boolean' },
      digest: { type: 'string' },
      signer: { type: 'string', multiple: true },
      component: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const json = values.json === true;
  const file = single(positionals, 'test');
  const op = values.op;
  if (op === 'tool.register') {
    if (values.target === undefined) throw usageError('--target NAME is required');
    return trustTest(file, values.target, values, io);
  }
  if (values.digest !== undefined || values.signer !== undefined || values.component !== undefined) throw usageError('--digest, --signer and --component apply to --op tool.register only');
  if (op === undefined || !(POLICY_OPS as readonly string[]).includes(op)) throw usageError(`--op must be one of: ${POLICY_OPS.join(', ')}`);
  if (values.target === undefined) throw usageError('--target is required');
  if (values.method !== undefined && op !== 'http.fetch') throw usageError('--method applies to --op http.fetch only');
  const req = request(op as PolicyOp, values.target, values.method, values.url);
  const { policy } = await loadPolicyFile(file);
  const decision: PolicyDecision = values.resolve === true ? await policy.resolveAndDecide(req) : policy.decide(req);

  // For an IP literal host, the address check is part of the answer; it needs no DNS.
  let address: PolicyDecision | undefined;
  if (op === 'http.fetch' && decision.allow) {
    const u = canonicaliseUrl(values.target);
    if (u.ip !== undefined) address = policy.decideAddress(u, u.host);
  }
  const allowed = decision.allow && (address === undefined || address.allow);
  const doc = { allow: allowed, op, target: values.target, decision, ...(address === undefined ? {} : { address }) };
  const lines = [describe(decision)];
  if (address !== undefined) lines.push(`address check: ${describe(address)}`);
  emit(io, json, doc, lines.join('\n'));
  return allowed ? EXIT_OK : EXIT_FAIL;
}

/** Explain a provenance decision: which pin or trust rule applies, and what would satisfy it. */
async function trustTest(file: string, name: string, values: { digest?: string | undefined; signer?: string[] | undefined; component?: string | undefined; json?: boolean | undefined }, io: CliIO): Promise<number> {
  const { policy } = await loadPolicyFile(file);
  let digest = values.digest;
  let signers = values.signer ?? [];
  let rejected: string[] = [];
  if (values.component !== undefined) {
    if (digest !== undefined || values.signer !== undefined) throw usageError('--component gives the digest and the signers; do not add --digest or --signer');
    const { readFileSync } = await import('node:fs');
    const { createHash } = await import('node:crypto');
    const { checkBundle, readSidecar } = await import('../../signing/index.ts');
    let bytes: Buffer;
    try {
      bytes = readFileSync(values.component);
    } catch (e) {
      throw new AuthorityError(ErrorCode.TOOL_NOT_FOUND, `cannot read ${values.component}: ${(e as Error).message}`);
    }
    const hex = createHash('sha256').update(bytes).digest('hex');
    digest = `sha256:${hex}`;
    const checks = readSidecar(values.component).map((b) => checkBundle(b, hex, policy.trustedKeys()));
    signers = checks.flatMap((c) => (c.ok ? [c.keyId] : []));
    rejected = checks.flatMap((c) => (c.ok ? [] : [c.message]));
  }
  if (digest === undefined || !/^sha256:[0-9a-f]{64}$/.test(digest)) throw usageError('--op tool.register needs --digest sha256:<64 hex> or --component FILE');
  const decision = policy.decideTrust({ name, digest, signers, rejected });
  emit(io, values.json === true, { allow: decision.allow, op: 'tool.register', target: name, digest, signers, decision }, describe(decision));
  return decision.allow ? EXIT_OK : EXIT_FAIL;
}

function describe(d: PolicyDecision): string {
  const head = d.allow ? `allow: ${d.reason}` : `deny (${d.code}): ${d.reason}`;
  const extra = [d.rule === undefined ? '' : `rule ${d.rule}`, d.root === undefined ? '' : `root ${d.root}`, d.target === undefined ? '' : `target ${d.target}`].filter((s) => s !== '');
  return extra.length === 0 ? head : `${head}\n  ${extra.join(', ')}`;
}

/** `authority policy`: validate a policy file, or test one request against it. */
export const policyCommand: Command = {
  name: 'policy',
  summary: summaryOf('policy'),
  usage: USAGE,
  async run(argv: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = argv;
    try {
      if (sub === 'validate') return await validate(rest, io);
      if (sub === 'test') return await test(rest, io);
      throw new AuthorityError(ErrorCode.USAGE, sub === undefined ? `policy needs a subcommand\n\n${USAGE}` : `unknown policy subcommand "${sub}"\n\n${USAGE}`);
    } catch (e) {
      // Errors are reported in the output mode asked for, with the contract's exit code.
      return fail(io, argv.includes('--json'), e);
    }
  },
};
