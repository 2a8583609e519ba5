// The userspace datapath end to end, on real namespace hosts with a real etcd and real TUN devices.
//
//   bridge netns: etcd 198.18.<id>.254:2379
//   h1 ── h2 ── h3 (── h4 joins later)     each: weft daemon (TUN weft0), cni0 = FLANNEL_SUBNET gw, pod .2
//
// Checks: all-pairs pod ping per tier and with mixed tiers, a 100 MB TCP transfer verified by sha256, a 4th host
// joining and leaving updates the others without restart, and malformed or spoofed datagrams are counted and
// dropped while traffic flows.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ping } from '../testbed/traffic.js';
import {
  kernelDrops,
  sha256Transfer,
  metricsOf,
  peerPacketsOf,
  pingMatrix,
  sendDatagrams,
  udpSequence,
} from './helpers/traffic.js';
import { clusterFor, netConfig } from './helpers/cluster.js';
import { sleep } from './helpers/wait.js';

const HOSTS = [1, 2, 3];

t.test('udp encap across three namespace hosts', async (t) => {
  const cluster = await clusterFor(t, 3, netConfig('10.5.0.0/16', 'udp'));

  await t.test('batch tier: all pairs', async (t) => {
    for (const n of HOSTS) await cluster.startDaemon(n, ['--tier=batch', '--healthz-port=8471']);
    for (const n of HOSTS) await cluster.ensurePod(n);
    const subnets = new Set(HOSTS.map((n) => cluster.daemons.get(n)!.subnetGateway));
    t.equal(subnets.size, 3, 'three distinct subnets');
    await pingMatrix(t, cluster, HOSTS);
    // Per-peer counters: h1 sent to and accepted from each of the two others.
    const perPeer = await peerPacketsOf(cluster.tb, cluster.tb.host(1), 8471);
    for (const n of [2, 3]) {
      const subnet = cluster.daemons.get(n)!.subnetGateway.replace(/\.1\/24$/, '.0/24');
      t.ok((perPeer[`${subnet} tx`] ?? 0) >= 4, `h1 counts packets sent to h${n} (${perPeer[`${subnet} tx`]})`);
      t.ok((perPeer[`${subnet} rx`] ?? 0) >= 4, `h1 counts packets accepted from h${n} (${perPeer[`${subnet} rx`]})`);
    }
  });

  await t.test('100 MB TCP transfer arrives intact (sha256)', async (t) => {
    const r = await sha256Transfer(cluster.tb, cluster.pods.get(1)!, cluster.pods.get(2)!, 100 << 20);
    t.equal(r.received, 100 << 20, 'every byte arrived');
    t.equal(r.receivedHash, r.sentHash, 'same sha256 on both ends');
  });

  await t.test('malformed and spoofed datagrams are counted and dropped while traffic flows', async (t) => {
    const before = await metricsOf(cluster.tb, cluster.tb.host(1), 8471);
    const flow = sha256Transfer(cluster.tb, cluster.pods.get(2)!, cluster.pods.get(1)!, 20 << 20);
    const target = cluster.tb.hostIP(1);
    // From a lease holder (h3): garbage, a truncated IP header, and a well-formed packet whose inner source is
    // outside h3's subnet. From the bridge (no lease): a well-formed packet.
    const h3pod = cluster.pods.get(3)!.ip;
    const h2pod = cluster.pods.get(2)!.ip;
    // The transfer may fill h1's socket, and the kernel then drops datagrams, junk among them, and counts them: a
    // junk datagram is either counted by the daemon or by the kernel on its way (link or socket).
    const path = [cluster.tb.host(3), cluster.tb.bridgeNs, cluster.tb.host(1)];
    const droppedBefore = await kernelDrops(cluster.tb, path);
    const broken = await sendDatagrams(cluster.tb, cluster.tb.host(3), target, 8285, [
      { kind: 'garbage', count: 300 },
      { kind: 'truncated', count: 300 },
    ]);
    const spoofed = await sendDatagrams(cluster.tb, cluster.tb.host(3), target, 8285, [
      { kind: 'ipv4', src: h2pod, dst: cluster.pods.get(1)!.ip, count: 300 },
    ]);
    const stranger = await sendDatagrams(cluster.tb, cluster.tb.bridgeNs, target, 8285, [
      { kind: 'ipv4', src: h3pod, dst: cluster.pods.get(1)!.ip, count: 300 },
    ]);
    const r = await flow;
    t.equal(r.receivedHash, r.sentHash, 'the transfer beside the junk still verifies');
    const after = await metricsOf(cluster.tb, cluster.tb.host(1), 8471);
    const lost = (await kernelDrops(cluster.tb, path)) - droppedBefore;
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    t.comment(`the kernel dropped ${lost} packets on the path meanwhile (transfer and junk)`);
    // Exact when the kernel dropped nothing; else short by at most what it counted.
    const accounted = (counted: number, sent: number, what: string): void => {
      t.ok(counted <= sent && counted >= sent - lost, `${what}: ${counted} of ${sent} sent, ${lost} lost on the way`);
    };
    accounted(delta('drop_malformed') + delta('drop_truncated'), broken.sent, 'garbage and truncated counted');
    accounted(delta('drop_spoofed_source'), spoofed.sent, "inner source outside the sender's subnet counted");
    accounted(delta('drop_unknown_peer'), stranger.sent, 'outer source without a lease counted');
    t.equal(broken.errors + spoofed.errors + stranger.errors, 0, 'the senders sent every datagram');
    const alive = await ping(cluster.pods.get(1)!, cluster.pods.get(3)!.ip, { count: 2, timeoutSec: 3 });
    t.ok(alive.ok, 'forwarding still works afterwards');
  });

  await t.test('a 4th host joins and leaves; the others follow without restart', async (t) => {
    const h4 = await cluster.tb.addHost();
    await cluster.startDaemon(h4.n, ['--tier=batch']);
    const pod4 = await cluster.ensurePod(h4.n);
    for (const n of HOSTS) {
      const r = await ping(cluster.pods.get(n)!, pod4.ip, { count: 2, timeoutSec: 5 });
      t.ok(r.ok, `pod h${n} reaches the new pod h4 ${pod4.ip}`);
    }
    const subnetKey = cluster.daemons.get(h4.n)!.subnetGateway.replace(/\.1\/(\d+)$/, '.0-$1');
    await cluster.stopDaemon(h4.n);
    await cluster.etcdctl(['del', `/coreos.com/network/subnets/${subnetKey}`]);
    let unreachable = false;
    let last = '';
    for (let i = 0; i < 30 && !unreachable; i++) {
      const r = await ping(cluster.pods.get(1)!, pod4.ip, { count: 1, timeoutSec: 1 });
      last = r.output;
      // ping -q reports an ICMP error reply as "+N errors" (without -q: "Destination Net Unreachable").
      unreachable = !r.ok && /Unreachable|\+\d+ errors/i.test(r.output);
    }
    if (!unreachable) t.comment(last);
    t.ok(unreachable, 'after the lease is gone, h1 answers ICMP net unreachable for the old subnet');
  });

  await t.test('dgram tier and mixed tiers interoperate', async (t) => {
    await cluster.stopDaemon(1);
    await cluster.startDaemon(1, ['--tier=dgram', '--healthz-port=8471']);
    // subnet.env is written only once the peers are in the datapath, so a pod may send from then on (the daemon logs
    // how many were in it at that moment).
    const { logFile, child } = cluster.daemons.get(1)!;
    let written: { peers?: number } | undefined;
    for (let i = 0; i < 50 && written === undefined; i++) {
      written = readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg?: string; pid?: number; peers?: number })
        .find((r) => r.msg === 'subnet.env written' && r.pid === child.pid);
      if (written === undefined) await sleep(100); // the log line follows subnet.env
    }
    t.equal(written?.peers, 2, 'the restarted daemon had both peers in its datapath when it wrote subnet.env');
    await pingMatrix(t, cluster, HOSTS);
    // A peer's traffic series appear with its first packet.
    const peers = new Set(
      Object.keys(await peerPacketsOf(cluster.tb, cluster.tb.host(1), 8471)).map((k) => k.split(' ')[0]),
    );
    t.equal(peers.size, 2, `its /metrics counts traffic with both (${[...peers].join(', ')})`);
    for (const n of [2, 3]) {
      await cluster.stopDaemon(n);
      await cluster.startDaemon(n, ['--tier=dgram']);
    }
    await pingMatrix(t, cluster, HOSTS);
    // The dgram tier reuses its send buffers between wake-ups: a burst shows that no datagram left with another's
    // bytes (a buffer reused before dgram sent it would repeat one datagram or mix two).
    const r = await udpSequence(cluster.tb, cluster.pods.get(1)!, cluster.pods.get(2)!, 3000);
    t.ok(r.distinct > 0, `datagrams arrived through two dgram tiers (${r.distinct} of 3000)`);
    t.equal(r.dup, 0, 'none arrived twice');
    t.equal(r.bad, 0, 'none arrived with bytes of another');
  });
});
