/**
 * Tools from a registry: what provenance adds to a registration (signature
 * checks against hashing the component, which registration does anyway), and
 * pulling a StarlingMonkey-sized component from a real registry on loopback,
 * cold and from the cache, against reading and hashing the same file.
 *
 *   node --import tsx bench/index.ts registry
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BlobCache, clientFor, parseReference, pullTool, pushTool } from '../src/oci/index.ts';
import { loadPolicy } from '../src/policy/index.ts';
import { checkBundle, generateSigningKey, signDigest } from '../src/signing/index.ts';
import { checkProvenance } from '../src/registry/index.ts';
import { exampleTools } from '../test/helpers/fixtures.ts';
import { startRegistry } from '../test/helpers/oci-registry.ts';
import { tempDir } from '../test/helpers/runtime.ts';
import { percentile, row, sampleUs, type Bench, type BenchRow } from './harness.ts';

const median = (xs: number[]): number => percentile(xs, 50);

export const bench: Bench = async () => {
  const rows: BenchRow[] = [];
  const file = (await exampleTools(['word-count']))['word-count'] as string;
  const bytes = readFileSync(file);
  const hex = createHash('sha256').update(bytes).digest('hex');
  const mb = (bytes.length / 1024 / 1024).toFixed(1);

  const hashUs = median(await sampleUs(() => createHash('sha256').update(bytes).digest(), 30, 3));
  const hashing = { name: `sha-256 of the ${mb} MiB component`, value: hashUs };
  rows.push(row(`sha-256 of a ${mb} MiB component (baseline)`, hashUs, 'us p50'));
  for (const type of ['ed25519', 'ecdsa-p256'] as const) {
    const key = generateSigningKey(type);
    const bundle = signDigest(hex, key);
    rows.push(row(`verify one ${type} bundle`, median(await sampleUs(() => checkBundle(bundle, hex, [key]), 2000)), 'us p50', { baseline: hashing }));
  }
  const key = generateSigningKey('ed25519');
  const others = Array.from({ length: 7 }, () => generateSigningKey('ed25519'));
  const { policy } = loadPolicy({ version: '1.0', tools: { allow: ['*'], trust: [{ tools: ['*'], keys: [...others, key].map((k) => k.pem) }], pin: { 'word-count': `sha256:${hex}` } } });
  const bundles = [signDigest(hex, key)];
  rows.push(
    row('trust decision: 8 trusted keys, hinted signer, pin', median(await sampleUs(() => checkProvenance(policy, { name: 'word-count', digest: hex }, bundles, undefined), 2000)), 'us p50', { baseline: hashing }),
  );

  const registry = await startRegistry();
  const caches: Array<ReturnType<typeof tempDir>> = [];
  try {
    const ref = parseReference(`oci://${registry.host}/bench/word-count:1`);
    const client = clientFor(ref, { plainHttp: true, env: {} });
    const pushed = await pushTool(client, ref, bytes);
    const readUs = median(await sampleUs(() => createHash('sha256').update(readFileSync(file)).digest(), 10, 2));
    const local = { name: 'read + hash the file', value: readUs / 1000 };
    rows.push(row(`read + sha-256 of the ${mb} MiB file (baseline)`, readUs / 1000, 'ms p50'));
    const cold = await sampleUs(
      async () => {
        const c = tempDir('authority-bench-oci-');
        caches.push(c);
        await pullTool(clientFor(ref, { plainHttp: true, env: {} }), ref, new BlobCache(c.path));
      },
      7,
      1,
    );
    rows.push(row('pull by tag, cold cache (loopback registry)', median(cold) / 1000, 'ms p50', { baseline: local }));
    const pinned = parseReference(pushed.pinned);
    const warmDir = tempDir('authority-bench-oci-');
    caches.push(warmDir);
    const warm = new BlobCache(warmDir.path);
    await pullTool(client, pinned, warm);
    rows.push(row('pull by digest, from the cache', median(await sampleUs(() => pullTool(client, pinned, warm), 10, 2)) / 1000, 'ms p50', { baseline: local }));
  } finally {
    await registry.stop();
    for (const c of caches) c.cleanup();
  }
  return rows;
};
