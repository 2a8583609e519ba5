// The TypeScript codecs (used by the dgram tier and as the reference for the native ones): each encodes in place
// what the native queue's encap step writes, decodes it back, and rejects each malformed variant with its verdict.
import t from 'tap';
import * as native from '../src/native.js';
import { byteQueue, outBatch } from './helpers/queue.js';
import { DecodeVerdict, type Encap } from '../src/encap/encap.js';
import { udpEncap } from '../src/encap/udp.js';
import { vxlanEncap, parseMac, formatMac } from '../src/encap/vxlan.js';
import { geneveEncap } from '../src/encap/geneve.js';
import { decrementTtl } from '../src/datapath/ttl.js';

const local = { mac: parseMac('02:00:00:00:00:01')!, vni: 7 };
const peerInfo = { mac: parseMac('02:00:00:00:00:02')!, vni: 7 };

function ipv4Packet(ttl = 64): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x45;
  b.writeUInt16BE(28, 2);
  b[8] = ttl;
  b[9] = 17;
  Buffer.from([10, 5, 3, 2]).copy(b, 12);
  Buffer.from([10, 5, 4, 2]).copy(b, 16);
  b.writeUInt16BE(ipChecksum(b), 10);
  return b;
}

function ipChecksum(h: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) if (i !== 10) sum += h.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

for (const encap of [udpEncap, vxlanEncap, geneveEncap] as Encap[]) {
  t.test(`${encap.name}: TS encode equals the native queue's encap; decode round trip`, async (t) => {
    const pkt = ipv4Packet();
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

t.test('TTL decrement keeps a valid header checksum; TTL 1 is refused', async (t) => {
  for (const ttl of [2, 64, 255]) {
    const p = ipv4Packet(ttl);
    t.ok(decrementTtl(p, 0));
    t.equal(p[8], ttl - 1);
    t.equal(p.readUInt16BE(10), ipChecksum(p), `checksum right after ${ttl} -> ${ttl - 1}`);
  }
  const p = ipv4Packet(1);
  t.notOk(decrementTtl(p, 0));
  t.equal(p[8], 1, 'unchanged');
});

t.test('decoders reject malformed input with their verdicts', async (t) => {
  const out = new Int32Array(1);
  const pkt = ipv4Packet();
  const vx = (mut: (b: Buffer) => void) => {
    const b = Buffer.alloc(22 + pkt.length);
    pkt.copy(b, 22);
    vxlanEncap.encode(b, 22, pkt.length, peerInfo, local);
    mut(b);
    return vxlanEncap.decode(b, 0, b.length, local, out);
  };
  t.equal(
    vx(() => undefined),
    22,
  );
  t.equal(
    vx((b) => (b[0] = 0)),
    DecodeVerdict.badFlags,
  );
  t.equal(
    vx((b) => (b[6] = 9)),
    DecodeVerdict.badVni,
  );
  t.equal(
    vx((b) => (b[21] = 0xdd)),
    DecodeVerdict.badEthertype,
  );
  t.equal(
    vx((b) => (b[22] = 0x65)),
    DecodeVerdict.malformed,
    'inner not IPv4',
  );
  t.equal(
    vx((b) => b.writeUInt16BE(400, 24)),
    DecodeVerdict.truncated,
    'inner length lies',
  );
  t.equal(vxlanEncap.decode(Buffer.alloc(10), 0, 10, local, out), DecodeVerdict.truncated);

  const gv = (mut: (b: Buffer) => void, extra = 0) => {
    const b = Buffer.alloc(8 + extra + pkt.length);
    pkt.copy(b, 8 + extra);
    geneveEncap.encode(b, 8, pkt.length, peerInfo, local);
    mut(b);
    return geneveEncap.decode(b, 0, b.length, local, out);
  };
  t.equal(
    gv(() => undefined),
    8,
  );
  t.equal(
    gv((b) => (b[0] = 0x40)),
    DecodeVerdict.badVersion,
  );
  t.equal(
    gv((b) => (b[0] = 0x3f)),
    DecodeVerdict.truncated,
    'options longer than the packet',
  );
  t.equal(
    gv((b) => {
      b[0] = 1;
      b[1] = 0x40;
    }, 4),
    DecodeVerdict.geneveCritical,
  );
  t.equal(
    gv((b) => (b[3] = 0xdd)),
    DecodeVerdict.badEthertype,
  );
  t.equal(
    gv((b) => (b[6] = 1)),
    DecodeVerdict.badVni,
  );
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
