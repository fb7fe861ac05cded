/**
 * Prometheus metrics of `authority serve`, with prom-client (loaded only
 * when serving). A registry of its own, never the global one: an embedding
 * application's metrics stay its own.
 * @module
 */
import type { Runtime } from '../runtime.ts';

export interface InvocationFacts {
  tool: string;
  /** `ok`, or the error code the invocation ended with. */
  code: string;
  durationMs: number;
  /** The run's host-call latency as the tool saw it (median and p99, microseconds), when it made any. */
  hostCallUs?: { p50: number; p99: number } | undefined;
  /** Codes of the host calls the gate refused during the run. */
  denials: readonly { op: string; code: string }[];
}

export interface ServeMetrics {
  readonly contentType: string;
  invocation(f: InvocationFacts): void;
  /** An HTTP request refused before MCP (401, 403, 404). */
  refused(status: number): void;
  text(): Promise<string>;
}

/** Build the metrics for one runtime; `sessions` says how many MCP sessions are open. */
export async function createMetrics(runtime: Runtime, sessions: () => number): Promise<ServeMetrics> {
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry, prefix: 'authority_process_' });
  const invocations = new prom.Counter({ name: 'authority_invocations_total', help: 'Tool invocations, by tool and outcome code (ok or E_...)', labelNames: ['tool', 'code'], registers: [registry] });
  const denials = new prom.Counter({
    name: 'authority_denials_total',
    help: 'Refusals by the gate, by stage (invoke for admission, else the host operation) and code',
    labelNames: ['op', 'code'],
    registers: [registry],
  });
  const invocationSeconds = new prom.Histogram({
    name: 'authority_invocation_duration_seconds',
    help: 'Wall time of an invocation, admission to result',
    labelNames: ['tool'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const hostCallSeconds = new prom.Histogram({
    name: 'authority_host_call_duration_seconds',
    help: "Host-call latency as tools see it (bridge, gate, audit and effect): each run's median (stat=p50) and p99 (stat=p99)",
    labelNames: ['stat'],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [registry],
  });
  const httpRefused = new prom.Counter({ name: 'authority_http_refused_total', help: 'HTTP requests refused before MCP, by status', labelNames: ['status'], registers: [registry] });
  const gauge = (name: string, help: string, read: () => number): void => {
    new prom.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  gauge('authority_pool_workers', 'Sandbox workers', () => runtime.load.workers);
  gauge('authority_pool_running', 'Invocations running in the sandbox pool', () => runtime.load.running);
  gauge('authority_pool_queued', 'Invocations waiting for a sandbox worker', () => runtime.load.queued);
  gauge('authority_sessions', 'Open MCP sessions', sessions);
  gauge('authority_halted', '1 when the runtime is halted', () => (runtime.halted === undefined ? 0 : 1));
  gauge('authority_audit_records', 'Records durable in the local audit log', () => runtime.auditStatus.stats.records);
  gauge('authority_audit_fsyncs', 'fdatasync calls on the audit log since start', () => runtime.auditStatus.stats.syncs);
  gauge('authority_audit_unanchored_records', 'Durable records no signed checkpoint covers yet', () => runtime.auditStatus.stats.records - runtime.auditStatus.stats.checkpointSize);
  gauge('authority_audit_checkpoint_age_seconds', 'Time since the latest signed checkpoint (0 without one): how far the witness can be behind', () => {
    const cp = runtime.auditStatus.latestCheckpoint;
    return cp === null ? 0 : Math.max(0, (Date.now() - Date.parse(cp.time)) / 1000);
  });
  gauge('authority_fleet_state_known', '1 when the fleet state (revocations, halt) is confirmed within its grace; 1 outside a fleet', () => (runtime.fleet === undefined || runtime.fleet.known ? 1 : 0));
  gauge('authority_fleet_sync_age_seconds', 'Time since the fleet state was last confirmed against Redis (0 outside a fleet)', () => {
    const s = runtime.fleet?.state.sinceSyncMs;
    return s === undefined || !Number.isFinite(s) ? 0 : s / 1000;
  });
  return {
    contentType: registry.contentType,
    invocation(f) {
      invocations.inc({ tool: f.tool, code: f.code });
      invocationSeconds.observe({ tool: f.tool }, f.durationMs / 1000);
      if (f.code !== 'ok' && f.code !== 'E_TOOL_FAILED') denials.inc({ op: 'invoke', code: f.code });
      for (const d of f.denials) denials.inc({ op: d.op, code: d.code });
      if (f.hostCallUs !== undefined) {
        hostCallSeconds.observe({ stat: 'p50' }, f.hostCallUs.p50 / 1e6);
        hostCallSeconds.observe({ stat: 'p99' }, f.hostCallUs.p99 / 1e6);
      }
    },
    refused(status) {
      httpRefused.inc({ status: String(status) });
    },
    text: () => registry.metrics(),
  };
}
