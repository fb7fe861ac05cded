/**
 * The other node of the propagation benchmark: a Fleet connection in its own
 * process that reports, with the machine's clock, when each revocation and
 * halt reached its local mirror.
 */
import { Fleet } from '../src/fleet/index.ts';

const url = process.env['AUTHORITY_BENCH_REDIS'] as string;
const fleet = await Fleet.connect({ url, node: 'bench-peer', prefix: 'bench' });
const now = (): number => performance.timeOrigin + performance.now();
fleet.on('revoked', (e) => process.send?.({ t: 'revoked', id: e.id, at: now() }));
fleet.on('halt', (h) => process.send?.({ t: 'halt', reason: h.reason, at: now() }));
process.on('message', (m: { t: string }) => {
  if (m.t === 'close') void fleet.close().then(() => process.disconnect());
});
process.send?.({ t: 'ready' });
