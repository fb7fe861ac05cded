/**
 * Child process of the crash test: opens the log in the data folder given as
 * argv[2], prints "ready <next seq>", then appends from many concurrent callers
 * until killed, printing each seq on its own line the moment its append is
 * acknowledged. stdout is a pipe, written synchronously on Linux, so a printed
 * seq was acknowledged before the kill.
 */
import { AuditLog } from '../../src/audit/index.ts';
import { sampleEntry } from './audit-util.ts';

const dir = process.argv[2];
const callers = Number(process.argv[3] ?? 32);
if (dir === undefined) throw new Error('usage: audit-crash-child.ts DATA_DIR [CALLERS]');

const log = await AuditLog.open({ dir, checkpointEvery: { records: 500, ms: 50 } });
process.stdout.write(`ready ${log.stats.appended}\n`);
let n = 0;
const caller = async (): Promise<void> => {
  for (;;) {
    const { seq } = await log.append(sampleEntry(n++));
    process.stdout.write(`${seq}\n`);
  }
};
await Promise.all(Array.from({ length: callers }, caller));
