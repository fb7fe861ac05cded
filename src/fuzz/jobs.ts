/**
 * Fuzz jobs in worker threads: each job runs some of a run's properties in a
 * world of its own (scratch folder, canary server, runtime), so a two-core
 * machine fuzzes on both cores. Every property is seeded alike wherever it
 * runs, so a failure replays with the same command whichever job found it.
 * @module
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

// Generic in the options and the report, so this module needs nothing from run.ts (which imports it).
type JobOptions = { progress?: ((line: string) => void) | undefined };
type ToMain<R> = { type: 'progress'; line: string } | { type: 'report'; report: R } | { type: 'error'; message: string };

/** The job's entry, booting tsx first in a development checkout (loader hooks are per thread). */
function entry(): { entry: string | URL; evalMode: boolean } {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return { entry: new URL('./job.js', here), evalMode: false };
  const api = import.meta.resolve('tsx/esm/api');
  const job = new URL('./job.ts', here).href;
  return { entry: `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(job)}); });`, evalMode: true };
}

/** Run `options` (with its `items`) in a worker thread. */
export function runInWorker<O extends JobOptions, R>(options: O, progress?: (line: string) => void): Promise<R> {
  const { entry: file, evalMode } = entry();
  const { progress: _drop, ...data } = options;
  return new Promise((resolve, reject) => {
    const w = new Worker(file, { eval: evalMode, workerData: data, stdout: false, stderr: false });
    let settled = false;
    w.on('message', (m: ToMain<R>) => {
      if (m.type === 'progress') progress?.(m.line);
      else if (m.type === 'report') {
        settled = true;
        resolve(m.report);
      } else {
        settled = true;
        reject(new Error(m.message));
      }
    });
    w.on('error', (e) => {
      if (!settled) reject(e);
      settled = true;
    });
    w.on('exit', (code) => {
      if (!settled) reject(new Error(`a fuzz job stopped (exit code ${code})`));
    });
  });
}

/** Inside a job: run, and post the report. */
export async function jobMain<O extends JobOptions, R>(run: (o: O) => Promise<R>): Promise<void> {
  if (isMainThread || parentPort === null) return;
  const port = parentPort;
  try {
    const report = await run({ ...(workerData as O), progress: (line: string) => port.postMessage({ type: 'progress', line } satisfies ToMain<R>) });
    port.postMessage({ type: 'report', report } satisfies ToMain<R>);
  } catch (e) {
    port.postMessage({ type: 'error', message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) } satisfies ToMain<R>);
  }
}
