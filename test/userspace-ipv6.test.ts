// Inner IPv6 on the userspace tiers, on namespace hosts with a dual-stack underlay and a real etcd:
//
//   bridge netns: bridge 198.18.<id>.254 + fd77:6566:74:<id>::254, etcd :2379
//   h1 ── h2 ── h3      eth0 198.18.<id>.N + fd77:6566:74:<id>::N; weft daemon --tier dgram|batch|offload over
//                       udp, vxlan or geneve -> weft0 (TUN) with fd00:5:0:<k>::/128 and a route to fd00:5::/48;
//                       pods by weft-cni with an IPv4 and an IPv6 address
//
// Checks: ping6 matrices between the pods on every tier x encap (one cluster per encap, the daemons restarted on
// each tier), the IPv6 overlay datagrams between PublicIPv6 addresses; a kernel VXLAN host (flannel-v6.1, as
// flanneld programs it) and a batch host reaching each other over IPv6 (ping6, TCP both ways); on batch/vxlan a
// TCP-over-IPv6 sha256 transfer, hostile IPv6 datagrams (an inner source outside the sender's IPv6 subnet; an
// outer source that is no member; inner IPv6 over the IPv4 underlay) dropped and counted by reason, and ICMPv6
// errors (no route, time exceeded, packet too big) read back from the TUN byte for byte: type, code, checksum over
// the pseudo-header, the quoted packet.
import t, { type Test } from 'tap';
import type { Cluster } from '../testbed/cluster.js';
import type { Pod } from '../testbed/hosts.js';
import { stableMac } from '../src/backend/vtep-mac.js';
import { formatIPv6, parseIPv6, parseSubnet6 } from '../src/ip/ipv6.js';
import { clusterFor, dualStackConfig } from './helpers/cluster.js';
import { readPcap, tcpdumpListening } from './helpers/tcpdump.js';
import { pingMatrix, sendDatagrams, sha256Transfer, statusOf } from './helpers/traffic.js';
import { until } from './helpers/wait.js';

const H = [1, 2, 3];
const STATUS_PORT = 8471;
const TIERS = ['dgram', 'batch', 'offload'] as const;

function pod(cluster: Cluster, n: number): Pod {
  return cluster.pods.get(n) as Pod;
}

function ip6Bytes(s: string): Buffer {
  const v = parseIPv6(s);
  if (v === null) throw new Error(`not IPv6: ${s}`);
  return Buffer.from(v.toString(16).padStart(32, '0'), 'hex');
}

/** An IPv6 UDP packet (checksum left 0: weft checks addresses, not L4 sums). */
function ipv6Udp(src: string, dst: string): Buffer {
  const b = Buffer.alloc(40 + 8 + 4);
  b[0] = 0x60;
  b.writeUInt16BE(12, 4);
  b[6] = 17;
  b[7] = 64;
  ip6Bytes(src).copy(b, 8);
  ip6Bytes(dst).copy(b, 24);
  b.writeUInt16BE(9, 40);
  b.writeUInt16BE(9, 42);
  b.writeUInt16BE(12, 44);
  return b;
}

/** The Internet checksum (RFC 1071) folded, over buffers laid end to end (each of even length but the last). */
function sum16(...parts: Buffer[]): number {
  let s = 0;
  for (const p of parts) {
    for (let i = 0; i + 1 < p.length; i += 2) s += p.readUInt16BE(i);
    if (p.length & 1) s += (p[p.length - 1] as number) << 8;
  }
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

async function counters(cluster: Cluster, n: number): Promise<Readonly<Record<string, number>>> {
  return (await statusOf(cluster.tb, cluster.tb.host(n), STATUS_PORT)).counters;
}

/** Every pod's IPv6 address and its gateway's on cni0 out of DAD (a tentative address neither sends nor answers). */
async function podsSettled(cluster: Cluster): Promise<boolean> {
  const targets = H.flatMap((n) => [
    { at: pod(cluster, n), dev: 'eth0' },
    { at: cluster.tb.host(n), dev: 'cni0' },
  ]);
  for (const { at, dev } of targets) {
    const ok = await until(
      async () => {
        const r = await cluster.tb.exec(at, ['ip', '-6', 'addr', 'show', 'dev', dev]);
        return r.code === 0 && r.stdout.includes('inet6') && !r.stdout.includes('tentative');
      },
      10_000,
      200,
    );
    if (!ok) return false;
  }
  return true;
}

/** Starts the three daemons on `tier`, their pods, and waits (bounded) until each knows both peers. */
async function startAll(t: Test, cluster: Cluster, tier: string): Promise<void> {
  await Promise.all(H.map((n) => cluster.startDaemon(n, [`--tier=${tier}`, `--healthz-port=${STATUS_PORT}`])));
  for (const n of H) await cluster.ensurePod(n);
  const peers = async (n: number): Promise<number> =>
    (await statusOf(cluster.tb, cluster.tb.host(n), STATUS_PORT)).peers.length;
  t.ok(await until(async () => (await Promise.all(H.map(peers))).every((k) => k === 2), 10_000, 100), 'peers known');
  t.ok(await podsSettled(cluster), "the pods' and gateways' IPv6 addresses are out of DAD");
}

async function stopAll(cluster: Cluster): Promise<void> {
  await Promise.all(H.map((n) => cluster.stopDaemon(n)));
}

for (const encap of ['udp', 'vxlan', 'geneve']) {
  t.test(`ping6 matrix on every tier, ${encap}`, async (t) => {
    const cluster = await clusterFor(t, 3, dualStackConfig(encap));
    for (const tier of TIERS) {
      await t.test(`${tier}/${encap}`, async (t) => {
        await startAll(t, cluster, tier);
        await pingMatrix(t, cluster, H, 6);
        if (tier === 'batch' && encap === 'vxlan') await batchChecks(t, cluster);
        const c = await counters(cluster, 1);
        t.ok((c['udp_tx_packets'] ?? 0) > 0 && (c['udp_rx_packets'] ?? 0) > 0, 'through weft: datagrams both ways');
        t.equal(c['drop_malformed'] ?? 0, 0, 'nothing malformed');
        await stopAll(cluster);
      });
    }
  });
}

t.test('a kernel VXLAN host (flannel-v6.1) and a batch host carry IPv6 between them, both ways', async (t) => {
  const cluster = await clusterFor(t, 2, dualStackConfig('vxlan'));
  await cluster.startDaemon(1, ['--datapath=kernel']);
  await cluster.startDaemon(2, ['--tier=batch', `--healthz-port=${STATUS_PORT}`]);
  for (const n of [1, 2]) await cluster.ensurePod(n);
  const peers = async (): Promise<number> => (await statusOf(cluster.tb, cluster.tb.host(2), STATUS_PORT)).peers.length;
  t.ok(await until(async () => (await peers()) === 1, 10_000, 100), 'the batch host knows the kernel host');
  const two = cluster.pods;
  for (const n of [1, 2]) {
    const ok = await until(
      async () => {
        const r = await cluster.tb.exec(two.get(n)!, ['ip', '-6', 'addr', 'show', 'dev', 'eth0']);
        const g = await cluster.tb.exec(cluster.tb.host(n), ['ip', '-6', 'addr', 'show', 'dev', 'cni0']);
        return !r.stdout.includes('tentative') && !g.stdout.includes('tentative') && r.stdout.includes('inet6');
      },
      10_000,
      200,
    );
    t.ok(ok, `h${n}: addresses out of DAD`);
  }
  await pingMatrix(t, cluster, [1, 2], 6);
  const r = await sha256Transfer(cluster.tb, pod(cluster, 1), pod(cluster, 2), 4 << 20, 60_000, 6);
  t.equal(r.receivedHash, r.sentHash, `TCP over IPv6 from the kernel host to the batch host: ${r.received} bytes`);
  const back = await sha256Transfer(cluster.tb, pod(cluster, 2), pod(cluster, 1), 4 << 20, 60_000, 6);
  t.equal(back.receivedHash, back.sentHash, `and back: ${back.received} bytes`);
  const c = (await statusOf(cluster.tb, cluster.tb.host(2), STATUS_PORT)).counters;
  t.equal((c['drop_spoofed_source'] ?? 0) + (c['drop_unknown_peer'] ?? 0), 0, 'the kernel peer is no stranger');
});

/** On batch/vxlan, with the daemons up: TCP over IPv6, hostile IPv6 datagrams, ICMPv6 errors by bytes. */
async function batchChecks(t: Test, cluster: Cluster): Promise<void> {
  const tb = cluster.tb;

  await t.test('a 16 MiB TCP transfer over IPv6 arrives whole (sha256)', async (t) => {
    const r = await sha256Transfer(tb, pod(cluster, 1), pod(cluster, 2), 16 << 20, 60_000, 6);
    t.equal(r.received, r.sent, `${r.received} of ${r.sent} bytes`);
    t.equal(r.receivedHash, r.sentHash, 'same sha256 on both ends');
  });

  await t.test('hostile IPv6 datagrams are dropped and counted by reason', async (t) => {
    const h1v6 = tb.hostIP6(1)!;
    const sn2 = parseSubnet6(cluster.ipv6SubnetOf(2)!)!;
    const sn1 = parseSubnet6(cluster.ipv6SubnetOf(1)!)!;
    const inside2 = formatIPv6(sn2.ip + 7n);
    const outside2 = formatIPv6(sn2.ip + (1n << 64n) * 0x77n + 7n); // another /64 of the network, no lease's
    const target = formatIPv6(sn1.ip + 2n);
    const header = Buffer.alloc(22);
    header[0] = 0x08;
    header.writeUIntBE(1, 4, 3);
    stableMac(h1v6, 1).copy(header, 8);
    header.writeUInt16BE(0x86dd, 20);
    const frame = (src: string): string => Buffer.concat([header, ipv6Udp(src, target)]).toString('hex');
    const before = await counters(cluster, 1);
    const delta = async (name: string): Promise<number> =>
      ((await counters(cluster, 1))[name] ?? 0) - (before[name] ?? 0);
    // From h2's PublicIPv6, an inner source outside h2's IPv6 subnet: spoofed.
    await sendDatagrams(tb, tb.host(2), h1v6, 8472, [{ kind: 'raw', hex: frame(outside2), count: 3 }]);
    // From h2's IPv4 PublicIP, inner IPv6 from h2's own subnet: IPv6 travels between PublicIPv6s only: spoofed.
    await sendDatagrams(tb, tb.host(2), tb.hostIP(1), 8472, [{ kind: 'raw', hex: frame(inside2), count: 2 }]);
    // From the bridge's IPv6 address, no lease's PublicIPv6: unknown peer.
    await sendDatagrams(tb, tb.bridgeNs, h1v6, 8472, [{ kind: 'raw', hex: frame(inside2), count: 4 }]);
    t.ok(await until(async () => (await delta('drop_spoofed_source')) === 5, 5000, 100), 'spoofed_source: 3 + 2');
    t.ok(await until(async () => (await delta('drop_unknown_peer')) === 4, 5000, 100), 'unknown_peer: 4');
    t.equal(await delta('tun_tx_packets'), 0, 'none reached the TUN');
  });

  await t.test('ICMPv6 errors read back from the TUN: type, code, checksum, the quoted packet', async (t) => {
    const h1 = tb.host(1);
    const gw = cluster.ipv6SubnetOf(1)!.replace(/\/64$/, '');
    const dump = tb.spawn(h1, ['tcpdump', '-i', 'weft0', '-n', '--immediate-mode', '-U', '-w', '-', 'icmp6'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stop = setTimeout(() => dump.kill('SIGTERM'), 20_000);
    t.teardown(() => {
      clearTimeout(stop);
      dump.kill('SIGTERM');
    });
    const { done } = await tcpdumpListening(dump);
    const sn2 = parseSubnet6(cluster.ipv6SubnetOf(2)!)!;
    const noLease = formatIPv6(sn2.ip + (1n << 64n) * 0x55n + 1n);
    const ping6 = async (args: string[]): Promise<void> => {
      await tb.exec(h1, ['ping', '-6', '-c', '1', '-W', '1', ...args], { timeoutMs: 5000 });
    };
    await ping6(['-t', '1', pod(cluster, 2).ip6!]); // hop limit 1: time exceeded
    await ping6([noLease]); // in the IPv6Network, no lease: no route
    // The route's MTU keeps the kernel from sending what is too big; without it weft answers packet too big.
    const mtu6 = Number(
      /mtu (\d+)/.exec((await tb.exec(h1, ['ip', '-6', 'route', 'show', 'fd00:5::/48'])).stdout)?.[1],
    );
    await tb.exec(h1, ['ip', '-6', 'route', 'replace', 'fd00:5::/48', 'dev', 'weft0']);
    await ping6(['-M', 'do', '-s', String(mtu6 - 40 - 8 + 10), pod(cluster, 3).ip6!]);
    await tb.exec(h1, ['ip', '-6', 'route', 'replace', 'fd00:5::/48', 'dev', 'weft0', 'mtu', String(mtu6)]);
    await new Promise((r) => setTimeout(r, 500));
    dump.kill('SIGTERM');
    const { stdout } = await done;
    const { linkType, records } = readPcap(stdout);
    const skip = linkType === 113 ? 16 : linkType === 276 ? 20 : 0;
    const packets = records.map((r) => r.subarray(skip));
    const requests = packets.filter((p) => p[40] === 128);
    const errors = packets.filter((p) => (p[40] as number) < 128);
    const want: Array<[number, number, string]> = [
      [3, 0, 'time exceeded (hop limit)'],
      [1, 0, 'destination unreachable (no route)'],
      [2, 0, 'packet too big'],
    ];
    t.equal(errors.length, 3, 'three ICMPv6 errors written to the TUN');
    for (const [i, [type, code, what]] of want.entries()) {
      const e = errors[i];
      const req = requests[i];
      if (!e || !req) {
        t.fail(`${what}: captured`);
        continue;
      }
      t.equal(`${e[40]}/${e[41]}`, `${type}/${code}`, `${what}: type/code`);
      t.equal(formatIPv6(BigInt(`0x${e.subarray(8, 24).toString('hex')}`)), gw, `${what}: from weft0's address`);
      t.same(e.subarray(24, 40), req.subarray(8, 24), `${what}: to the sender`);
      const plen = e.readUInt16BE(4);
      const pseudo = Buffer.alloc(8);
      pseudo.writeUInt32BE(plen, 0);
      pseudo[7] = 58;
      t.equal(sum16(e.subarray(8, 40), pseudo, e.subarray(40, 40 + plen)), 0xffff, `${what}: checksum verifies`);
      const quoted = e.subarray(48, 40 + plen);
      // Not forwarded, so not changed: the quote is the packet as weft read it (up to 1232 bytes, RFC 4443 2.4 (c)).
      t.same(quoted, req.subarray(0, quoted.length), `${what}: quotes the packet (${quoted.length} bytes)`);
      if (type === 2) t.equal(e.readUInt32BE(44), mtu6, `${what}: MTU ${mtu6}`);
    }
  });
}
