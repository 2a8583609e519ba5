// Mixed clusters: a weft userspace VXLAN node and a weft kernel VXLAN node forward to each other both ways, and a
// node of another BackendType ignores them with a log line.
//
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1: weft daemon --datapath userspace --tier batch, Backend vxlan -> TUN weft0 (encap in weft's C/TS)
//   h2: weft daemon --datapath kernel,                  Backend vxlan -> flannel.1 (the kernel's vxlan driver)
//   h3: weft daemon --datapath userspace, Backend udp (config switched after h1 and h2 started)
//
// Second cluster, the offload tier among peers that do not take partial checksums:
//   h1: --tier offload (announces WeftPartialCsum)   h2: --datapath kernel   h3: --tier batch (flannel's lease bytes)
// h1 must send both of them full inner checksums; h2 and h3 send h1 full (or, the kernel, partial) ones.
//
// The kernel side hands over inner TCP segments whose checksum field holds only the pseudo-header sum (on veth
// nothing completes it), and sends a TCP burst as one UDP datagram of up to ~64 KiB; the 50 MB transfers each way
// (sha256 on both ends) are what shows the userspace side copes.
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { Cluster, PREFIX } from '../testbed/cluster.js';
import type { Pod } from '../testbed/hosts.js';
import { ping } from '../testbed/traffic.js';
import { sha256Transfer } from './helpers/traffic.js';
import { clusterFor, netConfig } from './helpers/cluster.js';
import { sleep } from './helpers/wait.js';

const MB50 = 50 << 20;

/** TcpInCsumErrors and the UDP receive-buffer drops of a namespace, from nstat (absolute counters). */
async function csumErrors(cluster: Cluster, ns: string): Promise<Record<string, number>> {
  const r = await cluster.tb.exec(ns, ['nstat', '-a', '-z', '-j'], { timeoutMs: 10_000 });
  if (r.code !== 0) return {};
  const all = (JSON.parse(r.stdout) as { kernel?: Record<string, number> }).kernel ?? {};
  const pick: Record<string, number> = {};
  for (const k of ['TcpInCsumErrors', 'TcpRetransSegs', 'UdpInCsumErrors', 'UdpRcvbufErrors']) pick[k] = all[k] ?? 0;
  return pick;
}

t.test('userspace VXLAN <-> kernel VXLAN', async (t) => {
  const cluster = await clusterFor(t, 3, netConfig('10.7.0.0/16', 'vxlan'));
  await cluster.startDaemon(1, ['--datapath=userspace', '--tier=batch']);
  await cluster.startDaemon(2, ['--datapath=kernel']);
  const pod1 = await cluster.ensurePod(1);
  const pod2 = await cluster.ensurePod(2);

  await t.test('pods ping both ways', async (t) => {
    const a = await ping(pod1, pod2.ip, { count: 3, timeoutSec: 3 });
    t.ok(a.ok, `userspace h1 ${pod1.ip} -> kernel h2 ${pod2.ip}`);
    const b = await ping(pod2, pod1.ip, { count: 3, timeoutSec: 3 });
    t.ok(b.ok, `kernel h2 ${pod2.ip} -> userspace h1 ${pod1.ip}`);
  });

  const transfer = async (t: Test, from: Pod, to: Pod, timeoutMs: number): Promise<void> => {
    const before = await csumErrors(cluster, to.ns);
    try {
      const r = await sha256Transfer(cluster.tb, from, to, MB50, timeoutMs);
      t.equal(r.received, MB50, 'every byte arrived');
      t.equal(r.receivedHash, r.sentHash, 'same sha256 on both ends');
    } catch (e) {
      t.fail(`transfer did not finish in ${timeoutMs / 1000} s: ${(e as Error).message.split('\n')[0] ?? ''}`);
    }
    const after = await csumErrors(cluster, to.ns);
    const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
    t.comment(`receiver pod counters during the transfer: ${JSON.stringify(delta)}`);
    t.equal(delta['TcpInCsumErrors'], 0, 'no TCP checksum errors at the receiving pod');
  };

  await t.test('50 MB TCP userspace -> kernel arrives intact (sha256)', (t) => transfer(t, pod1, pod2, 60_000));

  // The kernel peer's GSO sends one VXLAN datagram per TCP super-packet (inner up to 64 KiB); the batch tier cuts it
  // into TUN-MTU-sized TCP segments before the TUN write (native/tun.c weft_tun_write_mtu), since a packet larger than
  // cni0's MTU with DF set would get ICMP frag-needed and stall the sender's TCP.
  await t.test('50 MB TCP kernel -> userspace arrives intact (sha256)', (t) => transfer(t, pod2, pod1, 60_000));

  await t.test('kernel -> userspace with the kernel side segmenting (gso_max_segs 1 on flannel.1)', async (t) => {
    // Confirms the diagnosis: with datagrams of at most one MTU, the same path (partial checksums completed in C)
    // carries the transfer intact.
    const set = (segs: string) =>
      cluster.tb.exec(cluster.tb.host(2), ['ip', 'link', 'set', 'dev', 'flannel.1', 'gso_max_segs', segs]);
    t.equal((await set('1')).code, 0, 'gso_max_segs 1 on h2 flannel.1');
    try {
      await transfer(t, pod2, pod1, 60_000);
    } finally {
      await set('65535');
    }
  });

  await t.test('a udp node ignores both vxlan peers with a log line; they ignore it', async (t) => {
    await cluster.etcdctl([
      'put',
      `${PREFIX}/config`,
      JSON.stringify({ Network: '10.7.0.0/16', SubnetLen: 24, Backend: { Type: 'udp' } }),
    ]);
    const d3 = await cluster.startDaemon(3, ['--datapath=userspace']);
    const logged = async (file: string, re: RegExp): Promise<boolean> => {
      for (let i = 0; i < 40; i++) {
        if (re.test(readFileSync(file, 'utf8'))) return true;
        await sleep(100);
      }
      return false;
    };
    for (const n of [1, 2]) {
      const ip = cluster.tb.hostIP(n).replace(/\./g, '\\.');
      t.ok(
        await logged(
          d3.logFile,
          new RegExp(`"publicIp":"${ip}"[^\\n]*BackendType \\\\"vxlan\\\\" is not ours[^\\n]*ignoring peer`),
        ),
        `udp node h3 logs that it ignores vxlan peer h${n}`,
      );
    }
    const ip3 = cluster.tb.hostIP(3).replace(/\./g, '\\.');
    for (const n of [1, 2]) {
      t.ok(
        await logged(
          cluster.daemons.get(n)!.logFile,
          new RegExp(`"publicIp":"${ip3}"[^\\n]*BackendType \\\\"udp\\\\" is not ours`),
        ),
        `vxlan node h${n} logs that it ignores the udp peer h3`,
      );
    }
    const r = await ping(pod1, pod2.ip, { count: 2, timeoutSec: 3 });
    t.ok(r.ok, 'h1 <-> h2 unaffected');
  });
});

t.test('offload tier <-> kernel VXLAN and a batch-tier weft host: full checksums to both', async (t) => {
  const cluster = await clusterFor(t, 3, netConfig('10.8.0.0/16', 'vxlan'));
  await cluster.startDaemon(1, ['--datapath=userspace', '--tier=offload']);
  await cluster.startDaemon(2, ['--datapath=kernel']);
  await cluster.startDaemon(3, ['--datapath=userspace', '--tier=batch']);
  const [pod1, pod2, pod3] = [await cluster.ensurePod(1), await cluster.ensurePod(2), await cluster.ensurePod(3)];
  const leases = await cluster.etcdctl(['get', '--prefix', '--print-value-only', `${PREFIX}/subnets/`]);
  t.equal((leases.match(/"WeftPartialCsum":true/g) ?? []).length, 1, 'only the offload host announces it');
  for (const [from, to, name] of [
    [pod1, pod2, 'offload -> kernel'],
    [pod2, pod1, 'kernel -> offload'],
    [pod1, pod3, 'offload -> batch'],
    [pod3, pod1, 'batch -> offload'],
  ] as const) {
    const before = await csumErrors(cluster, to.ns);
    const r = await sha256Transfer(cluster.tb, from, to, MB50, 60_000);
    t.equal(r.received, MB50, `${name}: every byte arrived`);
    t.equal(r.receivedHash, r.sentHash, `${name}: same sha256 on both ends`);
    const after = await csumErrors(cluster, to.ns);
    t.equal((after['TcpInCsumErrors'] ?? 0) - (before['TcpInCsumErrors'] ?? 0), 0, `${name}: no TCP checksum errors`);
  }
});
