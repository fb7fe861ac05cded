/**
 * What keeping a pre-image costs a write: the host's fs.write effect (atomic
 * replace with fsync) on a 4 KiB file, with the pre-image read and kept first
 * (as the gate does when undo is on) against the effect alone, same folder,
 * same run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HostFs } from '../src/host/index.ts';
import { capturePreImage, PreImageStore } from '../src/undo/index.ts';
import { percentile, row, sampleUs, type Bench } from './harness.ts';

export const bench: Bench = async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'authority-undo-bench-'));
  try {
    const work = path.join(root, 'work');
    fs.mkdirSync(work);
    const hostFs = new HostFs();
    const store = new PreImageStore(path.join(root, 'undo'));
    const scope = { roots: [work] };
    const file = path.join(work, 'f.txt');
    fs.writeFileSync(file, Buffer.alloc(4096, 1));
    let i = 0;
    // Fresh bytes each time, so every pre-image is a new object (the worst case: no sharing).
    const next = (): Buffer => Buffer.alloc(4096, (i++ % 250) + 2).fill(String(i), 0, 16);
    const plain = await sampleUs(() => hostFs.writeFile(file, next(), scope), 200, 20);
    const kept = await sampleUs(async () => {
      await capturePreImage(store, hostFs, file, scope);
      await hostFs.writeFile(file, next(), scope);
    }, 200, 20);
    const p50 = percentile(plain, 50);
    return [
      row('fs.write 4 KiB with its pre-image kept, p50', percentile(kept, 50), 'us', { baseline: { name: 'the write alone', value: p50 }, note: `p99 ${Math.round(percentile(kept, 99))} us vs ${Math.round(percentile(plain, 99))} us` }),
    ];
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
};
