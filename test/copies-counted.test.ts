// copied_user_bytes against what each path must copy, computed here from the packets sent. Real sockets on
// loopback, native queues without a TUN (test/helpers/queue.ts): the packets are placed where a TUN read puts them.
//
//   offload tier: super-packets cut by GSO into a train gathered from a header area and the read slot, UDP_SEGMENT
//                 sends; received datagrams decapsulated in place and coalesced by GRO into gathered writes:
//                 no payload byte copied in user space.
//   batch tier:   the encap header written in place in front of each packet, sendmmsg/recvmmsg, decap in place:
//                 none either.
//   gsoSplit (tests and fuzzing only) writes the segments out whole: each payload byte counted once.
// The kernel's copies are counted at the syscalls: every wire byte once on send and once on receive.
import t from 'tap';
import * as n from './helpers/native.js';
import { ipv4Packet, l4Sum, pseudoSum } from './helpers/packets.js';
import { byteQueue, outBatch } from './helpers/queue.js';
import { until } from './helpers/wait.js';

const VH = n.VNET_HDR_LEN;
const MTU = 1450;
const HDR = 40; // IPv4 + TCP, no options
const VXLAN = 8 + 14; // what the queue writes in front of each segment; the kernel adds the outer IP and UDP

/** An IPv4 TCP packet with `payload` bytes: full checksum, or the pseudo-header sum a TSO sender leaves. */
function tcp(payload: number, seq: number, partial: boolean): Buffer {
  const p = ipv4Packet({ len: HDR + payload, proto: 6, dst: '10.5.2.2' });
  p.writeUInt16BE(40000, 20);
  p.writeUInt16BE(5201, 22);
  p.writeUInt32BE(seq, 24);
  p.writeUInt32BE(777, 28);
  p[32] = 5 << 4;
  p[33] = 0x10; // ACK
  p.writeUInt16BE(501, 34);
  for (let i = HDR; i < p.length; i++) p[i] = (i * 7 + 3) & 255;
  p.writeUInt16BE(partial ? pseudoSum(p) : ~l4Sum(p) & 0xffff, 36);
  return p;
}

/** virtio_net_hdr + packet: GSO_TCPV4 cut at the MTU, or GSO_NONE (no flags) for a packet that fits. */
function withVnet(p: Buffer): Buffer {
  const b = Buffer.alloc(VH + p.length);
  if (p.length > MTU) {
    b[0] = 1; // NEEDS_CSUM
    b[1] = 1; // GSO_TCPV4
    b.writeUInt16LE(HDR, 2);
    b.writeUInt16LE(MTU - HDR, 4);
    b.writeUInt16LE(20, 6);
    b.writeUInt16LE(16, 8);
  }
  p.copy(b, VH);
  return b;
}

/** Wire bytes (what sendmmsg copies) of one inner packet: one encap header per segment. */
function wireBytes(len: number): number {
  const payload = len - HDR;
  const nseg = len > MTU ? Math.ceil(payload / (MTU - HDR)) : 1;
  return len + (nseg - 1) * HDR + nseg * VXLAN;
}

function peerTable(port: number): Buffer {
  const tab = Buffer.alloc(n.PEER_RECORD_SIZE);
  n.writePeerRecord(tab, 0, '127.0.0.1', port, '02:00:00:00:00:01', 1);
  return tab;
}

/** Two loopback sockets, closed in teardown. */
function sockets(t: { teardown(fn: () => void): void }) {
  const a = n.udpOpen('127.0.0.1', 0, 4 << 20, false);
  const b = n.udpOpen('127.0.0.1', 0, 4 << 20, true);
  t.teardown(() => {
    n.close(a);
    n.close(b);
  });
  return { a, b, pb: n.udpLocalPort(b) };
}

/** Receives until `bytes` arrived (at most 5 s) and decapsulates each batch; returns the segments found. */
async function receive(q: ReturnType<typeof byteQueue>, bytes: number): Promise<Buffer[]> {
  const k = q.opts.counters;
  const segs: Buffer[] = [];
  await until(
    () => {
      const got = n.inRecv(q.handle);
      const ns = n.inDecap(q.handle, got);
      for (let s = 0; s < ns; s++) {
        const len = q.segLen[s] as number;
        if (len > 0) segs.push(Buffer.from(q.inSlab.subarray(q.segOff[s], (q.segOff[s] as number) + len)));
      }
      return (k[n.Counter.udp_rx_bytes] as number) >= bytes;
    },
    5000,
    20,
  );
  return segs;
}

const SIZES = [20_000, 7_001, 1_000, MTU * 3];

t.test('offload tier: trains and GRO copy no payload in user space; the kernel copies each wire byte', async (t) => {
  const { a, b, pb } = sockets(t);
  const tx = byteQueue({ slots: SIZES.length, encap: n.ENCAP_VXLAN, vnet: true, mtu: MTU, sockFd: a });
  const rx = byteQueue({ slots: 64, encap: n.ENCAP_VXLAN, vnet: true, mtu: MTU, sockFd: b });
  t.teardown(() => {
    tx.close();
    rx.close();
  });
  const pkts = SIZES.map((len, i) => tcp(len - HDR, 1000 + i * 100_000, len > MTU));
  pkts.forEach((p, i) => {
    withVnet(p).copy(tx.outSlab, tx.outPacket(i) - VH);
    tx.outLen[i] = p.length;
    tx.outPeer[i] = 0;
  });
  tx.usePeers(peerTable(pb));
  const wire = SIZES.reduce((s, len) => s + wireBytes(len), 0);
  n.outEncap(tx.handle, pkts.length);
  t.equal(n.outSend(tx.handle), 0, 'all sent');
  const k = tx.opts.counters;
  t.equal(k[n.Counter.gso_superpackets], SIZES.filter((len) => len > MTU).length, 'the big ones went through GSO');
  t.equal(k[n.Counter.copied_user_bytes], 0, 'send: no payload byte copied in user space (scatter-gather)');
  t.equal(k[n.Counter.copied_user_to_kernel_bytes], wire, `send: the kernel copied the ${wire} wire bytes`);

  const segs = await receive(rx, wire);
  const rk = rx.opts.counters;
  t.equal(rk[n.Counter.copied_kernel_to_user_bytes], wire, 'receive: the kernel copied the same wire bytes');
  const inner = segs.reduce((s, p) => s + p.length - HDR, 0);
  t.equal(
    inner,
    SIZES.reduce((s, len) => s + len - HDR, 0),
    'every payload byte arrived',
  );
  // GRO over what arrived, through the test sink (its own memcpy into `out` is the test's, not counted).
  const slab = Buffer.concat(segs);
  const off = new Int32Array(segs.length);
  const len = Int32Array.from(segs.map((p) => p.length));
  segs.reduce((at, p, i) => ((off[i] = at), at + p.length), 0);
  const out = Buffer.alloc(slab.length + segs.length * VH);
  const gk = new Float64Array(n.COUNTER_COUNT);
  const written = n.groBuild(slab, off, len, segs.length, true, out, new Int32Array(segs.length), gk, MTU);
  t.ok(gk[n.Counter.gro_superpackets]! > 0 && written < segs.length, `GRO coalesced (${written} writes)`);
  t.equal(rk[n.Counter.copied_user_bytes]! + gk[n.Counter.copied_user_bytes]!, 0, 'receive: none in user space');
});

t.test('batch tier: encap and decap in place copy no payload in user space', async (t) => {
  const { a, b, pb } = sockets(t);
  const sizes = [1400, 600, 40, 1000];
  const tx = byteQueue({ slots: sizes.length, encap: n.ENCAP_VXLAN, sockFd: a });
  const rx = byteQueue({ slots: 16, encap: n.ENCAP_VXLAN, sockFd: b });
  t.teardown(() => {
    tx.close();
    rx.close();
  });
  const pkts = sizes.map((len, i) => tcp(len - HDR, i * 5000, false));
  const batch = outBatch(tx, pkts, peerTable(pb));
  t.equal(batch.encap(), pkts.length, 'one datagram per packet');
  t.equal(n.outSend(tx.handle), 0, 'all sent');
  const wire = sizes.reduce((s, len) => s + len + VXLAN, 0);
  const k = tx.opts.counters;
  t.equal(k[n.Counter.copied_user_bytes], 0, 'send: nothing copied in user space');
  t.equal(k[n.Counter.copied_user_to_kernel_bytes], wire, 'send: the kernel copied each wire byte');
  const segs = await receive(rx, wire);
  const rk = rx.opts.counters;
  t.same(
    segs.map((p) => p.length),
    sizes,
    'each packet decapsulated where it arrived',
  );
  t.equal(rk[n.Counter.copied_kernel_to_user_bytes], wire, 'receive: the kernel copied each wire byte');
  t.equal(rk[n.Counter.copied_user_bytes], 0, 'receive: nothing copied in user space');
});

t.test('gsoSplit writes segments out whole: each payload byte counted once', async (t) => {
  let want = 0;
  const counters = new Float64Array(n.COUNTER_COUNT);
  const out = Buffer.alloc(100_000);
  const result = new Int32Array(2);
  for (const len of SIZES) {
    const b = withVnet(tcp(len - HDR, 1, len > MTU));
    // GSO_NONE copies the whole packet; a super-packet its payload (each segment's headers are built, not counted).
    want += len > MTU ? len - HDR : len;
    t.ok(n.gsoSplit(b, VH, len, MTU, out, 0, 0, result, counters) > 0, `${len} bytes split`);
  }
  t.equal(counters[n.Counter.copied_user_bytes], want, `${want} bytes counted`);
});
