/**
 * A child process that undoes a run and stops dead partway: it prints each
 * step as it reaches it, and at step STOP_AT (1-based) it prints "stopped"
 * and waits to be killed (the parent sends SIGKILL). With STOP_AT 0 it never
 * waits: the parent kills it whenever it likes.
 * argv: dataDir runId policyJson stopAt
 */
import pino from 'pino';
import { createRuntime } from '../../src/runtime.ts';
import { SHARED_CACHE } from './runtime.ts';

const [dataDir, runId, policyJson, stopAtText] = process.argv.slice(2) as [string, string, string, string];
const stopAt = Number(stopAtText);
const rt = await createRuntime({ dataDir, policy: JSON.parse(policyJson) as never, cacheDir: SHARED_CACHE, logger: pino({ level: 'silent' }) });
let n = 0;
await rt.undoRun(runId, {
  beforeRestore: async (step) => {
    n++;
    process.stdout.write(`step ${n} ${step.path}\n`);
    if (n === stopAt) {
      process.stdout.write('stopped\n');
      await new Promise(() => {});
    }
  },
});
process.stdout.write('finished\n');
await rt.close();
