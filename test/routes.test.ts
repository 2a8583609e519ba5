// Route table: longest-prefix match, reverse lookups for the receive checks, and agreement with a naive scan on
// random tables (fast-check).
import t from 'tap';
import fc from 'fast-check';
import { maskOf, NO_ROUTE, RouteTable, type RouteEntry } from '../src/datapath/routes.js';
import { parseIPv4 } from '../src/ip/subnet.js';

const ip = (s: string) => parseIPv4(s)! | 0;

t.test('longest prefix wins; no match is NO_ROUTE', async (t) => {
  const routes: RouteEntry[] = [
    { net: ip('10.5.0.0'), prefixLen: 16, peer: 0 },
    { net: ip('10.5.3.0'), prefixLen: 24, peer: 1 },
    { net: ip('10.5.3.128'), prefixLen: 25, peer: 2 },
    { net: ip('192.168.7.0'), prefixLen: 24, peer: 3 },
  ];
  const rt = new RouteTable(routes, []);
  t.equal(rt.lookup(ip('10.5.3.7')), 1);
  t.equal(rt.lookup(ip('10.5.3.200')), 2);
  t.equal(rt.lookup(ip('10.5.9.1')), 0);
  t.equal(rt.lookup(ip('192.168.7.255')), 3, 'addresses above 2^31 work (int32 form)');
  t.equal(rt.lookup(ip('10.6.0.1')), NO_ROUTE);
  t.equal(RouteTable.empty.lookup(ip('10.5.3.7')), NO_ROUTE);
  t.equal(rt.size, 4);
});

t.test('peer by outer source and inner source check', async (t) => {
  const rt = new RouteTable(
    [{ net: ip('10.5.3.0'), prefixLen: 24, peer: 0 }],
    [
      { index: 0, publicIp: ip('198.18.1.2'), net: ip('10.5.3.0'), prefixLen: 24 },
      { index: 1, publicIp: ip('203.0.113.250'), net: ip('10.5.4.0'), prefixLen: 24 },
    ],
  );
  t.equal(rt.peerBySource(ip('198.18.1.2')), 0);
  t.equal(rt.peerBySource(ip('203.0.113.250')), 1);
  t.equal(rt.peerBySource(ip('198.18.1.3')), NO_ROUTE);
  t.equal(rt.senderOf(0, ip('10.5.3.9')), 0);
  t.equal(rt.senderOf(0, ip('10.5.4.9')), NO_ROUTE, "another peer's subnet is spoofing");
  t.equal(rt.senderOf(5, ip('10.5.3.9')), NO_ROUTE, 'unknown peer index');
  t.equal(rt.senderOf(-1, ip('10.5.3.9')), NO_ROUTE);
});

t.test('two leases with one PublicIP: each may send from its own subnet, nothing else', async (t) => {
  const rt = new RouteTable(
    [
      { net: ip('10.5.3.0'), prefixLen: 24, peer: 0 },
      { net: ip('10.5.4.0'), prefixLen: 24, peer: 1 },
      { net: ip('10.5.5.0'), prefixLen: 24, peer: 2 },
    ],
    [
      { index: 0, publicIp: ip('198.18.1.2'), net: ip('10.5.3.0'), prefixLen: 24 },
      { index: 1, publicIp: ip('198.18.1.3'), net: ip('10.5.4.0'), prefixLen: 24 },
      { index: 2, publicIp: ip('198.18.1.2'), net: ip('10.5.5.0'), prefixLen: 24 },
    ],
  );
  const peer = rt.peerBySource(ip('198.18.1.2'));
  t.equal(rt.senderOf(peer, ip('10.5.3.9')), 0, "the first lease's subnet");
  t.equal(rt.senderOf(peer, ip('10.5.5.9')), 2, "the second lease's subnet");
  t.equal(rt.senderOf(peer, ip('10.5.4.9')), NO_ROUTE, 'a subnet another PublicIP holds is spoofed');
  t.equal(rt.senderOf(rt.peerBySource(ip('198.18.1.3')), ip('10.5.5.9')), NO_ROUTE);
  t.equal(rt.lookup(ip('10.5.3.1')), 0, 'both subnets keep their routes');
  t.equal(rt.lookup(ip('10.5.5.1')), 2);
});

t.test('matches a naive longest-prefix scan on random tables', async () => {
  const route = fc.record({ net: fc.integer({ min: 0, max: 0xffffffff }), prefixLen: fc.integer({ min: 8, max: 30 }) });
  fc.assert(
    fc.property(
      fc.array(route, { maxLength: 200 }),
      fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1, maxLength: 50 }),
      (rs, probes) => {
        // Later duplicates of the same prefix replace earlier ones, as a rebuilt table would.
        const byKey = new Map<string, RouteEntry>();
        rs.forEach((r, i) => {
          const net = r.net & maskOf(r.prefixLen);
          byKey.set(`${net}/${r.prefixLen}`, { net, prefixLen: r.prefixLen, peer: i });
        });
        const entries = [...byKey.values()];
        const rt = new RouteTable(entries, []);
        for (const p of probes) {
          let best: RouteEntry | undefined;
          for (const e of entries) {
            if ((p & maskOf(e.prefixLen)) === e.net && (!best || e.prefixLen > best.prefixLen)) best = e;
          }
          if (rt.lookup(p | 0) !== (best ? best.peer : NO_ROUTE)) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
});
