// The TypeScript codecs (used by the dgram tier and as the reference for the native ones): each encodes in place
// what the native queue's encap step writes, decodes it back, and rejects each malformed variant with its verdict.
import t from 'tap';
import * as native from './helpers/native.js';
import { byteQueue, outBatch } from './helpers/queue.js';
import { DecodeVerdict, type Encap } from '../src/encap/encap.js';
import { udpEncap } from '../src/encap/udp.js';
import { vxlanEncap, parseMac, formatMac } from '../src/encap/vxlan.js';
import { geneveEncap } from '../src/encap/geneve.js';
import { decrementHopLimit, decrementTtl } from '../src/datapath/ttl.js';
import { csum, ipv4Packet } from './helpers/packets.js';

const local = { mac: parseMac('02:00:00:00:00:01')!, vni: 7 };
const peerInfo = { mac: parseMac('02:00:00:00:00:02')!, vni: 7 };

/** A 28-byte IPv4/UDP packet 10.5.3.2 -> 10.5.4.2 with a valid header checksum. */
function udpPacket(ttl = 64): Buffer {
  return ipv4Packet({ len: 28, ttl, proto: 17, id: 0, frag: 0, src: '10.5.3.2', dst: '10.5.4.2' });
}

/** The header checksum the packet should carry (computed over its header with the field zeroed). */
function ipChecksum(p: Buffer): number {
  const h = Buffer.from(p.subarray(0, 20));
  h.writeUInt16BE(0, 10);
  return ~csum(h) & 0xffff;
}

for (const encap of [udpEncap, vxlanEncap, geneveEncap] as Encap[]) {
  t.test(`${encap.name}: TS encode equals the native queue's encap; decode round trip`, async (t) => {
    const pkt = udpPacket();
    // TS: header in place in front of the packet.
    const buf = Buffer.alloc(native.HEADROOM + pkt.length);
    pkt.copy(buf, native.HEADROOM);
    const start = encap.encode(buf, native.HEADROOM, pkt.length, peerInfo, local);
    t.equal(native.HEADROOM - start, encap.headerLength);
    // Native, from the same inner packet (its TTL decrement happens in outEncap; do it in TS too to compare).
    const table = Buffer.alloc(native.PEER_RECORD_SIZE);
    native.writePeerRecord(table, 0, '198.18.0.2', encap.defaultPort, peerInfo.mac, 7);
    const b = outBatch(byteQueue({ slots: 1, encap: encap.nativeId, vni: 7, localMac: local.mac }), [pkt], table);
    b.encap(1);
    t.ok(decrementTtl(buf, native.HEADROOM));
    t.same(b.slab.subarray(b.off[0]!, b.off[0]! + b.len[0]!), buf.subarray(start), 'same bytes on the wire');
    const out = new Int32Array(1);
    const inner = encap.decode(buf, start, buf.length - start, local, out);
    t.equal(inner, native.HEADROOM);
    t.equal(out[0], pkt.length);
  });
}

/** A 48-byte IPv6/UDP packet fd00:5:0:3::2 -> fd00:5:0:4::2 (hop limit `hops`). */
function udp6Packet(hops = 64): Buffer {
  const p = Buffer.alloc(48);
  p[0] = 0x60;
  p.writeUInt16BE(8, 4);
  p[6] = 17;
  p[7] = hops;
  Buffer.from('fd000005000000030000000000000002', 'hex').copy(p, 8);
  Buffer.from('fd000005000000040000000000000002', 'hex').copy(p, 24);
  p.writeUInt16BE(8, 44);
  return p;
}

for (const encap of [udpEncap, vxlanEncap, geneveEncap] as Encap[]) {
  t.test(`${encap.name}: inner IPv6: TS encode equals the native encap (0x86DD, hop limit); decode`, async (t) => {
    const pkt = udp6Packet();
    const buf = Buffer.alloc(native.HEADROOM + pkt.length);
    pkt.copy(buf, native.HEADROOM);
    const start = encap.encode(buf, native.HEADROOM, pkt.length, peerInfo, local);
    if (encap.headerLength > 0) {
      const proto = encap === vxlanEncap ? buf.readUInt16BE(native.HEADROOM - 2) : buf.readUInt16BE(start + 2);
      t.equal(proto, 0x86dd, 'protocol: IPv6');
    }
    const table = Buffer.alloc(native.PEER_RECORD_SIZE);
    native.writePeerRecord(table, 0, '198.18.0.2', encap.defaultPort, peerInfo.mac, 7);
    const b = outBatch(byteQueue({ slots: 1, encap: encap.nativeId, vni: 7, localMac: local.mac }), [pkt], table);
    b.encap(1);
    t.ok(decrementHopLimit(buf, native.HEADROOM));
    t.equal(buf[native.HEADROOM + 7], 63, 'hop limit 64 -> 63');
    t.same(b.slab.subarray(b.off[0]!, b.off[0]! + b.len[0]!), buf.subarray(start), 'same bytes on the wire');
    const out = new Int32Array(1);
    t.equal(encap.decode(buf, start, buf.length - start, local, out), native.HEADROOM);
    t.equal(out[0], pkt.length);
    t.notOk(decrementHopLimit(udp6Packet(1), 0), 'hop limit 1 is refused');
  });
}

t.test('TTL decrement keeps a valid header checksum; TTL 1 is refused', async (t) => {
  for (const ttl of [2, 64, 255]) {
    const p = udpPacket(ttl);
    t.ok(decrementTtl(p, 0));
    t.equal(p[8], ttl - 1);
    t.equal(p.readUInt16BE(10), ipChecksum(p), `checksum right after ${ttl} -> ${ttl - 1}`);
  }
  const p = udpPacket(1);
  t.notOk(decrementTtl(p, 0));
  t.equal(p[8], 1, 'unchanged');
});

t.test('decoders reject malformed input with their verdicts', async (t) => {
  const out = new Int32Array(1);
  const pkt = udpPacket();
  const vx = (mut: (b: Buffer) => void) => {
    const b = Buffer.alloc(22 + pkt.length);
    pkt.copy(b, 22);
    vxlanEncap.encode(b, 22, pkt.length, peerInfo, local);
    mut(b);
    return vxlanEncap.decode(b, 0, b.length, local, out);
  };
  // [change to the encoded datagram, what decode returns, what the check says, option bytes in front (Geneve)]
  type Case = [(b: Buffer) => void, number, string, number?];
  const vxlanCases: Case[] = [
    [() => undefined, 22, 'a good datagram: the inner packet at 22'],
    [(b) => (b[0] = 0), DecodeVerdict.badFlags, 'I flag clear'],
    [(b) => (b[6] = 9), DecodeVerdict.badVni, 'another VNI'],
    [(b) => (b[21] = 0xdd), DecodeVerdict.badEthertype, 'inner ethertype not IPv4'],
    [(b) => (b[22] = 0x75), DecodeVerdict.malformed, 'inner neither IPv4 nor IPv6'],
    [(b) => (b[22] = 0x65), DecodeVerdict.badEthertype, 'an IPv6 version under EtherType 0x0800'],
    [(b) => b.writeUInt16BE(400, 24), DecodeVerdict.truncated, 'inner length lies'],
  ];
  for (const [mut, want, what] of vxlanCases) t.equal(vx(mut), want, what);
  t.equal(vxlanEncap.decode(Buffer.alloc(10), 0, 10, local, out), DecodeVerdict.truncated);

  const gv = (mut: (b: Buffer) => void, extra = 0) => {
    const b = Buffer.alloc(8 + extra + pkt.length);
    pkt.copy(b, 8 + extra);
    geneveEncap.encode(b, 8, pkt.length, peerInfo, local);
    mut(b);
    return geneveEncap.decode(b, 0, b.length, local, out);
  };
  const critical = (b: Buffer): void => {
    b[0] = 1; // one 4-byte word of options
    b[1] = 0x40; // C: a critical option is present
  };
  const geneveCases: Case[] = [
    [() => undefined, 8, 'a good datagram: the inner packet at 8'],
    [(b) => (b[0] = 0x40), DecodeVerdict.badVersion, 'version 1'],
    [(b) => (b[0] = 0x3f), DecodeVerdict.truncated, 'options longer than the packet'],
    [critical, DecodeVerdict.geneveCritical, 'a critical option', 4],
    [(b) => (b[3] = 0xdd), DecodeVerdict.badEthertype, 'protocol type not IPv4'],
    [(b) => (b[6] = 1), DecodeVerdict.badVni, 'another VNI'],
  ];
  for (const [mut, want, what, extra] of geneveCases) t.equal(gv(mut, extra), want, what);
  t.equal(udpEncap.decode(Buffer.from([0x45, 0, 0]), 0, 3, local, out), DecodeVerdict.truncated);
});

t.test("VXLAN lease data is flanneld's shape; peers parsed and checked", async (t) => {
  t.same(vxlanEncap.leaseData(local), { VNI: 7, VtepMAC: '02:00:00:00:00:01' });
  t.equal(JSON.stringify(vxlanEncap.leaseData(local)), '{"VNI":7,"VtepMAC":"02:00:00:00:00:01"}');
  const p = vxlanEncap.parsePeer({ VNI: 7, VtepMAC: 'aa:bb:cc:dd:ee:ff' }, local);
  t.equal(typeof p === 'string' ? p : formatMac(p.mac), 'aa:bb:cc:dd:ee:ff');
  t.match(vxlanEncap.parsePeer({ VNI: 8, VtepMAC: 'aa:bb:cc:dd:ee:ff' }, local), /VNI 8 differs/);
  t.match(vxlanEncap.parsePeer({ VNI: 7, VtepMAC: 'nope' }, local), /not a MAC/);
  t.match(vxlanEncap.parsePeer(null, local), /missing/);
});
