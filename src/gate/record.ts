/**
 * How the gate writes the audit log: every record of a run carries the run,
 * the tool and its digest, and never a secret's value, whatever the guest put
 * in a path or a URL.
 * @module
 */
import type { AuditDetail, AuditEntry, AuditReceipt } from '../audit/index.ts';
import { AuthorityError, ErrorCode } from '../errors.ts';
import type { HostReply } from '../host-call.ts';
import { percentDecodeLenient, type SecretStore } from '../host/index.ts';
import type { AuditSink, GateDeps } from './context.ts';
import { clip } from './ops.ts';

/** What an outcome record says of a reply: `ok`, the denial's code or the error case, and the message. */
export function outcomeOf(reply: HostReply): { code: string; reason: string | undefined } {
  if (reply.tag === 'ok') return { code: 'ok', reason: undefined };
  const e = reply.val;
  if (e.tag === 'denied') return { code: e.val.code, reason: e.val.message };
  return { code: e.tag, reason: e.tag === 'rate-limited' ? `retry after ${e.val} ms` : e.val };
}

/** Who a record is about: the run and its tool. */
export interface RecordSubject {
  readonly runId: string;
  readonly tool: { readonly name: string; readonly digest: string };
}

export class Recorder {
  readonly #audit: AuditSink;
  readonly #secrets: SecretStore;
  readonly #onFailure: GateDeps['onAuditFailure'];

  constructor(deps: Pick<GateDeps, 'audit' | 'secrets' | 'onAuditFailure'>) {
    this.#audit = deps.audit;
    this.#secrets = deps.secrets;
    this.#onFailure = deps.onAuditFailure;
  }

  /** The sink itself, for records that carry their own subject (approvals). */
  get sink(): AuditSink {
    return this.#audit;
  }

  /** Append a record of this run, scrubbed of secret values. */
  append(run: RecordSubject, entry: Omit<AuditEntry, 'runId' | 'tool' | 'toolDigest'>): Promise<AuditReceipt> {
    // A tool that read a secret may put it in a URL or a path: the record shows where the call went, never the value.
    const scrubbed = entry.reason === undefined ? undefined : this.scrub(entry.reason);
    const reason = scrubbed !== undefined && scrubbed.length > 1024 ? clip(scrubbed, 1021) + '...' : scrubbed;
    // With no secrets there is nothing to scrub: the detail goes as it is, not copied.
    const detail = entry.detail === undefined || this.#secrets.size === 0 ? entry.detail : (this.#scrubValue(entry.detail) as AuditDetail);
    return this.#audit.append({ ...entry, reason, detail, runId: run.runId, tool: run.tool.name, toolDigest: `sha256:${run.tool.digest}` });
  }

  /** Append as is (invocation records, whose text the runtime has already redacted); a failed log is reported. */
  async appendRaw(entry: AuditEntry): Promise<AuditReceipt> {
    try {
      return await this.#audit.append(entry);
    } catch (e) {
      if (e instanceof AuthorityError && e.code === ErrorCode.AUDIT_WRITE) this.#onFailure?.(e);
      throw e;
    }
  }

  /** `text` with every secret value replaced by `[REDACTED:NAME]`, also a value written percent-encoded. */
  scrub(text: string): string {
    const secrets = this.#secrets;
    if (secrets.size === 0) return text;
    let out = secrets.redactText(text, 'audit').text;
    if (out.includes('%')) {
      const decoded = Buffer.from(percentDecodeLenient(Buffer.from(out, 'utf8'))).toString('utf8');
      if (secrets.findText(decoded).length > 0) out = secrets.redactText(decoded, 'audit').text;
    }
    return out;
  }

  #scrubValue(v: AuditDetail[string]): AuditDetail[string] {
    if (typeof v === 'string') return clip(this.scrub(v), 1024);
    if (Array.isArray(v)) return v.map((x: AuditDetail[string]) => this.#scrubValue(x));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.#scrubValue(x)]));
    return v;
  }
}
