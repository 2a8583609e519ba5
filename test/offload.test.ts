// The offload tier end to end, on real namespace hosts with a real etcd and real TUN devices.
//
//   bridge netns: etcd 198.18.<id>.254:2379, tcpdump on the bridge (bounded count)
//   h1 ── h2      each: weft daemon --tier=offload (TUN weft0 with virtio header, TSO/USO), cni0, pod .2
//
// Per encap (udp, vxlan, geneve): all-pairs ping, then a TCP transfer verified by sha256 (500 MB over vxlan, 100 MB
// over udp and geneve to keep CI time down) with Linux's default TCP options (timestamps, SACK, window scaling),
// and the counters show that super-packets were split (GSO) and coalesced (GRO). Then: every frame on the bridge
// fits the underlay MTU, and the fallback path (WEFT_DISABLE_OFFLOAD) still forwards intact.
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, PREFIX } from '../testbed/cluster.js';
import type { Pod } from '../testbed/hosts.js';
import { ping, runIperf, startIperfServer } from '../testbed/traffic.js';
import { metricsOf, peerPacketsOf, sha256Transfer, statusOf } from './helpers/traffic.js';
import { clusterFor, netConfig } from './helpers/cluster.js';
import { sleep } from './helpers/wait.js';

const METRICS = 8471;
const MB = 1 << 20;

async function startPair(
  t: Test,
  type: string,
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<Cluster> {
  const cluster = await clusterFor(t, 2, netConfig('10.5.0.0/16', type));
  // The daemons inherit the environment: set the offload switches only while they start.
  const saved = Object.keys(env).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, env);
  try {
    for (const n of [1, 2]) await cluster.startDaemon(n, ['--tier=offload', `--healthz-port=${METRICS}`, ...args]);
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  for (const n of [1, 2]) await cluster.ensurePod(n);
  return cluster;
}

async function pingBoth(t: Test, cluster: Cluster): Promise<void> {
  const a = cluster.pods.get(1) as Pod;
  const b = cluster.pods.get(2) as Pod;
  t.ok((await ping(a, b.ip, { count: 2, timeoutSec: 3, intervalSec: 0.2 })).ok, `pod ${a.ip} -> ${b.ip}`);
  t.ok((await ping(b, a.ip, { count: 2, timeoutSec: 3, intervalSec: 0.2 })).ok, `pod ${b.ip} -> ${a.ip}`);
}

async function transfer(t: Test, cluster: Cluster, bytes: number): Promise<void> {
  const r = await sha256Transfer(cluster.tb, cluster.pods.get(1)!, cluster.pods.get(2)!, bytes, 240_000);
  t.equal(r.received, bytes, `all ${bytes / MB} MB arrived`);
  t.equal(r.receivedHash, r.sentHash, 'same sha256 on both ends');
}

for (const [type, size] of [
  ['vxlan', 500 * MB],
  ['udp', 100 * MB],
  ['geneve', 100 * MB],
] as const) {
  t.test(`${type} encap, offload tier`, async (t) => {
    const cluster = await startPair(t, type);
    await pingBoth(t, cluster);
    const tcpOpts = await cluster.tb.exec(cluster.pods.get(1)!.ns, [
      'sysctl',
      '-n',
      'net.ipv4.tcp_timestamps',
      'net.ipv4.tcp_sack',
    ]);
    t.same(tcpOpts.stdout.trim().split(/\s+/), ['1', '1'], 'TCP timestamps and SACK on in the pods (Linux default)');
    await transfer(t, cluster, size);
    const tx = await metricsOf(cluster.tb, cluster.tb.host(1), METRICS);
    const rx = await metricsOf(cluster.tb, cluster.tb.host(2), METRICS);
    t.ok(
      (tx['gso_superpackets'] ?? 0) > 0 && (tx['gso_segments'] ?? 0) > (tx['gso_superpackets'] ?? 0),
      `sender split super-packets (${tx['gso_superpackets']} into ${tx['gso_segments']} segments)`,
    );
    t.ok((tx['udp_gso_sends'] ?? 0) > 0, `sender used UDP_SEGMENT (${tx['udp_gso_sends']} trains)`);
    t.ok(
      (rx['gro_superpackets'] ?? 0) > 0,
      `receiver coalesced (${rx['gro_coalesced']} segments into ${rx['gro_superpackets']})`,
    );
    t.equal(rx['gro_csum_bad'] ?? 0, 0, 'no segment arrived with a bad checksum');
    // Both hosts announce WeftPartialCsum: the TCP segments carry the pseudo-header sum, nobody sums the payload.
    const lease = await cluster.etcdctl(['get', '--prefix', '--print-value-only', `${PREFIX}/subnets/`]);
    t.match(lease, /"WeftPartialCsum":true/, 'the offload hosts announce partial checksums in BackendData');
    t.ok(
      (tx['csum_completed'] ?? 0) < (tx['gso_superpackets'] ?? 0) / 10,
      `the sender left checksums partial (${tx['csum_completed']} completed, ` +
        `${tx['gso_superpackets']} super-packets)`,
    );
    t.ok(
      (tx['syscalls_send'] ?? 0) < (tx['udp_tx_packets'] ?? 0) / 4,
      `far fewer sends than datagrams (${tx['syscalls_send']} for ${tx['udp_tx_packets']})`,
    );
  });
}

t.test('--queues 2: forwards intact, flows spread over both queues, per-peer counters cover every queue', async (t) => {
  const cluster = await startPair(t, 'vxlan', {}, ['--queues=2']);
  const { tb } = cluster;
  await pingBoth(t, cluster);
  await transfer(t, cluster, 50 * MB);
  // 16 TCP flows (2 s, bounded): the TUN spreads flows over its queues by flow hash (or by the queue that last wrote
  // the flow's other direction).
  const server = await startIperfServer(cluster.pods.get(2)!.ns);
  t.teardown(() => void server.kill('SIGKILL'));
  const r = await runIperf(cluster.pods.get(1)!.ns, cluster.pods.get(2)!.ip, { seconds: 2, streams: 16 });
  t.ok(r.receivedBps > 0, 'iperf3 with 16 streams ran');
  await sleep(2500); // the worker queues report their per-peer counters every second
  const st = await statusOf(tb, tb.host(1), METRICS);
  const queues = st.queues ?? [];
  t.equal(queues.length, 2, 'two queues in /status');
  const st2 = await statusOf(tb, tb.host(2), METRICS);
  for (const [name, doc] of [
    ['h1', st],
    ['h2', st2],
  ] as const) {
    const perQueue = (k: 'tunRxPackets' | 'udpRxPackets' | 'udpTxPackets' | 'tunTxPackets'): string =>
      (doc.queues ?? []).map((q) => q[k]).join(' / ');
    t.comment(
      `${name} per queue: tun rx ${perQueue('tunRxPackets')}; udp rx ${perQueue('udpRxPackets')}; ` +
        `udp tx ${perQueue('udpTxPackets')}; tun tx ${perQueue('tunTxPackets')}`,
    );
  }
  // Received datagrams pick their queue by inner flow, and the TUN keeps each flow's outgoing packets on the queue
  // that wrote its incoming ones: with 16 flows, both queues work on both hosts (all on one: 1 in 32,768).
  t.ok(
    queues.every((q) => q.tunRxPackets > 0),
    'h1 read from TUN on both queues',
  );
  t.ok(
    (st2.queues ?? []).length === 2 && (st2.queues ?? []).every((q) => q.udpRxPackets > 0),
    'h2 received on both sockets',
  );
  const sum = (k: 'tunRxPackets' | 'udpRxPackets') => queues.reduce((n, q) => n + q[k], 0);
  t.equal(sum('tunRxPackets'), st.counters['tun_rx_packets'], 'the queues add up to the datapath total');
  // Each packet read from TUN goes to the peer or is counted as a drop (none expected here).
  const peer = st.peers[0]?.subnet;
  const perPeerTx = (await peerPacketsOf(tb, tb.host(1), METRICS))[`${peer} tx`] ?? 0;
  const drops = Object.entries(st.counters)
    .filter(([k]) => k.startsWith('drop_'))
    .reduce((n, [, v]) => n + v, 0);
  t.ok(
    perPeerTx + drops >= sum('tunRxPackets') * 0.99,
    `per-peer tx packets (${perPeerTx}) + drops (${drops}) account for what every queue read from TUN ` +
      `(${sum('tunRxPackets')})`,
  );
});

t.test('every frame on the bridge fits the underlay MTU', async (t) => {
  const cluster = await startPair(t, 'vxlan');
  const { tb } = cluster;
  // GSO packets cross veth whole and a capture would show them before segmentation; with UDP segmentation off on
  // the hosts' eth0 the kernel cuts our trains exactly where a NIC would, and the capture sees the wire's frames.
  for (const n of [1, 2]) {
    const r = await tb.exec(tb.host(n).ns, ['ethtool', '-K', 'eth0', 'tx-udp-segmentation', 'off']);
    t.equal(r.code, 0, `UDP segmentation offload off on h${n} eth0`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'weft-offload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bridge.pcap');
  // The bridge-side port of h1 sees both directions; snap 64 bytes, at most 20000 frames, at most 60 s.
  const dump = tb.spawn(
    tb.bridgeNs,
    ['timeout', '60', 'tcpdump', '-i', tb.host(1).name, '-s', '64', '-c', '20000', '-w', file, 'udp', 'port', '8472'],
    { stdio: ['ignore', 'ignore', 'ignore'] },
  );
  const exited = new Promise((r) => dump.once('exit', r));
  await sleep(1000);
  await transfer(t, cluster, 50 * MB);
  dump.kill('SIGINT');
  await exited;
  const pcap = readFileSync(file);
  const lengths: number[] = [];
  for (let at = 24; at + 16 <= pcap.length; at += 16 + pcap.readUInt32LE(at + 8))
    lengths.push(pcap.readUInt32LE(at + 12));
  t.ok(lengths.length > 1000, `captured ${lengths.length} frames`);
  const biggest = lengths.reduce((m, l) => Math.max(m, l), 0);
  t.ok(biggest <= 1500 + 14, `largest frame ${biggest} bytes (Ethernet header + at most 1500)`);
});

t.test('fallback: offloads refused still forward intact', async (t) => {
  const cluster = await startPair(t, 'geneve', { WEFT_DISABLE_OFFLOAD: 'tso,udp_segment,udp_gro' });
  await pingBoth(t, cluster);
  await transfer(t, cluster, 30 * MB);
  const tx = await metricsOf(cluster.tb, cluster.tb.host(1), METRICS);
  t.equal(tx['udp_gso_sends'] ?? 0, 0, 'no UDP_SEGMENT trains');
  t.equal(tx['gso_superpackets'] ?? 0, 0, 'no super-packets from TUN');
  t.ok((tx['udp_tx_packets'] ?? 0) > 1000, 'datagram by datagram');
  const log = readFileSync(cluster.daemons.get(1)!.logFile, 'utf8');
  t.match(log, /offloads in use/, 'what is on is logged');
});
