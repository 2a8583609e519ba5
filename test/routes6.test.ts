// IPv6 route table: longest-prefix match over 128-bit addresses read from a packet buffer, the reverse lookups of the
// receive checks, and agreement with a naive bigint scan on random tables (fast-check).
import t from 'tap';
import fc from 'fast-check';
import { NO_ROUTE } from '../src/datapath/routes.js';
import { RouteTable6, type Peer6Entry, type Route6Entry } from '../src/datapath/routes6.js';
import { parseIPv6 } from '../src/ip/ipv6.js';

const ip6 = (s: string): bigint => parseIPv6(s)!;

/** The address as 16 bytes at offset 3 of a buffer (an unaligned offset, as in a packet). */
function at3(a: bigint): Buffer {
  const b = Buffer.alloc(19);
  Buffer.from(a.toString(16).padStart(32, '0'), 'hex').copy(b, 3);
  return b;
}

t.test('longest prefix wins, across word boundaries; no match is NO_ROUTE', async (t) => {
  const routes: Route6Entry[] = [
    { net: ip6('fd00:5::'), prefixLen: 48, record: 0 },
    { net: ip6('fd00:5:0:3::'), prefixLen: 64, record: 1 },
    { net: ip6('fd00:5:0:3:8000::'), prefixLen: 65, record: 2 },
    { net: ip6('fd00:5:0:3:8000::1'), prefixLen: 128, record: 3 },
    { net: ip6('fe00::'), prefixLen: 7, record: 4 },
  ];
  const rt = new RouteTable6(routes, [], 5);
  t.equal(rt.lookup(at3(ip6('fd00:5:0:3::7')), 3), 1);
  t.equal(rt.lookup(at3(ip6('fd00:5:0:3:8000::2')), 3), 2);
  t.equal(rt.lookup(at3(ip6('fd00:5:0:3:8000::1')), 3), 3);
  t.equal(rt.lookup(at3(ip6('fd00:5:0:9::1')), 3), 0);
  t.equal(rt.lookup(at3(ip6('ffff::1')), 3), 4, 'high bit set in the first word (int32 form)');
  t.equal(rt.lookup(at3(ip6('fd00:6::1')), 3), NO_ROUTE);
  t.equal(RouteTable6.empty.lookup(at3(ip6('fd00:5::1')), 3), NO_ROUTE);
});

t.test('record by outer source; the inner source must lie in a subnet of that PublicIPv6', async (t) => {
  const peers: Peer6Entry[] = [
    { record: 4, publicIp: ip6('fd77::2'), net: ip6('fd00:5:0:2::'), prefixLen: 64 },
    { record: 5, publicIp: ip6('fd77::3'), net: ip6('fd00:5:0:3::'), prefixLen: 64 },
    { record: 6, publicIp: ip6('fd77::2'), net: ip6('fd00:5:0:12::'), prefixLen: 64 }, // a second lease of fd77::2
  ];
  const rt = new RouteTable6([], peers, 7);
  const from2 = rt.peerBySource(at3(ip6('fd77::2')), 3);
  t.equal(from2, 4);
  t.equal(rt.peerBySource(at3(ip6('fd77::9')), 3), NO_ROUTE, 'no member');
  t.equal(rt.senderOf(from2, at3(ip6('fd00:5:0:2::9')), 3), 4);
  t.equal(rt.senderOf(from2, at3(ip6('fd00:5:0:12::9')), 3), 6, "the second lease's subnet");
  t.equal(rt.senderOf(from2, at3(ip6('fd00:5:0:3::9')), 3), NO_ROUTE, "another member's subnet: spoofed");
  t.equal(rt.senderOf(NO_ROUTE, at3(ip6('fd00:5:0:2::9')), 3), NO_ROUTE);
});

t.test('agrees with a naive longest-prefix scan on random tables', async (t) => {
  const addr = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
  const mask = (len: number): bigint => (len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(128 - len));
  fc.assert(
    fc.property(
      fc.array(fc.record({ net: addr, prefixLen: fc.integer({ min: 0, max: 128 }) }), { maxLength: 40 }),
      fc.array(addr, { minLength: 1, maxLength: 20 }),
      (nets, probes) => {
        // One record per distinct prefix, so the answer is unique.
        const seen = new Map<string, Route6Entry>();
        for (const n of nets) {
          const net = n.net & mask(n.prefixLen);
          const key = `${net}/${n.prefixLen}`;
          if (!seen.has(key)) seen.set(key, { net, prefixLen: n.prefixLen, record: seen.size });
        }
        const routes = [...seen.values()];
        const rt = new RouteTable6(routes, [], routes.length);
        // Probes inside some routes too, not only random ones.
        for (const p of [...probes, ...routes.map((r) => r.net | 1n)]) {
          let best: Route6Entry | undefined;
          for (const r of routes) {
            if ((p & mask(r.prefixLen)) === r.net && (!best || r.prefixLen > best.prefixLen)) best = r;
          }
          if (rt.lookup(at3(p), 3) !== (best?.record ?? NO_ROUTE)) return false;
        }
        return true;
      },
    ),
    { numRuns: 200 },
  );
  t.pass('200 random tables');
});
