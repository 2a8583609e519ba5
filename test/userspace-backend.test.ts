// The userspace backend's peer bookkeeping under churn, without devices: peers() before start() only parses and
// remembers leases (the datapath comes with start), so hosts joining and leaving can be replayed in memory.
import t from 'tap';
import { UserspaceBackend } from '../src/backend/userspace.js';
import { parseNetworkConfig } from '../src/config/network.js';
import { resolveDaemonConfig } from '../src/config/daemon.js';
import type { Lease, LeaseEvent } from '../src/lease/lease.js';
import { makeSubnet, parseIPv4, subnetToKey } from '../src/ip/subnet.js';
import { silentLogger, type Logger } from '../src/log.js';
import { pino } from 'pino';
import type { Datapath, PeerTraffic } from '../src/datapath/datapath.js';
import * as native from '../src/native.js';

const PREFIX = '/coreos.com/network/subnets/';

function lease(i: number): Lease {
  const subnet = makeSubnet(parseIPv4(`10.5.${i % 256}.0`)! + (Math.floor(i / 256) << 16), 24);
  return {
    subnet,
    key: PREFIX + subnetToKey(subnet),
    attrs: { PublicIP: `192.0.2.${1 + (i % 250)}`, PublicIPv6: null, BackendType: 'udp' },
    etcdLeaseId: String(1000 + i),
    expiresAt: Date.now() + 86_400_000,
  };
}

function backendWithoutDevices(log: Logger = silentLogger): UserspaceBackend {
  return new UserspaceBackend({
    network: parseNetworkConfig('{"Network":"10.0.0.0/8","Backend":{"Type":"udp"}}'),
    config: resolveDaemonConfig({}, {}),
    external: {
      name: 'eth0',
      mtu: 1500,
      publicIp: '192.0.2.254',
      ifaceIp: '192.0.2.254',
      bindIp: '192.0.2.254',
      publicIpv6: null,
      ifaceIpv6: null,
    },
    log,
  });
}

t.test('hosts joining and leaving leave nothing behind in the backend', async (t) => {
  const backend = backendWithoutDevices();
  t.teardown(() => backend.stop());
  // What the backend keeps per peer (private: nothing else shows it).
  const kept = (): number[] => [
    backend['leases'].size,
    backend['parsed'].size,
    backend['ignored'].size,
    backend['perPublicIp'].size,
  ];
  const stay = [1, 2, 3].map(lease);
  backend.peers(stay.map((l): LeaseEvent => ({ type: 'added', lease: l })));
  // 100 rounds of 100 hosts, each joining (one in ten with a BackendType that is not ours) and leaving again.
  for (let round = 0; round < 100; round++) {
    const hosts = Array.from({ length: 100 }, (_, i) => lease(1000 + round * 100 + i));
    for (const [i, l] of hosts.entries()) if (i % 10 === 0) l.attrs.BackendType = 'vxlan';
    backend.peers(hosts.map((l): LeaseEvent => ({ type: 'added', lease: l })));
    backend.peers(hosts.map((l): LeaseEvent => ({ type: 'removed', lease: l })));
  }
  await backend.settled();
  t.same(kept(), [3, 3, 0, 3], 'leases, parsed peers, ignored peers and PublicIPs: only the three that stayed');
  t.equal(backend.status().peersSharingPublicIp, 0, 'no peer counted as sharing a PublicIP');
  backend.peers(stay.map((l): LeaseEvent => ({ type: 'removed', lease: l })));
  t.same(kept(), [0, 0, 0, 0], 'and nothing once they left too');
});

t.test('per-peer traffic in the status: only peers that exchanged packets', async (t) => {
  const backend = backendWithoutDevices();
  t.teardown(() => backend.stop());
  const [quiet, busy] = [lease(1), lease(2)];
  const traffic = (l: Lease, packets: number): PeerTraffic => ({
    net: l.subnet.ip,
    prefixLen: l.subnet.prefixLen,
    publicIp: parseIPv4(l.attrs.PublicIP)!,
    txPackets: packets,
    txBytes: packets * 100,
    rxPackets: 0,
    rxBytes: 0,
  });
  // A datapath that only reports traffic (the tiers need a TUN device): a peer it never carried a packet for, and one.
  const datapath: Pick<Datapath, 'counters' | 'peerTraffic' | 'close'> = {
    counters: new Float64Array(native.counterNames.length),
    peerTraffic: () => [traffic(quiet, 0), traffic(busy, 3)],
    close: () => undefined,
  };
  backend['datapath'] = datapath as Datapath;
  t.same(
    backend.status().peerTraffic?.map((p) => [p.subnet, p.txPackets]),
    [['10.5.2.0/24', 3]],
    'the quiet peer has no series yet',
  );
});

t.test('leases that share a PublicIP are counted as their events arrive', async (t) => {
  const backend = backendWithoutDevices();
  t.teardown(() => backend.stop());
  const [a, b] = [lease(1), lease(2)];
  b.attrs.PublicIP = a.attrs.PublicIP;
  backend.peers([a, b].map((l): LeaseEvent => ({ type: 'added', lease: l })));
  t.equal(backend.status().peersSharingPublicIp, 2, 'two leases, one PublicIP');
  // b's host renews with its own address (a changed lease comes as 'added' again).
  backend.peers([{ type: 'added', lease: { ...b, attrs: { ...b.attrs, PublicIP: '192.0.2.200' } } }]);
  t.equal(backend.status().peersSharingPublicIp, 0, 'none once it names another');
  t.same([...backend['perPublicIp'].values()], [1, 1], 'one lease per PublicIP');
  await backend.settled();
});

t.test('many leases behind one PublicIP: one line when it becomes shared, not one per rebuild', async (t) => {
  const lines: string[] = [];
  const backend = backendWithoutDevices(pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }));
  t.teardown(() => backend.stop());
  // 30 hosts behind one NAT address, arriving in three bursts, each rebuilt into the datapath before the next.
  const hosts = Array.from({ length: 30 }, (_, i) => lease(100 + i));
  for (const l of hosts) l.attrs.PublicIP = '192.0.2.77';
  for (let burst = 0; burst < 3; burst++) {
    backend.peers(hosts.slice(burst * 10, burst * 10 + 10).map((l): LeaseEvent => ({ type: 'added', lease: l })));
    await backend.settled();
  }
  const said = lines.filter((l) => l.includes('several leases name one PublicIP'));
  t.equal(said.length, 1, `one line (${said.length})`);
  t.equal(backend.status().peersSharingPublicIp, 30, 'all 30 counted');
});
