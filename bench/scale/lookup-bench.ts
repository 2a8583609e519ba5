// Per-packet cost of the userspace datapath's route lookup (src/datapath/routes.ts) against the number of routes:
// a table of n /24 peers as the scale tool leases them, looked up in-process for a fixed mix of destinations
// (hits spread over every route, and 1 in 8 a miss). ns per lookup, median of several runs.
import { NO_ROUTE, RouteTable, type PeerEntry, type RouteEntry } from '../../src/datapath/routes.js';
import { simSubnet } from './leases.js';
import { median } from './observe.js';

export interface LookupResult {
  routes: number;
  /** Median over runs of ns per lookup (src/datapath/routes.ts as it is). */
  nsPerLookup: number;
  runs: number[];
  lookupsPerRun: number;
}

export function buildTable(n: number): RouteTable {
  const routes: RouteEntry[] = [];
  const peers: PeerEntry[] = [];
  for (let i = 0; i < n; i++) {
    const sn = simSubnet(i);
    routes.push({ net: sn.ip | 0, prefixLen: 24, peer: i });
    peers.push({ index: i, publicIp: (0xc6120000 + i) | 0, net: sn.ip | 0, prefixLen: 24 });
  }
  return new RouteTable(routes, peers);
}

export function benchLookup(n: number, opts: { runs?: number; lookups?: number } = {}): LookupResult {
  const runs = opts.runs ?? 7;
  const lookups = opts.lookups ?? 2_000_000;
  const table = buildTable(n);
  // 4096 destinations, precomputed so the loop measures the lookup, not address making.
  const dsts = new Int32Array(4096);
  for (let k = 0; k < dsts.length; k++) {
    const miss = k % 8 === 7;
    const i = miss ? 30_000 + k : (k * 7919) % Math.max(1, n);
    dsts[k] = (simSubnet(i).ip + 1 + (k % 250)) | 0;
  }
  let sink = 0;
  const measure = (t: RouteTable): number[] => {
    const once = (count: number): number => {
      const t0 = process.hrtime.bigint();
      for (let j = 0; j < count; j++) {
        const p = t.lookup(dsts[j & 4095]!);
        if (p !== NO_ROUTE) sink += p;
      }
      return Number(process.hrtime.bigint() - t0) / count;
    };
    once(lookups); // warm-up: let the JIT settle
    const results: number[] = [];
    for (let r = 0; r < runs; r++) results.push(once(lookups));
    return results;
  };
  const results = measure(table);
  if (sink === -1) results.push(0); // keep `sink` alive so the loop is not optimised away
  return { routes: n, nsPerLookup: median(results), runs: results, lookupsPerRun: lookups };
}
