// TCP over IPv6 on the offload tier with TSO6 on the TUN, on namespace hosts with a dual-stack underlay and a real
// etcd:
//
//   bridge netns: bridge 198.18.<id>.254 + fd77:6566:74:<id>::254, etcd :2379
//   h1 ── h2      weft daemon --tier offload over vxlan -> weft0 (TUN with virtio header: TSO4, TSO6 as the network
//                 is dual-stack), pods by weft-cni with an IPv4 and an IPv6 address
//
// Checks: the kernel reports tx-tcp6-segmentation on weft0; a TCP transfer to the peer pod's IPv6 address arrives
// whole (sha256); over it the sender cut super-packets (gso.c's TSO6 path) into UDP_SEGMENT trains and the receiver
// coalesced segments back (GRO6), with no segment dropped as malformed or unsupported and no bad checksum.
import t from 'tap';
import { clusterFor, dualStackConfig } from './helpers/cluster.js';
import { metricsOf, sha256Transfer } from './helpers/traffic.js';

const METRICS = 8471;
const MB = 1 << 20;
const H = [1, 2];

t.test('offload/vxlan: TCP over IPv6 with TSO6 on the TUN, cut by gso.c and coalesced by gro.c', async (t) => {
  const cluster = await clusterFor(t, 2, dualStackConfig('vxlan'));
  const { tb } = cluster;
  for (const n of H) await cluster.startDaemon(n, ['--tier=offload', `--healthz-port=${METRICS}`]);
  for (const n of H) await cluster.ensurePod(n);
  for (const n of H) {
    const k = await tb.exec(tb.host(n), ['ethtool', '-k', 'weft0']);
    t.match(k.stdout, /^\s*tx-tcp6-segmentation: on/m, `h${n}: the kernel hands weft0 IPv6 TCP super-packets`);
  }
  const before = [await metricsOf(tb, tb.host(1), METRICS), await metricsOf(tb, tb.host(2), METRICS)];
  const size = 64 * MB;
  const r = await sha256Transfer(tb, cluster.pods.get(1)!, cluster.pods.get(2)!, size, 120_000, 6);
  t.equal(r.received, size, `all ${size / MB} MiB arrived over IPv6`);
  t.equal(r.receivedHash, r.sentHash, 'same sha256 on both ends');
  const tx = await metricsOf(tb, tb.host(1), METRICS);
  const rx = await metricsOf(tb, tb.host(2), METRICS);
  const d = (now: Readonly<Record<string, number>>, was: Readonly<Record<string, number>>, k: string) =>
    (now[k] ?? 0) - (was[k] ?? 0);
  const supers = d(tx, before[0]!, 'gso_superpackets');
  const segs = d(tx, before[0]!, 'gso_segments');
  t.ok(supers > 0 && segs > supers, `sender cut super-packets (${supers} into ${segs} segments)`);
  t.ok(d(tx, before[0]!, 'udp_gso_sends') > 0, 'sender used UDP_SEGMENT');
  t.ok(
    d(rx, before[1]!, 'gro_superpackets') > 0,
    `receiver coalesced (${d(rx, before[1]!, 'gro_coalesced')} segments)`,
  );
  for (const [name, now, was] of [
    ['h1', tx, before[0]!],
    ['h2', rx, before[1]!],
  ] as const) {
    t.equal(d(now, was, 'drop_malformed'), 0, `${name}: nothing malformed`);
    t.equal(d(now, was, 'drop_unsupported'), 0, `${name}: nothing unsupported`);
    t.equal(d(now, was, 'gro_csum_bad'), 0, `${name}: no bad checksum`);
  }
});
