// Golden VXLAN bytes against the kernel: what Linux's vxlan device (flannel's layout) puts on the wire for a ping,
// compared with weft's userspace encap of the same inner packet.
//
//   bridge netns: bridge wbr<id> (tcpdump here sees every outer datagram), etcd
//   h1: weft --datapath userspace --tier batch (Backend vxlan)    h2: weft --datapath kernel (flannel.1)
//   pod2 pings pod1 once: the echo request leaves h2 through the kernel's vxlan, the reply leaves h1 through weft.
//
// Checked: VXLAN flags (I bit only), reserved bytes, VNI; inner Ethernet dst = the receiver's VtepMAC, src = the
// sender's, ethertype IPv4; weft's encode of the kernel's inner packet gives the kernel's 22 header bytes exactly;
// the inner IP packet equals the one the pod sent apart from TTL (one hop) and the header checksum.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Cluster } from '../testbed/cluster.js';
import type { Target } from '../testbed/exec.js';
import { ping } from '../testbed/traffic.js';
import { vxlanEncap } from '../src/encap/vxlan.js';
import { stableMac } from '../src/backend/vtep-mac.js';
import { readPcap, tcpdumpListening } from './helpers/tcpdump.js';

/** The frames of a pcap file that tcpdump wrote on an Ethernet link. */
function readFrames(file: string): Buffer[] {
  const { linkType, records } = readPcap(readFileSync(file));
  if (linkType !== -1 && linkType !== 1) throw new Error(`${file}: link type ${linkType}, want Ethernet`);
  return records;
}

interface Udp {
  src: string;
  dstPort: number;
  payload: Buffer;
}

/** The UDP datagram in an Ethernet/IPv4 frame, or null. */
function udpOf(frame: Buffer): Udp | null {
  if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) return null;
  const ip = frame.subarray(14);
  const ihl = ((ip[0] as number) & 0x0f) * 4;
  if (ip[9] !== 17) return null;
  const udp = ip.subarray(ihl);
  return {
    src: [...ip.subarray(12, 16)].join('.'),
    dstPort: udp.readUInt16BE(2),
    payload: udp.subarray(8, udp.readUInt16BE(4)),
  };
}

/** Starts a bounded tcpdump writing `file`; resolves once it listens, with `done` (its stderr once it exits). */
async function capture(
  cluster: Cluster,
  where: Target,
  iface: string,
  file: string,
  count: number,
  filter: string[],
): Promise<{ done: Promise<string> }> {
  const child = cluster.tb.spawn(
    where,
    [
      'timeout',
      '15',
      'tcpdump',
      '--immediate-mode',
      '-U',
      '-n',
      '-i',
      iface,
      '-s',
      '0',
      '-c',
      String(count),
      '-w',
      file,
      ...filter,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const { done } = await tcpdumpListening(child);
  return { done: done.then((r) => r.stderr) };
}

t.test("kernel vxlan bytes vs weft's userspace encap", async (t) => {
  const cluster = await Cluster.create({
    hosts: 2,
    network: { Network: '10.8.0.0/16', SubnetLen: 24, Backend: { Type: 'vxlan' } },
  });
  const dir = await mkdtemp(join(tmpdir(), 'weft-golden-'));
  t.teardown(async () => {
    await cluster.destroy();
    await rm(dir, { recursive: true, force: true });
  });
  await cluster.startDaemon(1, ['--datapath=userspace', '--tier=batch']);
  await cluster.startDaemon(2, ['--datapath=kernel']);
  const pod1 = await cluster.ensurePod(1);
  const pod2 = await cluster.ensurePod(2);
  const warm = await ping(pod2, pod1.ip, { count: 2, timeoutSec: 3 });
  t.ok(warm.ok, 'pods talk before the capture');

  const outerFile = join(dir, 'outer.pcap');
  const innerFile = join(dir, 'inner.pcap');
  const outerDone = await capture(cluster, cluster.tb.bridgeNs, cluster.tb.bridgeDev, outerFile, 2, [
    'udp',
    'dst',
    'port',
    '8472',
  ]);
  const innerDone = await capture(cluster, pod2, 'eth0', innerFile, 1, ['icmp[icmptype] == icmp-echo']);
  const p = await ping(pod2, pod1.ip, { count: 1, timeoutSec: 3 });
  t.ok(p.ok, 'one echo request and reply');
  const tcpdumpSaid = await Promise.all([outerDone.done, innerDone.done]);

  const h1 = cluster.tb.hostIP(1);
  const h2 = cluster.tb.hostIP(2);
  const mac1 = stableMac(h1, 1);
  const mac2 = stableMac(h2, 1);
  const datagrams = readFrames(outerFile)
    .map(udpOf)
    .filter((u): u is Udp => u !== null);
  const kernel = datagrams.find((d) => d.src === h2);
  const weft = datagrams.find((d) => d.src === h1);
  const sent = readFrames(innerFile)[0]?.subarray(14);
  if (!kernel || !weft || !sent) {
    t.fail(
      `capture incomplete: ${datagrams.length} datagrams, inner ${sent ? 'ok' : 'missing'}; ` +
        `tcpdump: ${tcpdumpSaid.join(' / ')}; ${dir}`,
    );
    return;
  }
  t.equal(kernel.dstPort, 8472, 'kernel sends to port 8472');
  t.equal(weft.dstPort, 8472, 'weft sends to port 8472');

  const hdr = (b: Buffer) => ({
    flags: b[0],
    reserved: b.subarray(1, 4).toString('hex'),
    vni: b.readUIntBE(4, 3),
    reserved2: b[7],
    dst: b.subarray(8, 14).toString('hex'),
    src: b.subarray(14, 20).toString('hex'),
    ethertype: b.readUInt16BE(20),
  });
  t.same(
    hdr(kernel.payload),
    {
      flags: 0x08,
      reserved: '000000',
      vni: 1,
      reserved2: 0,
      dst: mac1.toString('hex'),
      src: mac2.toString('hex'),
      ethertype: 0x0800,
    },
    "kernel: I flag, VNI 1, inner dst = receiver's VtepMAC, src = its own VtepMAC, IPv4",
  );
  t.same(
    hdr(weft.payload),
    {
      flags: 0x08,
      reserved: '000000',
      vni: 1,
      reserved2: 0,
      dst: mac2.toString('hex'),
      src: mac1.toString('hex'),
      ethertype: 0x0800,
    },
    'weft: the same layout with the MACs the other way round',
  );

  // weft's encoder on the kernel's inner packet reproduces the kernel's header byte for byte.
  const inner = kernel.payload.subarray(22);
  const buf = Buffer.alloc(64 + inner.length);
  inner.copy(buf, 64);
  const start = vxlanEncap.encode(buf, 64, inner.length, { mac: mac1, vni: 1 }, { mac: mac2, vni: 1 });
  t.equal(
    buf.subarray(start, 64).toString('hex'),
    kernel.payload.subarray(0, 22).toString('hex'),
    'weft encode == kernel header (22 bytes)',
  );

  // The inner IP packet is the pod's, forwarded one hop.
  const ipLen = sent.readUInt16BE(2);
  const a = Buffer.from(sent.subarray(0, ipLen));
  const b = Buffer.from(inner.subarray(0, inner.readUInt16BE(2)));
  t.equal(b.length, a.length, 'same inner length');
  t.equal((a[8] as number) - (b[8] as number), 1, 'TTL one lower after the host forwarded it');
  for (const x of [a, b]) {
    x[8] = 0;
    x[10] = 0;
    x[11] = 0;
  }
  t.equal(b.toString('hex'), a.toString('hex'), 'inner IP bytes equal apart from TTL and header checksum');
});
